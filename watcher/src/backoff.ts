import type { Config } from '@pullnix/shared';

/**
 * Bounded exponential back-off: base, 2·base, 4·base, … capped at max. `failures` counts the
 * consecutive failures so far (1 after the first).
 */
export function backoffDelayMs(failures: number, baseMs: number, maxMs: number): number {
  if (failures <= 0) return 0;
  const exponent = Math.min(failures - 1, 40);
  return Math.min(maxMs, baseMs * 2 ** exponent);
}

/** The normal wait between two polls: the interval plus a random share of the jitter, so a fleet does not poll in step. */
export function pollDelayMs(poll: Config['poll'], random: () => number): number {
  return poll.intervalSec * 1000 + Math.floor(random() * poll.jitterSec * 1000);
}

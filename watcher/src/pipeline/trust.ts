/**
 * The trust stage: the signatures of the new range (trust.mode, shared/src/trust.ts), checked
 * before one line of it is checked out, evaluated or built.
 */
import type { TrustGate } from '@pullnix/shared';
import { describeGitError } from '../commands/git.ts';
import type { Ending, WatcherContext } from './context.ts';

/** null: the range may be evaluated; otherwise it was refused, recorded, and how the cycle ends. */
export async function checkTrust(c: WatcherContext, trust: TrustGate, head: string, deployed: string | null, signal: AbortSignal): Promise<Ending | null> {
  if (trust.mode === 'off') return null;
  const verdict = await trust.check(head, [deployed], signal);
  if (verdict.ok) {
    c.logger.event('trust.verified', { commit: head, mode: verdict.mode, checked: verdict.checked, signers: verdict.signers.join(', ') });
    if (c.memory.untrusted) {
      c.memory.untrusted = null;
      c.save();
    }
    return null;
  }
  c.logger.event('trust.refused', { commit: head, offending: verdict.commit, reason: verdict.reason, error: verdict.message, bad: verdict.bad, checked: verdict.checked, mode: verdict.mode });
  c.memory.untrusted = { head, commit: verdict.commit, reason: verdict.reason, message: verdict.message, at: new Date(c.clock.now()).toISOString(), config: trust.fingerprint };
  await discardRange(c, head, deployed, signal);
  return {
    outcome: 'untrusted',
    failures: 'reset',
    error: { kind: 'trust', message: `${verdict.reason}: ${verdict.message}` },
    handled: { result: 'untrusted', detail: `${verdict.reason} ${verdict.commit ?? ''}`.trim() },
  };
}

/**
 * A refused range is not kept: whoever can push must not fill the watcher's disk with ranges
 * that are never evaluated. The checkout holds at most the range being checked; once refused, its
 * objects are deleted (trust.discarded). It is fetched again only if the branch moves.
 */
async function discardRange(c: WatcherContext, head: string, deployed: string | null, signal: AbortSignal): Promise<void> {
  try {
    await c.git.discard(deployed, signal);
    c.logger.event('trust.discarded', { commit: head, kept: deployed });
  } catch (error) {
    if (!signal.aborted) c.logger.event('trust.discard_failed', { commit: head, error: describeGitError(error) });
  }
}

/**
 * Phased start within a ring (docs/rings.md, "Phased start"): a host deploys commit C only once
 * its place in the ring for C, hash(machine-id, C) as a percentage, falls under the share of the
 * ring that the time since the host first saw its ring's branch at C allows. A different place per
 * commit, so the same hosts are not always first; the same place for the same commit on every
 * poll and after every restart, so a host never goes back to waiting once allowed.
 *
 * The clock starts at this host's own first sighting of C on its branch, kept in the watcher's
 * memory (watcher.json) across restarts (docs/decisions.md, "When did the ring branch move?").
 * Pure: no I/O; the watcher gives it the memory, the machine id and the time.
 */
import { createHash } from 'node:crypto';
import type { RingPhase } from '@pullnix/shared';

/** When this host first saw its ring's branch at `commit` (ISO time). */
export interface PhasedSighting {
  commit: string;
  firstSeenAt: string;
}

export interface PhasedDecision {
  allowed: boolean;
  /** Percent of the ring allowed now. */
  share: number;
  /** This host's place for this commit, in [0, 100). */
  position: number;
  /** When the share will cover this host (ms since the epoch); null when allowed already. */
  allowedAt: number | null;
  /** One line for status and the journal. */
  message: string;
}

/** This host's place in the ring for `commit`: the first 48 bits of sha256(machine-id NUL commit), as a percentage in [0, 100). */
export function phasePosition(machineId: string, commit: string): number {
  const digest = createHash('sha256').update(`${machineId.trim()}\0${commit}`).digest();
  return (digest.readUIntBE(0, 6) / 2 ** 48) * 100;
}

/** The share of the ring allowed `elapsedSec` after the sighting: the last phase already begun (0 before the first; 100 without phases). */
export function allowedShare(phases: readonly RingPhase[], elapsedSec: number): number {
  if (phases.length === 0) return 100;
  let share = 0;
  for (const p of phases) if (elapsedSec >= p.afterSec) share = p.share;
  return share;
}

/** The sighting to keep for `head`: the remembered one if it is for the same commit, else a new one at `now`. */
export function sightingFor(remembered: PhasedSighting | null | undefined, head: string, now: number): PhasedSighting {
  if (remembered && remembered.commit === head) return remembered;
  return { commit: head, firstSeenAt: new Date(now).toISOString() };
}

export function phasedDecision(o: { ring: string; phases: readonly RingPhase[]; machineId: string; sighting: PhasedSighting; now: number }): PhasedDecision {
  const position = phasePosition(o.machineId, o.sighting.commit);
  const since = Date.parse(o.sighting.firstSeenAt);
  // A clock set back (first sighting "in the future") counts as no time elapsed, never as negative.
  const elapsedSec = Math.max(0, (o.now - since) / 1000);
  const share = allowedShare(o.phases, elapsedSec);
  const allowed = position < share;
  const at = `${percent(share)} of ring ${o.ring} allowed, this host at ${percent(position)}`;
  if (allowed) return { allowed, share, position, allowedAt: null, message: `phased: ${at}` };
  const next = o.phases.find((p) => p.share > position);
  const allowedAt = next ? since + next.afterSec * 1000 : null;
  return { allowed, share, position, allowedAt, message: `phased: waiting, ${at}${allowedAt === null ? '' : `, its turn at ${new Date(allowedAt).toISOString()}`}` };
}

function percent(p: number): string {
  return `${Math.floor(p)} %`;
}

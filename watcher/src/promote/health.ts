/**
 * A ring's health on a commit, from what its hosts report (pure; docs/rings.md, "Promotion rules"):
 *
 *   succeeded  the host's deployed commit is C (pullnix_deployed_info{commit=C}), since the time of
 *              its last successful deployment (pullnix_last_deployment_timestamp_seconds{outcome="succeeded"})
 *   failed     its newest finished deployment is of C and did not succeed
 *              (pullnix_last_deployment_info{commit=C, outcome=rolled-back|rollback-failed|interrupted})
 *   pending    neither (not yet built, building, waiting for its phase or a reboot window, silent)
 *
 * The ring is healthy on C when at least `successes` hosts succeeded, the `successes`-th success
 * is soakSec old, and no more than maxFailures failed. Hosts that are not in rings.json are ignored.
 */
import type { RingSpec } from '@pullnix/shared';

/** Outcomes that count as a failure of the commit; reboot-required and superseded are still pending. */
export const FAILED_OUTCOMES: readonly string[] = ['rolled-back', 'rollback-failed', 'interrupted'];

/** What the fleet reports, by host (the promote config's prometheus.hostLabel). */
export interface FleetReport {
  deployed: Map<string, string>;
  /** Seconds since the epoch of the host's last successful deployment. */
  succeededAt: Map<string, number>;
  lastDeployment: Map<string, { commit: string; outcome: string }>;
}

export type RingState = 'no-commit' | 'waiting' | 'soaking' | 'healthy' | 'halted';

export interface RingHealth {
  ring: string;
  commit: string | null;
  succeeded: string[];
  failed: string[];
  pending: string[];
  /** Seconds of soak still to go (null: not soaking yet, or no commit). */
  soakLeftSec: number | null;
  state: RingState;
}

export function ringHealth(ring: RingSpec, commit: string | null, report: FleetReport, nowSec: number): RingHealth {
  const base = { ring: ring.name, commit, succeeded: [] as string[], failed: [] as string[], pending: [] as string[], soakLeftSec: null as number | null };
  if (commit === null) return { ...base, pending: [...ring.hosts], state: 'no-commit' };
  const times: number[] = [];
  for (const host of ring.hosts) {
    const last = report.lastDeployment.get(host);
    if (report.deployed.get(host) === commit) {
      base.succeeded.push(host);
      // A success whose time is not reported yet counts from now: the soak is never shortened.
      times.push(Math.min(report.succeededAt.get(host) ?? nowSec, nowSec));
    } else if (last && last.commit === commit && FAILED_OUTCOMES.includes(last.outcome)) base.failed.push(host);
    else base.pending.push(host);
  }
  if (base.failed.length > ring.maxFailures) return { ...base, state: 'halted' };
  if (base.succeeded.length < ring.successes) return { ...base, state: 'waiting' };
  const completedAt = times.sort((a, b) => a - b)[ring.successes - 1]!;
  const soakLeftSec = Math.max(0, completedAt + ring.soakSec - nowSec);
  return { ...base, soakLeftSec, state: soakLeftSec > 0 ? 'soaking' : 'healthy' };
}

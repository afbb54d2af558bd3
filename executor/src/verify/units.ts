/**
 * Newly failed units (on by default): a unit that is failed, or auto-restarting after a failure,
 * after activation and was not before the deployment started (record.previous.failedUnits) fails
 * the deployment. Units that had failed before are reported, never blamed.
 *
 * A crash-looping unit is "active" for a moment between its failures, so one clean look proves
 * little: the check passes only after verify.failedUnits.settleSec of clean looks, every
 * SETTLE_POLL_MS, and starts over whenever a newly failed unit shows up.
 * Without a recorded set (a record written before this field existed), nothing can be told apart:
 * every failed unit is reported as pre-existing and none is blamed. A set recorded as unknown
 * (systemctl did not answer before the deployment, after retries) is the opposite case: every
 * failing unit is blamed, since none can be shown to have failed before.
 */
import { failedUnits } from '../commands/systemctl.ts';
import type { PipelineContext } from '../pipeline/context.ts';
import type { Check } from './check.ts';

export const SETTLE_POLL_MS = 500;

function failedError(units: readonly string[], before: readonly string[] | null | undefined): string {
  if (before === null) return `units failing after activation, and the units failing before it are unknown (systemctl did not answer then): ${units.join(', ')}`;
  return `units failed after activation (not before it): ${units.join(', ')}`;
}

export function unitsCheck(ctx: PipelineContext, before: readonly string[] | null | undefined, settleSec: number): Check {
  const settleMs = settleSec * 1000;
  let cleanSince: number | null = null;
  /** The units seen failing last, while the clean streak since then is shorter than the settle window. */
  let lastFailed: string[] | null = null;
  return {
    name: 'failed-units',
    kind: 'units',
    what: 'systemctl list-units --state=failed,auto-restart',
    attemptTimeoutMs: 30_000,
    giveUp: (last, attempts, timeoutSec) => `${last} (still at the last of ${attempts} looks within verify.timeoutSec=${timeoutSec})`,
    async attempt({ timeoutMs }) {
      const now = await failedUnits(ctx.runner, timeoutMs);
      if (now === null) {
        cleanSince = null;
        return { ok: false, error: 'systemctl list-units did not answer' };
      }
      const known = new Set(before === undefined ? now : (before ?? []));
      const units = now.filter((u) => !known.has(u));
      const preexisting = now.filter((u) => known.has(u));
      if (units.length > 0) {
        cleanSince = null;
        lastFailed = units;
        return { ok: false, error: failedError(units, before), units, preexisting };
      }
      const t = ctx.clock.now();
      cleanSince ??= t;
      const left = settleMs - (t - cleanSince);
      if (left <= 0) return { ok: true, units, preexisting };
      // A unit seen failing less than settleSec ago and running again is crash-looping until proven otherwise.
      const pending = { ok: true as const, units: lastFailed ?? [], preexisting, settleMs: Math.min(SETTLE_POLL_MS, left) };
      return lastFailed ? { ...pending, unsettled: `${failedError(lastFailed, before)}; running again for less than verify.failedUnits.settleSec=${settleSec} at the deadline` } : pending;
    },
  };
}

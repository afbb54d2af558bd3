/**
 * Newly failed units (on by default): a unit that is failed, or auto-restarting after a failure,
 * after activation and was not before the deployment started (record.previous.failedUnits) fails
 * the deployment. Units that had failed before are reported, never blamed.
 *
 * A crash-looping unit is "active" for a moment between its failures, so one clean look proves
 * little about a unit the activation started or restarted. Only those are watched: the units
 * whose InvocationID, NRestarts or ActiveEnterTimestampMonotonic changed across the activation
 * (a snapshot taken just before it, `snapshotUnits`, against one taken at the first look). Each is
 * watched for its own window (`settleWindowMs`, from its restart settings, at most
 * verify.failedUnits.settleSec); a watched unit that systemd restarts on its own (NRestarts grows)
 * or that shows up failed is a failure, and its window starts over once it runs again. The check
 * passes as soon as every watched unit has been up for its window: a deployment that moved no
 * unit passes at its first look.
 *
 * Without a snapshot from before the activation (crash recovery, the verification after a reboot,
 * or systemctl not answering), nothing can be told apart: every unit is held to settleSec of clean
 * looks, every SETTLE_POLL_MS, starting over whenever a newly failed unit shows up. Without a
 * recorded set of failed units (a record written before that field existed), every failed unit is
 * reported as pre-existing and none is blamed. A set recorded as unknown (systemctl did not answer
 * before the deployment, after retries) is the opposite case: every failing unit is blamed, since
 * none can be shown to have failed before.
 */
import { failedUnits, parseTimespanMs, showUnits } from '../commands/systemctl.ts';
import type { PipelineContext } from '../pipeline/context.ts';
import type { Check } from './check.ts';

export const SETTLE_POLL_MS = 500;

/** What tells whether a unit moved, and what its window is made of. */
const WATCH_PROPERTIES = ['InvocationID', 'NRestarts', 'ActiveEnterTimestampMonotonic', 'Restart', 'RestartUSec', 'RestartUSecNext', 'StartLimitIntervalUSec', 'StartLimitBurst'] as const;

/** Every loaded unit's WATCH_PROPERTIES, by Id. */
export type UnitsSnapshot = ReadonlyMap<string, Readonly<Record<string, string>>>;

/** The loaded units as they are now (`systemctl show '*'`); null when systemctl cannot answer. */
export function snapshotUnits(ctx: Pick<PipelineContext, 'runner'>, timeoutMs = 30_000): Promise<UnitsSnapshot | null> {
  return showUnits(ctx.runner, ['*'], WATCH_PROPERTIES, timeoutMs);
}

/**
 * The units the activation started or restarted: running under a new invocation (a start gets a
 * new InvocationID, systemd.exec(5) "$INVOCATION_ID"), restarted by systemd (NRestarts, the count
 * of automatic restarts, systemd.service(5) "$N_RESTARTS"), or entered the active state again
 * (ActiveEnterTimestampMonotonic). A unit that never ran (no InvocationID) did not move. Sorted.
 */
export function movedUnits(before: UnitsSnapshot, after: UnitsSnapshot): string[] {
  const moved: string[] = [];
  for (const [id, u] of after) {
    if (!u.InvocationID) continue;
    const b = before.get(id);
    if (!b || b.InvocationID !== u.InvocationID || b.NRestarts !== u.NRestarts || b.ActiveEnterTimestampMonotonic !== u.ActiveEnterTimestampMonotonic) moved.push(id);
  }
  return moved.sort();
}

/**
 * How long a unit that moved must stay up before it is believed not to crash-loop, in ms, at most
 * `settleMs`:
 * - no restart logic (Restart=no, systemd.service(5) "Restart=": "the service will not be
 *   restarted"; or a unit that is not a service, which has no Restart= at all): 0. If it fails, it
 *   stays failed, and every look sees it.
 * - otherwise the restart delay (RestartUSec, "RestartSec=: the time to sleep before restarting a
 *   service"; RestartUSecNext when systemd says the next delay is longer, RestartSteps=) plus the
 *   longest start-to-start period that systemd's own start limit still counts as a loop:
 *   StartLimitIntervalUSec / StartLimitBurst (systemd.unit(5) "StartLimitIntervalSec=,
 *   StartLimitBurst=": units started more than burst times within interval are not permitted to
 *   start any more). A unit that fails sooner than that after its start is restarted, or seen
 *   auto-restarting, inside the window.
 * - no start limit (an interval or burst of 0 turns it off, systemd.unit(5)), or settings systemctl
 *   did not report: `settleMs`, the bound the user set.
 */
export function settleWindowMs(u: Readonly<Record<string, string>> | undefined, settleMs: number): number {
  if (u === undefined) return settleMs;
  if (u.Restart === undefined || u.Restart === 'no') return 0;
  const delay = Math.max(parseTimespanMs(u.RestartUSec) ?? NaN, parseTimespanMs(u.RestartUSecNext) ?? 0);
  const interval = parseTimespanMs(u.StartLimitIntervalUSec);
  const burst = Number(u.StartLimitBurst);
  if (!Number.isFinite(delay) || interval === null || !Number.isInteger(burst) || interval === 0 || burst === 0 || !Number.isFinite(interval)) return settleMs;
  return Math.min(settleMs, Math.ceil(delay + interval / burst));
}

function failedError(units: readonly string[], before: readonly string[] | null | undefined): string {
  if (before === null) return `units failing after activation, and the units failing before it are unknown (systemctl did not answer then): ${units.join(', ')}`;
  return `units failed after activation (not before it): ${units.join(', ')}`;
}

/** A unit being watched: its invocation and restart count when last seen, since when it has been up, and for how long it must be. */
interface Watched {
  invocation: string;
  restarts: string;
  since: number;
  windowMs: number;
}

export function unitsCheck(ctx: PipelineContext, before: readonly string[] | null | undefined, settleSec: number, unitsBefore: UnitsSnapshot | null = null): Check {
  const settleMs = settleSec * 1000;
  let cleanSince: number | null = null;
  /** The units seen failing last, while they have been up for less than their window. */
  let lastFailed: string[] | null = null;
  /** The watched units, from the first look on; null before it, and for good when there is no snapshot to compare with. */
  let watch: Map<string, Watched> | null = null;
  let after: UnitsSnapshot | null = null;

  /** The first look: which units moved, each with its window (a unit with none is not watched). */
  const startWatch = async (t: number, timeoutMs: number): Promise<void> => {
    if (unitsBefore === null) return;
    after = await snapshotUnits(ctx, timeoutMs);
    if (after === null) return;
    watch = new Map();
    for (const id of movedUnits(unitsBefore, after)) {
      const u = after.get(id)!;
      const windowMs = settleWindowMs(u, settleMs);
      if (windowMs > 0) watch.set(id, { invocation: u.InvocationID ?? '', restarts: u.NRestarts ?? '', since: t, windowMs });
    }
  };

  /** Follow the watched units: the ones systemd restarted on its own since the last look (failed in between). */
  const follow = async (w: Map<string, Watched>, t: number, timeoutMs: number): Promise<string[] | null> => {
    if (w.size === 0) return [];
    const now = await showUnits(ctx.runner, [...w.keys()], WATCH_PROPERTIES, timeoutMs);
    if (now === null) return null;
    const restarted: string[] = [];
    for (const [id, seen] of w) {
      const u = now.get(id);
      if (!u) continue;
      if ((u.NRestarts ?? '') !== seen.restarts && Number(u.NRestarts) > Number(seen.restarts)) restarted.push(id);
      if ((u.NRestarts ?? '') !== seen.restarts || (u.InvocationID ?? '') !== seen.invocation) Object.assign(seen, { invocation: u.InvocationID ?? '', restarts: u.NRestarts ?? '', since: t });
    }
    return restarted;
  };

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
      const failing = now.filter((u) => !known.has(u));
      const preexisting = now.filter((u) => known.has(u));
      const t = ctx.clock.now();
      if (watch === null && after === null) await startWatch(t, timeoutMs);
      if (watch === null) return settleAll(failing, preexisting, t);
      const w: Map<string, Watched> = watch;
      const restarted = await follow(w, t, timeoutMs);
      if (restarted === null) return { ok: false, error: 'systemctl show did not answer' };
      const units = [...new Set([...failing, ...restarted.filter((u) => !known.has(u))])].sort();
      if (units.length > 0) {
        // Watched from now on, whether it moved or not: its window starts once it runs again.
        for (const id of units) {
          const seen = w.get(id);
          if (seen) seen.since = t;
          else w.set(id, { invocation: after?.get(id)?.InvocationID ?? '', restarts: after?.get(id)?.NRestarts ?? '', since: t, windowMs: Math.max(SETTLE_POLL_MS, settleWindowMs(after?.get(id), settleMs)) });
        }
        lastFailed = units;
        return { ok: false, error: failedError(units, before), units, preexisting };
      }
      const pending = [...w].filter(([, seen]) => t - seen.since < seen.windowMs);
      if (pending.length === 0) return { ok: true, units, preexisting };
      const left = Math.min(...pending.map(([, seen]) => seen.windowMs - (t - seen.since)));
      const unsettled = (lastFailed ?? []).filter((id) => pending.some(([p]) => p === id));
      const answer = { ok: true as const, units: unsettled, preexisting, settleMs: Math.min(SETTLE_POLL_MS, left) };
      return unsettled.length > 0 ? { ...answer, unsettled: `${failedError(unsettled, before)}; running again for less than its settle window (${unsettled.map((id) => `${id}: ${w.get(id)!.windowMs} ms`).join(', ')}; at most verify.failedUnits.settleSec=${settleSec}) at the deadline` } : answer;
    },
  };

  /** No snapshot to compare with: every unit is held to settleSec of clean looks. */
  function settleAll(units: string[], preexisting: string[], t: number) {
    if (units.length > 0) {
      cleanSince = null;
      lastFailed = units;
      return { ok: false as const, error: failedError(units, before), units, preexisting };
    }
    cleanSince ??= t;
    const left = settleMs - (t - cleanSince);
    if (left <= 0) return { ok: true as const, units, preexisting };
    // A unit seen failing less than settleSec ago and running again is crash-looping until proven otherwise.
    const pending = { ok: true as const, units: lastFailed ?? [], preexisting, settleMs: Math.min(SETTLE_POLL_MS, left) };
    return lastFailed ? { ...pending, unsettled: `${failedError(lastFailed, before)}; running again for less than verify.failedUnits.settleSec=${settleSec} at the deadline` } : pending;
  }
}

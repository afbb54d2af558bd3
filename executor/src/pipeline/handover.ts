/**
 * A pullnix that cannot start after a commit is a failed verification (issue 21, part 2;
 * docs/decisions.md D22). `--check-config` (verify/own-config.ts) exercises the new program's
 * configuration loader, not its start: a package whose daemon dies at start for any other reason
 * (a broken binary, a missing library) passed it, was committed, and left the machine without its
 * agent. So, after the checks and before the commit, the new pullnix must come up:
 *
 * - only the watcher's unit changed: the executor restarts the watcher and waits until it
 *   subscribes again and reports (check `pullnix-start`); a watcher that does not, within the
 *   bound, or that crash-loops (systemd restarts it again and again), fails the verification;
 * - the executor's own unit changed: two executors cannot hold the same sockets, so this one hands
 *   the deployment over: it marks the record `verifying` (HANDOVER_DETAIL), starts a guard (this
 *   very program, the old one, in a transient unit that outlives it: guard.ts) and exits for the
 *   self-upgrade. The new executor's crash recovery resumes the record, verifies again, restarts
 *   the watcher and waits for it as above, and only then commits. If the new executor does not
 *   finish the deployment (it crash-loops, or takes longer than the guard's bound), the guard
 *   stops it, rolls back with the old program and starts the old executor again.
 *
 * The pipeline sees the daemons through DaemonsProbe (the Executor implements it), never the
 * socket itself; a context without one (crash recovery in the guard) skips this step.
 */
import type { CheckResult, DeploymentPhase, DeploymentRecord, Logger } from '@pullnix/shared';

export const PULLNIX_START_CHECK = 'pullnix-start';
/** The detail of the `verifying` mark the old executor writes when it hands the deployment over. */
export const HANDOVER_DETAIL = 'handed over to the new executor (self-upgrade)';
/** Automatic restarts of a unit after which it counts as crash-looping (systemd's NRestarts). */
export const CRASH_LOOP_RESTARTS = 2;

export interface DaemonsProbe {
  /** Which pullnix units' definitions changed since before this deployment's activation (unreadable: unchanged). */
  changedUnits(): Promise<{ executor: boolean; watcher: boolean }>;
  /** Restart the watcher and wait until it subscribes and reports; null when it did, else why not. */
  watcherUp(timeoutMs: number): Promise<string | null>;
  /** Start the guard of a hand-over (guard.ts); null when it runs, else why it could not start. */
  startGuard(deploymentId: number): Promise<string | null>;
}

/** What pullnixStart needs of a deployment (structural: no import of deployment.ts, which imports this). */
export interface HandoverDeployment {
  record: DeploymentRecord;
  log: Logger;
  mark(phase: DeploymentPhase, detail?: string): void;
}

export type StartVerdict = { kind: 'unchanged' } | { kind: 'up'; check: CheckResult } | { kind: 'failed'; check: CheckResult } | { kind: 'handed-over' };

/** Whether the old executor handed this deployment over to the new one. */
export function handedOver(record: DeploymentRecord): boolean {
  return record.phases.some((p) => p.phase === 'verifying' && p.detail === HANDOVER_DETAIL);
}

/** How long the watcher gets to come up: the verification's own bound, at least a minute (Node's start on a loaded machine). */
export function watcherStartMs(verifyTimeoutSec: number): number {
  return Math.max(verifyTimeoutSec, 60) * 1000;
}

/** Step 4's last check, run after the others passed; see the header. */
export async function pullnixStart(probe: DaemonsProbe | undefined, d: HandoverDeployment, verifyTimeoutSec: number, now: () => number): Promise<StartVerdict> {
  if (!probe) return { kind: 'unchanged' };
  if (!handedOver(d.record)) {
    const changed = await probe.changedUnits();
    if (changed.executor) {
      const started = now();
      const why = await probe.startGuard(d.record.id);
      if (why !== null) return { kind: 'failed', check: result(started, now(), `the guard of the hand-over to the new executor could not start: ${why}`) };
      d.mark('verifying', HANDOVER_DETAIL);
      d.log.event('deploy.handed_over', { toplevel: d.record.toplevel });
      return { kind: 'handed-over' };
    }
    if (!changed.watcher) return { kind: 'unchanged' };
  }
  const started = now();
  const why = await probe.watcherUp(watcherStartMs(verifyTimeoutSec));
  const check = result(started, now(), why);
  if (why === null) {
    d.log.event('verify.pullnix_started', { resumed: handedOver(d.record) });
    return { kind: 'up', check };
  }
  d.log.event('verify.pullnix_start_failed', { error: why });
  return { kind: 'failed', check };
}

function result(started: number, ended: number, error: string | null): CheckResult {
  return { name: PULLNIX_START_CHECK, kind: 'unit', passed: error === null, attempts: 1, error, startedAt: new Date(started).toISOString(), durationMs: ended - started };
}

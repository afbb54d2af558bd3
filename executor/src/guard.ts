/**
 * `pullnix-executor guard-handover`: the old executor's watch over a self-upgrade it handed over
 * (pipeline/handover.ts). It runs the old program in a transient unit of its own, started just
 * before the old executor exits, and waits for the new executor to finish the deployment. It
 * does, with any outcome: done. It does not (its unit crash-loops: systemd restarted it
 * CRASH_LOOP_RESTARTS times after the old one's exit; or the bound passes): the guard stops the
 * executor's unit (a stop waits for the process to be gone, so nothing else writes the history),
 * looks once more, and if the deployment is still open rolls it back with the old program, then
 * starts the executor's unit again (its old definition, which the rollback's activation put back)
 * and the watcher's.
 */
import { join } from 'node:path';
import type { Config, Logger, Runner } from '@pullnix/shared';
import { restartUnit, stopUnit, unitProperties } from './commands/systemctl.ts';
import { profileGeneration } from './commands/nix-env.ts';
import { selfRecorder, systemClock, type Clock, type PipelineContext } from './pipeline/context.ts';
import { Deployment, rollBack } from './pipeline/deployment.ts';
import { CRASH_LOOP_RESTARTS, PULLNIX_START_CHECK } from './pipeline/handover.ts';
import { HistoryStore } from './store/history.ts';
import { StateStore } from './store/state.ts';

export interface GuardOptions {
  config: Config;
  runner: Runner;
  log: Logger;
  deploymentId: number;
  /** The executor unit's NRestarts before the old executor exited (its exit adds one). */
  restartsBefore: number;
  clock?: Clock;
  recorder?: readonly string[];
}

/** How long the new executor may take to finish a deployment handed over to it: verify twice (the watcher's start included), commit. */
export function guardBoundMs(config: Config): number {
  return (2 * Math.max(config.verify.timeoutSec, 60) + config.activationTimeoutSec + 60) * 1000;
}

/** Exit status: 0 the new executor finished it (or the guard rolled it back cleanly), 1 the rollback failed. */
export async function guardHandover(options: GuardOptions): Promise<number> {
  const { config, runner, log, deploymentId: id } = options;
  const clock = options.clock ?? systemClock;
  const unit = config.units.executor;
  const historyPath = join(config.stateDir, 'history.jsonl');
  const read = () => {
    const h = new HistoryStore(historyPath);
    h.load();
    return h.get(id);
  };
  const bound = guardBoundMs(config);
  const deadline = clock.now() + bound;
  log.event('handover.guarding', { deployment: id, unit, bound_s: Math.round(bound / 1000) });
  let why: string | null = null;
  for (;;) {
    const record = read();
    if (record === null) {
      log.event('handover.done', { deployment: id, outcome: 'unknown', error: 'no such deployment in the history' });
      return 0;
    }
    if (record.outcome !== null) {
      log.event('handover.done', { deployment: id, outcome: record.outcome });
      return 0;
    }
    const props = await unitProperties(runner, unit, ['ActiveState', 'SubState', 'NRestarts', 'ExecMainStatus']);
    const state = props ? `ActiveState=${props.ActiveState ?? '?'} SubState=${props.SubState ?? '?'} NRestarts=${props.NRestarts ?? '?'} ExecMainStatus=${props.ExecMainStatus ?? '?'}` : 'systemctl show did not answer';
    // The old executor's own exit is one automatic restart; each further one is a new executor that died.
    const died = Number(props?.NRestarts ?? '0') - options.restartsBefore - 1;
    if (died >= CRASH_LOOP_RESTARTS) why = `the new executor (${unit}) is crash-looping: it died ${died} times after the hand-over and never finished the deployment (${state})`;
    else if (clock.now() >= deadline) why = `the new executor (${unit}) did not finish the deployment within ${Math.round(bound / 1000)} s of the hand-over (${state})`;
    if (why !== null) break;
    await clock.sleep(1000);
  }
  log.event('handover.failed', { deployment: id, unit, error: why });
  const stopped = await stopUnit(runner, unit);
  if (stopped.exitCode !== 0) log.event('handover.failed', { deployment: id, unit, error: `systemctl stop ${unit} failed (exit ${stopped.exitCode}); rolling back anyway` });
  const record = read();
  let exit = 0;
  if (record !== null && record.outcome === null) {
    const history = new HistoryStore(historyPath);
    history.load();
    const state = new StateStore(join(config.stateDir, 'state.json'));
    state.load();
    const ctx: PipelineContext = { config, runner, log, history, state, clock, recorder: options.recorder ?? selfRecorder() };
    const d = Deployment.resume(ctx, record);
    d.record.checks = [...(record.checks ?? []).filter((c) => c.name !== PULLNIX_START_CHECK), { name: PULLNIX_START_CHECK, kind: 'unit', passed: false, attempts: 1, error: why, startedAt: null, durationMs: 0 }];
    const profileMoved = profileGeneration(config.paths.systemProfile) !== record.previous.generation;
    const done = await rollBack(ctx, d, 'VERIFY_FAILED', `check ${PULLNIX_START_CHECK} failed: ${why}`, { profileMoved, activated: true });
    exit = done.outcome === 'rolled-back' ? 0 : 1;
  } else log.event('handover.done', { deployment: id, outcome: record?.outcome ?? 'unknown' });
  // The executor back (the old definition after a rollback), and the watcher with it.
  for (const u of [unit, config.units.watcher]) {
    const r = await restartUnit(runner, u);
    if (r.exitCode !== 0) log.event('handover.failed', { deployment: id, unit: u, error: `systemctl restart ${u} failed (exit ${r.exitCode})` });
  }
  return exit;
}

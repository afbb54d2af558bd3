/**
 * The executor's behaviour behind the socket: one deployment at a time (the rest answered BUSY),
 * the refusals of step 1, the failure memory, pause/resume, and steps 7-8 after an outcome
 * (restart the watcher, exit for a self-upgrade). server.ts maps protocol methods onto this.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  PullnixError,
  VERSION,
  describeFailure,
  runHook,
  TextfileWriter,
  protectTextfileDirectory,
  type Config,
  type DeploymentRecord,
  type HistoryParams,
  type Logger,
  type PauseInfo,
  type Runner,
  type StatusResult,
  type TrustGate,
  type WatcherReport,
} from '@pullnix/shared';
import type { Connection } from '@pullnix/shared/server';
import { catUnit, loadState, restartUnit, stopUnitsNoBlock, unitProperties } from './commands/systemctl.ts';
import { runDetached, transientUnitName } from './commands/systemd-run.ts';
import { CRASH_LOOP_RESTARTS, handedOver, PULLNIX_START_CHECK } from './pipeline/handover.ts';
import { EXECUTOR_METRICS_FILE, executorMetrics } from './metrics.ts';
import { inWindow } from './pipeline/window.ts';
import { liveSystem, selfRecorder, systemClock, type Clock, type PipelineContext } from './pipeline/context.ts';
import { applyOutcome, Deployment, runDeployment, type DeploymentRequest } from './pipeline/deployment.ts';
import { rebootReasons, prepareTrialBoot, requestReboot } from './pipeline/reboot.ts';
import { recoverDeployment } from './pipeline/recovery.ts';
import { failure } from './pipeline/deployment.ts';
import { checkStoreValidity, checkSystemClosure } from './pipeline/validate.ts';
import { executorTrustGate, verifyTrust } from './pipeline/trust.ts';
import { HistoryStore, type CorruptionReport } from './store/history.ts';
import { rebuildState, StateStore } from './store/state.ts';

export interface ExecutorOptions {
  config: Config;
  runner: Runner;
  log: Logger;
  clock?: Clock;
  /** Step 8: called once idle after the executor's own unit changed; main exits 0. */
  onSelfUpgrade?: () => void;
  /**
   * An unexpected error inside a deployment (e.g. the history cannot be written) leaves its record
   * unfinished; main exits non-zero so that systemd restarts the executor and crash recovery
   * resolves the record, the one path designed for "we do not know how far it got".
   */
  onFatal?: (error: unknown) => void;
  /** The activation recorder's command line (default: this program's `record-activation`). */
  recorder?: readonly string[];
  /**
   * The hand-over guard's command line for a deployment (pipeline/handover.ts, guard.ts); default:
   * this program's `guard-handover` with `configFile`. Neither: a self-upgrade cannot be handed
   * over, and fails its verification.
   */
  guard?: (deploymentId: number, restarts: number) => readonly string[];
  /** The configuration file this executor loaded, resolved (a store path: the guard reads the same one after the new system replaced /etc). */
  configFile?: string;
}

/** The pullnix units' definitions as systemd has them loaded (null: unreadable). */
interface PullnixUnits {
  executor: string | null;
  watcher: string | null;
}

export const DEFAULT_HISTORY_LIMIT = 20;
/** Bound of one history answer, well under node-ipc's 1 MiB frame limit. */
export const MAX_HISTORY_RESPONSE_BYTES = 512 * 1024;

export class Executor {
  readonly config: Config;
  readonly history: HistoryStore;
  readonly state: StateStore;
  private readonly ctx: PipelineContext;
  private readonly log: Logger;
  private readonly runner: Runner;
  private readonly onSelfUpgrade: (() => void) | undefined;
  private readonly onFatal: ((error: unknown) => void) | undefined;
  private readonly startedAt = new Date().toISOString();
  /** The running job (steps 2-8), or null when idle. */
  private job: Promise<void> | null = null;
  private currentId: number | null = null;
  private stopping = false;
  private watcherConn: Connection | null = null;
  private watcherReport: { report: WatcherReport; at: string } | null = null;
  private selfUpgradePending = false;
  /** The pullnix units before the running job's activation (step 8, handover.ts). */
  private unitsBefore: Promise<PullnixUnits | null> | null = null;
  /** Subscriptions and reports since start: the watcher came up (handover.ts) when both moved after its restart. */
  private subscriptions = 0;
  private reportsSinceSubscribe = 0;
  private readonly guard: ((deploymentId: number, restarts: number) => readonly string[]) | null;
  /** A reboot deployment waiting for reboot.window (phase reboot-pending), by id; its timer. */
  private pendingReboot: number | null = null;
  private rebootTimer: NodeJS.Timeout | null = null;
  private readonly metrics: TextfileWriter;
  /** The commit-trust rules of shared/, with root's own keyring (built once per process). */
  private readonly trustGate: TrustGate;

  constructor(options: ExecutorOptions) {
    this.config = options.config;
    this.log = options.log;
    this.runner = options.runner;
    this.onSelfUpgrade = options.onSelfUpgrade;
    this.onFatal = options.onFatal;
    this.history = new HistoryStore(join(options.config.stateDir, 'history.jsonl'));
    this.state = new StateStore(join(options.config.stateDir, 'state.json'));
    this.guard = options.guard ?? (options.configFile ? selfGuard(options.configFile) : null);
    this.ctx = {
      config: options.config,
      runner: options.runner,
      log: options.log,
      history: this.history,
      state: this.state,
      clock: options.clock ?? systemClock,
      recorder: options.recorder ?? selfRecorder(),
      daemons: { changedUnits: () => this.changedUnits(), watcherUp: (ms) => this.watcherUp(ms), startGuard: (id) => this.startGuard(id) },
    };
    this.trustGate = executorTrustGate(options.config, options.runner);
    this.metrics = new TextfileWriter(options.config.metrics.textfileDirectory, EXECUTOR_METRICS_FILE, options.log);
  }

  /** Rewrite the metrics textfile (metrics.textfileDirectory) after a change; nothing when metrics are off. */
  publishMetrics(): void {
    if (this.metrics.path === null) return;
    const deployed = this.history.lastSucceeded();
    this.metrics.write(executorMetrics(this.history, this.state.state, { deployedNeedsReboot: deployed !== null && rebootReasons(this.config, deployed.toplevel).length > 0 }));
  }

  /** Load history and state; a corrupt file is reported, set aside, and what it held is rebuilt. */
  open(): void {
    mkdirSync(this.config.stateDir, { recursive: true, mode: 0o755 });
    protectTextfileDirectory(this.config.metrics.textfileDirectory, this.log);
    const historyDamage = this.history.load();
    if (historyDamage) this.reportCorrupt(historyDamage);
    const stateExisted = existsSync(this.state.path);
    const stateDamage = this.state.load();
    const now = new Date(this.ctx.clock.now()).toISOString();
    if (!stateExisted && this.history.total > 0) {
      // Not a first start: the state was lost. Rebuild rather than start from nothing.
      this.log.event('state.corrupt', { file: this.state.path, reason: `missing while history.jsonl holds ${this.history.total} deployments; rebuilt from the history`, set_aside: null });
      this.state.state = rebuildState(this.history.all(), now);
      this.state.save();
      return;
    }
    if (stateDamage) {
      this.reportCorrupt(stateDamage);
      this.state.state = rebuildState(this.history.all(), now);
      this.state.save();
      return;
    }
    // A crash between the final history line and the state write: apply that outcome now.
    const cur = this.state.state.current;
    const record = cur === null ? null : this.history.get(cur);
    if (cur !== null && record?.outcome) this.state.update((s) => applyOutcome(s, record, record.finishedAt ?? now));
    if (this.state.state.nextId <= this.history.maxId) this.state.update((s) => (s.nextId = this.history.maxId + 1));
    this.publishMetrics();
  }

  private reportCorrupt(damage: CorruptionReport): void {
    this.log.event('state.corrupt', { file: damage.file, reason: damage.reason, set_aside: damage.setAside });
  }

  /** Resolve deployments a crash left unfinished. Runs as the current job: deploys are BUSY meanwhile. */
  recover(): Promise<void> {
    const all = this.history.unfinished();
    // A reboot deployment waiting for its window stays waiting (the newest; older ones were replaced).
    const waiting = all.filter((r) => r.phase === 'reboot-pending');
    const unfinished = all.filter((r) => r.phase !== 'reboot-pending' || r !== waiting.at(-1));
    if (waiting.length > 0 && unfinished.every((r) => r.phase === 'reboot-pending' || r.id < waiting.at(-1)!.id)) this.setPendingReboot(waiting.at(-1)!);
    if (unfinished.length === 0) return Promise.resolve();
    // Step 8 applies here too: a crash mid-deployment restarts this executor from the unit the
    // new generation installed; if recovery rolls back, the unit changes under it again.
    const units = this.readUnits();
    const unitBefore = units.then((u) => u.executor);
    this.unitsBefore = units;
    return this.runJob(async () => {
      await unitBefore;
      let last: DeploymentRecord | null = null;
      for (const record of unfinished) {
        this.currentId = record.id;
        last = record.phase === 'reboot-pending' ? this.supersede(record, 'a newer reboot deployment was waiting') : await recoverDeployment(this.ctx, record);
      }
      return last!;
    }, unitBefore).then(() => this.idle());
  }

  get busy(): boolean {
    return this.job !== null;
  }

  /** Resolves when no job is running. */
  async idle(): Promise<void> {
    while (this.job) await this.job;
  }

  /** Refuse further deployments (shutdown). */
  stop(): void {
    this.stopping = true;
  }

  // --- methods -----------------------------------------------------------------------------

  deploy(params: { commit: string; toplevel: string }, keyId: string): Promise<DeploymentRecord> {
    this.refuseUnlessIdle();
    this.refuseIfPaused();
    this.refuseIfKnownBad(params.commit);
    checkSystemClosure(this.config, params.toplevel);
    // The same system asked again while it waits for the reboot window: that deployment is the answer.
    const waiting = this.pendingReboot === null ? null : this.history.get(this.pendingReboot);
    if (waiting && waiting.outcome === null && waiting.commit === params.commit && waiting.toplevel === params.toplevel) return Promise.resolve(structuredClone(waiting));
    return this.startDeployment({ kind: 'deploy', commit: params.commit, toplevel: params.toplevel, requestedBy: keyId });
  }

  /**
   * pullnix-ctl reboot-now: the deployment waiting for reboot.window is booted on trial now. Answered
   * once the trial boot is prepared (phase awaiting-boot); the reboot follows the answer.
   */
  rebootNow(keyId: string): Promise<DeploymentRecord> {
    this.refuseUnlessIdle();
    const record = this.pendingReboot === null ? null : this.history.get(this.pendingReboot);
    if (!record || record.outcome !== null || record.phase !== 'reboot-pending') {
      throw new PullnixError('NOT_FOUND', 'no deployment is waiting for the reboot window (reboot.mode = window); nothing to reboot into');
    }
    this.log.event('control.reboot_now', { by: keyId, deployment: record.id });
    return this.startTrialBoot(record, keyId);
  }

  /** The reboot window's timer: when it is open and the executor idle, boot the waiting deployment on trial. */
  rebootWindowTick(): Promise<DeploymentRecord> | null {
    this.rebootTimer = null;
    const record = this.pendingReboot === null ? null : this.history.get(this.pendingReboot);
    if (!record || record.outcome !== null || record.phase !== 'reboot-pending' || this.stopping) return null;
    // Paused: no automatic reboot either (pullnix-ctl reboot-now still boots it).
    if (this.job || this.state.state.paused || !inWindow(this.config.reboot.window, new Date(this.ctx.clock.now()))) {
      this.armRebootTimer(record);
      return null;
    }
    return this.startTrialBoot(record, 'window');
  }

  private startTrialBoot(record: DeploymentRecord, trigger: string): Promise<DeploymentRecord> {
    this.clearPendingReboot();
    this.unitsBefore = null;
    return this.runJob(async () => {
      this.currentId = record.id;
      return prepareTrialBoot(this.ctx, Deployment.resume(this.ctx, record), trigger);
    }, null);
  }

  private setPendingReboot(record: DeploymentRecord): void {
    this.pendingReboot = record.id;
    this.armRebootTimer(record);
  }

  private clearPendingReboot(): void {
    this.pendingReboot = null;
    if (this.rebootTimer) clearTimeout(this.rebootTimer);
    this.rebootTimer = null;
  }

  /** Wake at the window's opening (re-checked at least every minute: clocks jump, machines sleep). */
  private armRebootTimer(record: DeploymentRecord): void {
    if (this.rebootTimer) clearTimeout(this.rebootTimer);
    const until = Date.parse(record.reboot?.pendingUntil ?? '') || 0;
    const ms = Math.min(Math.max(until - this.ctx.clock.now(), 1000), 60_000);
    this.rebootTimer = setTimeout(() => void this.rebootWindowTick()?.catch(() => undefined), ms);
    this.rebootTimer.unref();
  }

  /** A newer deploy request replaces the deployment waiting for the reboot window: nothing of it changed. */
  private supersede(record: DeploymentRecord, why: string): DeploymentRecord {
    if (this.pendingReboot === record.id) this.clearPendingReboot();
    const d = Deployment.resume(this.ctx, record);
    d.log.event('deploy.superseded', { toplevel: record.toplevel, outcome: 'superseded', code: 'INTERRUPTED', error: why });
    return d.finish('superseded', failure('INTERRUPTED', `${why} before the reboot window opened; nothing of this deployment was changed`));
  }

  /**
   * Deploy an earlier successful deployment's system again, through the whole pipeline. Allowed
   * while paused (an operator's deliberate way back to a good state; the pause stays) and for a
   * commit in the failure memory (the target succeeded once; its commit is the target's).
   */
  rollback(params: { to?: number }, keyId: string): Promise<DeploymentRecord> {
    this.refuseUnlessIdle();
    let target: DeploymentRecord | null;
    if (params.to !== undefined) {
      target = this.history.get(params.to);
      if (!target) throw new PullnixError('NOT_FOUND', `no deployment ${params.to}`);
      if (target.outcome !== 'succeeded') throw new PullnixError('CONFLICT', `deployment ${params.to} did not succeed (outcome ${target.outcome ?? 'none yet'}); only a successful deployment can be rolled back to`);
    } else {
      const deployed = this.history.lastSucceeded();
      if (!deployed) throw new PullnixError('NOT_FOUND', 'nothing was deployed successfully yet, so there is nothing to roll back to');
      target = this.history.succeededBefore(deployed.id);
      if (!target) throw new PullnixError('NOT_FOUND', `no successful deployment before deployment ${deployed.id}; pass a deployment id`);
    }
    checkSystemClosure(this.config, target.toplevel);
    return this.startDeployment({ kind: 'rollback', commit: target.commit, toplevel: target.toplevel, requestedBy: keyId });
  }

  status(): StatusResult {
    const deployed = this.history.lastSucceeded();
    const failed = this.history.lastFailure();
    const report = this.watcherReport?.report ?? null;
    const remote = report?.remoteHead?.commit ?? null;
    return {
      version: VERSION,
      executor: { pid: process.pid, startedAt: this.startedAt, busy: this.busy },
      paused: this.state.state.paused,
      deployed: deployed
        ? { deploymentId: deployed.id, commit: deployed.commit, toplevel: deployed.toplevel, generation: deployed.generation, at: deployed.finishedAt ?? deployed.startedAt, rebootRequired: rebootReasons(this.config, deployed.toplevel) }
        : null,
      liveSystem: liveSystem(this.config),
      current: this.currentId !== null ? this.history.get(this.currentId) : this.pendingReboot !== null ? this.history.get(this.pendingReboot) : null,
      lastFailure:
        failed?.outcome && failed.outcome !== 'succeeded'
          ? {
              deploymentId: failed.id,
              commit: failed.commit,
              outcome: failed.outcome,
              reason: failed.error?.message ?? failed.outcome,
              at: failed.finishedAt ?? failed.startedAt,
              ...(failed.checks?.some((c) => c.passed === false) ? { failedChecks: failed.checks.filter((c) => c.passed === false).map((c) => ({ name: c.name, kind: c.kind, error: c.error })) } : {}),
            }
          : null,
      knownBad: Object.keys(this.state.state.knownBad),
      watcher: { connected: this.watcherConn !== null && !this.watcherConn.closed, report, reportedAt: this.watcherReport?.at ?? null },
      drift: remote !== null && deployed ? remote !== deployed.commit : null,
    };
  }

  /**
   * Newest first. A page stops early rather than exceed MAX_HISTORY_RESPONSE_BYTES (node-ipc
   * drops frames over 1 MiB): the client pages on with `before` = the last id it got.
   */
  historyPage(params: HistoryParams): { deployments: DeploymentRecord[]; total: number } {
    const page = this.history.page(params.limit ?? DEFAULT_HISTORY_LIMIT, params.before);
    let bytes = 0;
    let n = 0;
    while (n < page.length) {
      bytes += Buffer.byteLength(JSON.stringify(page[n]));
      if (bytes > MAX_HISTORY_RESPONSE_BYTES && n > 0) break;
      n++;
    }
    return { deployments: page.slice(0, n), total: this.history.total };
  }

  pause(reason: string | undefined, keyId: string): { paused: PauseInfo } {
    const existing = this.state.state.paused;
    if (existing) return { paused: existing };
    const paused: PauseInfo = { since: new Date(this.ctx.clock.now()).toISOString(), reason: reason ?? null, by: keyId };
    this.state.update((s) => (s.paused = paused));
    this.log.event('control.paused', { by: keyId, reason: reason ?? null });
    this.publishMetrics();
    return { paused };
  }

  resume(keyId: string): { wasPaused: boolean } {
    const was = this.state.state.paused;
    if (!was) return { wasPaused: false };
    this.state.update((s) => (s.paused = null));
    this.log.event('control.resumed', { by: keyId, was_paused_by: was.by });
    this.publishMetrics();
    return { wasPaused: true };
  }

  retry(commit: string, keyId: string): { forgotten: boolean; forwarded: boolean } {
    const s = this.state.state;
    const forgotten = s.knownBad[commit] !== undefined || s.interruptions[commit] !== undefined;
    if (forgotten) {
      this.state.update((st) => {
        delete st.knownBad[commit];
        delete st.interruptions[commit];
      });
    }
    // The watcher keeps its own memory of build failures; tell it now, or when it next subscribes.
    const conn = this.liveWatcher();
    if (conn) conn.push({ type: 'retry', commit });
    else if (!s.pendingRetries.includes(commit)) this.state.update((st) => st.pendingRetries.push(commit));
    this.log.event('control.retry', { commit, by: keyId, forgotten, forwarded: conn !== null, queued: conn === null });
    if (forgotten) this.publishMetrics();
    return { forgotten, forwarded: conn !== null };
  }

  sync(keyId: string): { forwarded: true } {
    const conn = this.liveWatcher();
    if (!conn) throw new PullnixError('NO_WATCHER', 'no watcher is subscribed on the socket; is pullnix-watcher running?');
    conn.push({ type: 'sync' });
    this.log.event('control.sync', { by: keyId });
    return { forwarded: true };
  }

  subscribe(conn: Connection, params: { pid: number; version: string }): { executorPid: number; retries: string[] } {
    // A newer subscription replaces the older: a restarted watcher may connect before the old socket closes.
    this.watcherConn = conn;
    this.subscriptions++;
    this.reportsSinceSubscribe = 0;
    const retries = this.state.state.pendingRetries;
    if (retries.length > 0) this.state.update((st) => (st.pendingRetries = []));
    this.log.event('watcher.connected', { pid: params.pid, version: params.version, connection: conn.serial, retries: retries.length > 0 ? retries : undefined });
    return { executorPid: process.pid, retries };
  }

  report(report: WatcherReport): Record<string, never> {
    this.watcherReport = { report, at: new Date(this.ctx.clock.now()).toISOString() };
    this.reportsSinceSubscribe++;
    return {};
  }

  connectionClosed(conn: Connection): void {
    if (this.watcherConn !== conn) return;
    this.watcherConn = null;
    this.log.event('watcher.disconnected', { connection: conn.serial });
  }

  // --- internals ---------------------------------------------------------------------------

  /** hooks.onSuccess / hooks.onFailure: notify only; a failing hook is logged (hook.failed) and changes nothing. */
  private async notify(record: DeploymentRecord): Promise<void> {
    const name = record.outcome === 'succeeded' ? 'onSuccess' : 'onFailure';
    const hook = this.config.hooks[name];
    if (!hook || record.outcome === null) return;
    const log = this.log.child({ deployment: record.id, commit: record.commit });
    const context = { deployment: record.id, commit: record.commit, outcome: record.outcome, toplevel: record.toplevel, previous: record.previous.system, error: record.error?.message ?? null };
    await runHook(this.runner, log, name, hook, context).catch((error: unknown) => log.event('hook.failed', { hook: name, error: (error as Error).message }));
  }

  private liveWatcher(): Connection | null {
    return this.watcherConn && !this.watcherConn.closed ? this.watcherConn : null;
  }

  private refuseUnlessIdle(): void {
    if (this.stopping) throw new PullnixError('BUSY', 'the executor is shutting down');
    if (this.job) {
      const cur = this.currentId === null ? null : this.history.get(this.currentId);
      if (cur && cur.outcome === null) throw new PullnixError('BUSY', `deployment ${cur.id} (${cur.commit.slice(0, 12)}) is in progress (${cur.phase})`);
      throw new PullnixError('BUSY', 'a deployment is starting, or finishing (restarting the watcher)');
    }
  }

  private refuseIfKnownBad(commit: string): void {
    const bad = this.state.state.knownBad[commit];
    if (bad) {
      throw new PullnixError('KNOWN_BAD', `commit ${commit} failed in deployment ${bad.deploymentId} (${bad.reason}); not deployed again until an operator runs pullnix-ctl retry ${commit}`);
    }
  }

  private refuseIfPaused(): void {
    const p = this.state.state.paused;
    if (p) throw new PullnixError('PAUSED', `deployments are paused since ${p.since} by ${p.by}${p.reason ? `: ${p.reason}` : ''}; pullnix-ctl resume accepts them again`);
  }

  private startDeployment(request: DeploymentRequest): Promise<DeploymentRecord> {
    // Synchronously from the checks to here, so a second request cannot slip in between.
    const units = this.readUnits();
    const unitBefore = units.then((u) => u.executor);
    this.unitsBefore = units;
    return this.runJob(async () => {
      // Step 8 compares the unit as it was before activation with what it is after.
      await unitBefore;
      // A pause (or retry memory) that arrived while the unit was read still counts.
      if (request.kind === 'deploy') {
        this.refuseIfPaused();
        this.refuseIfKnownBad(request.commit);
      }
      // Inside the job (a command): the executor is busy meanwhile, so nothing slips in between.
      await checkStoreValidity(this.runner, request.toplevel);
      // trust.mode on: root verifies the commit and that the toplevel is its system, itself.
      // An operator's rollback goes to a system that was deployed (so verified) before.
      if (request.kind === 'deploy') await verifyTrust(this.ctx, this.trustGate, request, this.history.lastSucceeded()?.commit ?? null);
      const waiting = this.pendingReboot === null ? null : this.history.get(this.pendingReboot);
      if (waiting && waiting.outcome === null) this.supersede(waiting, `replaced by a newer deploy request (${request.commit.slice(0, 12)})`);
      const d = await Deployment.start(this.ctx, request);
      this.currentId = d.id;
      return runDeployment(this.ctx, d);
    }, unitBefore);
  }

  private readOwnUnit(): Promise<string | null> {
    return catUnit(this.runner, this.config.units.executor).catch(() => null);
  }

  /** Both pullnix units, read together before a job starts (the executor's is step 8's "before"). */
  private readUnits(): Promise<PullnixUnits> {
    return Promise.all([this.readOwnUnit(), catUnit(this.runner, this.config.units.watcher).catch(() => null)]).then(([executor, watcher]) => ({ executor, watcher }));
  }

  // --- handover.ts's DaemonsProbe ---------------------------------------------------------------

  private async changedUnits(): Promise<{ executor: boolean; watcher: boolean }> {
    const before = await this.unitsBefore;
    if (!before) return { executor: false, watcher: false };
    const now = await this.readUnits();
    const differs = (a: string | null, b: string | null) => a !== null && b !== null && a !== b;
    return { executor: differs(before.executor, now.executor), watcher: differs(before.watcher, now.watcher) };
  }

  /**
   * Restart the watcher, then wait until a watcher subscribes after the restart and reports, at most
   * `timeoutMs`; a watcher systemd restarted CRASH_LOOP_RESTARTS times meanwhile is crash-looping.
   */
  private async watcherUp(timeoutMs: number): Promise<string | null> {
    const unit = this.config.units.watcher;
    const subscribed = this.subscriptions;
    this.log.event('watcher.restarting', { unit, deployment: this.currentId, outcome: 'verifying' });
    const r = await restartUnit(this.runner, unit).catch((error: unknown) => ({ exitCode: null, error }));
    if ('error' in r) return `systemctl restart ${unit}: ${String(r.error)}`;
    if (r.exitCode !== 0) return `systemctl restart ${unit}: ${describeFailure(r)}`;
    const deadline = this.ctx.clock.now() + timeoutMs;
    for (;;) {
      if (this.subscriptions > subscribed && this.reportsSinceSubscribe > 0 && this.liveWatcher()) return null;
      const props = await unitProperties(this.runner, unit, ['ActiveState', 'SubState', 'NRestarts', 'ExecMainStatus']);
      const restarts = Number(props?.NRestarts ?? '0');
      const state = props ? `ActiveState=${props.ActiveState ?? '?'} SubState=${props.SubState ?? '?'} NRestarts=${props.NRestarts ?? '?'} ExecMainStatus=${props.ExecMainStatus ?? '?'}` : 'systemctl show did not answer';
      if (restarts >= CRASH_LOOP_RESTARTS) return `the new watcher (${unit}) is crash-looping: systemd restarted it ${restarts} times since its restart and it never subscribed (${state})`;
      if (this.ctx.clock.now() >= deadline) return `the new watcher (${unit}) did not subscribe to the executor and report within ${Math.round(timeoutMs / 1000)} s of its restart (${state})`;
      await this.ctx.clock.sleep(250);
    }
  }

  /** Start the hand-over's guard (guard.ts) in a transient unit of its own, which outlives this executor. */
  private async startGuard(deploymentId: number): Promise<string | null> {
    if (!this.guard) return 'this executor was started without its configuration file, so no guard can watch the new one';
    const props = await unitProperties(this.runner, this.config.units.executor, ['NRestarts']);
    const restarts = Number(props?.NRestarts ?? 'NaN');
    if (!Number.isInteger(restarts)) return `systemctl show ${this.config.units.executor} gave no NRestarts`;
    const unit = transientUnitName(`pullnix-handover-${deploymentId}`);
    const r = await runDetached(this.runner, { unit, command: this.guard(deploymentId, restarts) }).catch((error: unknown) => ({ exitCode: null, error }));
    if ('error' in r) return `systemd-run ${unit}: ${String(r.error)}`;
    if (r.exitCode !== 0) return `systemd-run ${unit}: ${describeFailure(r)}`;
    this.log.event('executor.handover_guard', { unit, deployment: deploymentId, restarts });
    return null;
  }

  /**
   * Runs steps 2-6 (`work`), resolves with the record as soon as the outcome is recorded (the
   * socket answers then), and keeps the executor busy through steps 7-8.
   */
  private runJob(work: () => Promise<DeploymentRecord>, unitBefore: Promise<string | null> | null): Promise<DeploymentRecord> {
    let resolveOutcome!: (r: DeploymentRecord) => void;
    let rejectOutcome!: (e: unknown) => void;
    const outcome = new Promise<DeploymentRecord>((res, rej) => {
      resolveOutcome = res;
      rejectOutcome = rej;
    });
    const job = (async () => {
      let record: DeploymentRecord;
      try {
        record = await work();
      } catch (error) {
        if (error instanceof PullnixError && REFUSALS_BEFORE_START.has(error.code)) {
          // Refused before anything was recorded or changed: an answer, not a fault.
          rejectOutcome(error);
          return;
        }
        this.log.event('executor.fatal', { error: (error as Error).message, during: 'deployment', deployment: this.currentId });
        rejectOutcome(PullnixError.from(error));
        this.stopping = true;
        this.onFatal?.(error);
        return;
      }
      const clean = structuredClone(record);
      this.publishMetrics();
      resolveOutcome(clean);
      // Step 7 only after the response is written: the response is sent from a microtask of the
      // resolution above, this runs on a later turn of the event loop.
      await new Promise((resolve) => setImmediate(resolve));
      this.currentId = null;
      await this.afterOutcome(clean, unitBefore ? await unitBefore : null);
    })().finally(() => {
      this.job = null;
      this.currentId = null;
      if (this.selfUpgradePending) this.onSelfUpgrade?.();
    });
    this.job = job;
    return outcome;
  }

  private async afterOutcome(record: DeploymentRecord, unitBefore: string | null): Promise<void> {
    if (record.outcome === null && handedOver(record)) {
      // Verified, not committed: the new executor resumes it (handover.ts), watched by the guard.
      this.log.event('executor.self_upgrade', { unit: this.config.units.executor, deployment: record.id });
      this.selfUpgradePending = true;
      this.stopping = true;
      return;
    }
    if (record.outcome === null) {
      // A reboot deployment: waiting for the window, or the reboot after the answer.
      if (record.phase === 'reboot-pending') this.setPendingReboot(record);
      else if (record.phase === 'awaiting-boot' || record.phase === 'fallback-reboot') {
        this.stopping = true;
        const after = await requestReboot(this.ctx, Deployment.resume(this.ctx, record));
        if (after.outcome === null) return;
        this.stopping = false;
        this.publishMetrics();
        await this.afterOutcome(after, unitBefore);
      }
      return;
    }
    await this.notify(record);
    if (record.outcome === 'succeeded' && (await this.removedByDeployment(record))) return;
    // A watcher that came up before the commit (check pullnix-start) already runs the new definition.
    const watcherUpAlready = record.outcome === 'succeeded' && record.checks?.some((c) => c.name === PULLNIX_START_CHECK && c.passed === true);
    if ((record.outcome === 'succeeded' && !watcherUpAlready) || record.outcome === 'rolled-back') {
      const unit = this.config.units.watcher;
      this.log.event('watcher.restarting', { unit, deployment: record.id, outcome: record.outcome });
      const r = await restartUnit(this.runner, unit).catch((error: unknown) => ({ error }));
      if ('error' in r) this.log.event('watcher.restart_failed', { unit, error: String(r.error) });
      else if (r.exitCode !== 0) this.log.event('watcher.restart_failed', { unit, error: describeFailure(r) });
    }
    if (unitBefore === null) return;
    const after = await this.readOwnUnit();
    if (after !== null && after !== unitBefore) {
      this.log.event('executor.self_upgrade', { unit: this.config.units.executor, deployment: record.id });
      this.selfUpgradePending = true;
      this.stopping = true;
    }
  }

  /**
   * pullnix turned off by a commit: the new system has no pullnix units. Both units carry
   * X-StopOnRemoval=false, so the deployment ran to its recorded outcome; now both stop (the
   * watcher first, the executor last: systemd stops it, no restart), so that neither runs on
   * without its unit and config.
   */
  private async removedByDeployment(record: DeploymentRecord): Promise<boolean> {
    const { watcher, executor } = this.config.units;
    const [w, e] = await Promise.all([loadState(this.runner, watcher), loadState(this.runner, executor)]);
    if (e !== 'not-found') return false;
    this.log.event('executor.removed', { deployment: record.id, units: w === 'not-found' ? [watcher, executor] : [executor] });
    this.stopping = true;
    const r = await stopUnitsNoBlock(this.runner, w === 'not-found' ? [watcher, executor] : [executor]);
    if (r.exitCode !== 0) this.log.event('executor.fatal', { during: 'removal', error: describeFailure(r) });
    return true;
  }
}

/** This very program's `guard-handover` (guard.ts), on the configuration file it loaded. */
export function selfGuard(configFile: string): (deploymentId: number, restarts: number) => string[] {
  return (id, restarts) => [process.execPath, process.argv[1] ?? 'pullnix-executor', 'guard-handover', '--config', configFile, '--deployment', String(id), '--restarts', String(restarts)];
}

/** Refusals found inside the job, before anything was recorded or changed: answers, not faults. */
const REFUSALS_BEFORE_START: ReadonlySet<string> = new Set(['PAUSED', 'KNOWN_BAD', 'INVALID_SYSTEM', 'UNTRUSTED']);

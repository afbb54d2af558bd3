/**
 * One deployment, DESIGN.md steps 2-6, as an explicit state machine over the protocol's words:
 *
 *   accepted → activating ─0→ verifying ─pass→ committing ─ok→ finished (succeeded)
 *                  │ 100 → finished (reboot-required)      │ fail          │ fail
 *                  └ 2/4/other/timeout/unknown → rolling-back ◀────────────┘
 *                                          ├ ok   → finished (rolled-back)
 *                                          └ fail → finished (rollback-failed; the executor pauses)
 *
 * Every phase change is a full snapshot appended to the history before the next command runs,
 * so a crash at any point leaves a record that crash recovery (recovery.ts) can resolve.
 * The pipeline never builds a command line: commands/ does.
 *
 * What counts is what NixOS says, never what it leaves behind: the activation script repoints
 * /run/current-system at the new system whatever its status, so only the activation's recorded
 * exit status (activation-record.ts) decides, and an unknown one is a failure. Units are judged
 * against the state before the deployment (record.previous.failedUnits): a unit that was
 * already failing is reported, not blamed, whether in the new system or in the rollback.
 */
import { describeFailure, lastLines, PullnixError, type DeploymentOutcome, type DeploymentPhase, type DeploymentRecord, type ErrorCode, type ErrorData, type Logger } from '@pullnix/shared';
import { generationSystem, profileGeneration, setProfile, switchGeneration } from '../commands/nix-env.ts';
import { activeState, failedUnits, stopUnit } from '../commands/systemctl.ts';
import { transientUnitName } from '../commands/systemd-run.ts';
import { activate, installBootEntry, STC_EXIT, type ActivationAction } from '../commands/switch-to-configuration.ts';
import { runChecks, verifyConnectivity } from '../verify/index.ts';
import { snapshotUnits, type UnitsSnapshot } from '../verify/units.ts';
import { MAX_INTERRUPTIONS, rememberFailure, type ExecutorState } from '../store/state.ts';
import { activationRecordPath, prepareRecordDir, readActivationRecord, removeActivationRecord } from './activation-record.ts';
import { currentBootId, liveSystem, type PipelineContext } from './context.ts';
import { pinSystems, unpinSystems } from './gcroots.ts';
import { PULLNIX_START_CHECK, pullnixStart } from './handover.ts';
import { retryMachineFaults } from './machine.ts';
import { planReboot, rebootNeeded, rebootReasons } from './reboot.ts';

export interface DeploymentRequest {
  kind: DeploymentRecord['kind'];
  commit: string;
  toplevel: string;
  requestedBy: string;
}

/** A deployment record plus the durable writes that move it along. */
export class Deployment {
  record: DeploymentRecord;
  /** Every line about this deployment carries deployment= and commit=. */
  readonly log: Logger;
  /** The loaded units just before this executor activated the new system (in memory only: a resumed deployment has none, and its check holds every unit to settleSec). */
  unitsBefore: UnitsSnapshot | null = null;
  private readonly ctx: PipelineContext;

  private constructor(ctx: PipelineContext, record: DeploymentRecord) {
    this.ctx = ctx;
    this.record = record;
    this.log = ctx.log.child({ deployment: record.id, commit: record.commit });
  }

  /**
   * Step 2: record the deployment with the previous system (and the units failing before it, and
   * the boot it runs in), durably, before anything changes; keep both systems alive until the outcome.
   */
  static async start(ctx: PipelineContext, request: DeploymentRequest): Promise<Deployment> {
    const { config, history, state, clock } = ctx;
    // Units already failed before anything changes: the verification reports them, never blames them.
    const failedBefore = await failedUnitsBaseline(ctx);
    const id = Math.max(state.state.nextId, history.maxId + 1);
    const at = new Date(clock.now()).toISOString();
    const previousSystem = liveSystem(config);
    pinSystems(config.paths.gcRootsDir, id, { previous: previousSystem, toplevel: request.toplevel });
    const record: DeploymentRecord = {
      id,
      kind: request.kind,
      commit: request.commit,
      toplevel: request.toplevel,
      activation: config.activation,
      requestedBy: request.requestedBy,
      previous: { system: previousSystem, generation: profileGeneration(config.paths.systemProfile), failedUnits: failedBefore },
      bootId: currentBootId(config),
      phase: 'accepted',
      phases: [{ phase: 'accepted', at }],
      outcome: null,
      error: null,
      activationExit: null,
      generation: null,
      startedAt: at,
      finishedAt: null,
    };
    history.append(record);
    state.update((s) => {
      s.nextId = id + 1;
      s.current = id;
    });
    const d = new Deployment(ctx, record);
    d.log.event('deploy.accepted', { kind: request.kind, toplevel: request.toplevel, previous: record.previous.system, previous_generation: record.previous.generation, failed_before: failedBefore ?? 'unknown', activation: config.activation, key: request.requestedBy });
    return d;
  }

  /** An unfinished record found on start (crash recovery). */
  static resume(ctx: PipelineContext, record: DeploymentRecord): Deployment {
    return new Deployment(ctx, structuredClone(record));
  }

  get id(): number {
    return this.record.id;
  }

  mark(phase: DeploymentPhase, detail?: string, change?: (r: DeploymentRecord) => void): void {
    const at = new Date(this.ctx.clock.now()).toISOString();
    const next = structuredClone(this.record);
    next.phase = phase;
    next.phases.push(detail === undefined ? { phase, at } : { phase, at, detail });
    change?.(next);
    this.ctx.history.append(next);
    this.record = next;
  }

  /** Step 6: the outcome, then what the state remembers about it (failure memory, pause). */
  finish(outcome: DeploymentOutcome, error: ErrorData | null, change?: (r: DeploymentRecord) => void): DeploymentRecord {
    const at = new Date(this.ctx.clock.now()).toISOString();
    this.mark('finished', outcome, (r) => {
      r.outcome = outcome;
      r.error = error;
      r.finishedAt = at;
      change?.(r);
    });
    this.ctx.state.update((s) => applyOutcome(s, this.record, at));
    unpinSystems(this.ctx.config.paths.gcRootsDir);
    for (const p of this.record.phases) if (p.unit) removeActivationRecord(activationRecordPath(this.ctx.config.stateDir, p.unit));
    const fields = { toplevel: this.record.toplevel, outcome, code: error?.code, error: error?.message };
    if (outcome === 'succeeded') this.log.event('deploy.succeeded', { ...fields, generation: this.record.generation });
    else if (outcome === 'rolled-back') this.log.event('deploy.rolled_back', fields);
    else if (outcome === 'rollback-failed') {
      this.log.event('deploy.rollback_failed', fields);
      const paused = this.ctx.state.state.paused;
      if (paused?.by === 'executor') this.ctx.log.event('control.paused', { by: 'executor', reason: paused.reason });
    } else if (outcome === 'interrupted') this.log.event('deploy.interrupted', fields);
    return this.record;
  }
}

/**
 * What a finished record does to the state. Also used on start to repair a state.json written
 * before the crash that followed the record's final history line.
 */
export function applyOutcome(s: ExecutorState, r: DeploymentRecord, at: string): void {
  if (s.current === r.id) s.current = null;
  s.nextId = Math.max(s.nextId, r.id + 1);
  if (r.outcome === 'rollback-failed') {
    s.paused = { since: at, reason: `deployment ${r.id} (${r.commit.slice(0, 12)}) failed to roll back: ${r.error?.message ?? 'unknown'}; check the system, then resume`, by: 'executor' };
  }
  // An operator's rollback that fails says nothing about the target commit's future deploys.
  if (r.kind !== 'deploy') return;
  switch (r.outcome) {
    case 'succeeded':
      delete s.knownBad[r.commit];
      delete s.interruptions[r.commit];
      break;
    case 'rolled-back':
    case 'rollback-failed':
    case 'reboot-required':
      rememberFailure(s, r.commit, { deploymentId: r.id, reason: `${r.outcome}: ${r.error?.message ?? ''}`.replace(/: $/, ''), at });
      break;
    case 'interrupted': {
      const n = (s.interruptions[r.commit] ?? 0) + 1;
      s.interruptions[r.commit] = n;
      if (n >= MAX_INTERRUPTIONS) rememberFailure(s, r.commit, { deploymentId: r.id, reason: `interrupted ${n} times`, at });
      break;
    }
    case null:
      break;
  }
}

/** Longest error message kept in a record: enough for a command's last lines, bounded for the socket. */
export const MAX_ERROR_CHARS = 4000;

/** Why a deployment did not succeed: a code clients can switch on, and the message that says why. */
export function failure(code: ErrorCode, message: string): ErrorData {
  const text = message.length > MAX_ERROR_CHARS ? `${message.slice(0, MAX_ERROR_CHARS - 1)}…` : message;
  return new PullnixError(code, text).toJSON();
}

/** Steps 3-6 for a freshly started deployment. */
export async function runDeployment(ctx: PipelineContext, d: Deployment): Promise<DeploymentRecord> {
  const { config } = ctx;
  const mode = d.record.activation;
  // A new kernel, initrd or kernel modules take effect only at the next boot.
  const reasons = rebootReasons(config, d.record.toplevel);
  if (reasons.length > 0) {
    d.record.reboot = rebootNeeded(config, reasons);
    d.log.event('deploy.reboot_needed', { reasons, mode: config.reboot.mode, booted: config.paths.bootedSystem });
    if (config.reboot.mode === 'window') return planReboot(ctx, d);
  }
  let profileMoved = false;
  if (mode === 'switch') {
    // Classic order: the profile first, so `switch` installs the boot entry for it.
    const set = await retryMachineFaults(ctx.clock, d.log, 'nix-env --set', () => setProfile(ctx.runner, config.paths.systemProfile, d.record.toplevel));
    profileMoved = profileGeneration(config.paths.systemProfile) !== d.record.previous.generation;
    if (set.exitCode !== 0) return rollBack(ctx, d, 'ACTIVATION_FAILED', `nix-env --set failed before activation: ${describeFailure(set)}`, { profileMoved, activated: false });
  }
  // The unit name goes into the history before the unit starts: if the executor dies now, the
  // activation goes on in its own unit, and recovery waits for it and reads its recorded exit.
  const unit = transientUnitName(`pullnix-activate-${d.id}`);
  d.mark('activating', mode, (r) => (r.phases.at(-1)!.unit = unit));
  d.log.event('deploy.activating', { toplevel: d.record.toplevel, action: mode, unit });
  // What the units were just before: the failed-units check watches only those the activation moves.
  d.unitsBefore = await snapshotUnits(ctx);
  const activation = await runActivation(ctx, d.record.toplevel, mode, unit);
  logSwitchOutput(d, activation);
  return afterActivation(ctx, d, activation, { profileMoved });
}

/**
 * Step 3's verdict, from the activation's recorded exit status (also crash recovery's way in
 * once a recorded activation has finished): 0, or 4 with no unit failing that was not failing
 * before, goes on to verification; 100 is reboot-required; anything else, an unknown status
 * included, is rolled back.
 */
export async function afterActivation(ctx: PipelineContext, d: Deployment, activation: ActivationResult, opts: { profileMoved: boolean }): Promise<DeploymentRecord> {
  const exit = activation.exit;
  d.record.activationExit = exit;
  if (exit === STC_EXIT.ok || (exit === STC_EXIT.unitsFailed && (await unitsAsBefore(ctx, d, 'activation', activation)))) {
    d.log.event('deploy.activated', { ms: activation.durationMs, exit });
    return verifyAndCommit(ctx, d, opts);
  }
  if (exit === STC_EXIT.rebootRequired) {
    // switch-to-configuration stops before changing anything: nothing to roll back. In switch
    // mode the profile moved first; put it back so the boot default stays the running system.
    d.log.event('deploy.reboot_required', { toplevel: d.record.toplevel });
    const message = `switch-to-configuration exited 100: this system needs a reboot to activate (nothing was activated; deploy it with a reboot by hand, or set reboot.mode = window)`;
    if (opts.profileMoved) {
      const restored = await restoreBootDefault(ctx, d);
      if (restored !== null) return d.finish('rollback-failed', failure('ROLLBACK_FAILED', `${message}; restoring the boot default failed: ${restored}`), (r) => (r.activationExit = exit));
    }
    if (ctx.config.reboot.mode === 'window') {
      // Exit 100 is a reboot deployment like a kernel change: booted on trial, verified after the boot.
      d.record.reboot = rebootNeeded(ctx.config, [...(d.record.reboot?.reasons ?? []), 'init-interface']);
      d.log.event('deploy.reboot_needed', { reasons: d.record.reboot.reasons, mode: 'window', booted: ctx.config.paths.bootedSystem });
      return planReboot(ctx, d);
    }
    return d.finish('reboot-required', failure('REBOOT_REQUIRED', message), (r) => (r.activationExit = exit));
  }
  const why = describeActivation(activation, d.record.previous.failedUnits, activation.newlyFailed);
  d.log.event('deploy.activation_failed', { exit, error: why, unit: activation.unit });
  return rollBack(ctx, d, 'ACTIVATION_FAILED', why, { profileMoved: opts.profileMoved, activated: true });
}

/** What one activation (or re-activation) did, from its record. `exit` null: unknown. */
export interface ActivationResult {
  unit: string;
  /** Whether the activation ever started (its record exists); false: nothing was activated. */
  started: boolean;
  exit: number | null;
  signal: string | null;
  /** Why the exit is unknown (no record, could not start, timed out), when it is. */
  unknown: string | null;
  lines: string[];
  durationMs: number;
  /** Filled in when exit 4 is judged: the units failing now that were not failing before. */
  newlyFailed?: string[];
}

function describeActivation(a: ActivationResult, failedBefore: readonly string[] | null | undefined, newlyFailed: readonly string[] | undefined): string {
  const out = lastLines(a.lines.filter((l) => !/^\s*$/.test(l)).join('\n'), 5);
  if (a.exit === null) return `switch-to-configuration (${a.unit}): ${a.unknown ?? (a.signal ? `killed by ${a.signal}` : 'no exit status')}${out ? `: ${out}` : ''}`;
  const meaning =
    a.exit === STC_EXIT.activationFailed
      ? 'the activation script failed'
      : a.exit === STC_EXIT.unitsFailed
        ? newlyFailed && newlyFailed.length > 0
          ? `units failed that were not failing before: ${newlyFailed.join(', ')}${failedBefore && failedBefore.length > 0 ? `; already failing before, not blamed: ${failedBefore.join(', ')}` : ''}`
          : 'some units failed'
        : 'activation failed';
  return `switch-to-configuration exited ${a.exit} (${meaning})${out ? `: ${out}` : ''}`;
}

/** The switch's own account of what it did (units stopped, started, NOT restarted) in the executor's journal. */
function logSwitchOutput(d: Deployment, a: ActivationResult): void {
  const summary = a.lines.filter((l) => SWITCH_SUMMARY.test(l));
  d.log.event('deploy.switch_output', { unit: a.unit, exit: a.exit, lines: summary.length > 0 ? summary.join(' | ') : '(no unit changes reported)' });
}

/** Looks at the failing units before a deployment, and the pause after each that found no answer. */
export const BASELINE_RETRY_MS = [1000, 2000] as const;

/**
 * The units failing before the deployment, asked again (BASELINE_RETRY_MS) when systemctl does not
 * answer; still null after that, the failed-units check blames every failing unit (units.ts).
 */
async function failedUnitsBaseline(ctx: PipelineContext): Promise<string[] | null> {
  for (const pause of [...BASELINE_RETRY_MS, null]) {
    const units = await failedUnits(ctx.runner);
    if (units !== null || pause === null) return units;
    await ctx.clock.sleep(pause);
  }
  return null;
}

const SWITCH_SUMMARY = /^(stopping|starting|restarting|reloading|NOT restarting|NOT stopping|the following new units|warning: the following units failed|the following units failed|Failed to run activate script|This system)/;

/**
 * Exit 4 against the state before the deployment: true when units are failing and every one of
 * them was failing before it started (reported, not blamed). Unknown either way, or an exit 4
 * with no failed unit to explain it, counts as a failure of this activation.
 */
async function unitsAsBefore(ctx: PipelineContext, d: Deployment, what: 'activation' | 'rollback', a?: ActivationResult): Promise<boolean> {
  const before = d.record.previous.failedUnits;
  const now = await failedUnits(ctx.runner);
  const newly = before === null || before === undefined || now === null ? (now ?? ['(unknown: systemctl did not answer)']) : now.filter((u) => !before.includes(u));
  if (a) a.newlyFailed = newly;
  if (newly.length > 0 || now === null || now.length === 0) return false;
  d.log.event('deploy.units_failed_before', { during: what, units: now ?? [] });
  return true;
}

/** Steps 4-6 once the toplevel is live (also crash recovery's way in). */
export async function verifyAndCommit(ctx: PipelineContext, d: Deployment, opts: { profileMoved: boolean }): Promise<DeploymentRecord> {
  const { config } = ctx;
  d.mark('verifying');
  d.log.event('deploy.verifying', { remote: config.repository.url, branch: config.repository.branch, timeout_s: config.verify.timeoutSec });
  const verified = await runChecks(ctx, d);
  d.record.checks = verified.checks;
  if (!verified.ok) {
    d.log.event('deploy.verify_failed', { checks: verified.failed.map((c) => c.name), error: verified.reason });
    return rollBack(ctx, d, 'VERIFY_FAILED', verified.reason, { profileMoved: opts.profileMoved, activated: true });
  }
  d.log.event('deploy.verified', { checks: verified.checks.map((c) => c.name), attempts: verified.checks.reduce((n, c) => n + c.attempts, 0) });
  // The new pullnix must come up before anything is committed (handover.ts).
  const start = await pullnixStart(ctx.daemons, d, config.verify.timeoutSec, ctx.clock.now);
  if (start.kind === 'handed-over') return d.record;
  if (start.kind === 'up' || start.kind === 'failed') d.record.checks = [...verified.checks, start.check];
  if (start.kind === 'failed') return rollBack(ctx, d, 'VERIFY_FAILED', `check ${PULLNIX_START_CHECK} failed: ${start.check.error}`, { profileMoved: opts.profileMoved, activated: true });
  d.mark('committing');
  const profile = config.paths.systemProfile;
  let profileMoved = opts.profileMoved;
  if (d.record.activation === 'test') {
    const set = await retryMachineFaults(ctx.clock, d.log, 'nix-env --set', () => setProfile(ctx.runner, profile, d.record.toplevel));
    profileMoved = profileMoved || profileGeneration(profile) !== d.record.previous.generation;
    if (set.exitCode !== 0) return commitFailed(ctx, d, `nix-env --set failed: ${describeFailure(set)}`, profileMoved);
    const boot = await installBootEntry(ctx.runner, d.record.toplevel, config.activationTimeoutSec * 1000);
    if (boot.exitCode !== 0) return commitFailed(ctx, d, `switch-to-configuration boot failed: ${describeFailure(boot)}`, true);
  }
  const generation = profileGeneration(profile);
  d.log.event('deploy.committed', { generation, profile });
  return d.finish('succeeded', null, (r) => (r.generation = generation));
}

/**
 * A failure after a verified activation. The boot default must never point at a generation whose
 * commit phase did not complete, so this is a rollback like any other (outcome rolled-back, the
 * error says the commit phase failed): profile and boot entry go back to the previous system,
 * and the previous system is re-activated.
 */
function commitFailed(ctx: PipelineContext, d: Deployment, why: string, profileMoved: boolean): Promise<DeploymentRecord> {
  d.log.event('deploy.commit_failed', { error: why });
  return rollBack(ctx, d, 'COMMIT_FAILED', `commit phase failed after verification: ${why}`, { profileMoved, activated: true });
}

/**
 * Step 5 fail: re-activate the recorded previous system (never "the generation below"). In test
 * mode the boot default only moved if the commit phase got that far; in switch mode it moved
 * before activation. Either way it is put back before re-activating.
 *
 * The rollback is judged against the state before the deployment: the previous system is live
 * again, no unit is failing that was not failing before (exit 4 for units that already failed
 * is not the rollback's fault), and git answers again within verify.timeoutSec. Anything else is
 * rollback-failed, which pauses the executor so nothing is retried blindly.
 */
export async function rollBack(ctx: PipelineContext, d: Deployment, code: ErrorCode, cause: string, opts: { profileMoved: boolean; activated: boolean }): Promise<DeploymentRecord> {
  const previous = d.record.previous.system;
  const unit = transientUnitName(`pullnix-rollback-${d.id}`);
  d.mark('rolling-back', cause.slice(0, 2000), (r) => (r.phases.at(-1)!.unit = unit));
  d.log.event('deploy.rolling_back', { previous, reason: cause, unit });
  const failed = (why: string) => d.finish('rollback-failed', failure('ROLLBACK_FAILED', `${cause}; rollback failed: ${why}`));
  if (previous === null) return failed(`no previous system was recorded (${ctx.config.paths.currentSystem} did not resolve when the deployment started)`);
  const mode = d.record.activation;
  if (mode === 'switch') {
    if (opts.profileMoved || opts.activated) {
      const set = await retryMachineFaults(ctx.clock, d.log, 'nix-env --set', () => setProfile(ctx.runner, ctx.config.paths.systemProfile, previous));
      if (set.exitCode !== 0) return failed(`nix-env --set ${previous}: ${describeFailure(set)}`);
    }
  } else if (opts.profileMoved) {
    const restored = await restoreBootDefault(ctx, d);
    if (restored !== null) return failed(restored);
  }
  if (opts.activated) {
    const a = await runActivation(ctx, previous, mode, unit);
    logSwitchOutput(d, a);
    const live = liveSystem(ctx.config);
    if (live !== previous) return failed(`after re-activating ${previous}, ${ctx.config.paths.currentSystem} is ${live ?? 'unresolvable'}: ${describeActivation(a, d.record.previous.failedUnits, undefined)}`);
    const clean = a.exit === STC_EXIT.ok || (a.exit === STC_EXIT.unitsFailed && (await unitsAsBefore(ctx, d, 'rollback', a)));
    if (!clean) return failed(describeActivation(a, d.record.previous.failedUnits, a.newlyFailed));
    const git = await verifyConnectivity(ctx, d);
    if (git.passed !== true) return failed(`the previous system is live again but git does not answer: ${git.error ?? 'no answer'}`);
  }
  return d.finish('rolled-back', failure(code, cause));
}

/** Point the system profile and the boot entry back at the previous system; null on success. */
export async function restoreBootDefault(ctx: PipelineContext, d: Deployment): Promise<string | null> {
  const { previous } = d.record;
  const profile = ctx.config.paths.systemProfile;
  const timeoutMs = ctx.config.activationTimeoutSec * 1000;
  // The boot default to restore is the generation the profile pointed at when the deployment
  // started, which need not be the live system (an operator's `nixos-rebuild test`).
  const bootSystem = previous.generation === null ? null : generationSystem(profile, previous.generation);
  if (previous.generation !== null && bootSystem !== null) {
    const generation = previous.generation;
    const sw = await retryMachineFaults(ctx.clock, d.log, 'nix-env --switch-generation', () => switchGeneration(ctx.runner, profile, generation));
    if (sw.exitCode !== 0) return `nix-env --switch-generation ${previous.generation}: ${describeFailure(sw)}`;
    const boot = await installBootEntry(ctx.runner, bootSystem, timeoutMs);
    if (boot.exitCode !== 0) return `${bootSystem}/bin/switch-to-configuration boot: ${describeFailure(boot)}`;
    return null;
  }
  // No earlier generation to go back to (none existed, or it was collected): the live system it is.
  if (previous.system === null) return 'no previous system was recorded';
  const system = previous.system;
  const set = await retryMachineFaults(ctx.clock, d.log, 'nix-env --set', () => setProfile(ctx.runner, profile, system));
  if (set.exitCode !== 0) return `nix-env --set ${previous.system}: ${describeFailure(set)}`;
  const boot = await installBootEntry(ctx.runner, previous.system, timeoutMs);
  if (boot.exitCode !== 0) return `${previous.system}/bin/switch-to-configuration boot: ${describeFailure(boot)}`;
  return null;
}

/**
 * An activation through systemd-run and the recorder. When the client gives up (timeout) the
 * transient unit may still run switch-to-configuration, holding its lock: stop the unit and wait
 * until it is gone, so that whatever comes next (the rollback) does not race it. The verdict is
 * the record's, never systemd-run's exit alone.
 */
async function runActivation(ctx: PipelineContext, toplevel: string, action: ActivationAction, unit: string): Promise<ActivationResult> {
  const { config } = ctx;
  prepareRecordDir(config.stateDir);
  const recordPath = activationRecordPath(config.stateDir, unit);
  removeActivationRecord(recordPath);
  const r = await activate(ctx.runner, { toplevel, action, unit, recorder: ctx.recorder, recordPath, timeoutMs: config.activationTimeoutSec * 1000 });
  if (r.timedOut || r.aborted) {
    await stopUnit(ctx.runner, unit);
    await waitForUnit(ctx, unit);
  }
  const unknown = r.spawnError
    ? `systemd-run could not start the activation: ${r.spawnError}`
    : r.timedOut
      ? `activation did not finish within the activation timeout (activationTimeoutSec=${config.activationTimeoutSec} s); its unit was stopped`
      : null;
  const result = { ...recordedActivation(ctx, unit, unknown ?? `no exit status was recorded (systemd-run: ${describeFailure(r)})`), durationMs: r.durationMs };
  // A stopped unit's record says "killed": the reason it was stopped is what an operator needs.
  if (result.exit === null && unknown !== null) result.unknown = unknown;
  return result;
}

/** The result of a finished activation unit as its record tells it (also for crash recovery). */
export function recordedActivation(ctx: PipelineContext, unit: string, missing: string): ActivationResult {
  const rec = readActivationRecord(activationRecordPath(ctx.config.stateDir, unit));
  if (rec === null) return { unit, started: false, exit: null, signal: null, unknown: missing, lines: [], durationMs: 0 };
  const unknown =
    rec.finishedAt === null
      ? 'it started, and no end was recorded (killed with its unit, or the machine stopped)'
      : rec.exit !== null
        ? null
        : rec.spawnError
          ? `switch-to-configuration could not start: ${rec.spawnError}`
          : `switch-to-configuration was killed by ${rec.signal ?? 'a signal'}`;
  const durationMs = rec.finishedAt === null ? 0 : Date.parse(rec.finishedAt) - Date.parse(rec.startedAt) || 0;
  return { unit, started: true, exit: rec.finishedAt === null ? null : rec.exit, signal: rec.signal, unknown, lines: rec.lines, durationMs };
}

/**
 * Wait until a transient unit is no longer running (inactive, failed, or unknown to systemd),
 * at most activationTimeoutSec; then stop it. Returns its last state.
 */
export async function waitForUnit(ctx: PipelineContext, unit: string): Promise<string | null> {
  const deadline = ctx.clock.now() + ctx.config.activationTimeoutSec * 1000;
  for (;;) {
    const state = await activeState(ctx.runner, unit);
    if (state === null || !RUNNING_STATES.has(state)) return state;
    if (ctx.clock.now() >= deadline) {
      await stopUnit(ctx.runner, unit);
      return activeState(ctx.runner, unit);
    }
    await ctx.clock.sleep(500);
  }
}

const RUNNING_STATES: ReadonlySet<string> = new Set(['active', 'activating', 'deactivating', 'reloading', 'refreshing']);

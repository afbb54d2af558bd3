/**
 * One deployment, DESIGN.md steps 2-6, as an explicit state machine over the protocol's words:
 *
 *   accepted → activating ─0→ verifying ─pass→ committing ─ok→ finished (succeeded)
 *                  │ 100 → finished (reboot-required)      │ fail          │ fail
 *                  └ 2/4/other/timeout → rolling-back ◀────┴───────────────┘
 *                                          ├ ok   → finished (rolled-back)
 *                                          └ fail → finished (rollback-failed; the executor pauses)
 *
 * Every phase change is a full snapshot appended to the history before the next command runs,
 * so a crash at any point leaves a record that crash recovery (recovery.ts) can resolve.
 * The pipeline never builds a command line: commands/ does.
 */
import { describeFailure, lastLines, PullnixError, type DeploymentOutcome, type DeploymentPhase, type DeploymentRecord, type ErrorCode, type ErrorData, type Logger, type RunResult } from '@pullnix/shared';
import { generationSystem, profileGeneration, setProfile, switchGeneration } from '../commands/nix-env.ts';
import { activeState, failedUnits, stopUnit } from '../commands/systemctl.ts';
import { transientUnitName } from '../commands/systemd-run.ts';
import { activate, installBootEntry, STC_EXIT } from '../commands/switch-to-configuration.ts';
import { runChecks } from '../verify/index.ts';
import { MAX_INTERRUPTIONS, rememberFailure, type ExecutorState } from '../store/state.ts';
import { liveSystem, type PipelineContext } from './context.ts';

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
  private readonly ctx: PipelineContext;

  private constructor(ctx: PipelineContext, record: DeploymentRecord) {
    this.ctx = ctx;
    this.record = record;
    this.log = ctx.log.child({ deployment: record.id, commit: record.commit });
  }

  /** Step 2: record the deployment with the previous system, durably, before anything changes. */
  static async start(ctx: PipelineContext, request: DeploymentRequest): Promise<Deployment> {
    const { config, history, state, clock } = ctx;
    // Units already failed before anything changes: the verification reports them, never blames them.
    const failedBefore = await failedUnits(ctx.runner);
    const id = Math.max(state.state.nextId, history.maxId + 1);
    const at = new Date(clock.now()).toISOString();
    const record: DeploymentRecord = {
      id,
      kind: request.kind,
      commit: request.commit,
      toplevel: request.toplevel,
      activation: config.activation,
      requestedBy: request.requestedBy,
      previous: { system: liveSystem(config), generation: profileGeneration(config.paths.systemProfile), ...(failedBefore ? { failedUnits: failedBefore } : {}) },
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
    d.log.event('deploy.accepted', { kind: request.kind, toplevel: request.toplevel, previous: record.previous.system, previous_generation: record.previous.generation, activation: config.activation, key: request.requestedBy });
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
  let profileMoved = false;
  if (mode === 'switch') {
    // Classic order: the profile first, so `switch` installs the boot entry for it.
    const set = await setProfile(ctx.runner, config.paths.systemProfile, d.record.toplevel);
    profileMoved = profileGeneration(config.paths.systemProfile) !== d.record.previous.generation;
    if (set.exitCode !== 0) return rollBack(ctx, d, 'ACTIVATION_FAILED', `nix-env --set failed before activation: ${describeFailure(set)}`, { profileMoved, activated: false });
  }
  // The unit name goes into the history before the unit starts: if the executor dies now, the
  // activation goes on in its own unit, and recovery must wait for it before judging anything.
  const unit = transientUnitName(`pullnix-activate-${d.id}`);
  d.mark('activating', mode, (r) => (r.phases.at(-1)!.unit = unit));
  d.log.event('deploy.activating', { toplevel: d.record.toplevel, action: mode });
  const result = await runActivation(ctx, d.record.toplevel, mode, unit);
  const exit = result.timedOut || result.spawnError ? null : result.exitCode;
  d.record.activationExit = exit;
  if (exit === STC_EXIT.ok) {
    d.log.event('deploy.activated', { ms: result.durationMs });
    return verifyAndCommit(ctx, d, { profileMoved });
  }
  if (exit === STC_EXIT.rebootRequired) {
    // switch-to-configuration stops before changing anything: nothing to roll back. In switch
    // mode the profile moved first; put it back so the boot default stays the running system.
    d.log.event('deploy.reboot_required', { toplevel: d.record.toplevel });
    const message = `switch-to-configuration exited 100: this system needs a reboot to activate (nothing was activated; deploy it with a reboot by hand)`;
    if (profileMoved) {
      const restored = await restoreBootDefault(ctx, d);
      if (restored !== null) return d.finish('rollback-failed', failure('ROLLBACK_FAILED', `${message}; restoring the boot default failed: ${restored}`), (r) => (r.activationExit = exit));
    }
    return d.finish('reboot-required', failure('REBOOT_REQUIRED', message), (r) => (r.activationExit = exit));
  }
  const why = describeActivation(result);
  d.log.event('deploy.activation_failed', { exit, error: why });
  return rollBack(ctx, d, 'ACTIVATION_FAILED', why, { profileMoved, activated: true });
}

function describeActivation(r: RunResult): string {
  if (r.spawnError) return `systemd-run could not start the activation: ${r.spawnError}`;
  if (r.timedOut) return `activation did not finish within the activation timeout (${Math.round(r.durationMs / 1000)} s)`;
  const meaning =
    r.exitCode === STC_EXIT.activationFailed ? 'the activation script failed' : r.exitCode === STC_EXIT.unitsFailed ? 'some units failed' : r.signal ? `killed by ${r.signal}` : 'activation failed';
  const out = lastLines(r.stderr, 5) || lastLines(r.stdout, 5);
  return `switch-to-configuration exited ${r.exitCode ?? '-'} (${meaning})${out ? `: ${out}` : ''}`;
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
  d.mark('committing');
  const profile = config.paths.systemProfile;
  let profileMoved = opts.profileMoved;
  if (d.record.activation === 'test') {
    const set = await setProfile(ctx.runner, profile, d.record.toplevel);
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
 * before activation. Either way it is put back before re-activating. Only a clean exit 0 of the
 * previous system's activation counts as rolled back; anything else is rollback-failed, which
 * pauses the executor so nothing is retried blindly.
 */
export async function rollBack(ctx: PipelineContext, d: Deployment, code: ErrorCode, cause: string, opts: { profileMoved: boolean; activated: boolean }): Promise<DeploymentRecord> {
  const previous = d.record.previous.system;
  const unit = transientUnitName(`pullnix-rollback-${d.id}`);
  d.mark('rolling-back', cause.slice(0, 2000), (r) => (r.phases.at(-1)!.unit = unit));
  d.log.event('deploy.rolling_back', { previous, reason: cause });
  const failed = (why: string) => d.finish('rollback-failed', failure('ROLLBACK_FAILED', `${cause}; rollback failed: ${why}`));
  if (previous === null) return failed(`no previous system was recorded (${ctx.config.paths.currentSystem} did not resolve when the deployment started)`);
  if (d.record.activation === 'switch') {
    if (opts.profileMoved || opts.activated) {
      const set = await setProfile(ctx.runner, ctx.config.paths.systemProfile, previous);
      if (set.exitCode !== 0) return failed(`nix-env --set ${previous}: ${describeFailure(set)}`);
    }
    if (opts.activated) {
      const r = await runActivation(ctx, previous, 'switch', unit);
      if (r.exitCode !== 0 || r.timedOut || r.spawnError) return failed(describeActivation(r));
    }
    return d.finish('rolled-back', failure(code, cause));
  }
  if (opts.profileMoved) {
    const restored = await restoreBootDefault(ctx, d);
    if (restored !== null) return failed(restored);
  }
  if (opts.activated) {
    const r = await runActivation(ctx, previous, 'test', unit);
    if (r.exitCode !== 0 || r.timedOut || r.spawnError) return failed(describeActivation(r));
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
    const sw = await switchGeneration(ctx.runner, profile, previous.generation);
    if (sw.exitCode !== 0) return `nix-env --switch-generation ${previous.generation}: ${describeFailure(sw)}`;
    const boot = await installBootEntry(ctx.runner, bootSystem, timeoutMs);
    if (boot.exitCode !== 0) return `${bootSystem}/bin/switch-to-configuration boot: ${describeFailure(boot)}`;
    return null;
  }
  // No earlier generation to go back to (none existed, or it was collected): the live system it is.
  if (previous.system === null) return 'no previous system was recorded';
  const set = await setProfile(ctx.runner, profile, previous.system);
  if (set.exitCode !== 0) return `nix-env --set ${previous.system}: ${describeFailure(set)}`;
  const boot = await installBootEntry(ctx.runner, previous.system, timeoutMs);
  if (boot.exitCode !== 0) return `${previous.system}/bin/switch-to-configuration boot: ${describeFailure(boot)}`;
  return null;
}

/**
 * An activation through systemd-run. When the client gives up (timeout) the transient unit may
 * still run switch-to-configuration, holding its lock: stop the unit and wait until it is gone,
 * so that whatever comes next (the rollback) does not race it.
 */
async function runActivation(ctx: PipelineContext, toplevel: string, action: 'test' | 'switch', unit: string): Promise<RunResult> {
  const result = await activate(ctx.runner, toplevel, action, unit, ctx.config.activationTimeoutSec * 1000);
  if (result.timedOut || result.aborted) {
    await stopUnit(ctx.runner, unit);
    await waitForUnit(ctx, unit);
  }
  return result;
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

/**
 * The watcher: poll the branch head, and when it moved to a commit worth deploying, fetch it,
 * realise its system closure and ask the executor to deploy it. This file is the wiring and the
 * loop; each stage is a file of pipeline/ (poll, trust, source, gates, request, report).
 * docs/watcher.md describes the cycle, the failure memory, the back-off and what is logged when.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import { gitEnvironment, TrustGate, VERSION, type Config, type DeploymentRecord, type Logger, type Push, type Runner, type WatcherReport } from '@pullnix/shared';
import { backoffDelayMs, pollDelayMs } from './backoff.ts';
import { Alarm, systemClock, type Clock } from './clock.ts';
import { GitCheckout, redactUrl, type GitOps } from './commands/git.ts';
import type { ExecutorClient } from './executor-link.ts';
import { forgetCommit, MemoryStore, refusedHead, rememberFailure, type WatcherMemory } from './memory.ts';
import { errorMessage, type Ending, type PollOutcome, type WatcherContext } from './pipeline/context.ts';
import { createGates, gateEnding, runGates, type Gate } from './pipeline/gates.ts';
import { PollStage } from './pipeline/poll.ts';
import { endingStep, ExecutorReporter, MetricsReporter, Steps, WatcherStatus, type DeploymentStep, type StepObserver } from './pipeline/report.ts';
import { preDeploy, requestDeploy } from './pipeline/request.ts';
import { createSource, sourceEnding, type SystemSource } from './pipeline/source.ts';
import { checkTrust } from './pipeline/trust.ts';
import { prebuiltTrustRole } from './pipeline/source-prebuilt.ts';
import { HaltGate } from './pipeline/gate-halt.ts';
import { CommitStatusReporter } from './forge/reporter.ts';

export type { PollOutcome } from './pipeline/context.ts';

export interface WatcherOptions {
  config: Config;
  runner: Runner;
  logger: Logger;
  executor: ExecutorClient;
  /** Defaults to a simple-git checkout in `<stateDir>/checkout`. */
  git?: GitOps;
  clock?: Clock;
  /** Flake host attribute; defaults to build.host, then the machine's host name. */
  host?: string;
  pid?: number;
  version?: string;
  /** First wait after an error; doubles up to poll.maxBackoffSec. */
  baseBackoffMs?: number;
  /** Defaults to the commit-signature check of config.trust on the checkout. */
  trust?: TrustGate;
  /** Defaults to the gates of the configuration (pipeline/gates.ts `createGates`), in order. */
  gates?: (context: WatcherContext) => Gate[];
  /** Commit statuses at the forge (forge/reporter.ts); defaults to the forge config.report names, null when report.enable is off. */
  reporter?: CommitStatusReporter | null;
}

export interface PollResult {
  outcome: PollOutcome;
  head: string | null;
  /** When the loop polls next (after an error: the back-off). */
  nextDelayMs: number;
}

/** The signal of a poll nobody will stop (tests, the benchmark). */
const NEVER = new AbortController().signal;

export class Watcher {
  private readonly context: WatcherContext;
  private readonly pid: number;
  private readonly version: string;
  private readonly baseBackoffMs: number;
  private readonly store: MemoryStore;
  private readonly alarm: Alarm;
  private readonly trust: TrustGate;
  private readonly status: WatcherStatus;
  private readonly steps: Steps;
  private readonly reporter: ExecutorReporter;
  private readonly metrics: MetricsReporter;
  private readonly poll: PollStage;
  private readonly source: SystemSource;
  private readonly gates: Gate[];
  /** Commit statuses at the forge (docs/report.md); null: report.enable off. */
  private readonly forge: CommitStatusReporter | null;

  private failures = 0;
  /** The last poll found a head it could not hand to the executor; a reconnect polls at once. */
  private waitingForExecutor = false;
  private running: Promise<PollResult> | null = null;

  constructor(options: WatcherOptions) {
    const { config, logger, executor } = options;
    const clock = options.clock ?? systemClock;
    const checkoutDir = join(config.watcher.stateDir, 'checkout');
    this.pid = options.pid ?? process.pid;
    this.version = options.version ?? VERSION;
    this.baseBackoffMs = options.baseBackoffMs ?? 5000;
    const git =
      options.git ??
      new GitCheckout({
        url: config.repository.url,
        branch: config.repository.branch,
        dir: checkoutDir,
        env: gitEnvironment(config),
        logger,
        fetchTimeoutMs: config.repository.fetchTimeoutSec * 1000,
      });
    this.store = new MemoryStore({ path: join(config.watcher.stateDir, 'watcher.json'), logger, now: () => clock.now() });
    const memory = this.store.load();
    this.context = {
      config,
      runner: options.runner,
      logger,
      clock,
      git,
      executor,
      host: options.host ?? config.build.host ?? hostname(),
      checkoutDir,
      gcrootsDir: join(config.watcher.stateDir, 'gcroots'),
      memory,
      save: () => this.store.save(memory),
    };
    this.trust =
      options.trust ??
      new TrustGate({ trust: config.trust, runner: options.runner, gitDir: join(checkoutDir, '.git'), dir: join(config.watcher.stateDir, 'trust'), now: () => clock.now(), role: prebuiltTrustRole(config) });
    // A range refused under other trusted keys (the deployment that changed them restarted us) is checked again.
    if (memory.untrusted && memory.untrusted.config !== this.trust.fingerprint) forgetCommit(memory, memory.untrusted.head);
    this.alarm = new Alarm(clock);
    this.status = new WatcherStatus(() => clock.now());
    this.steps = new Steps(logger);
    this.reporter = new ExecutorReporter(this.status, executor, logger, () => this.report());
    this.steps.subscribe(this.reporter.onStep);
    this.metrics = new MetricsReporter(this.status, config.metrics.textfileDirectory, logger);
    this.poll = new PollStage({ context: this.context, status: this.status, nextBackoffMs: () => this.backoffMs(this.failures + 1) });
    this.source = createSource(this.context);
    this.forge =
      options.reporter !== undefined
        ? options.reporter
        : config.report.enable
          ? new CommitStatusReporter({ report: config.report, host: this.context.host, ring: ringOf(config), stateDir: config.watcher.stateDir, logger, now: () => clock.now(), checks: checksOf(config) })
          : null;
    if (this.forge) this.steps.subscribe(this.forge.onStep);
    // The halt first: a halted commit is not scanned.
    this.gates = [new HaltGate(config.report, this.forge), ...(options.gates ?? createGates)(this.context)];
    executor.onPush((message) => this.onPush(message));
    executor.onConnected(() => void this.onExecutorConnected());
  }

  /** Subscribe to the deployment steps of every commit the watcher acts on (pipeline/report.ts). */
  onStep(observer: StepObserver): void {
    this.steps.subscribe(observer);
  }

  /** Run until the signal aborts: keep the executor connection, poll at the interval, on `sync`, and after a reconnect. */
  async start(signal: AbortSignal): Promise<void> {
    const { config, logger, executor, host, memory } = this.context;
    logger.event('watcher.started', {
      pid: this.pid,
      version: this.version,
      url: redactUrl(config.repository.url),
      branch: config.repository.branch,
      mode: config.build.mode,
      host: config.build.mode === 'flake' ? host : undefined,
      interval_sec: config.poll.intervalSec,
      last_handled: memory.lastHandled?.commit ?? null,
    });
    const link = executor.start(signal);
    const reporting = this.forge?.run(signal, (ms, s, wake) => {
      const alarm = new Alarm(this.context.clock);
      wake(() => alarm.wake());
      return alarm.sleep(ms, s).then(() => undefined);
    });
    let delay = 0;
    while (!signal.aborted) {
      if (delay > 0) {
        await this.alarm.sleep(delay, signal);
        if (signal.aborted) break;
      }
      delay = (await this.pollOnce(signal)).nextDelayMs;
    }
    this.status.state = 'stopping';
    logger.event('watcher.stopping', { reason: typeof signal.reason === 'string' ? signal.reason : 'aborted' });
    await link;
    await reporting;
  }

  /**
   * One poll cycle. When the head is unchanged this runs exactly one external command, the
   * `git ls-remote`. Concurrent calls share the running cycle.
   */
  pollOnce(signal: AbortSignal = NEVER): Promise<PollResult> {
    if (this.running) return this.running;
    this.running = this.cycle(signal)
      .catch((error: unknown): PollResult => {
        const head = this.status.remoteHead;
        if (signal.aborted) return this.finish({ outcome: 'stopped', failures: 'keep' }, head);
        const message = errorMessage(error);
        this.context.logger.event('watcher.error', { error: message, commit: head });
        return this.finish({ outcome: 'error', failures: 'count', error: { kind: 'internal', message } }, head);
      })
      .finally(() => {
        this.running = null;
      });
    return this.running.then(async (result) => {
      await this.reconcileReport();
      this.waitingForExecutor = result.outcome === 'executor-unavailable' || result.outcome === 'retry-later';
      // Set before the report goes out, so status shows when the loop polls next.
      this.status.nextPollAt = new Date(this.context.clock.now() + result.nextDelayMs).toISOString();
      this.reporter.setState(this.failures > 0 ? 'backing-off' : 'idle');
      this.metrics.publish();
      return result;
    });
  }

  /** A snapshot of what would be reported to the executor now. */
  report(): WatcherReport {
    const { memory } = this.context;
    const s = this.status;
    const u = memory.untrusted;
    const describe = (commit: string | null | undefined) => {
      if (!commit) return null;
      const d = memory.commits[commit];
      return { commit, subject: d?.subject?.slice(0, 1000) ?? null, time: d?.time ?? null };
    };
    return {
      state: s.state,
      pid: this.pid,
      version: this.version.slice(0, 64),
      remoteHead: describe(s.remoteHead),
      deployedCommit: describe(s.deployedCommit),
      lastPollAt: s.lastPollAt,
      nextPollAt: s.nextPollAt,
      lastError: s.lastError ? { ...s.lastError, message: s.lastError.message.slice(0, 4000) } : null,
      failedBuilds: memory.failures.map((f) => f.commit).slice(-100),
      untrusted: u ? { head: u.head, commit: u.commit, reason: u.reason, message: u.message.slice(0, 4000), at: u.at } : null,
      ...this.gateReports(),
      refusedHead: refusedHead(memory, s.remoteHead),
      prebuilt: s.deployedCommit ? (memory.prebuilt?.[s.deployedCommit] ?? null) : null,
    };
  }

  /** What the enabled gates add to the report (the vulnerability gate: its last decision). */
  private gateReports(): Partial<WatcherReport> {
    const parts: Partial<WatcherReport> = {};
    for (const gate of this.gates) if (gate.enabled && gate.report) Object.assign(parts, gate.report());
    return parts;
  }

  /** The memory as persisted in watcher.json (a copy). */
  get remembered(): WatcherMemory {
    return structuredClone(this.context.memory);
  }

  /** poll → trust → source → gates → request; each stage either goes on or says how the cycle ends. */
  private async cycle(signal: AbortSignal): Promise<PollResult> {
    const { logger, clock } = this.context;
    this.status.nextPollAt = null;
    this.reporter.setState('polling');
    this.status.lastPollAt = new Date(clock.now()).toISOString();

    const polled = await this.poll.remoteHead(signal);
    if (typeof polled === 'string' || polled.outcome === 'unchanged') this.steps.headIs(this.status.remoteHead ?? '');
    if (typeof polled !== 'string') return this.finish(polled, this.status.remoteHead);
    const head = polled;
    const admitted = await this.poll.admit(head);
    if (!('head' in admitted)) return this.finish(admitted, head);
    const { deployed } = admitted;

    logger.event('poll.new_head', { commit: head, previous: deployed });
    this.step(head, 'fetching');
    const fetched = await this.poll.fetch(admitted, signal);
    if (fetched) return this.finish(fetched, head);

    // The signatures of the range, before one line of it is checked out, evaluated or built.
    if (this.trust.mode !== 'off') this.step(head, 'checking-trust');
    const untrusted = await checkTrust(this.context, this.trust, head, deployed, signal);
    if (untrusted) return this.finish(untrusted, head);
    this.status.clearError('trust');

    this.step(head, 'building');
    const realised = await this.source.realise(head, deployed, signal);
    if (!realised.ok) return this.finish(sourceEnding(this.source, head, realised), head);
    const { toplevel } = realised;

    const gated = await runGates(
      this.gates,
      { commit: head, toplevel, deployed },
      { signal },
      {
        onGate: (gate) => {
          if (gate.state) this.reporter.setState(gate.state);
          this.step(head, 'gating', gate.name, toplevel);
        },
      },
    );
    if (gated) return this.finish(gateEnding(gated.gate, gated.verdict), head, toplevel);
    const held = await preDeploy(this.context, this.status, head, toplevel, deployed, signal);
    if (held) return this.finish(held, head, toplevel);

    this.step(head, 'deploying', null, toplevel);
    return this.finish(await requestDeploy(this.context, this.status, head, toplevel), head, toplevel);
  }

  /** Apply how a cycle ended: what is remembered, shown, and when the next poll comes. */
  private finish(ending: Ending, head: string | null, toplevel: string | null = null): PollResult {
    const { memory } = this.context;
    const at = new Date(this.context.clock.now()).toISOString();
    if (head !== null && ending.failure) rememberFailure(memory, { commit: head, at, ...ending.failure });
    if (ending.error) this.status.setError(ending.error.kind, ending.error.message, ending.error.commit === undefined ? head : ending.error.commit);
    if (head !== null && ending.handled) memory.lastHandled = { commit: head, result: ending.handled.result, at, detail: ending.handled.detail };
    if (ending.failure || ending.handled) this.context.save();
    const step = endingStep(ending);
    if (head !== null && step) this.step(head, step, ending.error?.message ?? ending.handled?.detail ?? null, toplevel, ending.outcome, ending.deployment);
    if (ending.failures === 'count') {
      this.failures += 1;
      return { outcome: ending.outcome, head, nextDelayMs: this.backoffMs(this.failures) };
    }
    if (ending.failures === 'reset') this.failures = 0;
    return { outcome: ending.outcome, head, nextDelayMs: pollDelayMs(this.context.config.poll, () => this.context.clock.random()) };
  }

  private step(commit: string, step: DeploymentStep, detail: string | null = null, toplevel: string | null = null, outcome: PollOutcome | null = null, deployment?: DeploymentRecord): void {
    this.steps.emit({ commit, step, outcome, detail, toplevel, ...(deployment ? { deployment } : {}) });
  }

  /**
   * A deployment whose answer never came (the watcher was killed, the machine lost power): its
   * outcome from the executor's history, so its commit status is posted late, never lost.
   */
  private async reconcileReport(): Promise<void> {
    const { executor } = this.context;
    if (!this.forge?.awaiting || !executor.history || !executor.connected) return;
    try {
      this.forge.reconcile(await executor.history(20));
    } catch {
      // Asked again after the next poll.
    }
  }

  /** A failure that backs off: base, doubling, capped at poll.maxBackoffSec. */
  private backoffMs(failures: number): number {
    return backoffDelayMs(failures, this.baseBackoffMs, this.context.config.poll.maxBackoffSec * 1000);
  }

  private onPush(message: Push): void {
    const { logger, memory } = this.context;
    if (message.type === 'sync') {
      logger.event('poll.sync_requested', {});
      this.alarm.wake();
      return;
    }
    if (message.type === 'retry') {
      const forgotten = forgetCommit(memory, message.commit);
      if (forgotten) this.context.save();
      logger.event('poll.retry_requested', { commit: message.commit, forgotten });
      this.reporter.send();
      this.alarm.wake();
    }
  }

  private async onExecutorConnected(): Promise<void> {
    this.status.clearError('executor');
    try {
      this.poll.applyStatus(await this.context.executor.status());
    } catch {
      // The next poll asks again; the connection loop logs if the executor is gone.
    }
    await this.reconcileReport();
    this.reporter.send();
    // Poll at once only if the last poll left a head waiting for the executor; otherwise the
    // interval stands (a reconnect must not cost an extra ls-remote).
    if (this.waitingForExecutor) this.alarm.wake();
  }
}

/** This machine's ring (settings.ring.name, the rings engineer's section); null: no ring. */
function ringOf(config: Config): string | null {
  const ring = (config as { ring?: { name?: unknown } }).ring?.name;
  return typeof ring === 'string' && ring !== '' ? ring : null;
}

/** The checks a deployment runs as this configuration has them: git, pullnix-config, failed units when on, the declared ones. */
function checksOf(config: Config): number {
  return 2 + (config.verify.failedUnits.enable ? 1 : 0) + Object.keys(config.checks).length;
}

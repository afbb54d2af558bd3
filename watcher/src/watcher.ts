/**
 * The watcher: poll the branch head, and when it moved to a commit worth deploying, fetch it,
 * build its system closure and ask the executor to deploy it. docs/watcher.md describes the
 * cycle, the failure memory, the back-off and what is logged when.
 */
import { realpathSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import {
  gitEnvironment,
  PullnixError,
  runHook,
  TextfileWriter,
  VERSION,
  type Config,
  type Logger,
  type Push,
  type Runner,
  type StatusResult,
  type WatcherReport,
  type WatcherState,
} from '@pullnix/shared';
import { backoffDelayMs, pollDelayMs } from './backoff.ts';
import { buildSystem, pruneGcRoots } from './build.ts';
import { Alarm, systemClock, type Clock } from './clock.ts';
import type { ExecutorClient } from './executor-link.ts';
import { VulnerabilityGate } from './gates/vulnerabilities.ts';
import { describeGitError, GitCheckout, redactUrl, type GitOps } from './git.ts';
import { WATCHER_METRICS_FILE, watcherMetrics } from './metrics.ts';
import { forgetCommit, MemoryStore, refusedHead, rememberDescription, rememberFailure, type HandledResult, type WatcherMemory } from './memory.ts';
import { TrustGate } from '@pullnix/shared';
import { CommitStatusReporter } from './forge/reporter.ts';

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
  /** Defaults to the forge that config.report names (null when report.enable is off). */
  reporter?: CommitStatusReporter | null;
}

/** How one poll cycle ended. */
export type PollOutcome =
  | 'unchanged' // the head is the one already handled or deployed: one ls-remote, nothing else
  | 'deployed' // built, requested, the executor answered succeeded
  | 'deploy-failed' // built, requested, the executor answered with another outcome (rolled back, ...)
  | 'build-failed'
  | 'vulnerable' // the vulnerability gate refused the built system (remembered like a failed build)
  | 'scan-failed' // the vulnerability scan failed and onError = refuse: tried again after a back-off
  | 'not-descendant'
  | 'untrusted' // a commit of the new range failed the signature check (trust.mode): nothing evaluated
  | 'known-bad'
  | 'refused' // the executor refused the request for good (KNOWN_BAD, INVALID_SYSTEM)
  | 'paused' // deployments are paused; the head is looked at again at the next poll
  | 'postponed' // the preDeploy hook said not now; the head is looked at again at the next poll
  | 'halted' // decentralised halt (report.haltAfter): the forge shows too many failures of this ring on it; looked at again at the next poll
  | 'remote-error'
  | 'machine-error' // the machine's fault (nix-daemon, network, disk, timeout, a git that cannot answer): tried again after a back-off, nothing remembered
  | 'executor-unavailable'
  | 'retry-later' // the executor was busy, refused for a passing reason, or did not answer
  | 'stopped'
  | 'error';

export interface PollResult {
  outcome: PollOutcome;
  head: string | null;
  /** When the loop polls next (after an error: the back-off). */
  nextDelayMs: number;
}

/** The signal of a poll nobody will stop (tests, the benchmark). */
const NEVER = new AbortController().signal;

type LastError = NonNullable<WatcherReport['lastError']>;

export class Watcher {
  private readonly config: Config;
  private readonly runner: Runner;
  private readonly logger: Logger;
  private readonly executor: ExecutorClient;
  private readonly git: GitOps;
  private readonly clock: Clock;
  private readonly host: string;
  private readonly pid: number;
  private readonly version: string;
  private readonly baseBackoffMs: number;
  private readonly store: MemoryStore;
  private readonly memory: WatcherMemory;
  private readonly alarm: Alarm;
  private readonly checkoutDir: string;
  private readonly gcrootsDir: string;
  private readonly trust: TrustGate;
  private readonly vulnerabilities: VulnerabilityGate;
  /** Commit statuses at the forge (watcher/src/forge/, docs/report.md); null: report.enable off. */
  private readonly reporter: CommitStatusReporter | null;

  private state: WatcherState = 'starting';
  private remoteHead: string | null = null;
  /** What the executor last reported as deployed; undefined until it answered once. */
  private deployedCommit: string | null | undefined = undefined;
  private lastPollAt: string | null = null;
  private nextPollAt: string | null = null;
  private lastError: LastError | null = null;
  private failures = 0;
  /** Set while the remote is failing: the cause last logged, and where it failed. */
  private remoteDown: { cause: string; stage: 'ls-remote' | 'fetch' } | null = null;
  private pausedLoggedFor: string | null = null;
  /** The last poll found a head it could not hand to the executor; a reconnect polls at once. */
  private waitingForExecutor = false;
  private running: Promise<PollResult> | null = null;
  private reportInFlight = false;
  private reportDirty = false;
  /** The message of the last refused report (logged once); null after an accepted one. */
  private reportRefused: string | null = null;
  private readonly metrics: TextfileWriter;
  private lastSuccessfulPollAt: number | null = null;
  /** Deployments the preDeploy hook postponed since start. */
  private postponed = 0;

  constructor(options: WatcherOptions) {
    const { config } = options;
    this.config = config;
    this.runner = options.runner;
    this.logger = options.logger;
    this.executor = options.executor;
    this.clock = options.clock ?? systemClock;
    this.host = options.host ?? config.build.host ?? hostname();
    this.pid = options.pid ?? process.pid;
    this.version = options.version ?? VERSION;
    this.baseBackoffMs = options.baseBackoffMs ?? 5000;
    this.checkoutDir = join(config.watcher.stateDir, 'checkout');
    this.gcrootsDir = join(config.watcher.stateDir, 'gcroots');
    this.git =
      options.git ??
      new GitCheckout({
        url: config.repository.url,
        branch: config.repository.branch,
        dir: this.checkoutDir,
        env: gitEnvironment(config),
        logger: this.logger,
        fetchTimeoutMs: config.repository.fetchTimeoutSec * 1000,
      });
    this.trust =
      options.trust ??
      new TrustGate({ trust: config.trust, runner: this.runner, gitDir: join(this.checkoutDir, '.git'), dir: join(config.watcher.stateDir, 'trust'), now: () => this.clock.now() });
    this.store = new MemoryStore({ path: join(config.watcher.stateDir, 'watcher.json'), logger: this.logger, now: () => this.clock.now() });
    this.memory = this.store.load();
    // A range refused under other trusted keys (the deployment that changed them restarted us) is checked again.
    if (this.memory.untrusted && this.memory.untrusted.config !== this.trust.fingerprint) forgetCommit(this.memory, this.memory.untrusted.head);
    this.alarm = new Alarm(this.clock);
    this.vulnerabilities = new VulnerabilityGate({
      settings: config.gates.vulnerabilities,
      runner: this.runner,
      logger: this.logger,
      cacheDir: join(config.watcher.stateDir, 'vulnix'),
      currentSystem: config.paths.currentSystem,
      memory: this.memory,
      save: () => this.store.save(this.memory),
      now: () => this.clock.now(),
    });
    this.metrics = new TextfileWriter(config.metrics.textfileDirectory, WATCHER_METRICS_FILE, this.logger);
    this.reporter =
      options.reporter !== undefined
        ? options.reporter
        : config.report.enable
          ? new CommitStatusReporter({ report: config.report, host: this.host, ring: ringOf(config), stateDir: config.watcher.stateDir, logger: this.logger, now: () => this.clock.now() })
          : null;
    this.executor.onPush((message) => this.onPush(message));
    this.executor.onConnected(() => void this.onExecutorConnected());
  }

  /** Run until the signal aborts: keep the executor connection, poll at the interval, on `sync`, and after a reconnect. */
  async start(signal: AbortSignal): Promise<void> {
    this.logger.event('watcher.started', {
      pid: this.pid,
      version: this.version,
      url: redactUrl(this.config.repository.url),
      branch: this.config.repository.branch,
      mode: this.config.build.mode,
      host: this.config.build.mode === 'flake' ? this.host : undefined,
      interval_sec: this.config.poll.intervalSec,
      last_handled: this.memory.lastHandled?.commit ?? null,
    });
    const link = this.executor.start(signal);
    const reporting = this.reporter?.run(signal, (ms, s, wake) => {
      const alarm = new Alarm(this.clock);
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
    this.state = 'stopping';
    this.logger.event('watcher.stopping', { reason: typeof signal.reason === 'string' ? signal.reason : 'aborted' });
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
        if (signal.aborted) return this.result('stopped', this.remoteHead);
        const message = error instanceof Error ? error.message : String(error);
        this.logger.event('watcher.error', { error: message, commit: this.remoteHead });
        this.setError('internal', message, this.remoteHead);
        return this.failed('error', this.remoteHead);
      })
      .finally(() => {
        this.running = null;
      });
    return this.running.then(async (result) => {
      await this.reconcileReport();
      this.waitingForExecutor = result.outcome === 'executor-unavailable' || result.outcome === 'retry-later';
      // Set before the report goes out, so status shows when the loop polls next.
      this.nextPollAt = new Date(this.clock.now() + result.nextDelayMs).toISOString();
      this.setState(this.failures > 0 ? 'backing-off' : 'idle');
      this.publishMetrics();
      return result;
    });
  }

  /** A snapshot of what would be reported to the executor now. */
  report(): WatcherReport {
    const u = this.memory.untrusted;
    const describe = (commit: string | null | undefined) => {
      if (!commit) return null;
      const d = this.memory.commits[commit];
      return { commit, subject: d?.subject?.slice(0, 1000) ?? null, time: d?.time ?? null };
    };
    return {
      state: this.state,
      pid: this.pid,
      version: this.version.slice(0, 64),
      remoteHead: describe(this.remoteHead),
      deployedCommit: describe(this.deployedCommit),
      lastPollAt: this.lastPollAt,
      nextPollAt: this.nextPollAt,
      lastError: this.lastError ? { ...this.lastError, message: this.lastError.message.slice(0, 4000) } : null,
      failedBuilds: this.memory.failures.map((f) => f.commit).slice(-100),
      untrusted: u ? { head: u.head, commit: u.commit, reason: u.reason, message: u.message.slice(0, 4000), at: u.at } : null,
      ...(this.vulnerabilities.lastScan ? { vulnerabilities: this.vulnerabilities.lastScan } : {}),
      refusedHead: refusedHead(this.memory, this.remoteHead),
    };
  }

  /** The memory as persisted in watcher.json (a copy). */
  get remembered(): WatcherMemory {
    return structuredClone(this.memory);
  }

  private async cycle(signal: AbortSignal): Promise<PollResult> {
    const { repository } = this.config;
    this.nextPollAt = null;
    this.setState('polling');
    this.lastPollAt = new Date(this.clock.now()).toISOString();

    let head: string | null;
    try {
      head = await this.git.lsRemote(signal);
    } catch (error) {
      if (signal.aborted) return this.result('stopped', null);
      return this.remoteFailed('ls-remote', describeGitError(error));
    }
    if (head === null) return this.remoteFailed('ls-remote', `branch ${repository.branch} does not exist on the remote`);
    this.lastSuccessfulPollAt = this.clock.now();
    if (this.remoteDown?.stage === 'ls-remote') this.remoteRecovered(head);
    this.remoteHead = head;

    if (head === this.memory.lastHandled?.commit || head === this.deployedCommit) {
      this.logger.event('poll.unchanged', { commit: head });
      this.failures = 0;
      return this.result('unchanged', head);
    }

    // A head to act on. From here the executor's view decides: what is deployed, what failed, paused.
    if (!this.executor.connected) {
      this.setError('executor', 'the executor is not connected; the new head waits for it', head);
      return this.result('executor-unavailable', head);
    }
    let status: StatusResult;
    try {
      status = await this.executor.status();
    } catch (error) {
      this.setError('executor', `status: ${errorMessage(error)}`, head);
      return this.failed('executor-unavailable', head);
    }
    this.applyStatus(status);
    if (head === this.deployedCommit) {
      this.logger.event('poll.unchanged', { commit: head, deployed: true });
      this.markHandled(head, 'deployed', 'already deployed');
      this.failures = 0;
      return this.result('unchanged', head);
    }
    const failedBuild = this.memory.failures.find((f) => f.commit === head);
    if (status.knownBad.includes(head) || failedBuild) {
      this.logger.event('head.known_bad', { commit: head, source: failedBuild ? (failedBuild.kind ?? 'build') : 'executor', error: failedBuild?.error });
      this.markHandled(head, 'known-bad', failedBuild ? 'build failed before' : 'known bad to the executor');
      this.failures = 0;
      return this.result('known-bad', head);
    }
    if (status.paused) {
      if (this.pausedLoggedFor !== head) {
        this.logger.event('poll.paused', { commit: head, since: status.paused.since, by: status.paused.by, reason: status.paused.reason });
        this.pausedLoggedFor = head;
      }
      this.failures = 0;
      return this.result('paused', head);
    }

    const deployed = this.deployedCommit ?? null;
    this.logger.event('poll.new_head', { commit: head, previous: deployed });
    this.setState('fetching');
    try {
      await this.git.fetch(signal);
    } catch (error) {
      if (signal.aborted) return this.result('stopped', head);
      return this.remoteFailed('fetch', `fetch: ${describeGitError(error)}`);
    }
    if (this.remoteDown) this.remoteRecovered(head);
    if (!(await this.git.hasCommit(head))) {
      // The branch moved again between ls-remote and fetch (another push, or a force-push).
      this.setError('remote', `the fetched branch does not contain ${head}; it moved during the fetch`, head);
      return this.failed('remote-error', head);
    }
    await this.describe(head);
    if (deployed) await this.describe(deployed);

    if (deployed && !repository.allowNonDescendant) {
      let descends: boolean;
      try {
        descends = (await this.git.hasCommit(deployed)) && (await this.git.isAncestor(deployed, head));
      } catch (error) {
        // git could not answer (an I/O or object error): the machine's fault, never "not a descendant".
        if (signal.aborted) return this.result('stopped', head);
        const cause = describeGitError(error);
        this.logger.event('head.descent_unknown', { commit: head, deployed, error: cause });
        this.setError('machine', `cannot tell whether ${head} descends from the deployed commit ${deployed}: git failed: ${cause}; tried again`, head);
        return this.failed('machine-error', head);
      }
      if (!descends) {
        const message = `head ${head} does not descend from the deployed commit ${deployed} (force-push or history rewrite); refused, set repository.allowNonDescendant to allow`;
        this.logger.event('head.not_descendant', { commit: head, deployed });
        this.setError('not-descendant', message, head);
        this.markHandled(head, 'not-descendant', `deployed ${deployed}`);
        this.failures = 0;
        return this.result('not-descendant', head);
      }
    }

    // The signatures of the range, before one line of it is checked out, evaluated or built.
    const untrusted = await this.checkTrust(head, deployed, signal);
    if (untrusted) return untrusted;

    const halted = await this.checkHalt(head, signal);
    if (halted) return halted;

    this.setState('building');
    this.reporter?.building(head);
    await this.git.checkout(head, signal);
    this.logger.event('build.started', { commit: head, mode: this.config.build.mode, host: this.config.build.mode === 'flake' ? this.host : undefined });
    const build = await buildSystem({ build: this.config.build, runner: this.runner, checkoutDir: this.checkoutDir, gcrootsDir: this.gcrootsDir, commit: head, signal, host: this.host });
    if (!build.ok) {
      if (build.stopped) {
        this.logger.event('build.stopped', { commit: head, ms: build.durationMs });
        return this.result('stopped', head);
      }
      if (build.fault === 'machine') {
        // The nix-daemon, the network, the disk or a timeout: not the commit's fault, not remembered.
        this.logger.event('build.deferred', { commit: head, cause: build.faultReason, error: build.error, ms: build.durationMs });
        this.setError('machine', `the build of ${head} failed for a reason of the machine's (${build.faultReason}), not the commit's; tried again: ${build.error}${build.logTail ? `\n${build.logTail}` : ''}`, head);
        return this.failed('machine-error', head);
      }
      this.logger.event('build.failed', { commit: head, error: build.error, ms: build.durationMs });
      this.reporter?.refused(head, `build failed: ${build.error}`);
      rememberFailure(this.memory, { commit: head, at: this.iso(), error: build.error, logTail: build.logTail });
      this.setError('build', `${build.error}${build.logTail ? `\n${build.logTail}` : ''}`, head);
      this.markHandled(head, 'build-failed', build.error);
      this.failures = 0;
      return this.result('build-failed', head);
    }
    this.logger.event('build.succeeded', { commit: head, toplevel: build.toplevel, ms: build.durationMs });
    const removed = pruneGcRoots(this.gcrootsDir, this.config.build.keepGcRoots, [head, deployed]);
    if (removed.length > 0) this.logger.event('gcroots.pruned', { removed, kept: this.config.build.keepGcRoots });

    const gated = await this.gateVulnerabilities(head, build.toplevel, signal);
    if (gated) return gated;
    if (this.config.hooks.preDeploy && !(await this.preDeploy(head, build.toplevel, deployed, signal))) return this.result(signal.aborted ? 'stopped' : 'postponed', head);
    return this.requestDeploy(head, build.toplevel);
  }

  /** The vulnerability gate (gates/vulnerabilities.ts): null to go on and deploy, else how the cycle ends. */
  private async gateVulnerabilities(head: string, toplevel: string, signal: AbortSignal): Promise<PollResult | null> {
    if (!this.vulnerabilities.enabled) return null;
    this.setState('scanning');
    const gate = await this.vulnerabilities.check(head, toplevel, signal);
    switch (gate.verdict) {
      case 'deploy':
        return null;
      case 'stopped':
        return this.result('stopped', head);
      case 'retry':
        this.setError('vulnerabilities', gate.message, head);
        return this.failed('scan-failed', head);
      case 'refuse':
        this.reporter?.refused(head, `refused: ${gate.message}`);
        rememberFailure(this.memory, { commit: head, at: this.iso(), error: gate.message, logTail: gate.detail, kind: 'vulnerabilities' });
        this.setError('vulnerabilities', gate.message, head);
        this.markHandled(head, 'vulnerable', gate.message);
        this.failures = 0;
        return this.result('vulnerable', head);
    }
  }

  /**
   * A refused range is not kept: whoever can push must not fill the watcher's disk with ranges
   * that are never evaluated. The checkout holds at most the range being checked; once refused, its
   * objects are deleted (trust.discarded). It is fetched again only if the branch moves.
   */
  private async discardRange(head: string, deployed: string | null, signal: AbortSignal): Promise<void> {
    try {
      await this.git.discard(deployed, signal);
      this.logger.event('trust.discarded', { commit: head, kept: deployed });
    } catch (error) {
      if (!signal.aborted) this.logger.event('trust.discard_failed', { commit: head, error: describeGitError(error) });
    }
  }

  /** null: the range may be evaluated; otherwise it was refused, recorded and reported. */
  private async checkTrust(head: string, deployed: string | null, signal: AbortSignal): Promise<PollResult | null> {
    if (this.trust.mode === 'off') return null;
    const verdict = await this.trust.check(head, [deployed], signal);
    if (verdict.ok) {
      this.logger.event('trust.verified', { commit: head, mode: verdict.mode, checked: verdict.checked, signers: verdict.signers.join(', ') });
      if (this.memory.untrusted) {
        this.memory.untrusted = null;
        this.store.save(this.memory);
      }
      this.clearError('trust');
      return null;
    }
    this.logger.event('trust.refused', { commit: head, offending: verdict.commit, reason: verdict.reason, error: verdict.message, bad: verdict.bad, checked: verdict.checked, mode: verdict.mode });
    this.memory.untrusted = { head, commit: verdict.commit, reason: verdict.reason, message: verdict.message, at: this.iso(), config: this.trust.fingerprint };
    this.reporter?.refused(head, `refused: commit ${verdict.reason}`);
    this.setError('trust', `${verdict.reason}: ${verdict.message}`, head);
    this.markHandled(head, 'untrusted', `${verdict.reason} ${verdict.commit ?? ''}`.trim());
    this.failures = 0;
    await this.discardRange(head, deployed, signal);
    return this.result('untrusted', head);
  }

  /**
   * hooks.preDeploy, after the build and before the request: exit 0 is "go"; anything else
   * (non-zero, timeout, cannot start) is "not now". The head is not marked handled, so the next
   * poll builds (a no-op, the result is cached) and asks again. Not a failure: no back-off.
   */
  private async preDeploy(head: string, toplevel: string, deployed: string | null, signal: AbortSignal): Promise<boolean> {
    const hook = this.config.hooks.preDeploy!;
    const previous = liveSystem(this.config.paths.currentSystem);
    const r = await runHook(this.runner, this.logger.child({ commit: head }), 'preDeploy', hook, { deployment: null, commit: head, outcome: null, toplevel, previous, error: null }, signal, { direct: this.config.watcher.user !== null });
    if (r.ok) return true;
    if (signal.aborted) return false;
    this.postponed += 1;
    this.failures = 0;
    this.logger.event('deploy.postponed', { commit: head, toplevel, deployed, postponed: this.postponed, error: r.error, output: r.output || undefined });
    return false;
  }

  private publishMetrics(): void {
    if (this.metrics.path === null) return;
    this.metrics.write(
      watcherMetrics({
        remoteHead: this.remoteHead,
        deployedCommit: this.deployedCommit,
        lastPollAt: this.lastPollAt === null ? null : Date.parse(this.lastPollAt),
        lastSuccessfulPollAt: this.lastSuccessfulPollAt,
        postponed: this.postponed,
      }),
    );
  }

  private async requestDeploy(head: string, toplevel: string): Promise<PollResult> {
    const { activationTimeoutSec, verify } = this.config;
    this.setState('deploying');
    // Written to the outbox before the request goes out: an answer lost to a crash is reconciled from the history.
    this.reporter?.deploying(head, 2 + (verify.failedUnits.enable ? 1 : 0) + Object.keys(this.config.checks).length);
    this.logger.event('deploy.requested', { commit: head, toplevel });
    try {
      // The executor answers once the outcome is recorded: activation, verification and a rollback may all run first.
      const { deployment } = await this.executor.deploy({ commit: head, toplevel }, (activationTimeoutSec * 2 + verify.timeoutSec + 300) * 1000);
      // null: a reboot deployment (reboot.mode window) waiting for its window or rebooting; the executor resolves it.
      const outcome = deployment.outcome ?? deployment.phase;
      this.logger.event('deploy.outcome', { commit: head, deployment: deployment.id, outcome, generation: deployment.generation, error: deployment.error?.message });
      this.reporter?.outcome(deployment);
      this.failures = 0;
      if (outcome === 'succeeded') {
        this.deployedCommit = head;
        this.lastError = null;
        this.markHandled(head, 'deployed', `deployment ${deployment.id}`);
        return this.result('deployed', head);
      }
      if (deployment.outcome === null) {
        this.markHandled(head, 'deploy-failed', outcome);
        return this.result('deploy-failed', head);
      }
      this.setError('deploy', `deployment ${deployment.id} ended ${outcome}${deployment.error ? `: ${deployment.error.message}` : ''}`, head);
      this.markHandled(head, 'deploy-failed', outcome);
      return this.result('deploy-failed', head);
    } catch (error) {
      if (!(error instanceof PullnixError)) {
        this.logger.event('deploy.unanswered', { commit: head, error: errorMessage(error) });
        this.setError('executor', `deploy: ${errorMessage(error)}`, head);
        return this.failed('retry-later', head);
      }
      this.logger.event('deploy.refused', { commit: head, code: error.code, reason: error.message });
      this.setError('deploy', `${error.code}: ${error.message}`, head);
      switch (error.code) {
        case 'KNOWN_BAD':
          this.markHandled(head, 'known-bad', error.message);
          this.failures = 0;
          return this.result('refused', head);
        case 'INVALID_SYSTEM':
          // What we built is not a system closure: a failure of this commit's build, remembered as one.
          rememberFailure(this.memory, { commit: head, at: this.iso(), error: `${error.code}: ${error.message}`, logTail: '' });
          this.markHandled(head, 'refused', error.message);
          this.failures = 0;
          return this.result('refused', head);
        case 'PAUSED':
          this.failures = 0;
          return this.result('paused', head);
        default:
          return this.failed('retry-later', head);
      }
    }
  }

  private onPush(message: Push): void {
    if (message.type === 'sync') {
      this.logger.event('poll.sync_requested', {});
      this.alarm.wake();
      return;
    }
    if (message.type === 'retry') {
      const forgotten = forgetCommit(this.memory, message.commit);
      if (forgotten) this.store.save(this.memory);
      this.logger.event('poll.retry_requested', { commit: message.commit, forgotten });
      this.sendReport();
      this.alarm.wake();
    }
  }

  private async onExecutorConnected(): Promise<void> {
    this.clearError('executor');
    try {
      this.applyStatus(await this.executor.status());
    } catch {
      // The next poll asks again; the connection loop logs if the executor is gone.
    }
    await this.reconcileReport();
    this.sendReport();
    // Poll at once only if the last poll left a head waiting for the executor; otherwise the
    // interval stands (a reconnect must not cost an extra ls-remote).
    if (this.waitingForExecutor) this.alarm.wake();
  }

  /**
   * A deployment whose answer never came (the watcher was killed, the machine lost power): its
   * outcome from the executor's history, so its commit status is posted late, never lost.
   */
  private async reconcileReport(): Promise<void> {
    if (!this.reporter?.awaiting || !this.executor.history || !this.executor.connected) return;
    try {
      this.reporter.reconcile(await this.executor.history(20));
    } catch {
      // Asked again at the next poll.
    }
  }

  /** The decentralised halt (report.haltAfter): null to go on, else how the cycle ends. */
  private async checkHalt(head: string, signal: AbortSignal): Promise<PollResult | null> {
    const verdict = await this.reporter?.halt(head, signal);
    if (!verdict?.halted) {
      this.clearError('halt');
      return null;
    }
    this.setError('halt', verdict.message, head);
    this.failures = 0;
    return this.result('halted', head);
  }

  private applyStatus(status: StatusResult): void {
    this.deployedCommit = status.deployed?.commit ?? null;
  }

  private async describe(commit: string): Promise<void> {
    if (this.memory.commits[commit]) return;
    const description = await this.git.describe(commit);
    if (description) {
      rememberDescription(this.memory, commit, description);
      this.store.save(this.memory);
    }
  }

  private remoteFailed(stage: 'ls-remote' | 'fetch', cause: string): PollResult {
    const result = this.failed('remote-error', this.remoteHead);
    if (this.remoteDown?.cause !== cause) {
      this.logger.event('remote.unreachable', { url: redactUrl(this.config.repository.url), branch: this.config.repository.branch, error: cause, retry_in: `${result.nextDelayMs / 1000}s` });
    }
    this.remoteDown = { cause, stage };
    this.setError('remote', cause, null);
    return result;
  }

  private remoteRecovered(head: string): void {
    this.logger.event('remote.reachable', { commit: head, url: redactUrl(this.config.repository.url), branch: this.config.repository.branch });
    this.remoteDown = null;
    this.clearError('remote');
  }

  private markHandled(commit: string, result: HandledResult, detail: string | null): void {
    this.memory.lastHandled = { commit, result, at: this.iso(), detail };
    this.store.save(this.memory);
  }

  private result(outcome: PollOutcome, head: string | null): PollResult {
    return { outcome, head, nextDelayMs: pollDelayMs(this.config.poll, () => this.clock.random()) };
  }

  /** A failure that backs off: base, doubling, capped at poll.maxBackoffSec. */
  private failed(outcome: PollOutcome, head: string | null): PollResult {
    this.failures += 1;
    return { outcome, head, nextDelayMs: backoffDelayMs(this.failures, this.baseBackoffMs, this.config.poll.maxBackoffSec * 1000) };
  }

  private setError(kind: string, message: string, commit: string | null): void {
    this.lastError = { kind, message, at: this.iso(), commit };
  }

  private clearError(kind: string): void {
    if (this.lastError?.kind === kind) this.lastError = null;
  }

  private setState(state: WatcherState): void {
    if (this.state === state) return;
    this.state = state;
    this.sendReport();
  }

  /** Fire and forget, coalesced: at most one report in flight, the latest state sent last. */
  private sendReport(): void {
    if (!this.executor.connected) return;
    if (this.reportInFlight) {
      this.reportDirty = true;
      return;
    }
    this.reportInFlight = true;
    const report = this.report();
    this.executor
      .report(report)
      .then(() => {
        this.reportRefused = null;
      })
      .catch((error: unknown) => {
        // A lost connection is the connection loop's to report. A refusal is not: the executor
        // answered that this report is wrong (its schema or the watcher's), and every report
        // after it will be refused the same way, so it is logged once until one is accepted.
        if (!(error instanceof PullnixError) || this.reportRefused === error.message) return;
        this.reportRefused = error.message;
        this.logger.event('report.refused', { code: error.code, reason: error.message, state: report.state });
      })
      .finally(() => {
        this.reportInFlight = false;
        if (this.reportDirty) {
          this.reportDirty = false;
          this.sendReport();
        }
      });
  }

  private iso(): string {
    return new Date(this.clock.now()).toISOString();
  }
}

/** This machine's ring (settings.ring.name, the rings engineer's section); null: no ring. */
function ringOf(config: Config): string | null {
  const ring = (config as { ring?: { name?: unknown } }).ring?.name;
  return typeof ring === 'string' && ring !== '' ? ring : null;
}

/** The resolved live system, for PULLNIX_PREVIOUS; null when it cannot be read. */
function liveSystem(path: string): string | null {
  try {
    return realpathSync(path);
  } catch {
    return null;
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

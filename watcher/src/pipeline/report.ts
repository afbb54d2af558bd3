/**
 * The report stage. Two things:
 * - The deployment steps of a commit, as the pipeline passes them (`StepEvent`), to any number of
 *   observers (`Steps.subscribe`): the watcher's state in status and its reports to the executor,
 *   and the metrics' postponement counter, are subscribers; another reporter (a forge's commit
 *   status) is one more.
 * - What status shows of the watcher (`WatcherStatus`), sent to the executor coalesced
 *   (`ExecutorReporter`), and the metrics textfile.
 */
import { PullnixError, TextfileWriter, type DeploymentRecord, type Logger, type WatcherReport, type WatcherState } from '@pullnix/shared';
import type { ExecutorClient } from '../executor-link.ts';
import { WATCHER_METRICS_FILE, watcherMetrics } from '../metrics.ts';
import type { Ending, PollOutcome } from './context.ts';

/**
 * A commit's way through the pipeline. In progress: fetching, checking-trust (trust.mode on),
 * building (the source realises the system), gating (detail: the gate's name), deploying (the
 * request is with the executor, which activates and verifies). Ends: succeeded, failed (the
 * build or the deployment), refused (untrusted, not a descendant, known bad, a gate, the
 * executor). waiting: not now (paused, postponed, a gate's wait, the machine's fault, the
 * executor busy or away); it may repeat at every poll. superseded: the branch moved on before
 * the commit reached an end.
 */
export const DEPLOYMENT_STEPS = ['fetching', 'checking-trust', 'building', 'gating', 'deploying', 'succeeded', 'failed', 'refused', 'waiting', 'superseded'] as const;
export type DeploymentStep = (typeof DEPLOYMENT_STEPS)[number];

export interface StepEvent {
  commit: string;
  step: DeploymentStep;
  /** The poll outcome that ended or paused the commit's way (null while in progress, and for superseded). */
  outcome: PollOutcome | null;
  /** Why (the error, the refusal, the gate's name), or null. */
  detail: string | null;
  /** The realised system, once known. */
  toplevel: string | null;
  /** The executor's record of the deployment, on the step that ends a deploy request. */
  deployment?: DeploymentRecord;
}

export type StepObserver = (event: StepEvent) => void;

const IN_PROGRESS: ReadonlySet<DeploymentStep> = new Set(['fetching', 'checking-trust', 'building', 'gating', 'deploying', 'waiting']);

/** The observers of the deployment steps, called in subscription order; one that throws is logged and the others still run. */
export class Steps {
  private readonly observers: StepObserver[] = [];
  /** The commit whose way has not reached an end (superseded when the branch moves on). */
  private open: string | null = null;
  private readonly logger: Logger;

  constructor(logger: Logger) {
    this.logger = logger;
  }

  subscribe(observer: StepObserver): void {
    this.observers.push(observer);
  }

  emit(event: StepEvent): void {
    this.open = IN_PROGRESS.has(event.step) ? event.commit : this.open === event.commit ? null : this.open;
    for (const observer of this.observers) {
      try {
        observer(event);
      } catch (error) {
        this.logger.event('watcher.error', { error: `a deployment-step observer failed on ${event.step}: ${error instanceof Error ? error.message : String(error)}`, commit: event.commit });
      }
    }
  }

  /** The branch head is now `head`: a commit still on its way that is not the head is superseded. */
  headIs(head: string): void {
    if (this.open === null || this.open === head) return;
    this.emit({ commit: this.open, step: 'superseded', outcome: null, detail: `the branch moved on to ${head}`, toplevel: null });
    this.open = null;
  }
}

/** The step a cycle's ending means for its head; null: none (nothing happened to the commit). */
export function endingStep(ending: Ending): DeploymentStep | null {
  switch (ending.outcome) {
    case 'deployed':
      return 'succeeded';
    case 'build-failed':
      return 'failed';
    case 'deploy-failed':
      // No error: a reboot deployment the executor is still resolving (its window, the reboot).
      return ending.error ? 'failed' : 'waiting';
    case 'vulnerable':
    case 'gate-refused':
    case 'source-refused':
    case 'untrusted':
    case 'not-descendant':
    case 'known-bad':
    case 'refused':
      return 'refused';
    case 'scan-failed':
    case 'gate-waiting':
    case 'source-waiting':
    case 'halted':
    case 'paused':
    case 'postponed':
    case 'machine-error':
    case 'executor-unavailable':
    case 'retry-later':
      return 'waiting';
    case 'unchanged':
    case 'remote-error':
    case 'stopped':
    case 'error':
      return null;
  }
}

type LastError = NonNullable<WatcherReport['lastError']>;

/** What status shows of the watcher, apart from its memory. */
export class WatcherStatus {
  state: WatcherState = 'starting';
  remoteHead: string | null = null;
  /** What the executor last reported as deployed; undefined until it answered once. */
  deployedCommit: string | null | undefined = undefined;
  lastPollAt: string | null = null;
  nextPollAt: string | null = null;
  lastError: LastError | null = null;
  lastSuccessfulPollAt: number | null = null;
  /** Deployments the preDeploy hook postponed since start. */
  postponed = 0;
  private readonly now: () => number;

  constructor(now: () => number) {
    this.now = now;
  }

  setError(kind: string, message: string, commit: string | null): void {
    this.lastError = { kind, message, at: new Date(this.now()).toISOString(), commit };
  }

  clearError(kind: string): void {
    if (this.lastError?.kind === kind) this.lastError = null;
  }
}

/** The state a step puts the watcher in (a gate's own state is set by the gates stage). */
const STEP_STATE: Partial<Record<DeploymentStep, WatcherState>> = { fetching: 'fetching', building: 'building', deploying: 'deploying' };

/** Sends the watcher's report to the executor: at every change of state, coalesced. */
export class ExecutorReporter {
  private inFlight = false;
  private dirty = false;
  /** The message of the last refused report (logged once); null after an accepted one. */
  private refused: string | null = null;
  private readonly status: WatcherStatus;
  private readonly executor: ExecutorClient;
  private readonly logger: Logger;
  private readonly snapshot: () => WatcherReport;

  constructor(status: WatcherStatus, executor: ExecutorClient, logger: Logger, snapshot: () => WatcherReport) {
    this.status = status;
    this.executor = executor;
    this.logger = logger;
    this.snapshot = snapshot;
  }

  /** The step subscriber: the steps that change the watcher's state. */
  readonly onStep: StepObserver = (event) => {
    const state = STEP_STATE[event.step];
    if (state) this.setState(state);
  };

  setState(state: WatcherState): void {
    if (this.status.state === state) return;
    this.status.state = state;
    this.send();
  }

  /** Fire and forget, coalesced: at most one report in flight, the latest state sent last. */
  send(): void {
    if (!this.executor.connected) return;
    if (this.inFlight) {
      this.dirty = true;
      return;
    }
    this.inFlight = true;
    const report = this.snapshot();
    this.executor
      .report(report)
      .then(() => {
        this.refused = null;
      })
      .catch((error: unknown) => {
        // A lost connection is the connection loop's to report. A refusal is not: the executor
        // answered that this report is wrong (its schema or the watcher's), and every report
        // after it will be refused the same way, so it is logged once until one is accepted.
        if (!(error instanceof PullnixError) || this.refused === error.message) return;
        this.refused = error.message;
        this.logger.event('report.refused', { code: error.code, reason: error.message, state: report.state });
      })
      .finally(() => {
        this.inFlight = false;
        if (this.dirty) {
          this.dirty = false;
          this.send();
        }
      });
  }
}

/** The metrics textfile (metrics.ts), written after every poll from the status. */
export class MetricsReporter {
  private readonly writer: TextfileWriter;
  private readonly status: WatcherStatus;

  constructor(status: WatcherStatus, directory: string | null, logger: Logger) {
    this.status = status;
    this.writer = new TextfileWriter(directory, WATCHER_METRICS_FILE, logger);
  }

  publish(): void {
    if (this.writer.path === null) return;
    const s = this.status;
    this.writer.write(
      watcherMetrics({
        remoteHead: s.remoteHead,
        deployedCommit: s.deployedCommit,
        lastPollAt: s.lastPollAt === null ? null : Date.parse(s.lastPollAt),
        lastSuccessfulPollAt: s.lastSuccessfulPollAt,
        postponed: s.postponed,
      }),
    );
  }
}

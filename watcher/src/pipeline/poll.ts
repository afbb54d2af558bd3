/**
 * The poll stage: ask the remote for the branch head, decide with the executor's view whether it
 * is worth acting on (deployed, known bad, paused), fetch it, and guard its ancestry. Nothing of
 * the commit is checked out or evaluated here.
 */
import type { StatusResult } from '@pullnix/shared';
import { describeGitError, redactUrl } from '../commands/git.ts';
import { rememberDescription } from '../memory.ts';
import { errorMessage, type Ending, type WatcherContext } from './context.ts';
import type { WatcherStatus } from './report.ts';

export interface PollStageOptions {
  context: WatcherContext;
  status: WatcherStatus;
  /** The delay the next failure will back off for (logged with remote.unreachable). */
  nextBackoffMs: () => number;
}

/** A head to act on, and the commit deployed now. */
export interface NewHead {
  head: string;
  deployed: string | null;
}

export class PollStage {
  private readonly c: WatcherContext;
  private readonly status: WatcherStatus;
  private readonly nextBackoffMs: () => number;
  /** Set while the remote is failing: the cause last logged, and where it failed. */
  private remoteDown: { cause: string; stage: 'ls-remote' | 'fetch' } | null = null;
  private pausedLoggedFor: string | null = null;

  constructor(options: PollStageOptions) {
    this.c = options.context;
    this.status = options.status;
    this.nextBackoffMs = options.nextBackoffMs;
  }

  /** `git ls-remote`: the head, or how the cycle ends (the remote failed, or the head is the one handled or deployed). */
  async remoteHead(signal: AbortSignal): Promise<string | Ending> {
    const { git, config, clock, memory, logger } = this.c;
    let head: string | null;
    try {
      head = await git.lsRemote(signal);
    } catch (error) {
      if (signal.aborted) return { outcome: 'stopped', failures: 'keep' };
      return this.remoteFailed('ls-remote', describeGitError(error));
    }
    if (head === null) return this.remoteFailed('ls-remote', `branch ${config.repository.branch} does not exist on the remote`);
    this.status.lastSuccessfulPollAt = clock.now();
    if (this.remoteDown?.stage === 'ls-remote') this.remoteRecovered(head);
    this.status.remoteHead = head;
    if (head === memory.lastHandled?.commit || head === this.status.deployedCommit) {
      logger.event('poll.unchanged', { commit: head });
      return { outcome: 'unchanged', failures: 'reset' };
    }
    return head;
  }

  /** With the executor's view: the head to act on, or how the cycle ends. */
  async admit(head: string): Promise<NewHead | Ending> {
    const { executor, memory, logger } = this.c;
    // From here the executor's view decides: what is deployed, what failed, paused.
    if (!executor.connected) return { outcome: 'executor-unavailable', failures: 'keep', error: { kind: 'executor', message: 'the executor is not connected; the new head waits for it' } };
    let status: StatusResult;
    try {
      status = await executor.status();
    } catch (error) {
      return { outcome: 'executor-unavailable', failures: 'count', error: { kind: 'executor', message: `status: ${errorMessage(error)}` } };
    }
    this.applyStatus(status);
    if (head === this.status.deployedCommit) {
      logger.event('poll.unchanged', { commit: head, deployed: true });
      return { outcome: 'unchanged', failures: 'reset', handled: { result: 'deployed', detail: 'already deployed' } };
    }
    const failedBuild = memory.failures.find((f) => f.commit === head);
    if (status.knownBad.includes(head) || failedBuild) {
      logger.event('head.known_bad', { commit: head, source: failedBuild ? (failedBuild.kind ?? 'build') : 'executor', error: failedBuild?.error });
      return { outcome: 'known-bad', failures: 'reset', handled: { result: 'known-bad', detail: failedBuild ? 'build failed before' : 'known bad to the executor' } };
    }
    if (status.paused) {
      if (this.pausedLoggedFor !== head) {
        logger.event('poll.paused', { commit: head, since: status.paused.since, by: status.paused.by, reason: status.paused.reason });
        this.pausedLoggedFor = head;
      }
      return { outcome: 'paused', failures: 'reset' };
    }
    return { head, deployed: this.status.deployedCommit ?? null };
  }

  /** Fetch the branch and check the head arrived and descends from the deployed commit: null to go on, or how the cycle ends. */
  async fetch({ head, deployed }: NewHead, signal: AbortSignal): Promise<Ending | null> {
    const { git, config, logger } = this.c;
    try {
      await git.fetch(signal);
    } catch (error) {
      if (signal.aborted) return { outcome: 'stopped', failures: 'keep' };
      return this.remoteFailed('fetch', `fetch: ${describeGitError(error)}`);
    }
    if (this.remoteDown) this.remoteRecovered(head);
    if (!(await git.hasCommit(head))) {
      // The branch moved again between ls-remote and fetch (another push, or a force-push).
      return { outcome: 'remote-error', failures: 'count', error: { kind: 'remote', message: `the fetched branch does not contain ${head}; it moved during the fetch` } };
    }
    await this.describe(head);
    if (deployed) await this.describe(deployed);
    if (!deployed || config.repository.allowNonDescendant) return null;

    let descends: boolean;
    try {
      descends = (await git.hasCommit(deployed)) && (await git.isAncestor(deployed, head));
    } catch (error) {
      // git could not answer (an I/O or object error): the machine's fault, never "not a descendant".
      if (signal.aborted) return { outcome: 'stopped', failures: 'keep' };
      const cause = describeGitError(error);
      logger.event('head.descent_unknown', { commit: head, deployed, error: cause });
      return { outcome: 'machine-error', failures: 'count', error: { kind: 'machine', message: `cannot tell whether ${head} descends from the deployed commit ${deployed}: git failed: ${cause}; tried again` } };
    }
    if (descends) return null;
    logger.event('head.not_descendant', { commit: head, deployed });
    return {
      outcome: 'not-descendant',
      failures: 'reset',
      error: { kind: 'not-descendant', message: `head ${head} does not descend from the deployed commit ${deployed} (force-push or history rewrite); refused, set repository.allowNonDescendant to allow` },
      handled: { result: 'not-descendant', detail: `deployed ${deployed}` },
    };
  }

  applyStatus(status: StatusResult): void {
    this.status.deployedCommit = status.deployed?.commit ?? null;
  }

  private async describe(commit: string): Promise<void> {
    const { memory, git } = this.c;
    if (memory.commits[commit]) return;
    const description = await git.describe(commit);
    if (description) {
      rememberDescription(memory, commit, description);
      this.c.save();
    }
  }

  private remoteFailed(stage: 'ls-remote' | 'fetch', cause: string): Ending {
    const { config, logger } = this.c;
    if (this.remoteDown?.cause !== cause) {
      logger.event('remote.unreachable', { url: redactUrl(config.repository.url), branch: config.repository.branch, error: cause, retry_in: `${this.nextBackoffMs() / 1000}s` });
    }
    this.remoteDown = { cause, stage };
    return { outcome: 'remote-error', failures: 'count', error: { kind: 'remote', message: cause, commit: null } };
  }

  private remoteRecovered(head: string): void {
    const { config, logger } = this.c;
    logger.event('remote.reachable', { commit: head, url: redactUrl(config.repository.url), branch: config.repository.branch });
    this.remoteDown = null;
    this.status.clearError('remote');
  }
}

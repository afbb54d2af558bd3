/**
 * The request stage: hooks.preDeploy (the last word before the request), then the signed
 * `deploy {commit, toplevel}` to the executor, and what its answer means for the commit.
 */
import { realpathSync } from 'node:fs';
import { PullnixError, runHook } from '@pullnix/shared';
import { errorMessage, type Ending, type WatcherContext } from './context.ts';
import type { WatcherStatus } from './report.ts';

/**
 * hooks.preDeploy, after the gates and before the request: exit 0 is "go"; anything else
 * (non-zero, timeout, cannot start) is "not now". The head is not marked handled, so the next
 * poll builds (a no-op, the result is cached) and asks again. Not a failure: no back-off.
 * null: go on; otherwise how the cycle ends.
 */
export async function preDeploy(c: WatcherContext, status: WatcherStatus, head: string, toplevel: string, deployed: string | null, signal: AbortSignal): Promise<Ending | null> {
  const hook = c.config.hooks.preDeploy;
  if (!hook) return null;
  const previous = liveSystem(c.config.paths.currentSystem);
  const r = await runHook(c.runner, c.logger.child({ commit: head }), 'preDeploy', hook, { deployment: null, commit: head, outcome: null, toplevel, previous, error: null }, signal, { direct: c.config.watcher.user !== null });
  if (r.ok) return null;
  if (signal.aborted) return { outcome: 'stopped', failures: 'keep' };
  status.postponed += 1;
  c.logger.event('deploy.postponed', { commit: head, toplevel, deployed, postponed: status.postponed, error: r.error, output: r.output || undefined });
  return { outcome: 'postponed', failures: 'reset' };
}

/** Ask the executor to deploy, and wait for the outcome. */
export async function requestDeploy(c: WatcherContext, status: WatcherStatus, head: string, toplevel: string): Promise<Ending> {
  const { activationTimeoutSec, verify } = c.config;
  c.logger.event('deploy.requested', { commit: head, toplevel });
  try {
    // The executor answers once the outcome is recorded: activation, verification and a rollback may all run first.
    const { deployment } = await c.executor.deploy({ commit: head, toplevel }, (activationTimeoutSec * 2 + verify.timeoutSec + 300) * 1000);
    // null: a reboot deployment (reboot.mode window) waiting for its window or rebooting; the executor resolves it.
    const outcome = deployment.outcome ?? deployment.phase;
    c.logger.event('deploy.outcome', { commit: head, deployment: deployment.id, outcome, generation: deployment.generation, error: deployment.error?.message });
    if (outcome === 'succeeded') {
      status.deployedCommit = head;
      status.lastError = null;
      return { outcome: 'deployed', failures: 'reset', handled: { result: 'deployed', detail: `deployment ${deployment.id}` }, deployment };
    }
    if (deployment.outcome === null) return { outcome: 'deploy-failed', failures: 'reset', handled: { result: 'deploy-failed', detail: outcome }, deployment };
    return {
      outcome: 'deploy-failed',
      failures: 'reset',
      error: { kind: 'deploy', message: `deployment ${deployment.id} ended ${outcome}${deployment.error ? `: ${deployment.error.message}` : ''}` },
      handled: { result: 'deploy-failed', detail: outcome },
      deployment,
    };
  } catch (error) {
    if (!(error instanceof PullnixError)) {
      c.logger.event('deploy.unanswered', { commit: head, error: errorMessage(error) });
      return { outcome: 'retry-later', failures: 'count', error: { kind: 'executor', message: `deploy: ${errorMessage(error)}` } };
    }
    c.logger.event('deploy.refused', { commit: head, code: error.code, reason: error.message });
    const refused = { kind: 'deploy', message: `${error.code}: ${error.message}` };
    switch (error.code) {
      case 'KNOWN_BAD':
        return { outcome: 'refused', failures: 'reset', error: refused, handled: { result: 'known-bad', detail: error.message } };
      case 'INVALID_SYSTEM':
        // What was realised is not a system closure: a failure of this commit's, remembered as one.
        return { outcome: 'refused', failures: 'reset', error: refused, handled: { result: 'refused', detail: error.message }, failure: { error: refused.message, logTail: '' } };
      case 'PAUSED':
        return { outcome: 'paused', failures: 'reset', error: refused };
      default:
        return { outcome: 'retry-later', failures: 'count', error: refused };
    }
  }
}

/** The resolved live system, for PULLNIX_PREVIOUS; null when it cannot be read. */
function liveSystem(path: string): string | null {
  try {
    return realpathSync(path);
  } catch {
    return null;
  }
}

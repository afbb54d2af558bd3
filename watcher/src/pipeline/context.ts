/** What every stage of the watcher's pipeline needs, as one options object, and how a cycle ends. */
import type { Config, DeploymentRecord, Logger, Runner } from '@pullnix/shared';
import type { Clock } from '../clock.ts';
import type { ExecutorClient } from '../executor-link.ts';
import type { GitOps } from '../commands/git.ts';
import type { BuildFailure, HandledResult, WatcherMemory } from '../memory.ts';

export interface WatcherContext {
  config: Config;
  runner: Runner;
  logger: Logger;
  clock: Clock;
  git: GitOps;
  executor: ExecutorClient;
  /** Flake host attribute. */
  host: string;
  /** `<stateDir>/checkout`, `<stateDir>/gcroots`. */
  checkoutDir: string;
  gcrootsDir: string;
  /** The watcher's memory (watcher.json) and its atomic save. */
  memory: WatcherMemory;
  save(): void;
}

/** How one poll cycle ended. */
export type PollOutcome =
  | 'unchanged' // the head is the one already handled or deployed: one ls-remote, nothing else
  | 'deployed' // built, requested, the executor answered succeeded
  | 'deploy-failed' // built, requested, the executor answered with another outcome (rolled back, ...)
  | 'build-failed'
  | 'source-refused' // the prebuilt source refused the commit's system (a check of docs/prebuilt.md): remembered like a failed build
  | 'source-waiting' // the prebuilt cache does not have the system yet: looked at again at the next poll
  | 'vulnerable' // the vulnerability gate refused the built system (remembered like a failed build)
  | 'scan-failed' // the vulnerability scan failed and onError = refuse: tried again after a back-off
  | 'gate-refused' // another gate (pipeline/gates.ts) refused the system: remembered like a failed build
  | 'gate-waiting' // another gate said not now: looked at again at the next poll (or after a back-off)
  | 'halted' // decentralised halt (report.haltAfter, gate-halt.ts): the ring has failed this commit; looked at again at the next poll
  | 'not-descendant'
  | 'untrusted' // a commit of the new range failed the signature check (trust.mode): nothing evaluated
  | 'known-bad'
  | 'refused' // the executor refused the request for good (KNOWN_BAD, INVALID_SYSTEM)
  | 'paused' // deployments are paused; the head is looked at again at the next poll
  | 'postponed' // the preDeploy hook said not now; the head is looked at again at the next poll
  | 'remote-error'
  | 'machine-error' // the machine's fault (nix-daemon, network, disk, timeout, a git that cannot answer): tried again after a back-off, nothing remembered
  | 'executor-unavailable'
  | 'retry-later' // the executor was busy, refused for a passing reason, or did not answer
  | 'stopped'
  | 'error';

/**
 * How a stage ended the cycle; the watcher applies it (watcher.ts `finish`), so every stage ends
 * the same way. `failures`: 'reset' (a regular poll interval next, the back-off forgotten),
 * 'count' (one more failure: the next poll after the back-off), 'keep' (neither).
 */
export interface Ending {
  outcome: PollOutcome;
  failures: 'reset' | 'count' | 'keep';
  /** lastError as status shows it; about the cycle's head unless `commit` says otherwise. */
  error?: { kind: string; message: string; commit?: string | null };
  /** The head is handled: not looked at again until the branch moves or an operator retries. */
  handled?: { result: HandledResult; detail: string | null };
  /** Remembered against the head as a failure (known bad to the watcher until a retry). */
  failure?: Omit<BuildFailure, 'commit' | 'at'>;
  /** The executor's record, when it answered a deploy request (the commit status is made from it). */
  deployment?: DeploymentRecord;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The domain values both processes and pullnix-ctl see: deployments (the history records),
 * the executor's status, the watcher's report. Their states are the words the logs, the
 * history and `pullnix-ctl status` use.
 */
import type { ErrorData } from './errors.ts';

/** Where one deployment is in the pipeline (DESIGN.md steps 1-8). */
export type DeploymentPhase =
  | 'accepted' // step 2: recorded with the previous system
  | 'activating' // step 3: switch-to-configuration test|switch through systemd-run
  | 'verifying' // step 4: the checks (git connectivity first, then newly failed units and the declared checks)
  | 'committing' // step 5 pass: nix-env --set, switch-to-configuration boot
  | 'rolling-back' // step 5 fail: re-activate the recorded previous system
  | 'finished'; // step 6: outcome recorded

/** How a deployment ended. null while it runs. */
export type DeploymentOutcome =
  | 'succeeded' // verified, profile generation created, boot default moved
  | 'rolled-back' // failed (activation or verification), previous system re-activated
  | 'rollback-failed' // failed, and re-activating the previous system failed too: executor pauses itself
  | 'reboot-required' // switch-to-configuration exit 100: nothing activated, boot default untouched
  | 'interrupted'; // the executor died mid-deployment and the live system was not its toplevel

export interface PhaseMark {
  phase: DeploymentPhase;
  at: string; // ISO 8601
  detail?: string;
  /** The transient unit (systemd-run) running this phase's activation, so recovery can wait for it. */
  unit?: string;
}

export interface PreviousSystem {
  /** Resolved target of /run/current-system when the deployment started. */
  system: string | null;
  /** The system profile's generation number when the deployment started. */
  generation: number | null;
  /** Units failed (or auto-restarting) before anything changed: reported by the units check, never blamed. */
  failedUnits?: string[];
}

/** What kind of verification a check is (executor/src/verify/: one file per kind). */
export type CheckKind = 'git' | 'units' | 'command' | 'http' | 'tcp' | 'unit';

/** The result of one verification check (step 4), as the history keeps it. */
export interface CheckResult {
  /** `git`, `failed-units`, or the name of a declared check (config `checks.<name>`). */
  name: string;
  kind: CheckKind;
  /** null: not run (an earlier mandatory check failed). */
  passed: boolean | null;
  attempts: number;
  /** The last attempt's error; null when it passed. */
  error: string | null;
  /** command checks: the last lines of its output (last attempt). */
  output?: string;
  /** failed-units: the units that failed after activation and not before (blamed). */
  units?: string[];
  /** failed-units: units that had already failed before the deployment (reported, not blamed). */
  preexisting?: string[];
  startedAt: string | null;
  durationMs: number;
}

export interface DeploymentRecord {
  id: number;
  kind: 'deploy' | 'rollback';
  commit: string;
  toplevel: string;
  activation: 'test' | 'switch';
  requestedBy: string; // key id
  previous: PreviousSystem;
  phase: DeploymentPhase;
  phases: PhaseMark[];
  outcome: DeploymentOutcome | null;
  error: ErrorData | null;
  /** switch-to-configuration's exit code for the activation, when it ran. */
  activationExit: number | null;
  /** The new system profile generation, on success. */
  generation: number | null;
  startedAt: string;
  finishedAt: string | null;
  /** Step 4: every check's result, in order (git first); absent before verification ran. */
  checks?: CheckResult[];
}

export interface CommitInfo {
  commit: string;
  subject: string | null;
  time: string | null; // ISO 8601 commit time
}

export type WatcherState = 'starting' | 'idle' | 'polling' | 'fetching' | 'building' | 'deploying' | 'backing-off' | 'stopping';

/** What the watcher tells the executor about itself (method `report`); shown by status. */
export interface WatcherReport {
  state: WatcherState;
  pid: number;
  version: string;
  remoteHead: CommitInfo | null;
  deployedCommit: CommitInfo | null;
  lastPollAt: string | null;
  nextPollAt: string | null;
  lastError: { kind: string; message: string; at: string; commit: string | null } | null;
  /** Commits the watcher will not build again (build failures) until a newer head or `retry`. */
  failedBuilds: string[];
}

export interface PauseInfo {
  since: string;
  reason: string | null;
  by: string;
}

export interface StatusResult {
  version: string;
  executor: { pid: number; startedAt: string; busy: boolean };
  paused: PauseInfo | null;
  /** The last successful deployment: what is deployed. */
  deployed: { deploymentId: number; commit: string; toplevel: string; generation: number | null; at: string } | null;
  /** Resolved target of /run/current-system now. */
  liveSystem: string | null;
  /** The deployment in progress, if any. */
  current: DeploymentRecord | null;
  lastFailure: {
    deploymentId: number;
    commit: string;
    outcome: DeploymentOutcome;
    reason: string;
    at: string;
    /** The checks that failed, when verification is what failed. */
    failedChecks?: { name: string; kind: CheckKind; error: string | null }[];
  } | null;
  knownBad: string[];
  watcher: { connected: boolean; report: WatcherReport | null; reportedAt: string | null };
  /** true when the watcher's remote head differs from the deployed commit; null when unknown. */
  drift: boolean | null;
}

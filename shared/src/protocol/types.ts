/**
 * The domain values both processes and pullnix-ctl see: deployments (the history records),
 * the executor's status, the watcher's report. Their states are the words the logs, the
 * history and `pullnix-ctl status` use.
 */
import type { ErrorData } from './errors.ts';
import type { CheckKind, DeploymentOutcome, DeploymentPhase, RebootReason, VulnerabilityDecision, WatcherState } from './vocabulary.ts';

export * from './vocabulary.ts';

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
  /**
   * Units failed (or auto-restarting) when the deployment started: failing afterwards is not
   * blamed on it. null: systemctl did not answer; absent in records of older versions.
   */
  failedUnits?: string[] | null;
}

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
  /** The kernel boot the deployment started in: recovery tells a power cut from a crash by it. */
  bootId?: string | null;
  startedAt: string;
  finishedAt: string | null;
  /** Step 4: every check's result, in order (git first); absent before verification ran. */
  checks?: CheckResult[];
  /** Whether the new system needs a reboot, and what pullnix did about it (docs/executor.md "Reboots"); absent in older records. */
  reboot?: RebootInfo;
}

export interface RebootInfo {
  needed: boolean;
  reasons: RebootReason[];
  /** reboot.mode when the deployment started. */
  mode: 'never' | 'window';
  /** reboot-pending: when reboot.window next opens (ISO 8601) and its local start "HH:MM". */
  pendingUntil?: string | null;
  windowStart?: string | null;
  /** Trial boot: the boot default (profile generation and system) before it, which stays the default until verified. */
  previousGeneration?: number | null;
  previousDefault?: string | null;
  /** Trial boot: the profile generation holding the new system (its boot entry nixos-generation-N). */
  generation?: number | null;
  /** The boot entry made the next boot once (systemd-boot entry id / GRUB menu entry); null with bootloader none. */
  oneShotEntry?: string | null;
  /** The boot the trial boot was requested from, and the boot the trial system came up in. */
  fromBootId?: string | null;
  trialBootId?: string | null;
  /** The automatic fallback reboot (at most one per deployment): the boot it was requested from. */
  fallbackFromBootId?: string | null;
  /** Who asked for the reboot: window, or the key id of pullnix-ctl reboot-now. */
  trigger?: string | null;
}

export interface CommitInfo {
  commit: string;
  subject: string | null;
  time: string | null; // ISO 8601 commit time
}

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
  /**
   * The head whose range failed the commit-signature check (trust.mode head/all), with the commit
   * that failed and why (unsigned, unknown-key, bad-signature, expired-key, ...); not evaluated,
   * not retried until the head moves or `retry`. Absent from watchers older than the check.
   */
  untrusted?: { head: string; commit: string | null; reason: string; message: string; at: string } | null;
  /** The vulnerability gate's last decision (gates.vulnerabilities); absent when it never ran. */
  vulnerabilities?: VulnerabilityScan | null;
  /**
   * The branch head, refused because it does not descend from the deployed commit (force-push
   * guard, repository.allowNonDescendant off); null when the head was not refused. Absent in
   * reports of watchers older than this field.
   */
  refusedHead?: RefusedHead | null;
  /** The phased-start gate's last decision (ring.phases); absent when it never ran. */
  phased?: { commit: string; allowed: boolean; message: string } | null;
  /**
   * source.mode prebuilt: where the deployed system came from (docs/prebuilt.md); null when it
   * was not fetched prebuilt (or by this watcher). Absent in reports of older watchers.
   */
  prebuilt?: PrebuiltProvenance | null;
}

/** A prebuilt system's provenance: "prebuilt <toplevel> ← <sourceCommit> (manifest <sha>, signed by <builder key>, cache key <name>)". */
export interface PrebuiltProvenance {
  toplevel: string;
  sourceCommit: string;
  manifestCommit: string;
  /** The builder key's principal (null with trust.mode off). */
  signer: string | null;
  /** The name of the cache key that signed the toplevel. */
  cacheKey: string | null;
}

/** One vulnerability of one package, as vulnix reports it. */
export interface VulnerabilityFinding {
  /** CVE id. */
  id: string;
  /** The package name without version (vulnix's `pname`). */
  package: string;
  version: string | null;
  /** CVSS v3 base score; null when the NVD has none. */
  score: number | null;
}

/** The gate's decision on one built system, compared with the live one. */
export interface VulnerabilityScan {
  commit: string;
  toplevel: string;
  /** The live system it was compared with (resolved current-system). */
  liveSystem: string | null;
  at: string;
  decision: VulnerabilityDecision;
  minSeverity: number;
  /** In the new system, at or above minSeverity, not allowed, not in the live system (at most 100, highest score first). */
  new: VulnerabilityFinding[];
  /** In the live system, gone from the new one: what this commit fixes (at most 100). */
  fixed: VulnerabilityFinding[];
  /** New ones at or above minSeverity that `allow` accepts (at most 100). */
  allowed: VulnerabilityFinding[];
  /** The full counts (the lists are cut at 100). */
  counts: { new: number; fixed: number; allowed: number };
  /** Why the scan failed (decisions error-*). */
  error: string | null;
}

export interface RefusedHead {
  commit: string;
  reason: 'not-descendant';
  /** The deployed commit it does not descend from. */
  deployed: string | null;
  at: string;
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
  deployed: {
    deploymentId: number;
    commit: string;
    toplevel: string;
    generation: number | null;
    at: string;
    /** What of it takes effect only at the next boot (kernel, initrd, kernel-modules differ from the booted system's); absent from older executors. */
    rebootRequired?: RebootReason[];
  } | null;
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

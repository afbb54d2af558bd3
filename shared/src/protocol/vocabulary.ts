/**
 * The state vocabularies, each spelled once: the words the logs, the history, `pullnix-ctl status`
 * and the metrics use. The TypeScript unions (types.ts), the JSON Schemas (the `report` method's
 * params, the ctl output schemas), the history reader and the metric label sets all derive from
 * these arrays, so adding a word here adds it everywhere (shared/test/vocabulary.test.ts checks).
 * Words may be added, never removed or renamed: old history records and older watchers use them.
 */

/** Where one deployment is in the pipeline (DESIGN.md steps 1-8). */
export const DEPLOYMENT_PHASES = [
  'accepted', // step 2: recorded with the previous system
  'activating', // step 3: switch-to-configuration test|switch through systemd-run
  'verifying', // step 4: the checks (git connectivity first, then newly failed units and the declared checks)
  'committing', // step 5 pass: nix-env --set, switch-to-configuration boot
  'rolling-back', // step 5 fail: re-activate the recorded previous system
  'reboot-pending', // a reboot deployment outside reboot.window: waits (nothing changed) for the window or pullnix-ctl reboot-now
  'awaiting-boot', // trial boot: the new system is the next boot once (one-shot entry), the previous one stays the default; rebooting
  'fallback-reboot', // the trial system failed after its boot: the previous default stays, rebooting into it (once per deployment)
  'finished', // step 6: outcome recorded
] as const;
export type DeploymentPhase = (typeof DEPLOYMENT_PHASES)[number];

/** How a deployment ended (null while it runs). */
export const DEPLOYMENT_OUTCOMES = [
  'succeeded', // verified, profile generation created, boot default moved
  'rolled-back', // failed (activation or verification), previous system re-activated
  'rollback-failed', // failed, and re-activating the previous system failed too: executor pauses itself
  'reboot-required', // switch-to-configuration exit 100: nothing activated, boot default untouched
  'interrupted', // the executor died mid-deployment and the live system was not its toplevel
  'superseded', // a reboot deployment still pending (outside reboot.window) was replaced by a newer deploy request; nothing changed
] as const;
export type DeploymentOutcome = (typeof DEPLOYMENT_OUTCOMES)[number];

/** The kinds of check an operator declares (config `checks.<name>.type`). */
export const DECLARED_CHECK_KINDS = ['command', 'http', 'tcp', 'unit'] as const;
export type DeclaredCheckKind = (typeof DECLARED_CHECK_KINDS)[number];

/** What kind of verification a check is (executor/src/verify/: one file per kind): the two built in, then the declared ones. */
export const CHECK_KINDS = ['git', 'units', ...DECLARED_CHECK_KINDS] as const;
export type CheckKind = (typeof CHECK_KINDS)[number];

/** What the watcher is doing (its `report`, shown by status). */
export const WATCHER_STATES = ['starting', 'idle', 'polling', 'fetching', 'building', 'scanning', 'deploying', 'backing-off', 'stopping'] as const;
export type WatcherState = (typeof WATCHER_STATES)[number];

/** Why a system needs a reboot: its kernel, initrd or kernel modules differ from the booted system's, or the activation answered 100. */
export const REBOOT_REASONS = ['kernel', 'initrd', 'kernel-modules', 'init-interface'] as const;
export type RebootReason = (typeof REBOOT_REASONS)[number];

/** How the vulnerability gate decided on a built system. */
export const VULNERABILITY_DECISIONS = [
  'passed', // nothing new at or above minSeverity (that is not allowed)
  'refused', // new vulnerabilities, onNew = refuse: not deployed, remembered like a failed build
  'warned', // new vulnerabilities, onNew = warn: deployed anyway
  'error-allowed', // the scan failed, onError = allow: deployed anyway
  'error-refused', // the scan failed, onError = refuse: not deployed now, tried again later
] as const;
export type VulnerabilityDecision = (typeof VULNERABILITY_DECISIONS)[number];

/**
 * The event catalogue: every event pullnix logs, with its priority. Logging an event that is not
 * here does not compile; docs/events.md lists the same set (a test keeps them equal).
 * Errors and rollbacks are warning or worse, so `journalctl -u pullnix-executor -p warning` is the
 * list of problems.
 */
export type Priority = 'error' | 'warning' | 'info' | 'debug';

export interface EventSpec {
  priority: Priority;
  source: 'executor' | 'watcher' | 'ctl' | 'any';
  summary: string;
}

export const EVENTS = {
  // --- executor lifecycle
  'executor.started': { priority: 'info', source: 'executor', summary: 'the executor is listening on its sockets (root\'s own and the operator group\'s)' },
  'executor.stopping': { priority: 'info', source: 'executor', summary: 'the executor is shutting down (signal or self-upgrade)' },
  'executor.self_upgrade': { priority: 'info', source: 'executor', summary: "the executor's own unit changed in this deployment; it exits once idle so systemd starts the new one" },
  'executor.removed': { priority: 'warning', source: 'executor', summary: 'a deployment removed pullnix from the configuration: once its outcome is recorded, the watcher and the executor stop' },
  'executor.fatal': { priority: 'error', source: 'executor', summary: 'the executor cannot start or hit an unexpected error' },
  'keys.retired': { priority: 'info', source: 'executor', summary: "the watcher's old key in the executor's keys directory was removed: the watcher now runs as its own user with a key of its own" },
  'keys.generated': { priority: 'info', source: 'executor', summary: 'a key (watcher or local operator) was created in the state directory' },
  'state.corrupt': { priority: 'error', source: 'any', summary: 'a state or history file could not be read; it was set aside (renamed), never silently reset' },
  // --- socket and protocol
  'request.refused': { priority: 'warning', source: 'executor', summary: 'a socket request was refused (code= says why); nothing changed. The first of its kind (socket, signing key, code) per interval; the rest are counted in socket.refusals_repeated' },
  'socket.dropped': { priority: 'warning', source: 'executor', summary: 'the executor closed a connection itself (cause=: auth-deadline, frame-too-large, trickle, evicted, full, refusals, over-budget). The first of its kind per interval' },
  'socket.refusals_repeated': { priority: 'warning', source: 'executor', summary: 'count= more refusals or drops like the one logged (same socket, key and cause) came in the last interval, on connections= connections' },
  'request.accepted': { priority: 'debug', source: 'executor', summary: 'an authenticated request is being executed' },
  'watcher.connected': { priority: 'info', source: 'executor', summary: 'a watcher subscribed on the socket' },
  'watcher.disconnected': { priority: 'info', source: 'executor', summary: "the watcher's connection closed" },
  'control.paused': { priority: 'warning', source: 'executor', summary: 'deployments are paused (by an operator, or by the executor after a failed rollback)' },
  'control.resumed': { priority: 'info', source: 'executor', summary: 'deployments are accepted again' },
  'control.retry': { priority: 'info', source: 'executor', summary: 'an operator cleared the failure memory of a commit' },
  'control.sync': { priority: 'info', source: 'executor', summary: 'an operator asked for an immediate poll; forwarded to the watcher' },
  'control.reboot_now': { priority: 'warning', source: 'executor', summary: 'an operator asked to boot the deployment waiting for the reboot window now' },
  // --- the deployment pipeline (executor)
  'deploy.accepted': { priority: 'info', source: 'executor', summary: 'step 2: deployment recorded as started with the previous system' },
  'deploy.activating': { priority: 'info', source: 'executor', summary: 'step 3: switch-to-configuration started through systemd-run' },
  'deploy.activated': { priority: 'info', source: 'executor', summary: 'step 3: activation finished with exit 0 (or 4 for units that were already failing before the deployment)' },
  'deploy.switch_output': { priority: 'info', source: 'executor', summary: "what switch-to-configuration said it did (units stopped, started, restarted, NOT restarted); its whole output is in the journal of unit=" },
  'deploy.units_failed_before': { priority: 'warning', source: 'executor', summary: 'units are failing that were already failing before the deployment: reported, not blamed (during= activation or rollback)' },
  'deploy.activation_failed': { priority: 'error', source: 'executor', summary: 'step 3: activation exited 2 (activation script) or 4 (units failed that were not failing before), timed out, could not start, or its exit status is unknown' },
  'deploy.reboot_required': { priority: 'warning', source: 'executor', summary: 'step 3: switch-to-configuration exited 100; nothing activated, boot default untouched' },
  'deploy.reboot_needed': { priority: 'warning', source: 'executor', summary: "the new system needs a reboot to take effect: its kernel, initrd or kernel modules differ from the booted system's, or the activation answered 100 (reasons=, mode=)" },
  'deploy.reboot_pending': { priority: 'warning', source: 'executor', summary: 'reboot.mode window, outside reboot.window: the deployment waits (nothing changed) until the window opens or pullnix-ctl reboot-now' },
  'deploy.trial_boot': { priority: 'warning', source: 'executor', summary: 'the new system is made the next boot once (one-shot entry), the previous one stays the boot default' },
  'deploy.rebooting': { priority: 'warning', source: 'executor', summary: 'systemctl reboot: into the trial system (reason=trial) or back to the previous system (reason=fallback)' },
  'deploy.trial_booted': { priority: 'warning', source: 'executor', summary: 'on start after a trial boot: which system came up (booted=, trial= true when it is the new one)' },
  'deploy.boot_finished': { priority: 'info', source: 'executor', summary: 'after a trial boot, before its verification: the boot has finished (systemctl is-system-running --wait, bounded by verify.timeoutSec); state= what it reached, unknown when it did not finish in time' },
  'deploy.fallback_reboot': { priority: 'error', source: 'executor', summary: 'the trial system failed its verification after the boot: the previous system stays the default and the machine reboots into it (once per deployment)' },
  'deploy.reboot_failed': { priority: 'error', source: 'executor', summary: 'preparing the trial boot or rebooting failed; the previous boot default is restored' },
  'deploy.superseded': { priority: 'warning', source: 'executor', summary: 'a deployment waiting for the reboot window was replaced by a newer deploy request (nothing of it was changed)' },
  'deploy.verifying': { priority: 'info', source: 'executor', summary: 'step 4: the checks started (git connectivity first, then newly failed units and the declared checks)' },
  'verify.attempt_failed': { priority: 'warning', source: 'executor', summary: 'one attempt of a check failed (check= names it); retried with back-off until verify.timeoutSec' },
  'verify.own_config_unusable': { priority: 'warning', source: 'executor', summary: "the deployed system has no pullnix configuration (<toplevel>/etc/pullnix/config.json), or one only its own pullnix can read (accepted by its --check-config); its checks are the running configuration's" },
  'verify.own_config_accepted': { priority: 'info', source: 'executor', summary: "the new system's own pullnix daemons (<toplevel>/sw/bin/pullnix-*) accept its configuration (--check-config): they will start" },
  'verify.own_config_rejected': { priority: 'error', source: 'executor', summary: "a daemon of the new system rejects its own configuration (--check-config): it would not start once committed; the deployment is rolled back" },
  'check.passed': { priority: 'info', source: 'executor', summary: 'step 4: a check passed (check=, kind=, attempts=)' },
  'check.failed': { priority: 'error', source: 'executor', summary: 'step 4: a check still failed at verify.timeoutSec (check=, error=); the deployment is rolled back' },
  'deploy.verified': { priority: 'info', source: 'executor', summary: 'step 4: every check passed' },
  'deploy.verify_failed': { priority: 'error', source: 'executor', summary: 'step 4: a check failed within verify.timeoutSec (checks= names them)' },
  'deploy.committed': { priority: 'info', source: 'executor', summary: 'step 5: system profile generation created and boot default moved' },
  'deploy.commit_failed': { priority: 'error', source: 'executor', summary: 'step 5: nix-env --set or switch-to-configuration boot failed after verification' },
  'deploy.succeeded': { priority: 'info', source: 'executor', summary: 'step 6: outcome succeeded recorded' },
  'deploy.rolling_back': { priority: 'warning', source: 'executor', summary: 'step 5: re-activating the recorded previous system' },
  'deploy.rolled_back': { priority: 'warning', source: 'executor', summary: 'step 6: previous system re-activated; the commit is remembered as failed' },
  'deploy.rollback_failed': { priority: 'error', source: 'executor', summary: 're-activating the previous system failed; the executor pauses itself, an operator must act' },
  'deploy.interrupted': { priority: 'warning', source: 'executor', summary: 'on start: an unfinished deployment of which nothing was activated (or the machine restarted) was marked interrupted' },
  'deploy.recovering': { priority: 'warning', source: 'executor', summary: 'on start: an unfinished deployment is resolved: its activation unit waited for, its recorded exit read, then verified again or rolled back' },
  'watcher.restarting': { priority: 'info', source: 'executor', summary: 'step 7: systemctl restart of the watcher after an outcome' },
  'hook.started': { priority: 'info', source: 'any', summary: 'a hook (preDeploy, onSuccess, onFailure) started through systemd-run (hook=, argv=)' },
  'hook.succeeded': { priority: 'info', source: 'any', summary: 'a hook exited 0' },
  'hook.failed': { priority: 'warning', source: 'any', summary: 'onSuccess/onFailure exited non-zero, timed out or could not start; logged only, the outcome stands' },
  'deploy.postponed': { priority: 'info', source: 'watcher', summary: 'the preDeploy hook said not now (non-zero exit or timeout); asked again at the next poll, not a failure' },
  'metrics.write_failed': { priority: 'error', source: 'any', summary: 'the metrics textfile could not be written (metrics.textfileDirectory); retried at the next change' },
  'watcher.restart_failed': { priority: 'error', source: 'executor', summary: 'step 7: restarting the watcher failed' },
  // --- watcher
  'watcher.started': { priority: 'info', source: 'watcher', summary: 'the watcher started' },
  'watcher.key_generated': { priority: 'info', source: 'watcher', summary: 'the watcher, running as its own user, created its signing key in its state directory; the executor trusts the public half' },
  'watcher.stopping': { priority: 'info', source: 'watcher', summary: 'the watcher is shutting down' },
  'executor.connected': { priority: 'info', source: 'watcher', summary: "the watcher is connected to the executor's socket" },
  'executor.unreachable': { priority: 'warning', source: 'watcher', summary: 'the executor socket cannot be reached; retried with back-off (logged once per change)' },
  'poll.unchanged': { priority: 'debug', source: 'watcher', summary: 'the branch head is the one already handled; nothing fetched' },
  'poll.new_head': { priority: 'info', source: 'watcher', summary: 'the branch head moved; fetching and building it' },
  'poll.sync_requested': { priority: 'info', source: 'watcher', summary: 'an immediate poll was requested (pullnix-ctl sync)' },
  'remote.unreachable': { priority: 'warning', source: 'watcher', summary: 'git ls-remote or fetch failed; backing off (logged once per change of state)' },
  'remote.reachable': { priority: 'info', source: 'watcher', summary: 'the remote answers again' },
  'head.not_descendant': { priority: 'warning', source: 'watcher', summary: 'the branch head does not descend from the deployed commit (force-push?); refused' },
  'trust.verified': { priority: 'info', source: 'watcher', summary: 'the commit signatures of the new range are good (trust.mode head or all); it may be evaluated' },
  'trust.refused': { priority: 'warning', source: 'watcher', summary: 'a commit of the new range is unsigned, signed by an unknown, expired or revoked key, or badly signed; nothing is evaluated or built' },
  'trust.discarded': { priority: 'info', source: 'watcher', summary: "a refused range's objects were deleted from the watcher's checkout (the tracking ref back at the deployed commit, git gc --prune=now): a refused push costs no disk once refused" },
  'trust.discard_failed': { priority: 'error', source: 'watcher', summary: "a refused range's objects could not be deleted from the checkout (git gc failed); tried again at the next refusal" },
  'head.known_bad': { priority: 'info', source: 'watcher', summary: 'the branch head failed before (build or rollback); not tried again until a newer commit or retry' },
  'build.started': { priority: 'info', source: 'watcher', summary: 'building the system closure of a commit' },
  'build.succeeded': { priority: 'info', source: 'watcher', summary: 'the system closure was built; a GC root holds it' },
  'build.failed': { priority: 'error', source: 'watcher', summary: 'the build failed (the log tail is in error=); not retried until a newer commit' },
  'vulnerabilities.passed': { priority: 'info', source: 'watcher', summary: 'the vulnerability gate found nothing new at or above minSeverity in the built system (new= fixed= allowed= counts)' },
  'vulnerabilities.fixed': { priority: 'info', source: 'watcher', summary: 'the built system no longer has vulnerabilities the live system has: this commit fixes them (cves=)' },
  'vulnerabilities.refused': { priority: 'warning', source: 'watcher', summary: 'the built system brings in vulnerabilities the live system does not have (cves=); not deployed, not retried until a newer commit or retry' },
  'vulnerabilities.warned': { priority: 'warning', source: 'watcher', summary: 'the built system brings in new vulnerabilities (cves=); deployed anyway (gates.vulnerabilities.onNew = warn)' },
  'vulnerabilities.unreadable': { priority: 'error', source: 'watcher', summary: 'a vulnix scan ran but its report cannot be read (not JSON, not its shape, too large); the system is refused whatever on_error says, not retried until a newer commit or retry' },
  'vulnerabilities.scan_failed': { priority: 'error', source: 'watcher', summary: 'a vulnix scan failed or timed out; on_error=allow deploys anyway, on_error=refuse tries again after a back-off' },
  'gcroots.pruned': { priority: 'debug', source: 'watcher', summary: 'old GC roots removed, keeping build.keepGcRoots' },
  'deploy.requested': { priority: 'info', source: 'watcher', summary: 'a signed deploy request was sent to the executor' },
  'deploy.outcome': { priority: 'info', source: 'watcher', summary: "the executor's answer to a deploy request (outcome=)" },
  'deploy.refused': { priority: 'warning', source: 'watcher', summary: 'the executor refused the deploy request (code=)' },
  'poll.paused': { priority: 'info', source: 'watcher', summary: 'deployments are paused; the new head is not built until they resume (logged once per head)' },
  'poll.retry_requested': { priority: 'info', source: 'watcher', summary: "an operator's retry cleared the watcher's memory of a commit; it may be built again" },
  'build.stopped': { priority: 'info', source: 'watcher', summary: 'a running build was stopped (shutdown); its out-link removed, the commit is built again later' },
  'deploy.unanswered': { priority: 'warning', source: 'watcher', summary: 'the deploy request got no answer (connection lost or timeout); the head is tried again' },
  'report.refused': { priority: 'error', source: 'watcher', summary: "the executor refused the watcher's state report (code=): status shows a stale or no watcher state. Logged once until a report is accepted again" },
  'watcher.error': { priority: 'error', source: 'watcher', summary: 'an unexpected error in the poll cycle; the watcher backs off and keeps running' },
  // --- generic
  'command.run': { priority: 'debug', source: 'any', summary: 'an external command is about to run (argv=)' },
  'command.done': { priority: 'debug', source: 'any', summary: 'an external command finished (exit=, ms=)' },
} as const satisfies Record<string, EventSpec>;

export type EventName = keyof typeof EVENTS;

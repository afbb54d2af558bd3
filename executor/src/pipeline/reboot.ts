/**
 * Deployments that need a reboot (issue 12, docs/executor.md "Reboots"):
 *
 *   detect (kernel/initrd/kernel-modules differ from the booted system's, or activation exit 100)
 *     reboot.mode never  → today's path: activate with test, verify, commit; "reboot required" shown
 *                          (exit 100: reboot-required, nothing activated)
 *     reboot.mode window → outside the window: reboot-pending (nothing changed; waits for the window
 *                          or pullnix-ctl reboot-now; a newer deploy supersedes it)
 *                          inside: awaiting-boot (trial boot) → systemctl reboot
 *   after the boot (recovery on start):
 *     the new system booted → verifying → committing → succeeded
 *                           ↘ fail → fallback-reboot (recorded before rebooting, once) → rolled-back
 *     the previous system booted (the one-shot was used by a power cut or a hang) → rolled-back
 *
 * The trial boot never moves the boot default before the new system is verified: the new system
 * gets a profile generation (so the bootloader has an entry for it), the profile goes back to the
 * previous generation and the previous system's `switch-to-configuration boot` keeps it the
 * default, then the new entry is made the next boot once (bootctl set-oneshot, grub-reboot).
 * With bootloader none there is no boot-once: the new system is the default for the trial and
 * only the fallback reboot protects.
 */
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { describeFailure, type Config, type DeploymentRecord, type RebootInfo, type RebootReason } from '@pullnix/shared';
import { isProblem, type BootloaderTable } from '../commands/bootloader.ts';
import { grub } from '../commands/grub.ts';
import { systemdBoot } from '../commands/systemd-boot.ts';
import { failedUnits, waitForBoot } from '../commands/systemctl.ts';
import { generationSystem, profileGeneration, setProfile, switchGeneration } from '../commands/nix-env.ts';
import { installBootEntry } from '../commands/switch-to-configuration.ts';
import { reboot } from '../commands/systemctl.ts';
import { runChecks } from '../verify/index.ts';
import { currentBootId, liveSystem, type PipelineContext } from './context.ts';
import { failure, restoreBootDefault, rollBack, type Deployment } from './deployment.ts';
import { inWindow, nextWindowOpening } from './window.ts';
import { retryMachineFaults } from './machine.ts';

/** The parts of a system that take effect only at boot (system.autoUpgrade's allowReboot rule). */
const BOOT_PARTS: readonly RebootReason[] = ['kernel', 'initrd', 'kernel-modules'];

/** The resolved system the machine booted (`readlink -f /run/booted-system`); null when unknown. */
export function bootedSystem(config: Config): string | null {
  return resolved(config.paths.bootedSystem);
}

/**
 * Which boot parts of `toplevel` differ from the booted system's: [] when none does, or when the
 * booted system is unknown (nothing to compare with; the activation's exit 100 still counts).
 */
export function rebootReasons(config: Config, toplevel: string): RebootReason[] {
  const booted = bootedSystem(config);
  if (booted === null) return [];
  return BOOT_PARTS.filter((part) => resolved(join(toplevel, part)) !== resolved(join(booted, part)));
}

function resolved(path: string): string | null {
  try {
    return realpathSync(path);
  } catch {
    return null;
  }
}

/** The record's reboot field for a system that needs one. */
export function rebootNeeded(config: Config, reasons: RebootReason[]): RebootInfo {
  return { needed: true, reasons, mode: config.reboot.mode };
}

/**
 * reboot.mode window: boot the new system on trial now when the window is open, else wait for it
 * (reboot-pending). Returns the record, unfinished either way.
 */
export async function planReboot(ctx: PipelineContext, d: Deployment): Promise<DeploymentRecord> {
  const now = new Date(ctx.clock.now());
  if (inWindow(ctx.config.reboot.window, now)) return prepareTrialBoot(ctx, d, 'window');
  return pend(ctx, d);
}

/** Outside the window: nothing changes; the executor's timer (or reboot-now) picks it up. */
export function pend(ctx: PipelineContext, d: Deployment): DeploymentRecord {
  const { window } = ctx.config.reboot;
  const until = nextWindowOpening(window, new Date(ctx.clock.now()));
  d.mark('reboot-pending', `until ${window.start}`, (r) => {
    r.reboot = { ...(r.reboot ?? rebootNeeded(ctx.config, [])), pendingUntil: until.toISOString(), windowStart: window.start };
  });
  d.log.event('deploy.reboot_pending', { until: until.toISOString(), window: `${window.start}-${window.end}` });
  return d.record;
}

/**
 * The trial boot, up to (not including) the reboot: recorded as awaiting-boot with the previous
 * boot default BEFORE anything changes, then the new system is made bootable once. The reboot
 * itself is requestReboot's, after the answer is written.
 */
export async function prepareTrialBoot(ctx: PipelineContext, d: Deployment, trigger: string): Promise<DeploymentRecord> {
  const { config } = ctx;
  const profile = config.paths.systemProfile;
  const table = bootloaderTable(config);
  // The trial starts now, maybe hours after the deployment was asked for: what the machine runs and
  // boots now is what the fallback must restore (an operator's nixos-rebuild in between counts).
  const previousGeneration = profileGeneration(profile);
  const previousDefault = previousGeneration === null ? null : generationSystem(profile, previousGeneration);
  const failedBefore = await failedUnits(ctx.runner);
  d.mark('awaiting-boot', 'preparing the trial boot', (r) => {
    r.previous = { system: liveSystem(config), generation: previousGeneration, failedUnits: failedBefore };
    r.reboot = {
      ...(r.reboot ?? rebootNeeded(config, [])),
      pendingUntil: null,
      previousGeneration,
      previousDefault: previousDefault ?? r.previous.system,
      generation: null,
      oneShotEntry: null,
      fromBootId: currentBootId(config),
      trigger,
    };
  });
  const undo = (why: string): Promise<DeploymentRecord> => {
    d.log.event('deploy.reboot_failed', { error: why });
    return undoTrial(ctx, d, `the trial boot could not be prepared: ${why}; nothing was activated, the boot default is the previous system`, 'reboot-required');
  };
  const refused = table?.refuse(config) ?? null;
  if (refused !== null) return undo(refused);
  const timeoutMs = config.activationTimeoutSec * 1000;
  const set = await retryMachineFaults(ctx.clock, d.log, 'nix-env --set', () => setProfile(ctx.runner, profile, d.record.toplevel));
  if (set.exitCode !== 0) return undo(`nix-env --set ${d.record.toplevel}: ${describeFailure(set)}`);
  const generation = profileGeneration(profile);
  if (generation === null) return undo(`${profile} is not a profile generation after nix-env --set`);
  if (table === null) {
    // No boot-once: the new system is the default for the trial; the fallback reboot restores the
    // previous one. Recorded before it becomes bootable: a power cut from here on boots a trial
    // that recovery knows of.
    d.mark('awaiting-boot', `${RECORDED}next boot: ${d.record.toplevel} (bootloader none: the boot default)`, (r) => (r.reboot = { ...r.reboot!, generation, oneShotEntry: null }));
    const boot = await installBootEntry(ctx.runner, d.record.toplevel, timeoutMs);
    if (boot.exitCode !== 0) return undo(`${d.record.toplevel}/bin/switch-to-configuration boot: ${describeFailure(boot)}`);
    d.mark('awaiting-boot', `${READY}the boot default is ${d.record.toplevel}`);
    d.log.event('deploy.trial_boot', { toplevel: d.record.toplevel, generation, entry: null, previous_generation: previousGeneration, bootloader: config.reboot.bootloader, trigger });
    return d.record;
  }
  // Entries for every generation (the new one included), the previous one the default.
  const restored = await restoreBootDefault(ctx, d);
  if (restored !== null) return undo(restored);
  const bootDefault = d.record.reboot?.previousDefault ?? null;
  const before = await table.nextBoot(ctx.runner, config);
  if (isProblem(before)) return undo(`what boots next cannot be read: ${before.problem}`);
  if (bootDefault !== null && before.system !== bootDefault) {
    const override =
      table.name === 'systemd-boot'
        ? 'an EFI variable LoaderEntryDefault (bootctl set-default, or the d key in the boot menu) or a pending one-shot overrides loader.conf, so the trial system would never stop being the default boot or pullnix could not move it; clear it with `bootctl set-default ""`'
        : 'GRUB has a pending next_entry or a default other than the first entry; clear it with `grub-editenv /boot/grub/grubenv unset next_entry`';
    return undo(`the entry that boots next is ${before.entry} (${before.system ?? 'not a NixOS system'}), not the boot default ${bootDefault}: ${override}`);
  }
  const found = await table.findEntry(ctx.runner, config, d.record.toplevel);
  if (isProblem(found)) return undo(found.problem);
  // Recorded before it is made bootable: a power cut after the one-shot is in place boots a trial recovery knows of.
  d.mark('awaiting-boot', `${RECORDED}next boot once: ${found.entry}`, (r) => (r.reboot = { ...r.reboot!, generation, oneShotEntry: found.entry }));
  const once = await table.setOnce(ctx.runner, config, found.entry);
  if (once.exitCode !== 0) return undo(`${table.setOnceCommand} ${found.entry}: ${describeFailure(once)}`);
  const after = await table.nextBoot(ctx.runner, config);
  if (isProblem(after)) return undo(`what boots next cannot be read back after ${table.setOnceCommand}: ${after.problem}`);
  if (after.entry !== found.entry) return undo(`after ${table.setOnceCommand} ${found.entry} the entry that boots next is ${after.entry} (${after.system ?? 'not a NixOS system'}), not the trial entry`);
  d.mark('awaiting-boot', `${READY}next boot once: ${found.entry} (read back)`);
  d.log.event('deploy.trial_boot', { toplevel: d.record.toplevel, generation, entry: found.entry, previous_generation: previousGeneration, bootloader: config.reboot.bootloader, trigger });
  return d.record;
}

/** The table of reboot.bootloader; null for none (no boot-once). */
export function bootloaderTable(config: { reboot: { bootloader: string } }): BootloaderTable | null {
  return config.reboot.bootloader === 'grub' ? grub : config.reboot.bootloader === 'systemd-boot' ? systemdBoot : null;
}

/** Phase details of awaiting-boot: the trial entry recorded (before it is made bootable), and the trial ready (bootable, read back). */
const RECORDED = 'recorded: ';
const READY = 'ready: ';

/**
 * Whether the trial boot got as far as the reboot (its one-shot entry or default in place and read
 * back). Records written before the "ready" mark existed count as prepared once their generation was.
 */
function prepared(r: DeploymentRecord): boolean {
  const details = r.phases.filter((p) => p.phase === 'awaiting-boot').map((p) => p.detail ?? '');
  if (details.some((t) => t.startsWith(READY))) return true;
  return typeof r.reboot?.generation === 'number' && !details.some((t) => t.startsWith(RECORDED));
}

/**
 * `systemctl reboot` for a record left in awaiting-boot or fallback-reboot. The machine goes down
 * (and this executor with it); when the command fails, the deployment is resolved here: the trial
 * is undone (reboot-required), or the fallback becomes a live rollback.
 */
export async function requestReboot(ctx: PipelineContext, d: Deployment): Promise<DeploymentRecord> {
  const reason = d.record.phase === 'fallback-reboot' ? 'fallback' : 'trial';
  d.log.event('deploy.rebooting', { reason, boot: currentBootId(ctx.config) });
  const r = await reboot(ctx.runner);
  if (r.exitCode === 0) return d.record;
  const why = `systemctl reboot: ${describeFailure(r)}`;
  d.log.event('deploy.reboot_failed', { error: why });
  if (reason === 'fallback') return rollBack(ctx, d, 'VERIFY_FAILED', `${d.record.phases.at(-1)?.detail ?? 'the trial system failed'}; the fallback reboot failed (${why}), so the previous system is re-activated live`, { profileMoved: false, activated: true });
  return undoTrial(ctx, d, `the machine did not reboot into the trial system (${why}); nothing was activated, the boot default is the previous system`, 'reboot-required');
}

/**
 * On start, a record in awaiting-boot: the trial boot happened (another boot id) or it did not.
 * The new system booted → verify it; the previous one → rolled back, no further reboot.
 */
export async function afterTrialBoot(ctx: PipelineContext, d: Deployment): Promise<DeploymentRecord> {
  const { config } = ctx;
  const r = d.record;
  const bootNow = currentBootId(config);
  const booted = bootedSystem(config);
  if (bootNow === null || bootNow === r.reboot?.fromBootId) {
    // The executor restarted before the machine did (a crash, or the reboot never came).
    return interruptedTrial(ctx, d, 'the executor stopped before the machine rebooted into the trial system');
  }
  const trial = booted === r.toplevel;
  d.log.event('deploy.trial_booted', { booted, trial, boot: bootNow });
  // GRUB clears next_entry itself only where save_env works; the trial boot is over either way.
  const table = bootloaderTable(config);
  if (table !== null && r.reboot?.oneShotEntry) {
    const cleared = await table.clear(ctx.runner, config);
    if (cleared.exitCode !== 0) d.log.event('deploy.reboot_failed', { error: `forgetting the one-shot entry after the trial boot: ${describeFailure(cleared)}` });
  }
  // What booted decides: the trial system booted is verified, whether or not its preparation was seen to finish.
  if (!trial && !prepared(r)) return interruptedTrial(ctx, d, `the machine restarted while the trial boot was being prepared; it booted ${booted ?? 'an unknown system'}`);
  if (!trial) return cameBackOnPrevious(ctx, d, booted, bootNow, 'the trial boot did not come up on the new system (the one-shot entry was used by another boot: a power cut, a hang, or a failed boot)');
  return verifyTrial(ctx, d, bootNow);
}

/** The trial system is booted: the full verification, then it becomes the default for good, or the fallback reboot. */
export async function verifyTrial(ctx: PipelineContext, d: Deployment, bootNow: string | null): Promise<DeploymentRecord> {
  const { config } = ctx;
  d.mark('verifying', 'after the trial boot', (r) => (r.reboot = { ...r.reboot!, trialBootId: bootNow }));
  // A unit that fails 20 s into the boot must be seen: verify once the boot has finished (bounded).
  const state = await waitForBoot(ctx.runner, config.verify.timeoutSec * 1000);
  d.log.event('deploy.boot_finished', { state: state ?? 'unknown' });
  d.log.event('deploy.verifying', { remote: config.repository.url, branch: config.repository.branch, timeout_s: config.verify.timeoutSec });
  const verified = await runChecks(ctx, d);
  d.record.checks = verified.checks;
  if (!verified.ok) {
    d.log.event('deploy.verify_failed', { checks: verified.failed.map((c) => c.name), error: verified.reason });
    return fallback(ctx, d, `the trial system failed its verification after the boot: ${verified.reason}`);
  }
  d.log.event('deploy.verified', { checks: verified.checks.map((c) => c.name), attempts: verified.checks.reduce((n, c) => n + c.attempts, 0) });
  d.mark('committing', 'the trial system becomes the boot default');
  const profile = config.paths.systemProfile;
  const generation = d.record.reboot?.generation ?? null;
  const step = await retryMachineFaults(ctx.clock, d.log, 'nix-env', () => (generation !== null && generationSystem(profile, generation) === d.record.toplevel ? switchGeneration(ctx.runner, profile, generation) : setProfile(ctx.runner, profile, d.record.toplevel)));
  if (step.exitCode !== 0) return fallback(ctx, d, `commit phase failed after verification: nix-env: ${describeFailure(step)}`);
  const boot = await installBootEntry(ctx.runner, d.record.toplevel, config.activationTimeoutSec * 1000);
  if (boot.exitCode !== 0) return fallback(ctx, d, `commit phase failed after verification: switch-to-configuration boot: ${describeFailure(boot)}`);
  const now = profileGeneration(profile);
  d.log.event('deploy.committed', { generation: now, profile });
  return d.finish('succeeded', null, (r) => (r.generation = now));
}

/**
 * The trial system failed: the previous system is (made) the boot default again, and the machine
 * reboots into it once. Recorded before the reboot, so a crash cannot loop; a second fallback
 * (the trial system came up again) re-activates the previous system live instead.
 */
async function fallback(ctx: PipelineContext, d: Deployment, reason: string): Promise<DeploymentRecord> {
  if (d.record.reboot?.fallbackFromBootId) {
    return rollBack(ctx, d, 'VERIFY_FAILED', `${reason}; the automatic fallback reboot was used already, so the previous system is re-activated live`, { profileMoved: true, activated: true });
  }
  const restored = await restoreBootDefault(ctx, d);
  if (restored !== null) {
    return rollBack(ctx, d, 'VERIFY_FAILED', `${reason}; restoring the previous boot default failed (${restored}), so the previous system is re-activated live`, { profileMoved: false, activated: true });
  }
  d.mark('fallback-reboot', reason.slice(0, 2000), (r) => (r.reboot = { ...r.reboot!, fallbackFromBootId: currentBootId(ctx.config) }));
  d.log.event('deploy.fallback_reboot', { reason, previous: d.record.reboot?.previousDefault ?? d.record.previous.system });
  return d.record;
}

/** On start, a record in fallback-reboot. */
export async function afterFallbackBoot(ctx: PipelineContext, d: Deployment): Promise<DeploymentRecord> {
  const r = d.record;
  const bootNow = currentBootId(ctx.config);
  const booted = bootedSystem(ctx.config);
  const reason = r.phases.at(-1)?.detail ?? 'the trial system failed after its boot';
  if (bootNow === null || bootNow === r.reboot?.fallbackFromBootId || booted === r.toplevel) {
    // No reboot happened, or the trial system came up again: no second automatic reboot.
    return rollBack(ctx, d, 'VERIFY_FAILED', `${reason}; ${booted === r.toplevel ? 'the fallback boot came up on the trial system again' : 'the fallback reboot did not happen'}, so the previous system is re-activated live`, { profileMoved: false, activated: true });
  }
  d.log.event('deploy.trial_booted', { booted, trial: false, boot: bootNow });
  return d.finish('rolled-back', failure('VERIFY_FAILED', `${reason}; rebooted into the previous system ${booted ?? '(unknown)'} (boot ${bootNow})`));
}

/** On start, a record in verifying/committing after its trial boot. */
export async function afterTrialVerifyInterrupted(ctx: PipelineContext, d: Deployment): Promise<DeploymentRecord> {
  const bootNow = currentBootId(ctx.config);
  const booted = bootedSystem(ctx.config);
  if (booted === d.record.toplevel) return verifyTrial(ctx, d, bootNow);
  return cameBackOnPrevious(ctx, d, booted, bootNow, `the machine restarted while the trial system was being ${d.record.phase === 'committing' ? 'made the default' : 'verified'}, and booted the previous system`);
}

async function cameBackOnPrevious(ctx: PipelineContext, d: Deployment, booted: string | null, bootNow: string | null, why: string): Promise<DeploymentRecord> {
  // With systemd-boot or GRUB the default never moved; with bootloader none (or a half-done commit) it may have.
  const restored = profileGeneration(ctx.config.paths.systemProfile) === d.record.previous.generation ? null : await restoreBootDefault(ctx, d);
  const message = `${why}; running ${booted ?? 'an unknown system'} (boot ${bootNow ?? 'unknown'})`;
  if (restored !== null) return d.finish('rollback-failed', failure('ROLLBACK_FAILED', `${message}; restoring the boot default failed: ${restored}`));
  return d.finish('rolled-back', failure('VERIFY_FAILED', message));
}

/** The trial never happened: the boot default is the previous system again, nothing of it is live. */
function interruptedTrial(ctx: PipelineContext, d: Deployment, why: string): Promise<DeploymentRecord> {
  return undoTrial(ctx, d, `${why}; the boot default is the previous system again`, 'interrupted');
}

/**
 * The trial boot will not happen: the previous system is the boot default again and the one-shot
 * entry is forgotten (else the next boot, whenever it comes, would start the unverified system).
 */
async function undoTrial(ctx: PipelineContext, d: Deployment, message: string, outcome: 'reboot-required' | 'interrupted'): Promise<DeploymentRecord> {
  const restored = await restoreBootDefault(ctx, d);
  const table = bootloaderTable(ctx.config);
  const cleared = table === null ? null : await table.clear(ctx.runner, ctx.config);
  const problems = [restored, cleared && cleared.exitCode !== 0 ? `forgetting the one-shot entry: ${describeFailure(cleared)}` : null].filter((p) => p !== null);
  if (problems.length > 0) return d.finish('rollback-failed', failure('ROLLBACK_FAILED', `${message}; restoring the boot default failed: ${problems.join('; ')}`));
  return d.finish(outcome, failure(outcome === 'interrupted' ? 'INTERRUPTED' : 'REBOOT_REQUIRED', message));
}

/**
 * Reboot-aware deployments (issue 12) over the fake machine: detection, reboot.mode never and
 * window, the trial boot, verification after the boot, the fallback reboot, and recovery of every
 * phase; plus the window arithmetic (crossing midnight, daylight saving).
 */
process.env.TZ = 'UTC';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import type { DeploymentRecord } from '@pullnix/shared';
import { inWindow, nextWindowOpening } from '../src/pipeline/window.ts';
import { COMMIT_A, COMMIT_B } from './lib/fake-system.ts';
import { harness, type Harness } from './lib/harness.ts';

let h: Harness;
afterEach(() => h?.sys.cleanup());

/** The fake clock starts at 2026-01-01T00:00Z (UTC here): a window around it, and one far from it. */
const OPEN = { mode: 'window', window: { start: '23:00', end: '02:00' }, bootloader: 'systemd-boot' };
const CLOSED = { mode: 'window', window: { start: '03:00', end: '05:00' }, bootloader: 'systemd-boot' };

function phases(r: DeploymentRecord): string[] {
  return r.phases.map((p) => p.phase);
}

/** The machine reboots (what systemctl reboot or a power cut leads to), and a fresh executor starts and recovers. */
async function bootAndRecover(h: Harness): Promise<DeploymentRecord> {
  h.sys.bootMachine();
  const e = h.reopen();
  await e.recover();
  await e.idle();
  return e.history.get(e.history.maxId)!;
}

describe('reboot detection', () => {
  it('reboot.mode never, new kernel: activated with test, verified, committed, succeeded, and "reboot required" recorded and shown', async () => {
    h = harness();
    const next = h.sys.makeSystem('next', { kernel: '6.12' });
    const r = await h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
    await h.executor.idle();
    assert.equal(r.outcome, 'succeeded', JSON.stringify(r));
    assert.deepEqual(r.reboot, { needed: true, reasons: ['kernel', 'initrd', 'kernel-modules'], mode: 'never' });
    assert.deepEqual(phases(r), ['accepted', 'activating', 'verifying', 'committing', 'finished']);
    assert.equal(h.sys.rebootRequests, 0, 'mode never never reboots');
    assert.ok(h.log.names().includes('deploy.reboot_needed'));
    assert.deepEqual(h.executor.status().deployed?.rebootRequired, ['kernel', 'initrd', 'kernel-modules']);
  });

  it('same kernel: no reboot recorded', async () => {
    h = harness();
    const next = h.sys.makeSystem('next');
    const r = await h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
    assert.equal(r.outcome, 'succeeded');
    assert.equal(r.reboot, undefined);
    assert.deepEqual(h.executor.status().deployed?.rebootRequired, []);
  });

  it('reboot.mode never, exit 100: reboot-required as before, nothing activated', async () => {
    h = harness();
    const next = h.sys.makeSystem('next');
    h.sys.stcExit.set(`${next} test`, 100);
    const r = await h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
    assert.equal(r.outcome, 'reboot-required');
    assert.equal(h.sys.rebootRequests, 0);
  });
});

describe('trial boot (reboot.mode window)', () => {
  it('inside the window: nothing activated live, the new system is the next boot once, the previous stays the default; after the boot it is verified and becomes the default', async () => {
    h = harness({ reboot: OPEN });
    const next = h.sys.makeSystem('next', { kernel: '6.12' });
    const r = await h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
    await h.executor.idle();
    assert.equal(r.outcome, null);
    assert.equal(r.phase, 'awaiting-boot');
    assert.equal(h.sys.activations().filter((a) => a.endsWith(' test')).length, 0, 'nothing activated live');
    assert.equal(h.sys.live(), h.old);
    assert.equal(h.sys.bootDefault, h.old, 'the previous system stays the boot default');
    assert.equal(h.sys.profileTarget(), h.old);
    assert.equal(h.sys.oneShot, 'nixos-generation-2.conf');
    assert.equal(r.reboot?.previousGeneration, 1);
    assert.equal(r.reboot?.generation, 2);
    assert.equal(h.sys.rebootRequests, 1, 'systemctl reboot after the answer');

    const after = await bootAndRecover(h);
    assert.equal(after.outcome, 'succeeded', JSON.stringify(after));
    assert.equal(h.sys.bootDefault, next, 'the verified system is the boot default now');
    assert.equal(h.sys.profileTarget(), next);
    assert.equal(after.generation, 2);
    assert.ok(after.reboot?.trialBootId);
    assert.equal(h.sys.rebootRequests, 1);
    assert.deepEqual(phases(after), ['accepted', 'awaiting-boot', 'awaiting-boot', 'awaiting-boot', 'verifying', 'committing', 'finished']);
  });

  it('the trial system fails after the boot: fallback reboot recorded before it is asked for, back on the previous system rolled-back, known bad, no third reboot', async () => {
    h = harness({ reboot: OPEN });
    const next = h.sys.makeSystem('next', { kernel: '6.12' });
    h.sys.networkBreakers.add(next);
    await h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
    await h.executor.idle();
    const mid = await bootAndRecover(h);
    assert.equal(mid.outcome, null);
    assert.equal(mid.phase, 'fallback-reboot');
    assert.ok(mid.reboot?.fallbackFromBootId);
    assert.equal(h.sys.rebootRequests, 2, 'one fallback reboot');
    assert.equal(h.sys.bootDefault, h.old);
    const end = await bootAndRecover(h);
    assert.equal(end.outcome, 'rolled-back', JSON.stringify(end));
    assert.match(end.error!.message, /rebooted into the previous system .* \(boot boot-/);
    assert.equal(h.sys.live(), h.old);
    assert.equal(h.sys.bootDefault, h.old);
    assert.equal(h.sys.rebootRequests, 2, 'no third reboot');
    assert.ok(h.executor.state.state.knownBad[COMMIT_A]);
  });

  it('exit 100 inside the window: handled as a reboot deployment (trial boot, verified after the boot)', async () => {
    h = harness({ reboot: OPEN });
    const next = h.sys.makeSystem('next');
    h.sys.stcExit.set(`${next} test`, 100);
    const r = await h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
    await h.executor.idle();
    assert.equal(r.phase, 'awaiting-boot');
    assert.deepEqual(r.reboot?.reasons, ['init-interface']);
    assert.equal(r.activationExit, 100);
    const after = await bootAndRecover(h);
    assert.equal(after.outcome, 'succeeded');
  });

  it('a power cut while the trial system boots (one-shot used, nothing recorded): the previous system, rolled-back, no extra reboot', async () => {
    h = harness({ reboot: OPEN });
    const next = h.sys.makeSystem('next', { kernel: '6.12' });
    await h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
    await h.executor.idle();
    h.sys.bootMachine(); // the trial boot starts, the one-shot is used ... and the power goes
    const end = await bootAndRecover(h);
    assert.equal(end.outcome, 'rolled-back');
    assert.match(end.error!.message, /did not come up on the new system/);
    assert.equal(h.sys.live(), h.old);
    assert.equal(h.sys.bootDefault, h.old);
    assert.equal(h.sys.rebootRequests, 1);
    assert.ok(h.executor.state.state.knownBad[COMMIT_A]);
  });

  it('a power cut while the trial system is verified: the previous system boots, rolled-back', async () => {
    h = harness({ reboot: OPEN });
    const next = h.sys.makeSystem('next', { kernel: '6.12' });
    await h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
    await h.executor.idle();
    h.sys.bootMachine();
    // Verification hangs (git never answers) and the power goes meanwhile.
    h.sys.hooks.set('git', () => new Promise(() => {}));
    const e = h.reopen();
    void e.recover();
    while (e.history.get(1)?.phase !== 'verifying') await new Promise((r) => setImmediate(r));
    h.sys.hooks.delete('git');
    const end = await bootAndRecover(h);
    assert.equal(end.outcome, 'rolled-back', JSON.stringify(end));
    assert.match(end.error!.message, /while the trial system was being verified/);
    assert.equal(h.sys.bootDefault, h.old);
    assert.equal(h.sys.rebootRequests, 1);
  });

  it('the executor restarts before the machine rebooted: the trial is undone (default and one-shot), interrupted', async () => {
    h = harness({ reboot: OPEN });
    const next = h.sys.makeSystem('next', { kernel: '6.12' });
    await h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
    await h.executor.idle();
    const e = h.reopen();
    await e.recover();
    await e.idle();
    const r = e.history.get(1)!;
    assert.equal(r.outcome, 'interrupted');
    assert.equal(h.sys.oneShot, null);
    assert.equal(h.sys.bootDefault, h.old);
    assert.equal(h.sys.profileTarget(), h.old);
  });

  it('GRUB: grub-reboot names the new generation; a trial that will not happen forgets it (grub-editenv unset next_entry)', async () => {
    h = harness({ reboot: { ...OPEN, bootloader: 'grub' } });
    const next = h.sys.makeSystem('next', { kernel: '6.12' });
    await h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
    await h.executor.idle();
    assert.deepEqual(h.sys.programCalls('grub-reboot'), [['grub-reboot', `--boot-directory=${h.sys.dir}/boot`, 'NixOS - All configurations>NixOS - Configuration 2 (2026-01-01 - 26.05)']]);
    assert.equal(h.sys.bootDefault, h.old);
    const e = h.reopen(); // the executor restarts before the machine does
    await e.recover();
    await e.idle();
    assert.equal(e.history.get(1)!.outcome, 'interrupted');
    assert.deepEqual(h.sys.programCalls('grub-editenv').filter((c) => c[2] === 'unset'), [['grub-editenv', h.sys.loader.grubEnv, 'unset', 'next_entry']]);
    assert.equal(h.sys.oneShot, null);
  });

  it('bootloader none: the new system is the default for the trial; a failure reboots back and restores the default', async () => {
    h = harness({ reboot: { ...OPEN, bootloader: 'none' } });
    const next = h.sys.makeSystem('next', { kernel: '6.12' });
    h.sys.networkBreakers.add(next);
    await h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
    await h.executor.idle();
    assert.equal(h.sys.bootDefault, next);
    assert.equal(h.sys.oneShot, null);
    const mid = await bootAndRecover(h);
    assert.equal(mid.phase, 'fallback-reboot');
    assert.equal(h.sys.bootDefault, h.old, 'restored before the fallback reboot');
    const end = await bootAndRecover(h);
    assert.equal(end.outcome, 'rolled-back');
    assert.equal(h.sys.live(), h.old);
  });
});

describe('the trial entry is found by what it boots (issue 22)', () => {
  it('systemd-boot with content-hash entry names (nixpkgs 26.05): the trial entry is the one whose options boot the new system; it boots, is verified, succeeds', async () => {
    h = harness({ reboot: OPEN }, (sys) => (sys.loader.naming = 'content-hash'));
    const next = h.sys.makeSystem('next', { kernel: '6.12' });
    const r = await h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
    await h.executor.idle();
    assert.equal(r.phase, 'awaiting-boot', JSON.stringify(r));
    const trial = h.sys.loader.entries.find((e) => e.system === next)!;
    assert.match(trial.id, /^nixos-[0-9a-f]{64}\.conf$/);
    assert.equal(h.sys.oneShot, trial.id);
    assert.equal(r.reboot?.oneShotEntry, trial.id);
    const after = await bootAndRecover(h);
    assert.equal(after.outcome, 'succeeded', JSON.stringify(after));
    assert.equal(h.sys.bootDefault, next);
  });

  it('GRUB with a custom distroName: the trial entry is the submenu entry whose linux line has systemConfig=<new system>, by its exact title path; it boots, succeeds', async () => {
    h = harness({ reboot: { ...OPEN, bootloader: 'grub' } }, (sys) => {
      sys.loader.loader = 'grub';
      sys.loader.distroName = 'Edge>OS';
    });
    const next = h.sys.makeSystem('next', { kernel: '6.12' });
    const r = await h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
    await h.executor.idle();
    assert.equal(r.phase, 'awaiting-boot', JSON.stringify(r));
    assert.equal(h.sys.oneShot, 'Edge>>OS - All configurations>Edge>>OS - Configuration 2 (2026-01-01 - 26.05)');
    const after = await bootAndRecover(h);
    assert.equal(after.outcome, 'succeeded', JSON.stringify(after));
    assert.equal(h.sys.bootDefault, next);
  });

  it('no entry boots the new system: no reboot, reboot-required with the reason; the boot default is the previous system', async () => {
    h = harness({ reboot: OPEN });
    const next = h.sys.makeSystem('next', { kernel: '6.12' });
    // The bootloader installer leaves the new generation out (e.g. its boot.json is missing).
    h.sys.hooks.set('bootctl', (argv) => {
      if (argv[1] === 'list') h.sys.loader.entries = h.sys.loader.entries.filter((e) => e.system !== next);
      return {};
    });
    const r = await h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
    await h.executor.idle();
    assert.equal(r.outcome, 'reboot-required', JSON.stringify(r));
    assert.match(r.error!.message, /no systemd-boot entry boots .*next/);
    assert.equal(h.sys.rebootRequests, 0);
    assert.equal(h.sys.oneShot, null);
    assert.equal(h.sys.bootDefault, h.old);
  });

  it('systemd-boot ignores the one-shot (read back shows another entry next): no reboot, reboot-required', async () => {
    h = harness({ reboot: OPEN });
    const next = h.sys.makeSystem('next', { kernel: '6.12' });
    // set-oneshot exits 0 but what it wrote names no entry (bootctl-set-efivar.c looks nothing up).
    const real = h.sys.loader.bootctl.bind(h.sys.loader);
    h.sys.loader.bootctl = (argv) => (argv[1] === 'set-oneshot' && argv[2] !== '' ? ((h.sys.loader.oneShot = 'nixos-generation-99.conf'), { exitCode: 0 }) : real(argv));
    const r = await h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
    await h.executor.idle();
    assert.equal(r.outcome, 'reboot-required', JSON.stringify(r));
    assert.match(r.error!.message, /after bootctl set-oneshot .* the entry that boots next is .*not the trial entry/);
    assert.equal(h.sys.rebootRequests, 0);
  });

  it('an EFI LoaderEntryDefault overrides loader.conf: detected before anything boots, reboot-required with the reason and the fix', async () => {
    h = harness({ reboot: OPEN });
    h.sys.loader.loaderEntryDefault = h.sys.loader.entries[0]!.id;
    const other = h.sys.makeSystem('admin-choice');
    h.sys.boot(other); // generation 2, and the operator pinned generation 1 with bootctl set-default
    h.sys.loader.loaderEntryDefault = 'nixos-generation-1.conf';
    const next = h.sys.makeSystem('next', { kernel: '6.12' });
    const r = await h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
    await h.executor.idle();
    assert.equal(r.outcome, 'reboot-required', JSON.stringify(r));
    assert.match(r.error!.message, /LoaderEntryDefault/);
    assert.match(r.error!.message, /bootctl set-default ""/);
    assert.equal(h.sys.rebootRequests, 0);
  });

  it('GRUB where save_env fails: pullnix clears next_entry once the trial boot is seen, so the fallback boot is the previous system', async () => {
    h = harness({ reboot: { ...OPEN, bootloader: 'grub' } }, (sys) => {
      sys.loader.loader = 'grub';
      sys.loader.saveEnvFails = true;
    });
    const next = h.sys.makeSystem('next', { kernel: '6.12' });
    h.sys.networkBreakers.add(next);
    await h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
    await h.executor.idle();
    const mid = await bootAndRecover(h);
    assert.equal(mid.phase, 'fallback-reboot', JSON.stringify(mid));
    assert.equal(h.sys.oneShot, null, 'next_entry cleared by pullnix after the trial boot');
    const end = await bootAndRecover(h);
    assert.equal(end.outcome, 'rolled-back', JSON.stringify(end));
    assert.equal(h.sys.live(), h.old, 'the fallback boot came up on the previous system');
  });

  it('GRUB whose environment block is on ZFS (or btrfs, LVM, mdraid): window mode refused before anything changes, reboot-required with the reason', async () => {
    h = harness({ reboot: { ...OPEN, bootloader: 'grub' } }, (sys) => {
      sys.loader.loader = 'grub';
      writeFileSync(join(sys.dir, 'mountinfo'), `22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda2 rw\n40 22 0:40 / ${sys.dir}/boot rw,relatime shared:9 - zfs rpool/boot rw,xattr\n`);
    });
    const next = h.sys.makeSystem('next', { kernel: '6.12' });
    const r = await h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
    await h.executor.idle();
    assert.equal(r.outcome, 'reboot-required', JSON.stringify(r));
    assert.match(r.error!.message, /GRUB cannot save its environment block there .* is on zfs/);
    assert.equal(h.sys.programCalls('grub-reboot').length, 0);
    assert.equal(h.sys.profileTarget(), h.old);
    assert.equal(h.sys.rebootRequests, 0);
  });
});

describe('the trial state machine (issue 22, items 9-11)', () => {
  it('item 9: a power cut right after the one-shot is in place boots the trial system; recovery sees it booted and verifies it (succeeded), it is not left running unverified', async () => {
    h = harness({ reboot: OPEN });
    const next = h.sys.makeSystem('next', { kernel: '6.12' });
    const real = h.sys.loader.bootctl.bind(h.sys.loader);
    h.sys.hooks.set('bootctl', (argv) => {
      if (argv[1] !== 'set-oneshot' || argv[2] === '') return {};
      real(argv); // the one-shot is written ... and the power goes before anything else
      return new Promise(() => {});
    });
    void h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
    while (h.sys.oneShot === null) await new Promise((r) => setImmediate(r));
    h.sys.hooks.delete('bootctl');
    const end = await bootAndRecover(h);
    assert.equal(h.sys.live(), next);
    assert.equal(end.outcome, 'succeeded', JSON.stringify(end));
    assert.equal(h.sys.bootDefault, next);
  });

  it('item 10: a deployment that waited for its window restores the boot default current when the trial started, not the one of its request', async () => {
    h = harness({ reboot: CLOSED });
    const next = h.sys.makeSystem('next', { kernel: '6.12' });
    h.sys.networkBreakers.add(next);
    await h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
    await h.executor.idle();
    // Hours later an administrator runs nixos-rebuild switch: a new generation, live and the default.
    const admin = h.sys.makeSystem('admin');
    h.sys.boot(admin);
    await h.executor.rebootNow('alice');
    await h.executor.idle();
    const mid = await bootAndRecover(h);
    assert.equal(mid.phase, 'fallback-reboot', JSON.stringify(mid));
    assert.equal(h.sys.bootDefault, admin, "the administrator's system is the default again, not the one before it");
    const end = await bootAndRecover(h);
    assert.equal(end.outcome, 'rolled-back', JSON.stringify(end));
    assert.equal(h.sys.live(), admin);
  });

  it('item 11: after the trial boot, verification waits for the boot to finish (systemctl is-system-running --wait) before the first check', async () => {
    h = harness({ reboot: OPEN });
    const next = h.sys.makeSystem('next', { kernel: '6.12' });
    await h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
    await h.executor.idle();
    const before = h.sys.calls.length;
    const after = await bootAndRecover(h);
    assert.equal(after.outcome, 'succeeded');
    const calls = h.sys.calls.slice(before).map((c) => c.join(' '));
    const wait = calls.findIndex((c) => c === 'systemctl is-system-running --wait');
    const git = calls.findIndex((c) => c.startsWith('git '));
    assert.ok(wait !== -1 && git !== -1 && wait < git, calls.join('\n'));
    assert.ok(h.log.names().includes('deploy.boot_finished'));
  });
});

describe('outside the window', () => {
  it('waits (nothing changed, status says until when), a newer deploy supersedes it, reboot-now boots the waiting one on trial', async () => {
    h = harness({ reboot: CLOSED });
    const next = h.sys.makeSystem('next', { kernel: '6.12' });
    const r = await h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
    await h.executor.idle();
    assert.equal(r.phase, 'reboot-pending');
    assert.equal(r.reboot?.pendingUntil, '2026-01-01T03:00:00.000Z');
    assert.equal(r.reboot?.windowStart, '03:00');
    assert.equal(h.sys.rebootRequests, 0);
    assert.equal(h.sys.live(), h.old);
    assert.equal(h.sys.profileTarget(), h.old);
    assert.equal(h.executor.status().current?.phase, 'reboot-pending');
    // The same commit again: the waiting deployment is the answer.
    assert.equal((await h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher')).id, r.id);

    const newer = h.sys.makeSystem('newer', { kernel: '6.13' });
    const r2 = await h.executor.deploy({ commit: COMMIT_B, toplevel: newer }, 'watcher');
    await h.executor.idle();
    assert.equal(h.executor.history.get(r.id)!.outcome, 'superseded');
    assert.equal(h.executor.state.state.knownBad[COMMIT_A], undefined, 'superseded is not a failure');
    assert.equal(r2.phase, 'reboot-pending');

    const now = await h.executor.rebootNow('alice');
    await h.executor.idle();
    assert.equal(now.phase, 'awaiting-boot');
    assert.equal(now.reboot?.trigger, 'alice');
    assert.equal(h.sys.rebootRequests, 1);
    assert.ok(h.log.names().includes('control.reboot_now'));
  });

  it('reboot-now with nothing waiting: NOT_FOUND', () => {
    h = harness({ reboot: CLOSED });
    assert.throws(() => h.executor.rebootNow('alice'), { code: 'NOT_FOUND' });
  });

  it('the window opens: the timer boots the waiting deployment on trial; a restart keeps it waiting', async () => {
    h = harness({ reboot: CLOSED });
    const next = h.sys.makeSystem('next', { kernel: '6.12' });
    await h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
    await h.executor.idle();
    // The executor restarts (not the machine): still waiting.
    const e = h.reopen();
    await e.recover();
    assert.equal(e.history.get(1)!.phase, 'reboot-pending');
    assert.equal(e.rebootWindowTick(), null, 'window still closed');
    h.clock.t = Date.parse('2026-01-01T03:00:30Z');
    e.pause('maintenance', 'alice');
    assert.equal(e.rebootWindowTick(), null, 'paused: no automatic reboot');
    e.resume('alice');
    const r = await e.rebootWindowTick();
    await e.idle();
    assert.equal(r?.phase, 'awaiting-boot');
    assert.equal(h.sys.rebootRequests, 1);
  });
});

describe('reboot.window arithmetic (local wall clock)', () => {
  const w = (start: string, end: string) => ({ start, end });
  const at = (iso: string) => new Date(iso);

  it('a window within a day', () => {
    assert.equal(inWindow(w('01:00', '05:00'), at('2026-06-01T00:59:00')), false);
    assert.equal(inWindow(w('01:00', '05:00'), at('2026-06-01T01:00:00')), true);
    assert.equal(inWindow(w('01:00', '05:00'), at('2026-06-01T04:59:00')), true);
    assert.equal(inWindow(w('01:00', '05:00'), at('2026-06-01T05:00:00')), false);
  });

  it('a window crossing midnight', () => {
    assert.equal(inWindow(w('22:00', '04:00'), at('2026-06-01T23:30:00')), true);
    assert.equal(inWindow(w('22:00', '04:00'), at('2026-06-01T03:59:00')), true);
    assert.equal(inWindow(w('22:00', '04:00'), at('2026-06-01T04:00:00')), false);
    assert.equal(inWindow(w('22:00', '04:00'), at('2026-06-01T12:00:00')), false);
    assert.equal(nextWindowOpening(w('22:00', '04:00'), at('2026-06-01T12:00:00')).toString(), at('2026-06-01T22:00:00').toString());
    assert.equal(nextWindowOpening(w('22:00', '04:00'), at('2026-06-01T04:30:00')).toString(), at('2026-06-01T22:00:00').toString());
  });

  it('the next opening is tomorrow when today\'s has passed; now when open', () => {
    assert.equal(nextWindowOpening(w('01:00', '05:00'), at('2026-06-01T06:00:00')).toString(), at('2026-06-02T01:00:00').toString());
    assert.equal(nextWindowOpening(w('01:00', '05:00'), at('2026-06-01T02:00:00')).toString(), at('2026-06-01T02:00:00').toString());
  });

  it('equal start and end: always open', () => {
    assert.equal(inWindow(w('03:00', '03:00'), at('2026-06-01T17:00:00')), true);
  });

  it('across a daylight-saving change the window follows the wall clock (Europe/Berlin)', () => {
    const saved = process.env.TZ;
    process.env.TZ = 'Europe/Berlin';
    try {
      // 2026-03-29: clocks go from 02:00 to 03:00 CET→CEST. From 2026-03-28 12:00 local the next 01:00 local is 2026-03-29 01:00 CET = 00:00Z.
      assert.equal(nextWindowOpening(w('01:00', '05:00'), new Date('2026-03-28T11:00:00Z')).toISOString(), '2026-03-29T00:00:00.000Z');
      // The day after: 01:00 CEST = 23:00Z the day before (one hour earlier in UTC, same on the wall clock).
      assert.equal(nextWindowOpening(w('01:00', '05:00'), new Date('2026-03-29T10:00:00Z')).toISOString(), '2026-03-29T23:00:00.000Z');
      // 04:30 CEST on the change day is inside 01:00-05:00 on the wall clock.
      assert.equal(inWindow(w('01:00', '05:00'), new Date('2026-03-29T02:30:00Z')), true);
    } finally {
      process.env.TZ = saved;
    }
  });
});

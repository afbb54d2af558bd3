/**
 * Scenario 15 — what the real bootloaders do to a trial boot (issue 22), on the bed's emulated
 * systemd-boot and GRUB (lib/bed-bootloader.ts, written from their sources):
 *
 *   a) systemd-boot with an EFI LoaderEntryDefault (bootctl set-default, the menu's d key): it
 *      overrides loader.conf, so the trial is refused before anything changes: reboot-required
 *      with the reason and the fix, no reboot, the boot default unchanged;
 *   b) GRUB where save_env fails (ZFS, btrfs, LVM, mdraid /boot): GRUB never clears next_entry;
 *      pullnix clears it once the trial boot is seen, so the fallback reboot after a failing
 *      trial boots the previous system and the failing system boots exactly once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TestBed } from './lib/bed.ts';
import { delay } from './lib/proc.ts';
import { installed, withBed } from './lib/scenario.ts';

function hhmm(minutes: number): string {
  const d = new Date(Date.now() + minutes * 60_000);
  return `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}`;
}

const window = { start: hhmm(-60), end: hhmm(120) };

async function bootedSystem(bed: TestBed): Promise<string> {
  return (await bed.container.execOk(['readlink', '-f', '/run/booted-system'])).trim();
}

test('systemd-boot with LoaderEntryDefault set: the trial is refused (reboot-required, the reason and the fix), nothing reboots', { timeout: 600_000 }, async (t) => {
  const bootloader = { loader: 'systemd-boot', naming: 'content-hash' } as const;
  const reboot = { mode: 'window', window, bootloader: 'systemd-boot' };
  await withBed(t, { name: 'reboot-efi-default', verifyTimeoutSec: 10 }, async (bed) => {
    const first = await installed(bed, { spec: { bootloader, config: { reboot } } });
    // An administrator pinned another entry with bootctl set-default (here a name of their choosing).
    await bed.container.execOk(['/bed/boot-tools/bin/bootctl', 'set-default', 'nixos-pinned-by-hand.conf']);
    const c2 = await bed.commit({ label: 'kernel2', kernel: '6.12', bootloader, config: { reboot } }, 'new kernel');
    const r = await bed.waitForOutcome(c2, { timeoutMs: 300_000 });
    // The pinned name matches no entry, so loader.conf still decides: the trial goes ahead.
    assert.equal(r.outcome, 'succeeded', JSON.stringify(r));
    // Now pin an entry that exists: the verified system's own is the default; pin the first system's.
    const list = JSON.parse(await bed.container.execOk(['/bed/boot-tools/bin/bootctl', 'list', '--json=short'])) as { id: string; options: string }[];
    const firstEntry = list.find((e) => e.options.includes(`init=${first.toplevel}/init`));
    assert.ok(firstEntry, JSON.stringify(list));
    await bed.container.execOk(['/bed/boot-tools/bin/bootctl', 'set-default', firstEntry.id]);
    const rebootsBefore = bed.reboots;
    const c3 = await bed.commit({ label: 'kernel3', kernel: '6.13', bootloader, config: { reboot } }, 'newer kernel');
    const refused = await bed.waitForOutcome(c3, { timeoutMs: 300_000 });
    assert.equal(refused.outcome, 'reboot-required', JSON.stringify(refused));
    assert.match(refused.error!.message, /LoaderEntryDefault/);
    assert.match(refused.error!.message, /bootctl set-default ""/);
    await delay(3000);
    assert.equal(bed.reboots, rebootsBefore, 'nothing rebooted');
    assert.equal(bed.oneShotEntry(), null);
    assert.equal(await bootedSystem(bed), r.toplevel);
  });
});

test('GRUB where save_env fails: pullnix clears next_entry after the trial boot, the fallback boots the previous system', { timeout: 900_000 }, async (t) => {
  const bootloader = { loader: 'grub', distroName: 'EdgeOS', saveEnvFails: true } as const;
  const reboot = { mode: 'window', window, bootloader: 'grub' };
  await withBed(t, { name: 'reboot-grub-noenv', verifyTimeoutSec: 10 }, async (bed) => {
    const first = await installed(bed, { spec: { bootloader, config: { reboot } } });
    const c2 = await bed.commit({ label: 'kernel2-nogit', kernel: '6.12', gitServer: false, bootloader, config: { reboot } }, 'new kernel, no git server');
    const bad = await bed.waitForOutcome(c2, { timeoutMs: 420_000 });
    assert.equal(bad.outcome, 'rolled-back', JSON.stringify(bad));
    assert.equal(bed.reboots, 2, 'trial reboot + one fallback reboot');
    await bed.waitForPullnix();
    assert.equal(await bootedSystem(bed), first.toplevel, 'the fallback boot came up on the previous system');
    assert.equal(bed.oneShotEntry(), null, 'next_entry is gone');
    assert.equal(bed.bootedEntries.filter((e) => e === bad.toplevel).length, 1, 'the failing system was booted exactly once');
  });
});

/**
 * Scenario 13 — deployments that need a reboot (issue 12), on the real systemd with real reboots:
 * `systemctl reboot` inside the machine ends systemd-nspawn with 133 and the bed boots it again
 * through its emulated bootloader (the one-shot entry once, else the default). A generation's
 * "kernel" is a package of its own (GenerationSpec.kernel): a new version is a kernel change.
 *
 *   a) reboot.mode window, the window around now:
 *        c2 new kernel → trial boot → verified after the boot → default moved, succeeded   (1 reboot)
 *        c3 new kernel, no git server → trial boot → verification fails → fallback reboot
 *           → previous system, rolled-back, default unchanged, no third reboot              (2 reboots)
 *   b) the same, exit 100 (a changed init interface): succeeded; then failing after the boot: rolled-back
 *   c) power cuts: while the trial system boots (one-shot used), while it is verified → previous system
 *   d) outside the window: nothing reboots, status says "reboot pending until HH:MM"; reboot-now boots it
 *   e) reboot.mode never: a new kernel is activated live, verified, committed, "reboot required"; exit 100 reboot-required
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TestBed } from './lib/bed.ts';
import { shortPath } from './lib/bed.ts';
import { delay, waitFor } from './lib/proc.ts';
import { installed, withBed } from './lib/scenario.ts';

/** Local "HH:MM" (the machine has no /etc/localtime: UTC, like this host's tests) `minutes` from now. */
function hhmm(minutes: number): string {
  const d = new Date(Date.now() + minutes * 60_000);
  return `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}`;
}

const AROUND_NOW = { mode: 'window', window: { start: hhmm(-60), end: hhmm(120) }, bootloader: 'systemd-boot' };

async function bootedSystem(bed: TestBed): Promise<string> {
  return (await bed.container.execOk(['readlink', '-f', '/run/booted-system'])).trim();
}

/** The profile generation whose system is `toplevel` (its boot entry is nixos-generation-N.conf). */
async function generationOf(bed: TestBed, toplevel: string): Promise<number> {
  const out = await bed.container.shOk(`for l in /nix/var/nix/profiles/system-*-link; do echo "$l $(readlink -f "$l")"; done`);
  const line = out.split('\n').find((l) => l.endsWith(` ${toplevel}`));
  assert.ok(line, `no profile generation holds ${toplevel}:\n${out}`);
  return Number(/system-(\d+)-link/.exec(line)![1]);
}

/**
 * (a) on each emulated bootloader and naming scheme: the trial entry is found by what it boots,
 * whatever NixOS named it, booted once, verified, made the default; a failing one is left by one
 * fallback reboot. `entryOf` is what the test expects the trial entry to look like.
 */
function trialBoot(name: string, bootloader: Record<string, unknown>, entryOf: (generation: number, toplevel: string) => RegExp): void {
  test(`reboot.mode window on ${name}: a new kernel is booted on trial, verified after the boot and made the default; a trial system that fails is left by one fallback reboot`, { timeout: 900_000 }, async (t) => {
    const reboot = { ...AROUND_NOW, bootloader: bootloader.loader };
    await withBed(t, { name: `reboot-${name.replace(/[^a-z0-9]+/g, '-')}`.slice(0, 40), verifyTimeoutSec: 10 }, async (bed) => {
      const first = await installed(bed, { spec: { bootloader, config: { reboot } } });

      // (1) A kernel change: rebooted into it once, verified, the default moved.
      const c2 = await bed.commit({ label: 'kernel2', kernel: '6.12', bootloader, config: { reboot } }, 'new kernel');
      const ok = await bed.waitForOutcome(c2, { timeoutMs: 300_000 });
      assert.equal(ok.outcome, 'succeeded', JSON.stringify(ok));
      assert.equal(bed.reboots, 1, 'one reboot, into the trial system');
      assert.deepEqual(ok.reboot?.reasons, ['kernel', 'initrd', 'kernel-modules']);
      assert.ok(ok.reboot?.trialBootId && ok.reboot.trialBootId !== ok.bootId, 'verified in the trial boot');
      assert.deepEqual(
        ok.phases.map((p) => p.phase),
        ['accepted', 'awaiting-boot', 'awaiting-boot', 'awaiting-boot', 'verifying', 'committing', 'finished'],
        'never activated live: awaiting-boot (preparing, recorded, ready), then verified after the boot',
      );
      const g2 = await generationOf(bed, ok.toplevel);
      assert.match(ok.reboot?.oneShotEntry ?? '', entryOf(g2, ok.toplevel), 'the trial entry, found by what it boots');
      await bed.waitForPullnix();
      assert.equal(await bootedSystem(bed), ok.toplevel, 'the new kernel is booted');
      assert.equal(await bed.liveSystem(), ok.toplevel);
      assert.equal(bed.bootDefault(), ok.toplevel, 'boot default moved to the verified system');
      assert.equal(bed.oneShotEntry(), null, 'the one-shot entry was used once (or cleared by pullnix)');
      const status = await bed.status();
      assert.equal(status.deployed?.commit, c2);
      assert.deepEqual(status.deployed?.rebootRequired, [], 'its kernel is the booted one: no reboot required');
      assert.equal(bed.bootedEntries.at(-1), ok.toplevel);

      // (2) The next kernel breaks git once booted: the fallback reboot brings the previous system back.
      const c3 = await bed.commit({ label: 'kernel3-nogit', kernel: '6.13', gitServer: false, bootloader, config: { reboot } }, 'new kernel, no git server');
      const bad = await bed.waitForOutcome(c3, { timeoutMs: 300_000 });
      assert.equal(bad.outcome, 'rolled-back', JSON.stringify(bad));
      assert.equal(bed.reboots, 3, 'trial reboot + one fallback reboot');
      assert.match(bad.error!.message, /failed its verification after the boot/);
      assert.match(bad.error!.message, /rebooted into the previous system/);
      await bed.waitForPullnix();
      assert.equal(await bootedSystem(bed), ok.toplevel, 'back on the previous system');
      assert.equal(bed.bootDefault(), ok.toplevel, 'the boot default never moved');
      assert.ok(await bed.gitReachable());
      assert.ok((await bed.status()).knownBad.includes(c3), 'the commit is known bad');
      assert.equal(bed.bootedEntries.filter((e) => e === bad.toplevel).length, 1, 'the failing system was booted exactly once');
      bed.log(`first ${shortPath(first.toplevel)}, verified ${shortPath(ok.toplevel)}, failed ${shortPath(bad.toplevel)}`);
    });
  });
}

trialBoot('systemd-boot, classic names (NixOS 25.11)', { loader: 'systemd-boot', naming: 'classic' }, (g) => new RegExp(`^nixos-generation-${g}\\.conf$`));
trialBoot('systemd-boot, content-hash names and boot counting (NixOS 26.05)', { loader: 'systemd-boot', naming: 'content-hash', bootCounting: true }, () => /^nixos-[0-9a-f]{64}\.conf$/);
trialBoot('GRUB, distroName EdgeOS', { loader: 'grub', distroName: 'EdgeOS' }, (g) => new RegExp(`^EdgeOS - All configurations>EdgeOS - Configuration ${g} \\(\\d{4}-\\d{2}-\\d{2} - 26\\.05\\.bed-kernel2\\)$`));

test('reboot.mode window, exit 100 (changed init interface): handled as a reboot deployment, both outcomes', { timeout: 900_000 }, async (t) => {
  await withBed(t, { name: 'reboot-exit100', verifyTimeoutSec: 10 }, async (bed) => {
    await installed(bed, { spec: { config: { reboot: AROUND_NOW } } });
    const c2 = await bed.commit({ label: 'init3', initInterface: 'systemd 3', config: { reboot: AROUND_NOW } }, 'new init interface');
    const ok = await bed.waitForOutcome(c2, { timeoutMs: 300_000 });
    assert.equal(ok.outcome, 'succeeded', JSON.stringify(ok));
    assert.equal(ok.activationExit, 100);
    assert.deepEqual(ok.reboot?.reasons, ['init-interface']);
    assert.equal(bed.reboots, 1);
    await bed.waitForPullnix();
    assert.equal(bed.bootDefault(), ok.toplevel);
    assert.equal(await bootedSystem(bed), ok.toplevel);

    const c3 = await bed.commit({ label: 'init4-nogit', initInterface: 'systemd 4', gitServer: false, config: { reboot: AROUND_NOW } }, 'new init interface, no git server');
    const bad = await bed.waitForOutcome(c3, { timeoutMs: 300_000 });
    assert.equal(bad.outcome, 'rolled-back', JSON.stringify(bad));
    assert.equal(bed.reboots, 3);
    await bed.waitForPullnix();
    assert.equal(await bootedSystem(bed), ok.toplevel);
    assert.equal(bed.bootDefault(), ok.toplevel);
  });
});

test('power cuts during a trial boot: while the trial system boots, and while it is verified: the previous system boots, resolved failed, nothing lost', { timeout: 900_000 }, async (t) => {
  await withBed(t, { name: 'reboot-power', verifyTimeoutSec: 40 }, async (bed) => {
    const first = await installed(bed, { spec: { config: { reboot: AROUND_NOW } } });
    const linesBefore = bed.historyLines();

    // (a) The power goes while the trial system boots: the firmware used the one-shot entry, nothing more.
    bed.cutNextReboot = true;
    const c2 = await bed.commit({ label: 'kernel2', kernel: '6.12', config: { reboot: AROUND_NOW } }, 'new kernel');
    await waitFor('the machine went down for the trial boot', () => (bed.reboots >= 1 && !bed.container.running ? true : undefined), { timeoutMs: 300_000 });
    assert.equal(bed.oneShotEntry(), null, 'the one-shot entry was used by the boot the power cut ended');
    await bed.boot();
    const r2 = await bed.waitForOutcome(c2, { timeoutMs: 120_000 });
    assert.equal(r2.outcome, 'rolled-back', JSON.stringify(r2));
    assert.match(r2.error!.message, /did not come up on the new system/);
    await bed.waitForPullnix();
    assert.equal(await bootedSystem(bed), first.toplevel);
    assert.equal(bed.bootDefault(), first.toplevel);
    assert.equal(bed.reboots, 1, 'no fallback reboot: the previous system is already booted');

    // (b) The power goes while the trial system is being verified (it cannot reach git; verification retries).
    const c3 = await bed.commit({ label: 'kernel3-nogit', kernel: '6.13', gitServer: false, config: { reboot: AROUND_NOW } }, 'new kernel, no git server');
    await waitFor(
      'the trial system booted and being verified',
      () => {
        const r = bed.deploymentsOf(c3).at(-1);
        return r?.phase === 'verifying' && r.reboot?.trialBootId ? r : undefined;
      },
      { timeoutMs: 300_000, intervalMs: 250 },
    );
    await bed.powerCut();
    await bed.boot();
    const r3 = await bed.waitForOutcome(c3, { timeoutMs: 120_000 });
    assert.equal(r3.outcome, 'rolled-back', JSON.stringify(r3));
    assert.match(r3.error!.message, /while the trial system was being verified/);
    await bed.waitForPullnix();
    assert.equal(await bootedSystem(bed), first.toplevel);
    assert.equal(bed.bootDefault(), first.toplevel);
    const status = await bed.status();
    assert.ok(status.knownBad.includes(c2) && status.knownBad.includes(c3));
    // Nothing lost: every earlier history line is still there, unchanged.
    assert.deepEqual(bed.historyLines().slice(0, linesBefore.length), linesBefore);
    assert.ok(bed.deploymentsOf(c2).length === 1 && bed.deploymentsOf(c3).length === 1);
  });
});

test('outside the window nothing reboots: status says "reboot pending until HH:MM"; pullnix-ctl reboot-now boots it on trial', { timeout: 600_000 }, async (t) => {
  const later = { mode: 'window', window: { start: hhmm(180), end: hhmm(240) }, bootloader: 'systemd-boot' };
  await withBed(t, { name: 'reboot-pending', verifyTimeoutSec: 10 }, async (bed) => {
    const first = await installed(bed, { spec: { config: { reboot: later } } });
    const c2 = await bed.commit({ label: 'kernel2', kernel: '6.12', config: { reboot: later } }, 'new kernel');
    const pending = await waitFor('the deployment waiting for the window', () => bed.deploymentsOf(c2).find((r) => r.phase === 'reboot-pending'), { timeoutMs: 300_000 });
    assert.equal(pending.outcome, null);
    const text = await bed.ctl(['status']);
    assert.match(text.stdout, new RegExp(`reboot pending until ${later.window.start}`), text.stdout);
    await delay(3000);
    assert.equal(bed.reboots, 0, 'nothing rebooted');
    assert.equal(await bed.liveSystem(), first.toplevel, 'nothing activated');
    assert.equal(bed.bootDefault(), first.toplevel);

    const now = await bed.ctl(['reboot-now', '--json']);
    assert.equal(now.code, 0, now.stderr);
    const ok = await bed.waitForOutcome(c2, { timeoutMs: 300_000 });
    assert.equal(ok.outcome, 'succeeded', JSON.stringify(ok));
    assert.equal(ok.reboot?.trigger, 'local-root');
    assert.equal(bed.reboots, 1);
    await bed.waitForPullnix();
    assert.equal(bed.bootDefault(), ok.toplevel);
  });
});

test('reboot.mode never: a new kernel is activated live, verified and committed with "reboot required"; exit 100 stays reboot-required; nothing reboots', { timeout: 600_000 }, async (t) => {
  await withBed(t, { name: 'reboot-never', verifyTimeoutSec: 10 }, async (bed) => {
    const first = await installed(bed);
    const c2 = await bed.commit({ label: 'kernel2', kernel: '6.12' }, 'new kernel');
    const ok = await bed.waitForOutcome(c2, { timeoutMs: 300_000 });
    assert.equal(ok.outcome, 'succeeded', JSON.stringify(ok));
    assert.deepEqual(ok.reboot, { needed: true, reasons: ['kernel', 'initrd', 'kernel-modules'], mode: 'never' });
    assert.deepEqual(ok.phases.map((p) => p.phase), ['accepted', 'activating', 'verifying', 'committing', 'finished']);
    await bed.waitForWatcherRestart(ok.id);
    assert.equal(await bed.liveSystem(), ok.toplevel);
    assert.equal(bed.bootDefault(), ok.toplevel);
    assert.equal(await bootedSystem(bed), first.toplevel, 'still the booted kernel');
    const status = await bed.ctl(['status']);
    assert.match(status.stdout, /reboot required: its kernel, initrd, kernel-modules take effect at the next boot/, status.stdout);

    const c3 = await bed.commit({ label: 'init3', kernel: '6.12', initInterface: 'systemd 3' }, 'new init interface');
    const r3 = await bed.waitForOutcome(c3, { timeoutMs: 300_000 });
    assert.equal(r3.outcome, 'reboot-required', JSON.stringify(r3));
    assert.equal(r3.activationExit, 100);
    await delay(3000);
    assert.equal(bed.reboots, 0);
    assert.equal(bed.bootDefault(), ok.toplevel);
  });
});

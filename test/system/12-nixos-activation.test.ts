/**
 * Scenario 12 — what real NixOS activation does to a deployment, on the real systemd (issue 10,
 * items 1-3, 15, 17). The bed's switch-to-configuration is as harsh as NixOS's: a failed
 * activation still repoints /run/current-system; a write to a dead --pipe reader ends it half-way
 * (exit 101); every failed unit of the system counts.
 *
 *   a) main: c1 (installed) ─ c2 (a unit that fails 4 s into activation; the executor is SIGKILLed meanwhile)
 *   b) main: c1 (installed; then an operator's `nixos-rebuild test` of c1b) ─ c2 (breaks git; nix-store --gc while verifying)
 *   c) main: c1 (installed) ─ c2 (slow bootloader install; power cut between nix-env --set and the boot entry)
 *   d) main: c1 (installed) ─ c2 (services.pullnix.enable = false)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HOST, short, shortPath } from './lib/bed.ts';
import { waitFor } from './lib/proc.ts';
import { installed, withBed } from './lib/scenario.ts';

const SLOW_FAIL = `[Unit]
Description=a service that fails 4 s into the activation that starts it

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'sleep 4; echo "bed-slow-fail: giving up" >&2; exit 1'

[Install]
WantedBy=multi-user.target
`;

test('the executor SIGKILLed during an activation that then fails (exit 4): the activation finishes on its own, recovery reads its exit and rolls back; never committed', { timeout: 300_000 }, async (t) => {
  await withBed(t, { name: 'kill-failing-activation', verifyTimeoutSec: 10 }, async (bed) => {
    const first = await installed(bed);
    const executorPid = await bed.mainPid('pullnix-executor.service');
    const c2 = await bed.commit({ label: 'slow-fail', extraUnits: { 'bed-slow-fail.service': SLOW_FAIL } }, 'a unit that fails during activation');
    const activating = await bed.waitForEvent('deploy.activating', { commit: c2 }, { timeoutMs: 120_000 });
    const id = activating.fields.deployment!;
    // The activation is running (its oneshot sleeps 4 s): kill the executor now.
    await waitFor('switch-to-configuration of c2 running', async () => ((await bed.activationLog()).some((a) => a.action === 'test' && a.text.startsWith('start toplevel=') && !a.text.includes(first.toplevel)) ? true : undefined), { timeoutMs: 30_000 });
    await bed.container.execOk(['systemctl', 'kill', '--signal=SIGKILL', 'pullnix-executor.service']);
    bed.log(`SIGKILL sent to the executor (pid ${executorPid}) while deployment ${id} was activating`);

    const record = await bed.waitForOutcome(c2, { timeoutMs: 180_000 });
    assert.equal(String(record.id), id);
    assert.equal(record.outcome, 'rolled-back', JSON.stringify(record));
    assert.equal(record.error?.code, 'ACTIVATION_FAILED');
    assert.equal(record.activationExit, 4, "the activation's exit status survived the executor");
    assert.match(record.error!.message, /bed-slow-fail\.service/, 'the unit that failed is named');

    // The activation was not cut short by the executor's death (no EPIPE half-way, exit 101): it ran to its end.
    const log = await bed.activationLog();
    const ended = log.filter((a) => a.action === 'test' && /^exit=\d+/.test(a.text));
    assert.ok(
      ended.some((a) => a.text.startsWith('exit=4') && a.text.includes('bed-slow-fail.service')),
      `the failing activation ran to its end (exit=4): ${log.map((a) => `${a.action} ${a.text}`).join(' | ')}`,
    );
    // Never committed: the boot default never moved, the previous system is live again, git answers.
    assert.equal(bed.bootDefault(), first.toplevel, `boot default ${shortPath(bed.bootDefault() ?? '-')}`);
    assert.equal(await bed.liveSystem(), first.toplevel);
    assert.ok(await bed.gitReachable());
    const status = await bed.waitForPullnix();
    assert.equal(status.deployed?.commit, first.commit);
    assert.ok(status.knownBad.includes(c2));
    // No transient unit or activation record is left behind.
    const units = await bed.container.exec(['systemctl', 'list-units', '--all', '--plain', '--no-legend', 'pullnix-activate-*', 'pullnix-rollback-*']);
    assert.equal(units.stdout.trim(), '', `leftover transient units: ${units.stdout}`);
  });
});

test("the previous system is in no profile (an operator's nixos-rebuild test) and nix-store --gc runs during verification: it survives, the rollback brings it back", { timeout: 300_000 }, async (t) => {
  await withBed(t, { name: 'gc-during-verify', verifyTimeoutSec: 15 }, async (bed) => {
    const first = await installed(bed);
    // nixos-rebuild test of a variant of c1, built from a local clone: live, but in no profile.
    const c1b = (
      await bed.container.shOk(
        `set -e
         rm -rf /tmp/op && mkdir -p /tmp/op
         printf '[safe]\\n\\tdirectory = /srv/git/config.git\\n' > /tmp/op/gitconfig
         GIT_CONFIG_GLOBAL=/tmp/op/gitconfig git clone -q /srv/git/config.git /tmp/op/checkout
         sed -i 's/"label": "gen1"/"label": "gen1b"/' /tmp/op/checkout/generation.json
         nix build --out-link /tmp/op/result path:/tmp/op/checkout#nixosConfigurations.${HOST}.config.system.build.toplevel
         top=$(readlink -f /tmp/op/result)
         rm /tmp/op/result
         "$top/bin/switch-to-configuration" test >&2
         echo "$top"`,
        { timeoutMs: 180_000 },
      )
    )
      .trim()
      .split('\n')
      .pop()!;
    assert.notEqual(c1b, first.toplevel);
    assert.equal(await bed.liveSystem(), c1b);
    const c2 = await bed.commit({ label: 'no-git', gitServer: false }, 'drop the git server');
    await bed.waitForEvent('deploy.verifying', { commit: c2 }, { timeoutMs: 120_000 });
    await bed.waitForEvent('verify.attempt_failed', { commit: c2 }, { timeoutMs: 60_000 });
    const gc = await bed.container.exec(['nix-store', '--gc'], { timeoutMs: 120_000 });
    assert.equal(gc.code, 0, gc.stderr);
    const alive = await bed.container.exec(['test', '-x', `${c1b}/bin/switch-to-configuration`]);
    assert.equal(alive.code, 0, `${shortPath(c1b)} was garbage-collected during the deployment`);

    const record = await bed.waitForOutcome(c2, { timeoutMs: 120_000 });
    assert.equal(record.outcome, 'rolled-back', JSON.stringify(record));
    assert.equal(record.previous.system, c1b);
    assert.equal(await bed.liveSystem(), c1b, 'the recorded previous system is live again');
    assert.equal(bed.bootDefault(), first.toplevel, 'the boot default never moved');
    assert.ok(await bed.gitReachable());
  });
});

test('a power cut between nix-env --set and the boot entry: after the boot the system profile and the boot default agree', { timeout: 400_000 }, async (t) => {
  await withBed(t, { name: 'power-cut-committing', verifyTimeoutSec: 10 }, async (bed) => {
    const first = await installed(bed);
    const c2 = await bed.commit({ label: 'slow-boot', bootInstallDelaySec: 8 }, 'a system whose bootloader install is slow');
    const accepted = await bed.waitForEvent('deploy.accepted', { commit: c2 }, { timeoutMs: 120_000 });
    const id = Number(accepted.fields.deployment);
    // Wait for the commit phase with the profile already on the new generation.
    await waitFor(
      'deployment committing with the profile moved, the boot entry not yet',
      async () => {
        const r = bed.history().find((d) => d.id === id);
        if (r?.phase !== 'committing') return undefined;
        const profile = (await bed.container.execOk(['readlink', '-f', '/nix/var/nix/profiles/system'])).trim();
        return profile !== first.toplevel && bed.bootDefault() === first.toplevel ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    await bed.powerCut();
    await bed.boot();

    const interrupted = await bed.waitForOutcome(c2, { timeoutMs: 120_000 });
    assert.equal(interrupted.id, id);
    assert.equal(interrupted.outcome, 'interrupted', JSON.stringify(interrupted));
    const agree = async () => {
      const profile = (await bed.container.execOk(['readlink', '-f', '/nix/var/nix/profiles/system'])).trim();
      return { profile, boot: bed.bootDefault() };
    };
    // Right after recovery (before the watcher asks again) both are the previous system.
    const after = await agree();
    assert.equal(after.profile, after.boot, `profile ${shortPath(after.profile)} vs boot default ${shortPath(after.boot ?? '-')}`);
    // The commit is asked for again (one interruption is not a failure) and then both move together.
    const second = await bed.waitForOutcome(c2, { timeoutMs: 180_000, count: 2 });
    assert.equal(second.outcome, 'succeeded', JSON.stringify(second));
    const final = await agree();
    assert.equal(final.profile, second.toplevel);
    assert.equal(final.boot, second.toplevel);
    bed.log(`interrupted then deployed ${short(c2)}; profile and boot default agree at every step`);
  });
});

test('turning pullnix off by commit: the deployment finishes and is recorded, then neither daemon runs on without its unit', { timeout: 300_000 }, async (t) => {
  await withBed(t, { name: 'pullnix-removed' }, async (bed) => {
    await installed(bed);
    const c2 = await bed.commit({ label: 'no-pullnix', pullnix: false }, 'services.pullnix.enable = false');
    const record = await bed.waitForOutcome(c2, { timeoutMs: 120_000 });
    assert.equal(record.outcome, 'succeeded', JSON.stringify(record));
    assert.equal(bed.bootDefault(), record.toplevel);
    // The watcher got its answer: it was not stopped mid-deployment.
    await bed.waitForEvent('deploy.outcome', { commit: c2 }, { timeoutMs: 30_000, units: ['pullnix-watcher.service'] });
    await bed.waitForEvent('executor.removed', { deployment: String(record.id) }, { timeoutMs: 30_000, units: ['pullnix-executor.service'] });
    await waitFor(
      'both pullnix units stopped and no pullnix process left',
      async () => {
        const active = await bed.container.exec(['systemctl', 'is-active', 'pullnix-executor.service', 'pullnix-watcher.service']);
        const procs = await bed.container.exec(['pgrep', '-f', '/opt/pullnix/']);
        return active.stdout.split('\n').every((l) => l.trim() !== 'active' && l.trim() !== 'activating') && procs.stdout.trim() === '' ? true : undefined;
      },
      { timeoutMs: 60_000 },
    );
    // And they stay stopped (no Restart= bringing them back).
    await new Promise((r) => setTimeout(r, 4000));
    const procs = await bed.container.exec(['pgrep', '-f', '/opt/pullnix/']);
    assert.equal(procs.stdout.trim(), '', 'no pullnix process runs on');
  });
});

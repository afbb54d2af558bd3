/**
 * The chaos campaign's plan (test/chaos/plan.ts) is a pure function of the seed: the property
 * `--seed S --from-step K` relies on to replay a violation. No machine needed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bootloaderOf, describeStep, GOOD_KINDS, kernelOfPath, kindOfPath, parseFaults, planCampaign, specOf, versionBefore, type CampaignShape } from '../chaos/plan.ts';
import { derive } from '../chaos/prng.ts';
import { onTarget } from '../chaos/faults.ts';
import { aimedNotHit } from '../chaos/runner.ts';

const shape = (seed: string, deployments: number, faults: string): CampaignShape => ({ seed, deployments, faults: parseFaults(faults, deployments), pollIntervalSec: 2 });

test('the same seed gives the same plan; another seed another one', () => {
  assert.deepEqual(planCampaign(shape('s1', 40, '0.5')), planCampaign(shape('s1', 40, '0.5')));
  assert.notDeepEqual(planCampaign(shape('s1', 40, '0.5')), planCampaign(shape('s2', 40, '0.5')));
  assert.equal(derive('x', 'step', 3).next(), derive('x', 'step', 3).next());
});

test("step K's commits do not depend on how many steps come before or after it (probability mode)", () => {
  const long = planCampaign(shape('replay', 60, '0.5'));
  const short = planCampaign(shape('replay', 30, '0.5'));
  assert.deepEqual(short, long.slice(0, 30));
});

test('--faults N puts exactly N faults on distinct steps; a probability about that share', () => {
  for (const n of [0, 1, 4, 10]) assert.equal(planCampaign(shape('c', 10, String(n))).filter((s) => s.fault).length, n);
  const share = planCampaign(shape('p', 400, '40%')).filter((s) => s.fault).length / 400;
  assert.ok(share > 0.3 && share < 0.5, `share ${share}`);
  assert.throws(() => parseFaults('11', 10), /at most one fault per step/);
  assert.throws(() => parseFaults('1.5', 10), /expected a count/);
  assert.throws(() => parseFaults('150%', 10), /between 0 and 1/);
  assert.deepEqual(parseFaults('0.25', 10), { mode: 'probability', p: 0.25 });
});

test('every kind, fault and target occurs; sshd is never restarted in a step that drops the git server', () => {
  const steps = planCampaign(shape('mix', 400, '0.7'));
  const kinds = new Set(steps.flatMap((s) => s.commits.map((c) => c.kind)));
  assert.deepEqual([...kinds].sort(), ['actfail', 'badconfig', 'broken', 'good', 'nogit', 'reboot', 'rebootfail', 'unitfail', 'upgrade']);
  assert.deepEqual([...new Set(steps.flatMap((s) => (s.fault ? [s.fault.kind] : [])))].sort(), ['kill-executor', 'kill-watcher', 'power-cut', 'restart-nix-daemon', 'restart-sshd']);
  assert.deepEqual(
    [...new Set(steps.flatMap((s) => (s.fault ? [s.fault.target] : [])))].sort(),
    ['accepted', 'activated', 'activating', 'anytime', 'awaiting-boot', 'committing', 'fallback-reboot', 'rolling-back', 'trial-boot', 'trial-verifying', 'verifying'],
  );
  for (const s of steps) if (s.commits.some((c) => c.kind === 'nogit' || c.kind === 'rebootfail')) assert.notEqual(s.fault?.kind, 'restart-sshd', `step ${s.step}`);
  assert.ok(steps.some((s) => s.commits.length > 1), 'bursts occur');
});

test('reboot commits: a new kernel of their own, never in a burst; other commits take the booted kernel; trial-boot faults are power cuts; the bootloader alternates per seed', () => {
  const steps = planCampaign(shape('reboots', 400, '0.7'));
  for (const s of steps) {
    for (const c of s.commits) {
      if (c.kind === 'reboot' || c.kind === 'rebootfail') {
        assert.equal(s.commits.length, 1, `step ${s.step}: a reboot commit is alone in its step`);
        assert.equal(c.kernel, `6.6.${s.step}.1`);
      } else assert.equal(c.kernel, null, `step ${s.step}: ${c.kind} takes the booted kernel`);
    }
    if (s.fault?.target === 'trial-boot') assert.equal(s.fault.kind, 'power-cut', describeStep(s));
    if (s.fault && ['awaiting-boot', 'trial-boot', 'trial-verifying', 'fallback-reboot'].includes(s.fault.target)) assert.ok(s.commits.some((c) => c.kind === 'reboot' || c.kind === 'rebootfail'), describeStep(s));
  }
  assert.ok(steps.some((s) => s.fault?.target === 'trial-verifying' && s.fault.kind === 'kill-executor'), 'the executor is killed during a post-boot verification');
  assert.ok(steps.some((s) => s.fault?.target === 'trial-verifying' && s.fault.kind === 'power-cut'), 'a power cut during a post-boot verification');
  const loaders = new Set(Array.from({ length: 40 }, (_, i) => bootloaderOf(`seed-${i}`)));
  assert.deepEqual([...loaders].sort(), ['grub', 'systemd-boot']);
  const m = { keepGcRoots: 3, bootloader: 'grub' as const, bootedKernel: '6.6.4.1' };
  const base = { label: 's9c1-x', pullnixVersion: '3', slowMs: 700 };
  assert.equal(specOf({ ...base, kind: 'good', kernel: null }, m).kernel, '6.6.4.1', 'the booted kernel: no reboot');
  const failing = specOf({ ...base, kind: 'rebootfail', kernel: '6.6.9.1' }, m);
  assert.equal(failing.kernel, '6.6.9.1');
  assert.equal(failing.gitServer, false, 'fails its verification after the boot');
  assert.deepEqual(failing.bootloader, { loader: 'grub' });
  assert.deepEqual(failing.config?.reboot, { mode: 'window', window: { start: '00:00', end: '00:00' }, bootloader: 'grub' });
  assert.equal(kernelOfPath('/nix/store/0123456789abcdfghijklmnpqrsvwxyz-bed-linux-6.6.4.1/bzImage'), '6.6.4.1');
  assert.equal(kernelOfPath('/nix/store/0123456789abcdfghijklmnpqrsvwxyz-something/bzImage'), null);
  assert.ok(GOOD_KINDS.has('reboot') && !GOOD_KINDS.has('rebootfail'));
});

test('pullnix versions only grow, by one per commit with a new package (upgrade, badconfig); a replay starts from the version reached', () => {
  const steps = planCampaign(shape('v', 100, '0'));
  let version = 1;
  for (const s of steps) {
    assert.equal(versionBefore(steps, s.step), String(version));
    for (const c of s.commits) {
      if (c.kind === 'upgrade' || c.kind === 'badconfig') version++;
      assert.equal(c.pullnixVersion, String(version));
    }
  }
});

test('the kind of a toplevel is read from its store name; specs match their kind', () => {
  assert.equal(kindOfPath('/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-bed-s12c1-actfail'), 'actfail');
  assert.equal(kindOfPath('/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-bed-final-good'), 'good');
  assert.equal(kindOfPath('/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-bed-gen1'), null);
  assert.ok(GOOD_KINDS.has('install') && !GOOD_KINDS.has('nogit'));
  const base = { label: 's1c1-x', pullnixVersion: '3', slowMs: 700 };
  const M = { keepGcRoots: 3, bootloader: 'systemd-boot' as const, bootedKernel: '6.6' };
  assert.equal(specOf({ ...base, kind: 'nogit' }, M).gitServer, false);
  assert.match(specOf({ ...base, kind: 'broken' }, M).broken ?? '', /does not build/);
  assert.match(specOf({ ...base, kind: 'actfail' }, M).activationFails ?? '', /fails its activation/);
  assert.ok('chaos-fail.service' in (specOf({ ...base, kind: 'unitfail' }, M).extraUnits ?? {}));
  assert.deepEqual(Object.keys(specOf({ ...base, kind: 'good' }, M).extraUnits ?? {}), ['chaos-slow.service']);
  // issue 21: a configuration the JSON schema of 25d0040 took and the daemons refuse
  assert.deepEqual(specOf({ ...base, kind: 'badconfig' }, M).config?.checks, { api: { type: 'http', url: 'localhost:8080/health' } });
  assert.ok(!GOOD_KINDS.has('badconfig'), 'a badconfig commit must never become the boot default');
});

test('a strike is on target only in the phase it aimed at; a campaign names every aimed phase no strike hit', () => {
  assert.equal(onTarget('activating', 'activating', false), true);
  assert.equal(onTarget('activating', 'verifying', false), false, 'the phase had ended when the fault struck');
  assert.equal(onTarget('committing', 'committing', true), false, 'never seen: struck when the step ended');
  assert.equal(onTarget('activated', 'activating', false), true, 'activated: after the repoint, inside activating');
  assert.equal(onTarget('activated', 'after:rolled-back', false), false);
  assert.equal(onTarget('anytime', 'none', false), true);
  assert.equal(onTarget('trial-boot', 'awaiting-boot', false), true, 'the power cut while the trial system boots');
  assert.equal(onTarget('trial-verifying', 'trial-verifying', false), true);
  assert.equal(onTarget('trial-verifying', 'verifying', false), false, 'a live verification is not the post-boot one');
  const strike = (aimed: string, hit: string, on: boolean) => ({ step: 1, kind: 'kill-executor', aimed, hit, onTarget: on });
  assert.deepEqual(aimedNotHit({ strikes: [strike('activating', 'activating', true), strike('activating', 'verifying', false)] }), []);
  assert.deepEqual(aimedNotHit({ strikes: [strike('activated', 'after:rolled-back', false), strike('committing', 'committing', true)] }), ['activated']);
});

/**
 * Scenario 5 — power cut. The whole machine is killed during verification of a commit and
 * booted again on the same /nix, state and boot directory. It comes back on the last good system
 * (the boot default never moved), the deployment is recorded interrupted, and the agent carries
 * on: the next good commit deploys.
 *
 *   main: c1 (installed) ─ c2 (no git server; power cut while verifying) ─ c3 (good: deployed)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { installed, withBed } from './lib/scenario.ts';

test('power cut during verification: boots on the last good system, deployment recorded interrupted, the agent carries on', { timeout: 300_000 }, async (t) => {
  await withBed(t, { name: 'power-cut', verifyTimeoutSec: 20 }, async (bed) => {
    const first = await installed(bed);
    const bootLogBefore = bed.bootLog();
    const generationsBefore = await bed.profileGenerations();

    const c2 = await bed.commit({ label: 'no-git', gitServer: false }, 'drop the git server (breaks connectivity)');
    const accepted = await bed.waitForEvent('deploy.accepted', { commit: c2 }, { timeoutMs: 90_000 });
    const deploymentId = Number(accepted.fields.deployment);
    await bed.waitForEvent('deploy.verifying', { deployment: String(deploymentId) }, { timeoutMs: 60_000 });
    assert.equal(bed.history().find((r) => r.id === deploymentId)?.commit, c2);
    const liveBeforeCut = await bed.liveSystem();
    assert.notEqual(liveBeforeCut, first.toplevel, 'the broken generation is live when the power goes');
    const before = bed.historyLines();

    await bed.powerCut();
    assert.equal(bed.bootDefault(), first.toplevel, 'on disk, the boot default is still the last good system');

    await bed.boot();
    assert.equal(await bed.liveSystem(), first.toplevel, 'the machine came back on the last good system');
    assert.ok(await bed.gitReachable(), 'git is reachable after the reboot');

    // The new executor marks the unfinished deployment interrupted (its system is not live).
    const record = await bed.waitForOutcome(c2, { timeoutMs: 60_000 });
    assert.equal(record.id, deploymentId);
    assert.equal(record.outcome, 'interrupted', JSON.stringify(record));
    const interrupted = await bed.waitForEvent('deploy.interrupted', { deployment: String(deploymentId) }, { timeoutMs: 10_000 });
    assert.equal(interrupted.priority, 4);
    const boots = new Set((await bed.journal(['pullnix-executor.service'])).map((e) => e.bootId));
    assert.ok(boots.size >= 2, 'the journal holds both boots');

    const after = bed.historyLines();
    assert.deepEqual(after.slice(0, before.length), before, 'history.jsonl lost nothing in the power cut');
    assert.deepEqual(await bed.profileGenerations(), generationsBefore, 'no system profile generation was made for the broken commit');
    assert.deepEqual(bed.bootLog(), bootLogBefore, 'the boot default never moved');

    // The agent carries on: the next good commit deploys (whatever it did with c2 meanwhile:
    // interrupted once, it may be tried again and rolled back; it must not stick).
    await bed.waitForPullnix();
    const c3 = await bed.commit({ label: 'gen3' }, 'a good configuration again');
    const next = await bed.waitForOutcome(c3, { timeoutMs: 120_000 });
    assert.equal(next.outcome, 'succeeded', JSON.stringify(next));
    assert.equal(bed.bootDefault(), next.toplevel);
    assert.equal(await bed.liveSystem(), next.toplevel);
    for (const r of bed.deploymentsOf(c2)) assert.notEqual(r.outcome, 'succeeded', 'the broken commit never counted as a success');
    const status = await bed.waitForPullnix();
    assert.equal(status.deployed?.commit, c3);
    assert.equal(status.paused, null);
  });
});

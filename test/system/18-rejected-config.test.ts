/**
 * Issue 21, part 2 — one commit must not brick pullnix. A commit that upgrades pullnix (both units
 * change) and carries a configuration the new daemons reject (an http check whose url has no
 * scheme: the JSON schema takes it, the daemons' loader does not). Before the fix the old executor
 * verified with its own checks, committed, exited for the self-upgrade, and the new executor
 * exited 78 at every start. Now the new package's `--check-config` refuses it before the commit:
 * rolled back, the old pullnix keeps running and deploys the next commit.
 *
 * Then two packages broken in a way `--check-config` cannot see (their daemon exits 1 at every start,
 * --check-config works): a pullnix that cannot start after a commit is itself a failed verification.
 * The executor's: the old executor hands the verified deployment over and exits, the new one
 * crash-loops, the old program's guard stops it, rolls back and starts the old executor again.
 * The watcher's: the new executor comes up, restarts the watcher, which crash-loops; it rolls back
 * and, its own unit changed back, exits for the old executor.
 *
 *   main: c1 (installed, pullnix 1) ─ c2 (pullnix 2, checks.api.url = "localhost:8080/health")
 *          ─ c2x (pullnix 3, the executor broken at start) ─ c2w (pullnix 4, the watcher broken at start)
 *          ─ c3 (pullnix 2, the check fixed: deployed, self-upgrade)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { short } from './lib/bed.ts';
import { waitFor } from './lib/proc.ts';
import { installed, phasesOf, withBed } from './lib/scenario.ts';

test('a commit whose configuration the new daemons reject is rolled back before the commit; the agent keeps running and deploys the fix', { timeout: 300_000 }, async (t) => {
  await withBed(t, { name: 'rejected-config' }, async (bed) => {
    const first = await installed(bed);
    const executorPid = await bed.mainPid('pullnix-executor.service');

    const c2 = await bed.commit({ label: 'brick', pullnixVersion: '2', config: { checks: { api: { type: 'http', url: 'localhost:8080/health' } } } }, 'upgrade pullnix, with a check url without a scheme');
    const record = await bed.waitForOutcome(c2);
    assert.equal(record.outcome, 'rolled-back', `deployment of ${short(c2)}: ${JSON.stringify(record)}`);
    assert.equal(record.error?.code, 'VERIFY_FAILED');
    assert.match(record.error?.message ?? '', /pullnix-executor of the new system rejects its own configuration .*checks\.api\.url: must be an http:\/\/ or https:\/\/ URL/);
    assert.ok(!phasesOf(record).includes('committing'), `never committed: ${phasesOf(record).join(' → ')}`);
    const rejected = await bed.waitForEvent('verify.own_config_rejected', { deployment: String(record.id) }, { units: ['pullnix-executor.service'] });
    assert.equal(rejected.priority, 3);

    // Nothing moved: the boot default and the live system are the installed ones, and the same
    // executor (pullnix 1) answers, with a restarted watcher (pullnix 1) connected.
    assert.equal(bed.bootDefault(), first.toplevel);
    assert.equal(await bed.liveSystem(), first.toplevel);
    await bed.waitForWatcherRestart(record.id);
    assert.equal(await bed.mainPid('pullnix-executor.service'), executorPid, 'the executor did not exit for a self-upgrade');
    assert.match((await bed.packageOf(executorPid)) ?? '', /-pullnix-1$/);
    assert.match((await bed.packageOf(await bed.mainPid('pullnix-watcher.service'))) ?? '', /-pullnix-1$/, 'the watcher runs the live generation: pullnix 1');
    assert.equal((await bed.events('executor.self_upgrade', { deployment: String(record.id) })).length, 0);

    // A new executor that cannot start: rolled back by the old program's guard; pullnix 1 runs again.
    const c2x = await bed.commit({ label: 'broken-executor', pullnixVersion: '3', brokenStart: 'pullnix-executor' }, 'upgrade pullnix to a package whose executor cannot start');
    const brokenExecutor = await bed.waitForOutcome(c2x, { timeoutMs: 180_000 });
    assert.equal(brokenExecutor.outcome, 'rolled-back', JSON.stringify(brokenExecutor));
    assert.equal(brokenExecutor.error?.code, 'VERIFY_FAILED');
    assert.match(brokenExecutor.error?.message ?? '', /check pullnix-start failed: the new executor \(pullnix-executor\.service\) is crash-looping: it died \d+ times after the hand-over/);
    assert.ok(!phasesOf(brokenExecutor).includes('committing'), `never committed: ${phasesOf(brokenExecutor).join(' → ')}`);
    assert.equal((await bed.events('handover.failed', { deployment: String(brokenExecutor.id) }, ['pullnix-handover-*'])).length > 0, true, 'the guard says why');
    assert.equal(bed.bootDefault(), first.toplevel);
    await waitFor('pullnix 1 running again after the guard', async () => {
      const pid = await bed.mainPid('pullnix-executor.service');
      return pid !== 0 && /-pullnix-1$/.test((await bed.packageOf(pid)) ?? '') ? pid : undefined;
    }, { timeoutMs: 60_000 });
    assert.equal(await bed.liveSystem(), first.toplevel);

    // A new watcher that cannot start: the new executor rolls back, then the old executor returns.
    const c2w = await bed.commit({ label: 'broken-watcher', pullnixVersion: '4', brokenStart: 'pullnix-watcher' }, 'upgrade pullnix to a package whose watcher cannot start');
    const brokenWatcher = await bed.waitForOutcome(c2w, { timeoutMs: 180_000 });
    assert.equal(brokenWatcher.outcome, 'rolled-back', JSON.stringify(brokenWatcher));
    assert.match(brokenWatcher.error?.message ?? '', /check pullnix-start failed: the new watcher \(pullnix-watcher\.service\) is crash-looping/);
    assert.equal(bed.bootDefault(), first.toplevel);
    await waitFor('pullnix 1 running again after the rollback', async () => {
      const pid = await bed.mainPid('pullnix-executor.service');
      const w = await bed.mainPid('pullnix-watcher.service');
      return pid !== 0 && w !== 0 && /-pullnix-1$/.test((await bed.packageOf(pid)) ?? '') && /-pullnix-1$/.test((await bed.packageOf(w)) ?? '') ? pid : undefined;
    }, { timeoutMs: 90_000 });
    const executorBeforeFix = await bed.mainPid('pullnix-executor.service');

    // The fix deploys, and pullnix upgrades itself.
    const c3 = await bed.commit({ label: 'fixed', pullnixVersion: '2', config: { checks: { api: { type: 'tcp', host: '127.0.0.1', port: 22, timeoutSec: 3 } } } }, 'the check fixed');
    const fixed = await bed.waitForOutcome(c3);
    assert.equal(fixed.outcome, 'succeeded', JSON.stringify(fixed));
    assert.deepEqual(fixed.checks?.map((c) => c.name), ['pullnix-config', 'git', 'failed-units', 'api', 'pullnix-start']);
    const newExecutorPid = await waitFor(
      'the new executor (pullnix 2) after the self-upgrade',
      async () => {
        const pid = await bed.mainPid('pullnix-executor.service');
        return pid !== 0 && pid !== executorBeforeFix && /-pullnix-2$/.test((await bed.packageOf(pid)) ?? '') ? pid : undefined;
      },
      { timeoutMs: 60_000 },
    );
    const status = await bed.waitForPullnix();
    assert.equal(status.executor.pid, newExecutorPid);
    assert.equal(status.deployed?.commit, c3);
    assert.equal(bed.bootDefault(), fixed.toplevel);
  });
});

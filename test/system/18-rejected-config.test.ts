/**
 * Issue 21, part 2 — one commit must not brick pullnix. A commit that upgrades pullnix (both units
 * change) and carries a configuration the new daemons reject (an http check whose url has no
 * scheme: the JSON schema takes it, the daemons' loader does not). Before the fix the old executor
 * verified with its own checks, committed, exited for the self-upgrade, and the new executor
 * exited 78 at every start. Now the new package's `--check-config` refuses it before the commit:
 * rolled back, the old pullnix keeps running and deploys the next commit.
 *
 *   main: c1 (installed, pullnix 1) ─ c2 (pullnix 2, checks.api.url = "localhost:8080/health")
 *                                    ─ c3 (pullnix 2, the check fixed: deployed, self-upgrade)
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

    // The fix deploys, and pullnix upgrades itself.
    const c3 = await bed.commit({ label: 'fixed', pullnixVersion: '2', config: { checks: { api: { type: 'tcp', host: '127.0.0.1', port: 22, timeoutSec: 3 } } } }, 'the check fixed');
    const fixed = await bed.waitForOutcome(c3);
    assert.equal(fixed.outcome, 'succeeded', JSON.stringify(fixed));
    assert.deepEqual(fixed.checks?.map((c) => c.name), ['pullnix-config', 'git', 'failed-units', 'api']);
    const newExecutorPid = await waitFor(
      'the new executor (pullnix 2) after the self-upgrade',
      async () => {
        const pid = await bed.mainPid('pullnix-executor.service');
        return pid !== 0 && pid !== executorPid && /-pullnix-2$/.test((await bed.packageOf(pid)) ?? '') ? pid : undefined;
      },
      { timeoutMs: 60_000 },
    );
    const status = await bed.waitForPullnix();
    assert.equal(status.executor.pid, newExecutorPid);
    assert.equal(status.deployed?.commit, c3);
    assert.equal(bed.bootDefault(), fixed.toplevel);
  });
});

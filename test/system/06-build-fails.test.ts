/**
 * Scenario 6 — a commit that does not build. Nothing is activated, the failure is recorded with
 * the build error, the commit is not built again; the next good commit deploys.
 *
 *   main: c1 (installed) ─ c2 (build fails) ─ c3 (good: deployed)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { waitFor } from './lib/proc.ts';
import { installed, withBed } from './lib/scenario.ts';

test('a commit that does not build: nothing activated, failure recorded with the build error, not retried; the next commit deploys', { timeout: 300_000 }, async (t) => {
  await withBed(t, { name: 'build-fails' }, async (bed) => {
    const first = await installed(bed);
    const historyBefore = bed.historyLines();
    const bootLogBefore = bed.bootLog();
    const activationsBefore = (await bed.activationLog()).length;
    const executorPid = await bed.mainPid('pullnix-executor.service');
    const watcherPid = await bed.mainPid('pullnix-watcher.service');

    const message = 'bed-deliberate-build-failure: this commit cannot be built';
    const c2 = await bed.commit({ label: 'broken', broken: message }, 'a configuration that does not build');
    const failed = await bed.waitForEvent('build.failed', { commit: c2 }, { timeoutMs: 60_000 });
    assert.equal(failed.priority, 3, 'build.failed is an error');
    assert.ok((failed.fields.error ?? '').includes(message), `the build error is in the log line: ${failed.message}`);

    // The watcher remembers it and says so in its report.
    const status = await waitFor('the watcher reports the failed build', async () => {
      const s = await bed.status();
      return s.watcher.report?.failedBuilds.includes(c2) ? s : undefined;
    });
    assert.equal(status.watcher.report?.lastError?.commit ?? c2, c2);
    assert.equal(status.deployed?.commit, first.commit);

    // Not retried: several polls later it was built once and never sent to the executor.
    const failedAt = failed.at;
    const pollsAfter = async () =>
      (await bed.journal(['pullnix-watcher.service'])).filter((e) => e.at > failedAt && e.fields.commit === c2 && (e.event === 'head.known_bad' || e.event === 'poll.unchanged'))
        .length;
    await waitFor('three polls after the failed build', async () => (await pollsAfter()) >= 3, { timeoutMs: 30_000 });
    const watcherLines = await bed.journal(['pullnix-watcher.service']);
    assert.equal(watcherLines.filter((e) => e.event === 'build.started' && e.fields.commit === c2).length, 1, 'built exactly once');
    assert.equal(watcherLines.filter((e) => e.event === 'deploy.requested' && e.fields.commit === c2).length, 0, 'never requested');

    // Nothing was activated, nothing changed.
    assert.deepEqual(bed.historyLines(), historyBefore, 'no deployment recorded');
    assert.equal((await bed.activationLog()).length, activationsBefore, 'switch-to-configuration never ran');
    assert.deepEqual(bed.bootLog(), bootLogBefore);
    assert.equal(await bed.liveSystem(), first.toplevel);
    assert.equal(await bed.mainPid('pullnix-executor.service'), executorPid);
    assert.equal(await bed.mainPid('pullnix-watcher.service'), watcherPid, 'the watcher did not crash or restart');

    // The next good commit deploys.
    const c3 = await bed.commit({ label: 'gen3' }, 'fix the build');
    const next = await bed.waitForOutcome(c3);
    assert.equal(next.outcome, 'succeeded', JSON.stringify(next));
    assert.equal(bed.bootDefault(), next.toplevel);
    assert.equal(await bed.liveSystem(), next.toplevel);
  });
});

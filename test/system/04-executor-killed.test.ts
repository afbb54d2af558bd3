/**
 * Scenario 4 — the executor is killed (SIGKILL) during verification. systemd restarts it
 * (Restart=always); the new executor finds the deployment recorded as started and not finished,
 * sees that its system is the live one, verifies again, fails (the git server is gone in that
 * generation) and rolls back. Nothing in the history is lost.
 *
 *   main: c1 (installed) ─ c2 (no git server; executor SIGKILLed while verifying)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { short } from './lib/bed.ts';
import { waitFor } from './lib/proc.ts';
import { installed, withBed } from './lib/scenario.ts';

test('executor SIGKILLed during verification: restarted by systemd, the deployment is resolved, the history keeps every record', { timeout: 300_000 }, async (t) => {
  await withBed(t, { name: 'executor-killed', verifyTimeoutSec: 20 }, async (bed) => {
    const first = await installed(bed);
    const bootLogBefore = bed.bootLog();
    const executorPid = await bed.mainPid('pullnix-executor.service');

    const c2 = await bed.commit({ label: 'no-git', gitServer: false }, 'drop the git server (breaks connectivity)');
    const accepted = await bed.waitForEvent('deploy.accepted', { commit: c2 }, { timeoutMs: 90_000 });
    const deploymentId = Number(accepted.fields.deployment);
    await bed.waitForEvent('deploy.verifying', { deployment: String(deploymentId) }, { timeoutMs: 60_000 });
    // Still verifying (the git server is gone, it keeps retrying): kill it now.
    const before = bed.historyLines();
    const recordBefore = bed.history().find((r) => r.id === deploymentId);
    assert.equal(recordBefore?.commit, c2);
    assert.equal(recordBefore?.phase, 'verifying', `killed during verification: ${JSON.stringify(recordBefore)}`);
    await bed.container.execOk(['systemctl', 'kill', '--signal=SIGKILL', 'pullnix-executor.service']);
    bed.log(`SIGKILL sent to the executor (pid ${executorPid}) while deployment ${deploymentId} was verifying`);

    // systemd brings it back.
    const newPid = await waitFor(
      'systemd restarts the executor with a new MainPID',
      async () => {
        const pid = await bed.mainPid('pullnix-executor.service');
        return pid !== 0 && pid !== executorPid ? pid : undefined;
      },
      { timeoutMs: 30_000 },
    );
    assert.ok(Number(await bed.unitProperty('pullnix-executor.service', 'NRestarts')) >= 1);

    // The new executor resolves the unfinished deployment: its system is live, so it verifies
    // again, and rolls back when that fails.
    const record = await bed.waitForOutcome(c2, { timeoutMs: 120_000 });
    assert.equal(record.id, deploymentId, 'the same deployment is resolved, not a new one');
    assert.equal(record.outcome, 'rolled-back', JSON.stringify(record));
    const recovering = await bed.waitForEvent('deploy.recovering', { deployment: String(deploymentId) }, { timeoutMs: 10_000 });
    assert.equal(recovering.pid, newPid, 'the restarted executor did the recovery');
    assert.equal(recovering.priority, 4);

    // Nothing in the history was lost or rewritten: every line from before the kill is still there, in order.
    const after = bed.historyLines();
    assert.deepEqual(after.slice(0, before.length), before, 'history.jsonl is append-only across the crash');
    assert.ok(after.length > before.length);
    assert.equal(bed.deploymentsOf(first.commit).at(-1)?.outcome, 'succeeded', 'earlier deployments are intact');

    // The machine is back on the last good system, git answers, the boot default never moved.
    assert.equal(await bed.liveSystem(), first.toplevel);
    assert.ok(await bed.gitReachable(), 'git is reachable again');
    assert.equal(bed.bootDefault(), first.toplevel);
    assert.deepEqual(bed.bootLog(), bootLogBefore);
    const status = await bed.waitForPullnix();
    assert.equal(status.current, null);
    assert.equal(status.deployed?.commit, first.commit, `deployed: ${short(status.deployed?.commit ?? '-')}`);
  });
});

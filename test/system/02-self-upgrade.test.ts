/**
 * Scenario 2 — the first attempt's failure, made impossible. A commit whose generation changes
 * both pullnix units (a new pullnix package path). The emulated switch restarts changed units
 * except the marked ones; the executor keeps its MainPID through activation, finishes, restarts
 * the watcher, then restarts itself and runs from the new unit.
 *
 *   main: c1 (installed, pullnix 1) ─ c2 (pullnix 2: both units' ExecStart change)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { short } from './lib/bed.ts';
import { waitFor } from './lib/proc.ts';
import { assertEventSequence, installed, ofDeployment, withBed } from './lib/scenario.ts';

test('self-upgrade: both pullnix units change; the executor survives activation, restarts the watcher, then itself from the new unit', { timeout: 300_000 }, async (t) => {
  await withBed(t, { name: 'self-upgrade' }, async (bed) => {
    await installed(bed);
    // The bed's packageOf, on a MainPID systemd has forked but not exec'd yet (its stdin a FIFO
    // nobody writes: the child blocks in systemd's code, as a child does for a while on a loaded
    // machine): it must wait for the exec, not read systemd's environment and find no package.
    await bed.container.execOk(['mkfifo', '/run/bed-probe-fifo']);
    await bed.container.execOk(['systemd-run', '--unit=bed-probe.service', '-p', 'StandardInput=file:/run/bed-probe-fifo', '-E', 'PULLNIX_BED_PACKAGE=bed-probe', '/bin/sleep', '600']);
    const probePid = await bed.mainPid('bed-probe.service');
    assert.match((await bed.container.execOk(['readlink', `/proc/${probePid}/exe`])).trim(), /\/systemd$/, 'the probe is still in systemd, before its exec');
    const probePackage = bed.packageOf(probePid);
    // The writer comes a second later (packageOf is already looking); the probe then execs.
    await bed.container.execOk(['sh', '-c', 'sleep 1; exec 3>/run/bed-probe-fifo; sleep 1']);
    assert.equal(await probePackage, 'bed-probe', "packageOf read the environment of the exec'd command");
    await bed.container.execOk(['systemctl', 'stop', 'bed-probe.service']);

    const executorPid = await bed.mainPid('pullnix-executor.service');
    const watcherPid = await bed.mainPid('pullnix-watcher.service');
    const oldPackage = await bed.packageOf(executorPid);
    assert.match(oldPackage ?? '', /-pullnix-1$/, 'the installed executor runs pullnix 1');
    const oldUnit = await bed.container.execOk(['systemctl', 'cat', 'pullnix-executor.service']);

    const c2 = await bed.commit({ label: 'gen2', pullnixVersion: '2' }, 'upgrade pullnix to 2');
    const record = await bed.waitForOutcome(c2);
    assert.equal(record.outcome, 'succeeded', `deployment of ${short(c2)}: ${JSON.stringify(record)}`);

    // The emulated switch left both marked units alone (and said so), restarted nothing of pullnix.
    const activation = (await bed.activationLog()).filter((a) => a.action === 'test');
    const ours = activation.slice(activation.findIndex((a) => a.text === `start toplevel=${record.toplevel}`));
    const plan = ours.find((a) => a.text.startsWith('not-restarted='));
    assert.ok(plan, `the activation of ${record.toplevel} logged its plan: ${JSON.stringify(ours)}`);
    assert.match(plan.text, /^not-restarted=(pullnix-executor\.service,pullnix-watcher\.service|pullnix-watcher\.service,pullnix-executor\.service) /);
    assert.match(plan.text, /stopped= restarted= /, 'nothing was stopped or restarted by the switch');

    // Every line the executor logged for this deployment came from the process that started it.
    // (Steps 7 and 8 follow the recorded outcome: wait for the last of them.)
    await bed.waitForEvent('executor.self_upgrade', { deployment: String(record.id) }, { timeoutMs: 30_000 });
    const entries = await bed.journal();
    const lines = ofDeployment(entries, record.id).filter((e) => e.unit === 'pullnix-executor.service');
    const steps = assertEventSequence(
      lines,
      ['deploy.accepted', 'deploy.activating', 'deploy.activated', 'deploy.verifying', 'deploy.verified', 'deploy.committed', 'deploy.succeeded', 'watcher.restarting', 'executor.self_upgrade'],
      `executor journal of deployment ${record.id}`,
    );
    for (const s of steps) assert.equal(s.pid, executorPid, `${s.event} was logged by the executor that was running before (pid ${executorPid}), not ${s.pid}`);

    // The watcher was restarted (by the executor) before the executor left.
    const restartAt = steps.find((s) => s.event === 'watcher.restarting')!.at;
    const selfUpgradeAt = steps.find((s) => s.event === 'executor.self_upgrade')!.at;
    assert.ok(restartAt <= selfUpgradeAt, 'watcher restarted before the executor exits');

    // The executor exits cleanly and systemd starts the new one from the new unit.
    const newExecutorPid = await waitFor(
      'a new executor MainPID',
      async () => {
        const pid = await bed.mainPid('pullnix-executor.service');
        return pid !== 0 && pid !== executorPid ? pid : undefined;
      },
      { timeoutMs: 30_000 },
    );
    const newPackage = await bed.packageOf(newExecutorPid);
    assert.match(newPackage ?? '', /-pullnix-2$/, 'the new executor runs pullnix 2');
    const newUnit = await bed.container.execOk(['systemctl', 'cat', 'pullnix-executor.service']);
    assert.notEqual(newUnit, oldUnit);
    assert.ok(newUnit.includes(`${newPackage}/bin/pullnix-executor`), 'the running unit definition is the new one');
    assert.equal(await bed.unitProperty('pullnix-executor.service', 'NeedDaemonReload'), 'no');
    const stopping = entries.find((e) => e.event === 'executor.stopping' && e.pid === executorPid);
    assert.ok(stopping, 'the old executor logged executor.stopping');
    assert.equal(stopping.fields.reason, 'self-upgrade');
    // Not killed: it exited by itself (systemd logs a clean deactivation, no SIGKILL/SIGTERM from a stop job).
    const executorUnitLog = (await bed.journal(['pullnix-executor.service'])).filter((e) => e.at >= selfUpgradeAt).map((e) => e.message);
    assert.ok(!executorUnitLog.some((m) => /Killing process|code=killed|status=9/.test(m)), `the old executor was not killed: ${executorUnitLog.join(' | ')}`);

    await waitFor(
      'the new executor logs executor.started',
      async () => (await bed.journal(['pullnix-executor.service'])).some((e) => e.event === 'executor.started' && e.pid === newExecutorPid),
      { timeoutMs: 30_000 },
    );

    // The watcher runs pullnix 2 as well, and everything answers.
    const status = await bed.waitForPullnix();
    const newWatcherPid = await bed.mainPid('pullnix-watcher.service');
    assert.notEqual(newWatcherPid, watcherPid);
    assert.match((await bed.packageOf(newWatcherPid)) ?? '', /-pullnix-2$/, 'the restarted watcher runs pullnix 2');
    assert.equal(status.executor.pid, newExecutorPid);
    assert.equal(status.deployed?.commit, c2);
    assert.equal(status.current, null, 'no deployment left in progress');
    assert.equal(bed.deploymentsOf(c2).length, 1, 'no second attempt, no interrupted record');
    assert.equal(bed.bootDefault(), record.toplevel);
  });
});

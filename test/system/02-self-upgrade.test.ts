/**
 * Scenario 2 — the first attempt's failure, made impossible. A commit whose generation changes
 * both pullnix units (a new pullnix package path). The emulated switch restarts changed units
 * except the marked ones; the executor keeps its MainPID through activation and verification,
 * then hands the verified deployment over (issue 21 part 2: a pullnix that cannot start must not
 * be committed): it starts its guard and exits; systemd starts the new executor from the new unit,
 * which resumes the deployment, verifies again, restarts the watcher, waits for it to subscribe
 * and report, and only then commits.
 *
 *   main: c1 (installed, pullnix 1) ─ c2 (pullnix 2: both units' ExecStart change)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { short } from './lib/bed.ts';
import { waitFor } from './lib/proc.ts';
import { assertEventSequence, installed, ofDeployment, withBed } from './lib/scenario.ts';

test('self-upgrade: both pullnix units change; the executor survives activation, hands the verified deployment over; the new executor restarts the watcher and commits', { timeout: 300_000 }, async (t) => {
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

    // The old executor verified and handed over; the new one resumed, saw the watcher come up, committed.
    await bed.waitForEvent('handover.done', { deployment: String(record.id) }, { timeoutMs: 60_000, units: ['pullnix-handover-*'] });
    const entries = await bed.journal();
    const lines = ofDeployment(entries, record.id).filter((e) => e.unit === 'pullnix-executor.service');
    const oldSteps = assertEventSequence(
      lines.filter((e) => e.pid === executorPid),
      ['deploy.accepted', 'deploy.activating', 'deploy.activated', 'deploy.verifying', 'deploy.verified', 'deploy.handed_over', 'executor.self_upgrade'],
      `the old executor's journal of deployment ${record.id}`,
    );
    assert.ok(!lines.some((e) => e.pid === executorPid && (e.event === 'deploy.committed' || e.event === 'watcher.restarting')), 'the old executor committed nothing and left the watcher to the new one');
    const selfUpgradeAt = oldSteps.find((s) => s.event === 'executor.self_upgrade')!.at;
    const newExecutorPid = await waitFor(
      'a new executor MainPID',
      async () => {
        const pid = await bed.mainPid('pullnix-executor.service');
        return pid !== 0 && pid !== executorPid ? pid : undefined;
      },
      { timeoutMs: 30_000 },
    );
    assertEventSequence(
      lines.filter((e) => e.pid === newExecutorPid),
      ['deploy.verifying', 'deploy.verified', 'watcher.restarting', 'verify.pullnix_started', 'deploy.committed', 'deploy.succeeded'],
      `the new executor's journal of deployment ${record.id}`,
    );
    assert.deepEqual(record.checks?.map((c) => c.name).at(-1), 'pullnix-start');
    assert.equal((await bed.events('handover.done', { deployment: String(record.id) }, ['pullnix-handover-*']))[0]?.fields.outcome, 'succeeded', 'the guard saw the new executor finish');

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

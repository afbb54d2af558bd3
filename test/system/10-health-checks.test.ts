/**
 * Health checks on the real-systemd bed. The machine runs a real HTTP server unit (Node on
 * 127.0.0.1:8080) watched by an `http` check, and the newly-failed-units check is on (default).
 *
 *   main: c1 (installed: web healthy) ─ c2 (a unit that crash-loops: rolled back)
 *         ─ c3 (web answers 500: rolled back) ─ c4 (web fixed: deployed)
 *         ─ c5 (web service and its check removed together: deployed, the old check is not run)
 *
 * The crash-looping unit is active for a second after every start, so switch-to-configuration
 * exits 0; only the settle window of the failed-units check sees it fail.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { short } from './lib/bed.ts';
import { assertEventSequence, installed, ofDeployment, withBed } from './lib/scenario.ts';
import { CRASH_LOOP_UNIT, WEB_CHECK, WEB_SERVER, webUnit } from './lib/units.ts';

const web = (status: number) => ({ extraUnits: { 'bed-web.service': webUnit(status) }, extraEtc: { 'bed-web/server.mjs': WEB_SERVER }, config: { checks: WEB_CHECK } });

test('health checks: a crash-looping unit and a broken HTTP endpoint are rolled back, the fix deploys', { timeout: 400_000 }, async (t) => {
  await withBed(t, { name: 'health-checks', verifyTimeoutSec: 10 }, async (bed) => {
    const first = await installed(bed, { spec: { label: 'gen1', ...web(200) } });
    assert.deepEqual(
      first.record.checks?.map((c) => [c.name, c.passed]),
      [['pullnix-config', true], ['git', true], ['failed-units', true], ['web', true], ['web-unit', true], ['whoami', true]],
    );
    // the command check ran through systemd-run as a dynamic user, not root, with the deployment's environment
    const whoami = first.record.checks!.find((c) => c.name === 'whoami')!;
    assert.match(whoami.output ?? '', new RegExp(`^uid=(\\d+) commit=${first.commit}$`));
    assert.notEqual(/uid=(\d+)/.exec(whoami.output!)![1], '0');
    const bootBefore = bed.bootDefault();
    const bootLogBefore = bed.bootLog();

    // (1) a new unit that crash-loops
    const c2 = await bed.commit({ label: 'crashy', ...web(200), extraUnits: { ...web(200).extraUnits, 'crashy.service': CRASH_LOOP_UNIT } }, 'add crashy.service (crash-loops)');
    const crashed = await bed.waitForOutcome(c2);
    assert.equal(crashed.outcome, 'rolled-back', JSON.stringify(crashed));
    assert.equal(crashed.activationExit, 0, 'switch-to-configuration saw nothing wrong: the unit was running when it looked');
    assert.equal(crashed.error?.code, 'VERIFY_FAILED');
    assert.match(crashed.error!.message, /check failed-units failed: .*crashy\.service/);
    const units = crashed.checks!.find((c) => c.name === 'failed-units')!;
    assert.equal(units.passed, false);
    assert.deepEqual(units.units, ['crashy.service'], 'the history names the unit');
    assert.equal(bed.bootDefault(), bootBefore, 'the boot default never moved');
    assert.deepEqual(bed.bootLog(), bootLogBefore, 'switch-to-configuration boot never ran');
    assert.equal(await bed.liveSystem(), first.toplevel);
    assert.equal(await bed.unitProperty('crashy.service', 'LoadState'), 'not-found', 'the rollback removed the unit');
    await bed.waitForWatcherRestart(crashed.id);
    const status = await bed.status();
    assert.deepEqual(status.lastFailure?.failedChecks?.map((c) => c.name), ['failed-units']);
    const human = await bed.ctl(['status']);
    assert.match(human.stdout, /failed check\s+failed-units \(units\): .*crashy\.service/);
    const lines = ofDeployment(await bed.journal(['pullnix-executor.service']), crashed.id);
    assertEventSequence(lines, ['deploy.verifying', 'check.passed', 'check.failed', 'deploy.verify_failed', 'deploy.rolling_back', 'deploy.rolled_back'], `deployment ${crashed.id}`);

    // (2) the HTTP endpoint the check watches breaks
    const c3 = await bed.commit({ label: 'web-500', ...web(500) }, 'web: a release whose health endpoint fails');
    const broken = await bed.waitForOutcome(c3);
    assert.equal(broken.outcome, 'rolled-back', JSON.stringify(broken));
    assert.match(broken.error!.message, /check web failed: GET http:\/\/127\.0\.0\.1:8080\/health failed \d+ times within verify\.timeoutSec=10; last: status 500, expected 2xx: database connection refused/);
    assert.deepEqual(broken.checks!.map((c) => [c.name, c.passed]), [['pullnix-config', true], ['git', true], ['failed-units', true], ['web', false], ['web-unit', true], ['whoami', true]]);
    assert.equal(bed.bootDefault(), bootBefore);
    assert.equal(await bed.liveSystem(), first.toplevel);
    await bed.waitForWatcherRestart(broken.id);
    const healthy = await bed.container.exec(['/opt/node/bin/node', '-e', "fetch('http://127.0.0.1:8080/health').then((r) => process.stdout.write(String(r.status)))"]);
    assert.equal(healthy.stdout, '200', 'the previous web server answers again');

    // (3) the fix deploys
    const c4 = await bed.commit({ label: 'web-fixed', ...web(200) }, 'web: fixed');
    const fixed = await bed.waitForOutcome(c4);
    assert.equal(fixed.outcome, 'succeeded', JSON.stringify(fixed));
    assert.equal(fixed.checks!.find((c) => c.name === 'web')!.passed, true);
    assert.equal(bed.bootDefault(), fixed.toplevel);

    // (4) the checks are the deployed system's own: dropping the web service and its check together deploys
    const c5 = await bed.commit({ label: 'no-web' }, 'retire the web application (service and check)');
    const retired = await bed.waitForOutcome(c5);
    assert.equal(retired.outcome, 'succeeded', JSON.stringify(retired));
    assert.deepEqual(retired.checks!.map((c) => c.name), ['pullnix-config', 'git', 'failed-units']);
    assert.equal(await bed.unitProperty('bed-web.service', 'LoadState'), 'not-found');
    t.diagnostic(`rolled back ${short(c2)} (crash loop) and ${short(c3)} (http), deployed ${short(c4)} and ${short(c5)}`);
  });
});

/**
 * Issue 21, part 2, last item: a pullnix that cannot start after a commit is a failed verification.
 * The new watcher must subscribe and report before the commit; a self-upgrade of the executor is
 * handed over (verified, not committed) to the new executor, which commits only once the watcher
 * is up, and a guard of the old program rolls back if the new executor never finishes it.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { DeploymentRecord, Push } from '@pullnix/shared';
import type { Connection } from '@pullnix/shared/server';
import { guardHandover } from '../src/guard.ts';
import { handedOver, HANDOVER_DETAIL } from '../src/pipeline/handover.ts';
import { COMMIT_A, COMMIT_B, recordedCommand, stripSystemdRun, type FakeSystem } from './lib/fake-system.ts';
import { GUARD, harness, type Harness } from './lib/harness.ts';

let h: Harness;
afterEach(() => h?.sys.cleanup());

const EXECUTOR = 'pullnix-executor.service';
const WATCHER = 'pullnix-watcher.service';
const NEW_EXECUTOR_UNIT = '[Service]\nExecStart=/nix/store/new/bin/pullnix-executor\n';
const NEW_WATCHER_UNIT = '[Service]\nExecStart=/nix/store/new/bin/pullnix-watcher\n';

function connection(serial: number): Connection {
  return { serial, closed: false, push: (_m: Push) => undefined };
}

/** The new system's units appear with its activation (switch-to-configuration's daemon-reload). */
function upgradeOnActivation(sys: FakeSystem, next: string, units: { executor?: boolean; watcher?: boolean }): void {
  sys.hooks.set('systemd-run', (argv) => {
    const { command } = recordedCommand(stripSystemdRun(argv));
    if (command[0] === `${next}/bin/switch-to-configuration`) {
      if (units.executor) sys.unitTexts.set(EXECUTOR, NEW_EXECUTOR_UNIT);
      if (units.watcher) sys.unitTexts.set(WATCHER, NEW_WATCHER_UNIT);
    }
    return {};
  });
}

/** What a restart of the watcher does: it comes up (subscribes, reports) or crash-loops. */
function watcherOnRestart(h: Harness, fate: 'up' | 'crash-loop'): void {
  let serial = 100;
  h.sys.hooks.set('systemctl', (argv) => {
    if (argv[1] !== 'restart' || argv.at(-1) !== WATCHER) return {};
    if (fate === 'up') {
      h.executor.subscribe(connection(++serial), { pid: serial, version: 'new' });
      h.executor.report({ state: 'idle' } as never);
    } else h.sys.units.set(WATCHER, { Id: WATCHER, ActiveState: 'activating', SubState: 'auto-restart', NRestarts: '2', ExecMainStatus: '1' });
    return {};
  });
}

function guardCalls(sys: FakeSystem): string[][] {
  return sys.calls.filter((c) => c[0] === 'systemd-run' && c.includes('guard-handover'));
}

async function deploy(h: Harness, commit: string, toplevel: string): Promise<DeploymentRecord> {
  const record = await h.executor.deploy({ commit, toplevel }, 'watcher');
  await h.executor.idle();
  return record;
}

describe('the new pullnix must come up before the commit', () => {
  it("the executor's unit changed: verified, handed over, not committed; the guard started; the executor exits", async () => {
    h = harness();
    h.sys.units.set(EXECUTOR, { Id: EXECUTOR, NRestarts: '3' });
    const next = h.sys.makeSystem('new-pullnix');
    upgradeOnActivation(h.sys, next, { executor: true, watcher: true });
    const record = await deploy(h, COMMIT_A, next);
    assert.equal(record.outcome, null, 'not committed by the old executor');
    assert.equal(record.phase, 'verifying');
    assert.equal(record.phases.at(-1)?.detail, HANDOVER_DETAIL);
    assert.ok(handedOver(record));
    assert.equal(h.sys.profileTarget(), h.old, 'the boot default did not move');
    assert.equal(h.sys.live(), next);
    const guards = guardCalls(h.sys);
    assert.equal(guards.length, 1);
    assert.ok(!guards[0]!.includes('--wait'), 'the guard outlives the executor');
    assert.deepEqual(stripSystemdRun(guards[0]!), [...GUARD, String(record.id), '--restarts', '3']);
    assert.equal(h.selfUpgrades, 1);
    assert.ok(!h.sys.calls.some((c) => c[0] === 'systemctl' && c[1] === 'restart'), 'the old executor leaves the watcher to the new one');
    assert.throws(() => h.executor.deploy({ commit: COMMIT_B, toplevel: h.sys.makeSystem('y') }, 'watcher'), { code: 'BUSY' });
  });

  it('the new executor resumes the deployment, restarts the watcher, and commits once the watcher subscribed and reported', async () => {
    h = harness();
    const next = h.sys.makeSystem('new-pullnix');
    upgradeOnActivation(h.sys, next, { executor: true, watcher: true });
    const handed = await deploy(h, COMMIT_A, next);
    watcherOnRestart(h, 'up');
    const e = h.reopen();
    await e.recover();
    const done = e.history.get(handed.id)!;
    assert.equal(done.outcome, 'succeeded', JSON.stringify(done.error));
    assert.deepEqual(done.checks?.map((c) => [c.name, c.passed]).at(-1), ['pullnix-start', true]);
    assert.equal(h.sys.profileTarget(), next);
    assert.equal(h.sys.calls.filter((c) => c[0] === 'systemctl' && c[1] === 'restart' && c.at(-1) === WATCHER).length, 1, 'restarted once, before the commit');
    assert.equal(h.selfUpgrades, 1, 'the new executor does not exit again');
  });

  it('the new executor rolls back when the new watcher crash-loops; the history says why', async () => {
    h = harness();
    const next = h.sys.makeSystem('new-pullnix');
    upgradeOnActivation(h.sys, next, { executor: true, watcher: true });
    const handed = await deploy(h, COMMIT_A, next);
    watcherOnRestart(h, 'crash-loop');
    const e = h.reopen();
    await e.recover();
    const done = e.history.get(handed.id)!;
    assert.equal(done.outcome, 'rolled-back');
    assert.equal(done.error?.code, 'VERIFY_FAILED');
    assert.match(done.error?.message ?? '', /check pullnix-start failed: the new watcher \(pullnix-watcher\.service\) is crash-looping: systemd restarted it 2 times .*ExecMainStatus=1/);
    assert.equal(h.sys.profileTarget(), h.old);
    assert.equal(h.sys.live(), h.old);
    assert.ok(e.state.state.knownBad[COMMIT_A]);
  });

  it("only the watcher's unit changed: restarted before the commit; committed when it came up, rolled back when it did not", async () => {
    h = harness();
    const good = h.sys.makeSystem('new-watcher');
    upgradeOnActivation(h.sys, good, { watcher: true });
    watcherOnRestart(h, 'up');
    const ok = await deploy(h, COMMIT_A, good);
    assert.equal(ok.outcome, 'succeeded');
    assert.equal(ok.checks?.at(-1)?.name, 'pullnix-start');
    assert.equal(h.selfUpgrades, 0);
    const restarts = () => h.sys.calls.filter((c) => c[0] === 'systemctl' && c[1] === 'restart' && c.at(-1) === WATCHER).length;
    assert.equal(restarts(), 1, 'not restarted a second time after the commit');

    const bad = h.sys.makeSystem('broken-watcher');
    h.sys.unitTexts.delete(WATCHER);
    upgradeOnActivation(h.sys, bad, { watcher: true });
    watcherOnRestart(h, 'crash-loop');
    const failed = await deploy(h, COMMIT_B, bad);
    assert.equal(failed.outcome, 'rolled-back');
    assert.match(failed.error?.message ?? '', /check pullnix-start failed: the new watcher .* is crash-looping/);
    assert.equal(h.sys.profileTarget(), good);
  });

  it('a watcher that never subscribes fails the check at the bound', async () => {
    h = harness();
    const next = h.sys.makeSystem('silent-watcher');
    upgradeOnActivation(h.sys, next, { watcher: true });
    const record = await deploy(h, COMMIT_A, next);
    assert.equal(record.outcome, 'rolled-back');
    assert.match(record.error?.message ?? '', /did not subscribe to the executor and report within 60 s of its restart/);
  });

  it('nothing of pullnix changed: no restart before the commit, no pullnix-start check', async () => {
    h = harness();
    const record = await deploy(h, COMMIT_A, h.sys.makeSystem('plain'));
    assert.equal(record.outcome, 'succeeded');
    assert.ok(!record.checks?.some((c) => c.name === 'pullnix-start'));
    assert.equal(guardCalls(h.sys).length, 0);
  });
});

describe('the guard of a hand-over (guard.ts)', () => {
  async function handedOverDeployment(): Promise<{ next: string; id: number }> {
    h = harness();
    h.sys.units.set(EXECUTOR, { Id: EXECUTOR, NRestarts: '0' });
    const next = h.sys.makeSystem('new-pullnix');
    upgradeOnActivation(h.sys, next, { executor: true, watcher: true });
    const record = await deploy(h, COMMIT_A, next);
    return { next, id: record.id };
  }

  it('the new executor crash-loops: the guard stops it, rolls back with the old program, starts the executor and the watcher again', async () => {
    const { id } = await handedOverDeployment();
    // The old executor's exit (1), then two deaths of the new one.
    h.sys.units.set(EXECUTOR, { Id: EXECUTOR, ActiveState: 'activating', SubState: 'auto-restart', NRestarts: '3', ExecMainStatus: '1' });
    const exit = await guardHandover({ config: h.executor.config, runner: h.sys.runner, log: h.log, clock: h.clock, deploymentId: id, restartsBefore: 0 });
    assert.equal(exit, 0);
    const e = h.reopen();
    const done = e.history.get(id)!;
    assert.equal(done.outcome, 'rolled-back');
    assert.equal(done.error?.code, 'VERIFY_FAILED');
    assert.match(done.error?.message ?? '', /check pullnix-start failed: the new executor \(pullnix-executor\.service\) is crash-looping: it died 2 times after the hand-over/);
    assert.equal(done.checks?.at(-1)?.name, 'pullnix-start');
    assert.equal(h.sys.live(), h.old);
    assert.equal(h.sys.profileTarget(), h.old);
    assert.ok(e.state.state.knownBad[COMMIT_A], 'remembered against the commit');
    const systemctl = h.sys.calls.filter((c) => c[0] === 'systemctl' && (c[1] === 'stop' || c[1] === 'restart')).map((c) => `${c[1]} ${c.at(-1)}`);
    assert.deepEqual(systemctl, [`stop ${EXECUTOR}`, `restart ${EXECUTOR}`, `restart ${WATCHER}`], 'stopped before the rollback, started after it');
  });

  it('the new executor finished the deployment: the guard leaves it alone', async () => {
    const { id, next } = await handedOverDeployment();
    watcherOnRestart(h, 'up');
    const e = h.reopen();
    await e.recover();
    const before = h.sys.calls.length;
    const exit = await guardHandover({ config: e.config, runner: h.sys.runner, log: h.log, clock: h.clock, deploymentId: id, restartsBefore: 0 });
    assert.equal(exit, 0);
    assert.ok(!h.sys.calls.slice(before).some((c) => c[0] === 'systemctl' && c[1] !== 'show'), 'nothing stopped or restarted');
    assert.equal(h.sys.profileTarget(), next);
  });

  it('a new executor that neither dies nor finishes is stopped at the bound, and rolled back', async () => {
    const { id } = await handedOverDeployment();
    h.sys.units.set(EXECUTOR, { Id: EXECUTOR, ActiveState: 'active', SubState: 'running', NRestarts: '1' });
    const exit = await guardHandover({ config: h.executor.config, runner: h.sys.runner, log: h.log, clock: h.clock, deploymentId: id, restartsBefore: 0 });
    assert.equal(exit, 0);
    const done = h.reopen().history.get(id)!;
    assert.equal(done.outcome, 'rolled-back');
    assert.match(done.error?.message ?? '', /did not finish the deployment within \d+ s of the hand-over \(ActiveState=active/);
  });
});

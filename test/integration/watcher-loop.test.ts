/**
 * The watcher's running loop (Watcher.start): the executor connection going away and coming
 * back, a missing key, and `sync` pushes. Real git, stand-in nix, a fake executor on a real socket.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { createRunner, PullnixError } from '@pullnix/shared';
import { ExecutorLink, Watcher, watcherKeyPath, systemClock, type Clock } from '@pullnix/watcher';
import { GitRemote } from '../lib/git-remote.ts';
import { c1DeployedC2Pushed, FakeExecutor } from '../lib/watcher-fake-executor.ts';
import { CapturedLog, Fixtures, waitFor, watcherConfig } from '../lib/watcher-fixtures.ts';

const fx = new Fixtures();
fx.installOnPath();
after(() => fx.cleanup());
const teardowns: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const t of teardowns.splice(0).reverse()) await t();
  fx.resetCalls();
});

/** Counts the link's back-off sleeps, so a test can wait for several reconnection attempts. */
function countingClock(): Clock & { timers: number } {
  const clock = {
    ...systemClock,
    timers: 0,
    setTimer(fn: () => void, ms: number) {
      clock.timers += 1;
      return systemClock.setTimer(fn, ms);
    },
  };
  return clock;
}

function startWatcher(options: { remote: GitRemote; stateDir: string; socketPath: string; log: CapturedLog; linkClock?: Clock }) {
  const { remote, stateDir, socketPath, log } = options;
  const config = watcherConfig({ url: remote.url, stateDir, socketPath });
  const link = new ExecutorLink({
    socketPath,
    keyPath: watcherKeyPath(stateDir),
    logger: log.logger,
    pid: process.pid,
    version: 'test',
    maxBackoffMs: 200,
    baseBackoffMs: 20,
    ...(options.linkClock ? { clock: options.linkClock } : {}),
  });
  const watcher = new Watcher({ config, runner: createRunner(log.logger), logger: log.logger, executor: link, baseBackoffMs: 50 });
  const controller = new AbortController();
  const done = watcher.start(controller.signal);
  teardowns.push(async () => {
    controller.abort('test over');
    await done;
  });
  return { watcher, link, controller, done };
}

describe('watcher loop', () => {
  it('waits for a missing key and a stopped executor without crashing, logging each cause once, and deploys once connected', async () => {
    // main: c1 - *c2      (c1 deployed)
    const remote = new GitRemote();
    const c1 = remote.commit('c1');
    const c2 = remote.commit('c2');
    remote.push();
    const stateDir = fx.newStateDir();
    const socketPath = join(stateDir, 'run', 'executor.sock');
    const executor = new FakeExecutor({ socketPath, stateDir, writeKey: false });
    executor.deployed = c1;
    teardowns.push(() => executor.stop());
    const log = new CapturedLog();
    const clock = countingClock();
    startWatcher({ remote, stateDir, socketPath, log, linkClock: clock });

    await waitFor('three attempts without a key', () => clock.timers >= 3);
    const noKey = log.events('executor.unreachable');
    assert.equal(noKey.length, 1, 'one line while the cause stays the same');
    assert.match(noKey[0]?.fields.reason ?? '', /no key file .*watcher\.key/);
    await waitFor('the first poll to ask the remote', () => fx.gitCalls().some((a) => a[0] === 'ls-remote'));

    executor.writeKey(stateDir);
    const before = clock.timers;
    await waitFor('three attempts against a missing socket', () => clock.timers >= before + 3);
    const unreachable = log.events('executor.unreachable');
    assert.equal(unreachable.length, 2, 'a new cause is logged once');
    assert.match(unreachable[1]?.fields.reason ?? '', /ENOENT.*not running/);
    assert.equal(executor.deploys.length, 0);

    await executor.start();
    await waitFor('the head to be deployed once the executor is up', () => executor.deploys.length === 1);
    assert.equal(executor.deploys[0]?.commit, c2);
    assert.equal(log.count('executor.connected'), 1);
    assert.equal(executor.subscribes, 1);

    // The executor goes away (its restart) and comes back: one line each way, a new subscription.
    executor.stop();
    await waitFor('the watcher to notice', () => log.count('executor.unreachable') === 3);
    assert.match(log.events('executor.unreachable')[2]?.fields.reason ?? '', /connection closed/);
    const afterStop = clock.timers;
    await waitFor('a few reconnection attempts', () => clock.timers >= afterStop + 3);
    assert.equal(log.count('executor.unreachable'), 3, 'the outage is one line, not one per attempt');
    await executor.start();
    await waitFor('a new subscription', () => executor.subscribes === 2 && log.count('executor.connected') === 2);
    await waitFor('a report after reconnecting', () => executor.lastReport?.deployedCommit?.commit === c2);
    assert.equal(executor.deploys.length, 1, 'nothing redeployed');
  });

  it('names a key the executor does not accept as the cause, and keeps trying', async () => {
    // main: *c1
    const remote = new GitRemote();
    remote.commit('c1');
    remote.push();
    const stateDir = fx.newStateDir();
    const socketPath = join(stateDir, 'run', 'executor.sock');
    // The key on disk is not the one the executor trusts (as after restoring one of them from a backup).
    new FakeExecutor({ socketPath, stateDir }).writeKey(stateDir);
    const impostor = new FakeExecutor({ socketPath, stateDir, writeKey: false });
    await impostor.start();
    teardowns.push(() => impostor.stop());
    const log = new CapturedLog();
    const clock = countingClock();
    startWatcher({ remote, stateDir, socketPath, log, linkClock: clock });
    await waitFor('a few refused attempts', () => clock.timers >= 3);
    const lines = log.events('executor.unreachable');
    assert.equal(lines.length, 1);
    assert.match(lines[0]?.fields.reason ?? '', /refused subscribe: BAD_SIGNATURE/);
    assert.equal(impostor.subscribes, 0);
  });

  it('polls at once on a sync push instead of waiting for the interval', async () => {
    // main: *c1 (deployed) ; then c1 - *c2 pushed while the watcher sleeps its hour
    const remote = new GitRemote();
    const c1 = remote.commit('c1');
    remote.push();
    const stateDir = fx.newStateDir();
    const socketPath = join(stateDir, 'run', 'executor.sock');
    const executor = new FakeExecutor({ socketPath, stateDir });
    executor.deployed = c1;
    await executor.start();
    teardowns.push(() => executor.stop());
    const log = new CapturedLog();
    startWatcher({ remote, stateDir, socketPath, log });
    await waitFor('the first poll to finish and the watcher to sleep', () => log.count('poll.unchanged') >= 1 && executor.lastReport?.state === 'idle' && executor.lastReport.nextPollAt !== null);
    const lsRemotes = () => fx.gitCalls().filter((a) => a[0] === 'ls-remote').length;
    const polled = lsRemotes();

    const c2 = remote.commit('c2');
    remote.push();
    executor.push({ type: 'sync' });
    await waitFor('the pushed head to be deployed', () => executor.deploys.length === 1);
    assert.equal(executor.deploys[0]?.commit, c2);
    assert.equal(log.count('poll.sync_requested'), 1);
    assert.equal(lsRemotes(), polled + 1, 'exactly one more poll');
  });

  it('logs a report the executor refuses, once until one is accepted, instead of swallowing it', async () => {
    // main: c1 - *c2 (deployed while every report is refused; then reports are accepted; then refused again)
    const { remote, c2, stateDir, socketPath, executor } = await c1DeployedC2Pushed(() => fx.newStateDir());
    teardowns.push(() => executor.stop());
    const refusal = new PullnixError('BAD_REQUEST', 'params/state must be equal to one of the allowed values');
    executor.refuseReports = refusal;
    const log = new CapturedLog();
    startWatcher({ remote, stateDir, socketPath, log });
    await waitFor('the head deployed and several reports refused', () => executor.deploys.length === 1 && executor.refusedReports >= 3);
    assert.equal(executor.deploys[0]?.commit, c2);
    const refused = log.events('report.refused');
    assert.equal(refused.length, 1, 'one line for the same refusal, not one per report');
    assert.equal(refused[0]?.fields.code, 'BAD_REQUEST');
    assert.match(refused[0]?.fields.reason ?? '', /must be equal to one of the allowed values/);
    assert.equal(refused[0]?.priority, 3, 'logged as an error (syslog priority 3)');

    executor.refuseReports = null;
    executor.push({ type: 'sync' });
    await waitFor('a report accepted again', () => executor.reports.length >= 1);
    executor.refuseReports = refusal;
    executor.push({ type: 'sync' });
    await waitFor('the refusal after an accepted report to be logged again', () => log.count('report.refused') === 2);
  });

  it('builds a commit again after an operator retry, without waiting for the interval', async () => {
    // main: c1 - *c2 (build fails; retry after the cause is fixed)
    const { remote, c2, stateDir, socketPath, executor } = await c1DeployedC2Pushed(() => fx.newStateDir());
    teardowns.push(() => executor.stop());
    fx.failBuild(c2, 'error: builder failed\n');
    teardowns.push(() => fx.healBuild(c2));
    const log = new CapturedLog();
    startWatcher({ remote, stateDir, socketPath, log });
    await waitFor('the build to fail', () => log.count('build.failed') === 1);
    fx.healBuild(c2);
    executor.push({ type: 'retry', commit: c2 });
    await waitFor('the retried commit to be deployed', () => executor.deploys.length === 1);
    assert.equal(executor.deploys[0]?.commit, c2);
    assert.equal(fx.nixCalls().length, 2);
  });

  it('takes an operator retry made while it was disconnected from the subscribe answer', async () => {
    // main: c1 - *c2 (build fails; the executor goes away; retry is said meanwhile; it comes back)
    const { remote, c1, c2, stateDir, socketPath, executor } = await c1DeployedC2Pushed(() => fx.newStateDir());
    fx.failBuild(c2, 'error: builder failed\n');
    teardowns.push(() => fx.healBuild(c2));
    const log = new CapturedLog();
    startWatcher({ remote, stateDir, socketPath, log });
    await waitFor('the build to fail', () => log.count('build.failed') === 1);
    executor.stop();
    fx.healBuild(c2);
    const back = new FakeExecutor({ socketPath, stateDir });
    back.deployed = c1;
    back.pendingRetries = [c2];
    await back.start();
    teardowns.push(() => back.stop());
    await waitFor('the retried commit to be deployed', () => back.deploys.length === 1);
    assert.equal(back.deploys[0]?.commit, c2);
    assert.equal(log.count('poll.retry_requested'), 1);
  });
});

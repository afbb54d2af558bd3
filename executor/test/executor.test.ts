/** The executor's methods over the fake system: refusals, rollback, retry, sync, status, history paging. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import type { Push, WatcherReport } from '@pullnix/shared';
import type { Connection } from '@pullnix/shared/server';
import { COMMIT_A, COMMIT_B, COMMIT_C } from './lib/fake-system.ts';
import { harness, type Harness } from './lib/harness.ts';

let h: Harness;
afterEach(() => h?.sys.cleanup());

function files(h: Harness): string {
  const read = (f: string) => {
    try {
      return readFileSync(join(h.sys.stateDir, f), 'utf8');
    } catch {
      return '<absent>';
    }
  };
  return `${read('state.json')}\n---\n${read('history.jsonl')}`;
}

function fakeConnection(serial = 1): Connection & { pushes: Push[]; closed: boolean } {
  const pushes: Push[] = [];
  return { serial, closed: false, pushes, push: (m: Push) => pushes.push(m) };
}

async function deploy(h: Harness, commit: string, toplevel: string) {
  const r = await h.executor.deploy({ commit, toplevel }, 'watcher');
  await h.executor.idle();
  return r;
}

describe('refusals (step 1): each with its code, nothing changed', () => {
  it('INVALID_SYSTEM names what is missing', async () => {
    h = harness();
    await deploy(h, COMMIT_A, h.sys.makeSystem('ok'));
    const before = files(h);
    const outside = '/nix/store/00000000000000000000000000000000-elsewhere';
    assert.throws(() => h.executor.deploy({ commit: COMMIT_B, toplevel: outside }, 'watcher'), { code: 'INVALID_SYSTEM', message: /not a top-level path in the Nix store/ });
    const missing = join(h.sys.storeDir, 'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-gone');
    assert.throws(() => h.executor.deploy({ commit: COMMIT_B, toplevel: missing }, 'watcher'), { code: 'INVALID_SYSTEM', message: /does not exist/ });
    const bare = h.sys.makeSystem('bare');
    const { rmSync, chmodSync } = await import('node:fs');
    rmSync(join(bare, 'nixos-version'));
    chmodSync(join(bare, 'bin', 'switch-to-configuration'), 0o644);
    assert.throws(() => h.executor.deploy({ commit: COMMIT_B, toplevel: bare }, 'watcher'), {
      code: 'INVALID_SYSTEM',
      message: /missing bin\/switch-to-configuration \(executable\) and nixos-version/,
    });
    assert.equal(files(h), before);
  });

  it('BUSY while a deployment runs; status and history still answer', async () => {
    h = harness();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    h.sys.hooks.set('git', async () => {
      await gate;
      return {};
    });
    const first = h.executor.deploy({ commit: COMMIT_A, toplevel: h.sys.makeSystem('a') }, 'watcher');
    while (h.executor.status().current?.phase !== 'verifying') await new Promise((r) => setImmediate(r));
    const before = files(h);
    assert.throws(() => h.executor.deploy({ commit: COMMIT_B, toplevel: h.sys.makeSystem('b') }, 'watcher'), { code: 'BUSY', message: /deployment 1 .* in progress \(verifying\)/ });
    assert.throws(() => h.executor.rollback({}, 'local-root'), { code: 'BUSY' });
    assert.equal(files(h), before);
    const status = h.executor.status();
    assert.equal(status.executor.busy, true);
    assert.equal(status.current?.commit, COMMIT_A);
    assert.equal(h.executor.historyPage({}).total, 1);
    release();
    assert.equal((await first).outcome, 'succeeded');
    await h.executor.idle();
    assert.equal(h.executor.status().executor.busy, false);
  });

  it('PAUSED until resume; pause records who and why', async () => {
    h = harness();
    const { paused } = h.executor.pause('maintenance', 'alice');
    assert.equal(paused.by, 'alice');
    assert.equal(paused.reason, 'maintenance');
    const before = files(h);
    assert.throws(() => h.executor.deploy({ commit: COMMIT_A, toplevel: h.sys.makeSystem('a') }, 'watcher'), { code: 'PAUSED', message: /by alice: maintenance/ });
    assert.equal(files(h), before);
    assert.deepEqual(h.executor.resume('alice'), { wasPaused: true });
    assert.deepEqual(h.executor.resume('alice'), { wasPaused: false });
    assert.equal((await deploy(h, COMMIT_A, h.sys.makeSystem('a'))).outcome, 'succeeded');
  });

  it('a pause answered while a deploy was starting still stops it: PAUSED, nothing recorded', async () => {
    h = harness();
    await deploy(h, COMMIT_A, h.sys.makeSystem('ok'));
    const before = files(h);
    // The deploy waits on `systemctl cat` (step 8's "before") when the pause arrives.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    h.sys.hooks.set('systemctl', async (argv) => {
      if (argv[1] === 'cat') await gate;
      return {};
    });
    const pending = h.executor.deploy({ commit: COMMIT_B, toplevel: h.sys.makeSystem('next') }, 'watcher');
    h.executor.pause('incident', 'alice');
    release();
    await assert.rejects(pending, { code: 'PAUSED' });
    await h.executor.idle();
    const after = files(h);
    assert.equal(after.split('---')[1], before.split('---')[1], 'no history record');
    assert.equal(h.executor.busy, false, 'not stuck busy');
  });

  it('KNOWN_BAD for a commit that failed, until retry; retry tells the watcher', async () => {
    h = harness();
    const bad = h.sys.makeSystem('bad');
    h.sys.stcExit.set(`${bad} test`, 4);
    await deploy(h, COMMIT_A, bad);
    const before = files(h);
    assert.throws(() => h.executor.deploy({ commit: COMMIT_A, toplevel: bad }, 'watcher'), { code: 'KNOWN_BAD', message: /failed in deployment 1 .*pullnix-ctl retry/ });
    assert.equal(files(h), before);
    const watcher = fakeConnection();
    h.executor.subscribe(watcher, { pid: 42, version: 't' });
    assert.deepEqual(h.executor.retry(COMMIT_A, 'alice'), { forgotten: true, forwarded: true });
    assert.deepEqual(watcher.pushes, [{ type: 'retry', commit: COMMIT_A }]);
    assert.deepEqual(h.executor.retry(COMMIT_A, 'alice'), { forgotten: false, forwarded: true });
    h.sys.stcExit.delete(`${bad} test`);
    assert.equal((await deploy(h, COMMIT_A, bad)).outcome, 'succeeded');
  });

  it('a retry made while no watcher is connected reaches the next watcher that subscribes, once, even across a restart', async () => {
    h = harness();
    const bad = h.sys.makeSystem('bad');
    h.sys.stcExit.set(`${bad} test`, 4);
    await deploy(h, COMMIT_A, bad);
    assert.deepEqual(h.executor.retry(COMMIT_A, 'alice'), { forgotten: true, forwarded: false });
    const e = h.reopen(); // the executor restarts before any watcher connects
    const first = fakeConnection(1);
    assert.deepEqual(e.subscribe(first, { pid: 42, version: 't' }).retries, [COMMIT_A]);
    assert.deepEqual(e.subscribe(fakeConnection(2), { pid: 43, version: 't' }).retries, [], 'delivered once');
  });
});

describe('rollback method', () => {
  it('defaults to the successful deployment before the current one, through the whole pipeline', async () => {
    h = harness();
    const a = h.sys.makeSystem('a');
    const b = h.sys.makeSystem('b');
    await deploy(h, COMMIT_A, a);
    await deploy(h, COMMIT_B, b);
    const r = await h.executor.rollback({}, 'alice');
    await h.executor.idle();
    assert.equal(r.kind, 'rollback');
    assert.equal(r.commit, COMMIT_A);
    assert.equal(r.toplevel, a);
    assert.equal(r.requestedBy, 'alice');
    assert.equal(r.outcome, 'succeeded');
    assert.equal(h.sys.live(), a);
    assert.equal(h.executor.status().deployed?.commit, COMMIT_A);
    // A second default rollback goes one further back: before deployment 3 comes 2 (b).
    const again = await h.executor.rollback({}, 'alice');
    await h.executor.idle();
    assert.equal(again.toplevel, b);
  });

  it('to a given id; refuses a failed or unknown one, and when nothing is there to go back to', async () => {
    h = harness();
    assert.throws(() => h.executor.rollback({}, 'alice'), { code: 'NOT_FOUND' });
    const a = h.sys.makeSystem('a');
    await deploy(h, COMMIT_A, a);
    assert.throws(() => h.executor.rollback({}, 'alice'), { code: 'NOT_FOUND', message: /no successful deployment before deployment 1/ });
    const bad = h.sys.makeSystem('bad');
    h.sys.stcExit.set(`${bad} test`, 2);
    await deploy(h, COMMIT_B, bad);
    assert.throws(() => h.executor.rollback({ to: 2 }, 'alice'), { code: 'CONFLICT' });
    assert.throws(() => h.executor.rollback({ to: 99 }, 'alice'), { code: 'NOT_FOUND' });
    const r = await h.executor.rollback({ to: 1 }, 'alice');
    assert.equal(r.toplevel, a);
  });

  it('is allowed while paused and for a commit in the failure memory (only that target)', async () => {
    h = harness();
    const a = h.sys.makeSystem('a');
    await deploy(h, COMMIT_A, a);
    await deploy(h, COMMIT_B, h.sys.makeSystem('b'));
    h.executor.state.update((s) => (s.knownBad[COMMIT_A] = { deploymentId: 9, reason: 'test', at: 'now' }));
    h.executor.pause('incident', 'alice');
    const r = await h.executor.rollback({ to: 1 }, 'alice');
    await h.executor.idle();
    assert.equal(r.outcome, 'succeeded');
    assert.ok(h.executor.state.state.paused, 'the pause stays');
    assert.throws(() => h.executor.deploy({ commit: COMMIT_A, toplevel: a }, 'watcher'), { code: 'PAUSED' });
  });
});

describe('watcher connection, sync, report, status', () => {
  it('sync is forwarded to the subscribed watcher; NO_WATCHER without one; newer subscription wins', () => {
    h = harness();
    assert.throws(() => h.executor.sync('alice'), { code: 'NO_WATCHER' });
    const old = fakeConnection(1);
    const newer = fakeConnection(2);
    h.executor.subscribe(old, { pid: 1, version: 'a' });
    h.executor.subscribe(newer, { pid: 2, version: 'b' });
    assert.deepEqual(h.executor.sync('alice'), { forwarded: true });
    assert.deepEqual(old.pushes, []);
    assert.deepEqual(newer.pushes, [{ type: 'sync' }]);
    h.executor.connectionClosed(old);
    assert.equal(h.executor.status().watcher.connected, true, 'closing the replaced connection changes nothing');
    newer.closed = true;
    h.executor.connectionClosed(newer);
    assert.equal(h.executor.status().watcher.connected, false);
    assert.throws(() => h.executor.sync('alice'), { code: 'NO_WATCHER' });
    assert.deepEqual(h.executor.retry(COMMIT_C, 'alice'), { forgotten: false, forwarded: false });
  });

  it('status shows the last report and drift against the deployed commit', async () => {
    h = harness();
    const report: WatcherReport = {
      state: 'idle',
      pid: 7,
      version: '0.1.0',
      remoteHead: { commit: COMMIT_B, subject: 'next', time: null },
      deployedCommit: null,
      lastPollAt: null,
      nextPollAt: null,
      lastError: null,
      failedBuilds: [],
    };
    h.executor.report(report);
    assert.equal(h.executor.status().drift, null, 'nothing deployed: unknown');
    await deploy(h, COMMIT_A, h.sys.makeSystem('a'));
    const s = h.executor.status();
    assert.deepEqual(s.watcher.report, report);
    assert.ok(s.watcher.reportedAt);
    assert.equal(s.drift, true);
    h.executor.report({ ...report, remoteHead: { commit: COMMIT_A, subject: null, time: null } });
    assert.equal(h.executor.status().drift, false);
    assert.equal(h.executor.status().liveSystem, h.sys.live());
  });

  it('a history page stops before the answer outgrows a socket frame; paging with before gets the rest', async () => {
    h = harness();
    const first = await h.executor.deploy({ commit: COMMIT_A, toplevel: h.sys.makeSystem('a') }, 'watcher');
    await h.executor.idle();
    for (let id = 2; id <= 300; id++) {
      h.executor.history.append({ ...first, id, outcome: 'rolled-back', error: { code: 'INTERNAL', message: 'x'.repeat(4000) } });
    }
    const page = h.executor.historyPage({ limit: 300 });
    assert.ok(page.deployments.length < 300 && page.deployments.length > 10, `got ${page.deployments.length}`);
    assert.ok(JSON.stringify(page).length < 600 * 1024);
    assert.equal(page.deployments[0]!.id, 300);
    assert.equal(page.total, 300);
    const next = h.executor.historyPage({ limit: 300, before: page.deployments.at(-1)!.id });
    assert.equal(next.deployments[0]!.id, page.deployments.at(-1)!.id - 1);
  });

  it('history: newest first, limit, before-paging, total', async () => {
    h = harness();
    for (let i = 0; i < 5; i++) await deploy(h, String(i).repeat(40), h.sys.makeSystem(`s${i}`));
    const page = h.executor.historyPage({ limit: 2 });
    assert.deepEqual(page.deployments.map((d) => d.id), [5, 4]);
    assert.equal(page.total, 5);
    assert.deepEqual(h.executor.historyPage({ limit: 2, before: 4 }).deployments.map((d) => d.id), [3, 2]);
    assert.deepEqual(h.executor.historyPage({ before: 2 }).deployments.map((d) => d.id), [1]);
    assert.deepEqual(h.executor.historyPage({}).deployments.length, 5);
    assert.ok(h.executor.historyPage({}).deployments.every((d) => d.outcome === 'succeeded'), 'each id appears once, as its newest snapshot');
  });
});

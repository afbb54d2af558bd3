/**
 * Every refusal, against a real executor process over its real Unix socket: each answered with
 * its error code and a `request.refused` log line, and none changes state.json or history.jsonl.
 * Forged envelopes go through SocketClient.sendRaw.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect as netConnect, type Socket } from 'node:net';
import {
  ConnectError,
  generateSigningKey,
  MAX_FRAME_IN_BYTES,
  MAX_REQUEST_BYTES,
  newRequestId,
  PullnixError,
  signRequest,
  SocketClient,
  type ErrorCode,
  type Response,
} from '@pullnix/shared';
import { COMMIT_1, COMMIT_2, COMMIT_3, ExecutorProcess, makeBed, type Bed } from '../lib/executor-fixtures.ts';

describe('executor refusals over the socket', () => {
  let bed: Bed;
  let proc: ExecutorProcess;
  let operator: SocketClient;
  let watcher: SocketClient;
  let good: string;
  let bad: string;

  before(async () => {
    bed = makeBed();
    good = bed.makeSystem('good');
    bad = bed.makeSystem('bad');
    bed.setExit('bad', 'test', 4);
    proc = await ExecutorProcess.start(bed);
    operator = await proc.client('operator');
    watcher = await proc.client('watcher');
    // One real deployment, so that the files hold something to keep unchanged.
    const first = await watcher.request('deploy', { commit: COMMIT_1, toplevel: good }, { timeoutMs: 30_000 });
    assert.equal(first.deployment.outcome, 'succeeded');
    await proc.waitFor('watcher.restarting');
  });

  after(async () => {
    operator?.close();
    watcher?.close();
    await proc?.stop();
    bed?.cleanup();
  });

  /** This executor run's id (from the hello): every envelope below is signed for it. */
  const run = () => operator.run!;

  /**
   * Send `payload` on a new connection, expect refusal `code`, and prove nothing changed on disk
   * and the refusal is in the log (rate-limited: the first of its kind per interval is logged, so
   * a line with this code exists, logged now or by an earlier refusal of the same kind).
   */
  async function refused(payload: unknown, id: string, code: ErrorCode, role: 'operator' | 'watcher' = 'operator'): Promise<string> {
    const before = bed.files();
    // A connection of its own: the server closes one that keeps sending refused requests.
    const client = await proc.client(role);
    const response: Response = await client.sendRaw(payload, id).finally(() => client.close());
    assert.equal(response.ok, false, `expected ${code}, got ${JSON.stringify(response)}`);
    assert.equal(!response.ok && response.error.code, code, !response.ok ? response.error.message : '');
    assert.equal(bed.files(), before, 'state.json and history.jsonl unchanged');
    for (let n = 1; !proc.events('request.refused').some((l) => l.code === code); n++) await proc.waitFor('request.refused', n);
    return !response.ok ? response.error.message : '';
  }

  const deployParams = () => ({ commit: COMMIT_2, toplevel: good });

  it('bad signature', async () => {
    const env = signRequest(proc.key('watcher'), run(), 'deploy', deployParams());
    const forged = { ...env, params: { ...env.params, toplevel: bad } };
    await refused(forged, env.id, 'BAD_SIGNATURE', 'watcher');
  });

  it('unknown key', async () => {
    const env = signRequest(generateSigningKey('mallory'), run(), 'deploy', deployParams());
    const message = await refused(env, env.id, 'UNKNOWN_KEY');
    assert.match(message, /mallory/);
  });

  it("wrong role: the watcher's key may not pause, roll back, retry or sync", async () => {
    for (const [method, params] of [['pause', {}], ['rollback', {}], ['retry', { commit: COMMIT_1 }], ['sync', {}], ['resume', {}]] as const) {
      const env = signRequest(proc.key('watcher'), run(), method, params as never);
      await refused(env, env.id, 'FORBIDDEN', 'watcher');
    }
  });

  it('stale and future issuedAt', async () => {
    const stale = signRequest(proc.key('watcher'), run(), 'deploy', deployParams(), { now: Date.now() - 10 * 60_000 });
    await refused(stale, stale.id, 'STALE', 'watcher');
    const future = signRequest(proc.key('watcher'), run(), 'deploy', deployParams(), { now: Date.now() + 10 * 60_000 });
    await refused(future, future.id, 'STALE', 'watcher');
  });

  it('replayed nonce', async () => {
    const env = signRequest(proc.key('operator'), run(), 'pause', { reason: 'once' });
    const first = await operator.sendRaw(env, env.id);
    assert.equal(first.ok, true);
    await refused(env, env.id, 'REPLAY');
    await operator.request('resume', {});
  });

  it('unknown protocol version', async () => {
    const env = signRequest(proc.key('watcher'), run(), 'deploy', deployParams());
    await refused({ ...env, v: 1 }, env.id, 'UNSUPPORTED_VERSION', 'watcher');
  });

  it("an operator key is not the watcher's: deploy of an arbitrary store path is refused", async () => {
    const env = signRequest(proc.key('operator'), run(), 'deploy', { commit: 'e'.repeat(40), toplevel: good });
    assert.match(await refused(env, env.id, 'FORBIDDEN'), /deploy needs watcher/);
    // Not on root's own socket either: the role is the key's, not the socket's.
    const root = await proc.client('operator', 'private');
    await assert.rejects(root.request('deploy', { commit: 'e'.repeat(40), toplevel: good }), (e: unknown) => e instanceof PullnixError && e.code === 'FORBIDDEN');
    root.close();
  });

  it('unknown method', async () => {
    const env = signRequest(proc.key('operator'), run(), 'reboot' as never, {} as never);
    await refused(env, env.id, 'UNKNOWN_METHOD');
  });

  it('schema violations: store path outside /nix/store, non-hex commit, extra field, oversized message', async () => {
    const w = proc.key('watcher');
    const outside = signRequest(w, run(), 'deploy', { commit: COMMIT_2, toplevel: '/tmp/evil-system' });
    assert.match(await refused(outside, outside.id, 'BAD_REQUEST', 'watcher'), /toplevel/);
    const subpath = signRequest(w, run(), 'deploy', { commit: COMMIT_2, toplevel: `${good}/../../etc` });
    await refused(subpath, subpath.id, 'BAD_REQUEST', 'watcher');
    const nonHex = signRequest(w, run(), 'deploy', { commit: 'z'.repeat(40), toplevel: good });
    assert.match(await refused(nonHex, nonHex.id, 'BAD_REQUEST', 'watcher'), /commit/);
    const shell = signRequest(w, run(), 'deploy', { commit: `${'a'.repeat(39)};`, toplevel: good });
    await refused(shell, shell.id, 'BAD_REQUEST', 'watcher');
    const extra = signRequest(w, run(), 'deploy', { ...deployParams(), force: true } as never);
    assert.match(await refused(extra, extra.id, 'BAD_REQUEST', 'watcher'), /unexpected field "force"/);
    const envelopeExtra = { ...signRequest(w, run(), 'status', {}), admin: true };
    await refused(envelopeExtra, envelopeExtra.id, 'BAD_REQUEST', 'watcher');
    const large = signRequest(proc.key('operator'), run(), 'pause', { reason: 'x'.repeat(MAX_REQUEST_BYTES) });
    await refused(large, large.id, 'TOO_LARGE');
    // Past the raw frame limit the connection is closed before the frame is parsed: no answer.
    const huge = signRequest(proc.key('operator'), run(), 'pause', { reason: 'x'.repeat(MAX_FRAME_IN_BYTES) });
    const c = await proc.client('operator');
    await assert.rejects(c.sendRaw(huge, huge.id), (e: unknown) => e instanceof ConnectError && e.errno === 'ECONNRESET');
    await proc.waitFor('socket.dropped');
    assert.ok(proc.events('socket.dropped').some((l) => l.cause === 'frame-too-large' && l.socket === 'group'));
    const notAnObject = newRequestId();
    const r = await operator.sendRaw(['not', 'an', 'envelope'], notAnObject).catch((e: Error) => e);
    // An id-less frame cannot be matched to its answer; the executor must simply stay up.
    assert.ok(r instanceof Error || (r as Response).ok === false);
    assert.equal((await operator.request('status', {})).executor.pid, proc.child.pid);
  });

  it('paused', async () => {
    await operator.request('pause', { reason: 'maintenance window' });
    const env = signRequest(proc.key('watcher'), run(), 'deploy', deployParams());
    assert.match(await refused(env, env.id, 'PAUSED', 'watcher'), /maintenance window/);
    assert.deepEqual(await operator.request('resume', {}), { wasPaused: true });
  });

  it('known-bad commit', async () => {
    const failed = await watcher.request('deploy', { commit: COMMIT_3, toplevel: bad }, { timeoutMs: 30_000 });
    assert.equal(failed.deployment.outcome, 'rolled-back');
    await proc.waitFor('watcher.restarting', 2);
    while ((await operator.request('status', {})).executor.busy) await new Promise((r) => setTimeout(r, 20));
    const env = signRequest(proc.key('watcher'), run(), 'deploy', { commit: COMMIT_3, toplevel: good });
    assert.match(await refused(env, env.id, 'KNOWN_BAD', 'watcher'), /pullnix-ctl retry/);
  });

  it('invalid system: a store path that is not a NixOS system', async () => {
    const env = signRequest(proc.key('watcher'), run(), 'deploy', { commit: COMMIT_2, toplevel: '/nix/store/00000000000000000000000000000000-missing' });
    assert.match(await refused(env, env.id, 'INVALID_SYSTEM', 'watcher'), /does not exist/);
  });

  it('busy: one deployment at a time; status and history still answered', async () => {
    const held = bed.makeSystem('held');
    bed.hold('held', 'test');
    const running = watcher.request('deploy', { commit: COMMIT_2, toplevel: held }, { timeoutMs: 30_000 });
    for (;;) {
      const s = await operator.request('status', {});
      if (s.current?.phase === 'activating') break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const env = signRequest(proc.key('watcher'), run(), 'deploy', { commit: COMMIT_1, toplevel: good });
    assert.match(await refused(env, env.id, 'BUSY', 'watcher'), /in progress \(activating\)/);
    const history = await operator.request('history', { limit: 1 });
    assert.equal(history.deployments[0]?.commit, COMMIT_2);
    assert.equal(history.deployments[0]?.outcome, null);
    bed.release('held', 'test');
    assert.equal((await running).deployment.outcome, 'succeeded');
  });

  it('the refusals are all in the log, with code, key and method', () => {
    const lines = proc.events('request.refused');
    const codes = new Set(lines.map((l) => l.code));
    for (const c of ['BAD_SIGNATURE', 'UNKNOWN_KEY', 'FORBIDDEN', 'STALE', 'REPLAY', 'UNSUPPORTED_VERSION', 'UNKNOWN_METHOD', 'BAD_REQUEST', 'TOO_LARGE', 'PAUSED', 'KNOWN_BAD', 'INVALID_SYSTEM', 'BUSY']) {
      assert.ok(codes.has(c), `${c} logged`);
    }
    const forbidden = lines.find((l) => l.code === 'FORBIDDEN')!;
    assert.equal(forbidden.key, 'watcher');
    assert.ok(forbidden.method);
    assert.ok(forbidden.reason);
  });

  it('a keyless flood is logged rate-limited: one line per socket and cause, then a count', { timeout: 60_000 }, async () => {
    const linesBefore = proc.events('request.refused').length;
    const forger = generateSigningKey('local-root'); // root's key id, not root's key
    let sent = 0;
    // 40 connections of 8 forged requests each (the server closes a connection after 8 refusals).
    await Promise.all(
      Array.from({ length: 40 }, async () => {
        const f = new SocketClient({ path: bed.socketPath, key: forger });
        await f.connect();
        for (let i = 0; i < 8; i++) {
          const env = signRequest(forger, f.run!, 'status', {});
          sent++;
          const r = await f.sendRaw(env, env.id).catch(() => null);
          if (r) assert.equal(!r.ok && r.error.code, 'BAD_SIGNATURE');
        }
        f.close();
      }),
    );
    const newLines = proc.events('request.refused').length - linesBefore;
    assert.ok(newLines <= 2, `${sent} forged requests made ${newLines} request.refused lines`);
    // The rest are counted, in one summary line per interval (the flood may straddle two).
    const counted = () =>
      proc
        .events('socket.refusals_repeated')
        .filter((l) => l.cause === 'BAD_SIGNATURE' && l.socket === 'group')
        .reduce((sum, l) => sum + Number(l.count), 0);
    for (let n = 1; counted() < sent - newLines; n++) await proc.waitFor('socket.refusals_repeated', n);
    assert.ok(counted() >= sent - newLines);
  });

  it('a keyless peer holding every slot of the group socket locks out neither root, the watcher nor an operator', { timeout: 60_000 }, async () => {
    // More idle connections than the group socket has slots, re-opened as soon as one is closed.
    let stop = false;
    const open = new Set<Socket>();
    const hold = (): void => {
      if (stop) return;
      const s = netConnect(bed.socketPath);
      open.add(s);
      s.on('error', () => {});
      s.resume();
      s.on('close', () => {
        open.delete(s);
        setImmediate(hold);
      });
    };
    for (let i = 0; i < 300; i++) hold();
    try {
      while (!proc.events('socket.dropped').some((l) => l.cause === 'evicted')) await new Promise((r) => setTimeout(r, 20));
      for (let i = 0; i < 5; i++) {
        const op = await proc.client('operator', 'group');
        assert.equal((await op.request('status', {})).executor.pid, proc.child.pid);
        op.close();
        const root = await proc.client('operator', 'private');
        assert.equal((await root.request('status', {})).executor.pid, proc.child.pid);
        root.close();
        const w = await proc.client('watcher', 'private');
        assert.equal((await w.request('status', {})).executor.pid, proc.child.pid);
        w.close();
      }
    } finally {
      stop = true;
      for (const s of open) s.destroy();
    }
  });

  it('a refused request rejects with PullnixError through the normal client', async () => {
    await assert.rejects(watcher.request('pause', {}), (e: unknown) => e instanceof PullnixError && e.code === 'FORBIDDEN');
  });
});

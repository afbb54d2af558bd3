import assert from 'node:assert/strict';
import { mkdtempSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Authenticator, ConnectError, MAX_REFUSALS_PER_CONNECTION, generateSigningKey, PullnixError, signRequest, SocketClient, SocketServer, type Push } from '../src/index.ts';

describe('socket server and client', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pullnix-socket-'));
  const path = join(dir, 'run', 'executor.sock');
  const watcher = generateSigningKey('watcher');
  const refusals: string[] = [];
  let server: SocketServer;

  before(async () => {
    server = new SocketServer({
      path,
      group: null,
      authenticator: new Authenticator({ keys: [{ keyId: 'watcher', role: 'watcher', publicKey: watcher.publicKey }] }),
      handler: async (request, connection) => {
        if (request.method === 'subscribe') {
          setImmediate(() => connection.push({ type: 'sync' }));
          return { executorPid: process.pid };
        }
        if (request.method === 'history') throw new PullnixError('NOT_FOUND', 'no such deployment');
        return { method: request.method };
      },
      onRefused: (error) => refusals.push(error.code),
    });
    await server.start();
  });
  after(() => server.stop());

  it('keeps the socket owner-only when no group is given', () => {
    assert.equal(statSync(path).mode & 0o777, 0o600);
  });

  it('matches responses to requests, carries error codes, and delivers pushes', async () => {
    const client = new SocketClient({ path, key: watcher });
    await client.connect();
    const pushes: Push[] = [];
    client.onPush((m) => pushes.push(m));
    const [a, b] = await Promise.all([client.request('status', {}), client.request('subscribe', { pid: 1, version: 't' })]);
    assert.deepEqual(a, { method: 'status' });
    assert.deepEqual(b, { executorPid: process.pid });
    await assert.rejects(client.request('history', {}), (e: unknown) => e instanceof PullnixError && e.code === 'NOT_FOUND');
    while (pushes.length === 0) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(pushes, [{ type: 'sync' }]);
    client.close();
  });

  it('answers a forged request with its refusal and logs it', async () => {
    const client = new SocketClient({ path, key: watcher });
    await client.connect();
    const forged = { ...signRequest(watcher, 'status', {}), params: { injected: true } };
    const response = await client.sendRaw(forged, forged.id);
    assert.equal(response.ok, false);
    assert.equal(!response.ok && response.error.code, 'BAD_SIGNATURE');
    assert.ok(refusals.includes('BAD_SIGNATURE'));
    client.close();
  });

  it('closes a connection that keeps sending refused requests, and serves others meanwhile', async () => {
    const forger = new SocketClient({ path, key: generateSigningKey('watcher') });
    const honest = new SocketClient({ path, key: watcher });
    await forger.connect();
    await honest.connect();
    let closed = false;
    forger.onClose(() => (closed = true));
    const answers = await Promise.allSettled(
      Array.from({ length: MAX_REFUSALS_PER_CONNECTION + 4 }, () => {
        const forged = signRequest(generateSigningKey('watcher'), 'status', {});
        return forger.sendRaw(forged, forged.id);
      }),
    );
    const refused = answers.filter((a) => a.status === 'fulfilled' && !a.value.ok).length;
    assert.equal(refused, MAX_REFUSALS_PER_CONNECTION, 'every request up to the limit is answered with its refusal');
    assert.equal(answers.filter((a) => a.status === 'rejected').length, 4, 'the rest die with the connection');
    assert.ok(closed, 'the forger was disconnected');
    assert.deepEqual(await honest.request('status', {}), { method: 'status' });
    honest.close();
  });

  it('closes a connection that sends no authenticated request in time, and keeps one that did', { timeout: 10_000 }, async () => {
    const quick = new SocketServer({
      path: join(dir, 'quick.sock'),
      group: null,
      authDeadlineMs: 150,
      authenticator: new Authenticator({ keys: [{ keyId: 'watcher', role: 'watcher', publicKey: watcher.publicKey }] }),
      handler: async () => ({}),
    });
    await quick.start();
    const idle = connect(join(dir, 'quick.sock'));
    const idleClosed = new Promise<void>((resolve) => idle.on('close', () => resolve()));
    const honest = new SocketClient({ path: join(dir, 'quick.sock'), key: watcher });
    await honest.connect();
    await honest.request('status', {});
    await idleClosed; // the idle one is closed by the server
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(honest.connected, 'an authenticated connection may stay idle');
    assert.deepEqual(await honest.request('status', {}), {});
    honest.close();
    quick.stop();
  });

  it('reports a missing socket as ENOENT', async () => {
    const client = new SocketClient({ path: join(dir, 'nope.sock'), key: watcher });
    await assert.rejects(client.connect(), (e: unknown) => e instanceof ConnectError && e.errno === 'ENOENT');
  });
});

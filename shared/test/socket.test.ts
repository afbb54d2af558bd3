import assert from 'node:assert/strict';
import { mkdtempSync, statSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  Authenticator,
  ConnectError,
  MAX_FRAME_IN_BYTES,
  generateSigningKey,
  newRunId,
  PullnixError,
  signRequest,
  SocketClient,
  type Push,
  type Response,
} from '../src/index.ts';
import { MAX_FRAME_BYTES } from '../src/ipc/frame.ts';
import { DEFAULT_MAX_CONNECTIONS, MAX_REFUSALS_PER_CONNECTION, SocketServer, type DropCause } from '../src/server-entry.ts';

const RUN = newRunId();

/** A raw connection speaking node-ipc's framing by hand: what a hostile local peer would write. */
async function rawPeer(path: string) {
  const sock = connect(path);
  await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  sock.setEncoding('utf8');
  const frames: { type: string; data: unknown }[] = [];
  let buf = '';
  let closed = false;
  const waiters: (() => void)[] = [];
  const wake = () => waiters.splice(0).forEach((w) => w());
  sock.on('data', (d: string) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf('\f')) >= 0) {
      frames.push(JSON.parse(buf.slice(0, i)) as { type: string; data: unknown });
      buf = buf.slice(i + 1);
    }
    wake();
  });
  sock.on('error', () => {});
  sock.on('close', () => {
    closed = true;
    wake();
  });
  const until = async (cond: () => boolean) => {
    while (!cond()) await new Promise<void>((r) => waiters.push(r));
  };
  return {
    sock,
    frames,
    get closed() {
      return closed;
    },
    until,
    responses: () => frames.filter((f) => f.type === 'pullnix.response').map((f) => f.data as Response),
    send: (data: unknown) => sock.write(`${JSON.stringify({ type: 'pullnix.request', data })}\f`),
  };
}

describe('socket server and client', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pullnix-socket-'));
  const path = join(dir, 'run', 'executor.sock');
  const watcher = generateSigningKey('watcher');
  const refusals: string[] = [];
  const drops: DropCause[] = [];
  let server: SocketServer;

  before(async () => {
    server = new SocketServer({
      path,
      group: null,
      authenticator: new Authenticator({ keys: [{ keyId: 'watcher', role: 'watcher', publicKey: watcher.publicKey }], runId: RUN }),
      handler: async (request, connection) => {
        if (request.method === 'subscribe') {
          setImmediate(() => connection.push({ type: 'sync' }));
          return { executorPid: process.pid };
        }
        if (request.method === 'history') throw new PullnixError('NOT_FOUND', 'no such deployment');
        return { method: request.method };
      },
      onRefused: (error) => refusals.push(error.code),
      onDropped: (cause) => drops.push(cause),
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
    const forged = { ...signRequest(watcher, RUN, 'status', {}), params: { injected: true } };
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
        const forged = signRequest(generateSigningKey('watcher'), RUN, 'status', {});
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
      authenticator: new Authenticator({ keys: [{ keyId: 'watcher', role: 'watcher', publicKey: watcher.publicKey }], runId: RUN }),
      handler: async () => ({}),
    });
    await quick.start();
    const idle = connect(join(dir, 'quick.sock'));
    idle.resume(); // read (and drop) the hello, so that the server's close is seen
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

  it('bounds the bytes held for unauthenticated connections in all: the ones holding the most are closed, an honest client still gets in', { timeout: 10_000 }, async () => {
    const dropped: string[] = [];
    const budget = 300_000;
    const tight = new SocketServer({
      path: join(dir, 'tight.sock'),
      group: null,
      unauthenticatedBufferBytes: budget,
      authDeadlineMs: 5000,
      authenticator: new Authenticator({ keys: [{ keyId: 'watcher', role: 'watcher', publicKey: watcher.publicKey }], runId: RUN }),
      handler: async () => ({ method: 'status' }),
      onDropped: (cause) => void dropped.push(cause),
    });
    await tight.start();
    try {
      // Eight peers, each 60 KB of a frame never finished (under the 80 KiB frame limit): 480 KB in all.
      const peers = await Promise.all(Array.from({ length: 8 }, () => rawPeer(join(dir, 'tight.sock'))));
      let peak = 0;
      for (const p of peers) p.sock.write(`{"type":"pullnix.request","data":{"pad":"${'q'.repeat(60_000)}`);
      // 8 x 60 KB over a 300 KB budget: four are closed, the ones holding the most.
      while (dropped.length < 4) {
        peak = Math.max(peak, tight.unauthenticatedBytes ?? Infinity);
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.deepEqual(dropped, ['over-budget', 'over-budget', 'over-budget', 'over-budget']);
      assert.ok(tight.unauthenticatedBytes <= budget, `${tight.unauthenticatedBytes} bytes held`);
      assert.ok(peak <= budget, `peak ${peak}`);
      const honest = new SocketClient({ path: join(dir, 'tight.sock'), key: watcher });
      await honest.connect();
      assert.deepEqual(await honest.request('status', {}), { method: 'status' });
      honest.close();
      for (const p of peers) p.sock.destroy();
    } finally {
      tight.stop();
    }
  });

  it('tells every connection the executor run, and refuses a request signed for another run as STALE', async () => {
    const client = new SocketClient({ path, key: watcher });
    await client.connect();
    assert.equal(client.run, RUN);
    const other = signRequest(watcher, newRunId(), 'status', {});
    const response = await client.sendRaw(other, other.id);
    assert.equal(!response.ok && response.error.code, 'STALE');
    client.close();
  });

  it('closes a connection whose frame grows past the raw limit before any of it is parsed', async () => {
    const peer = await rawPeer(path);
    // No delimiter: node-ipc alone would buffer up to 1 MiB, then wait 10 s for the rest.
    peer.sock.write(`{"type":"pullnix.request","data":{"pad":"${'x'.repeat(MAX_FRAME_IN_BYTES)}`);
    await peer.until(() => peer.closed);
    assert.ok(drops.includes('frame-too-large'));
    // A whole over-long frame in one write: closed too, never answered.
    const whole = await rawPeer(path);
    whole.send({ ...signRequest(watcher, RUN, 'status', {}), pad: 'y'.repeat(MAX_FRAME_IN_BYTES) });
    await whole.until(() => whole.closed);
    assert.deepEqual(whole.responses(), []);
  });

  it('closes a connection that has not authenticated and trickles a frame a few bytes per read', async () => {
    const peer = await rawPeer(path);
    const frame = `${JSON.stringify({ type: 'pullnix.request', data: signRequest(watcher, RUN, 'status', {}) })}\f`;
    for (let at = 0; at < frame.length - 1 && !peer.closed; at += 4) {
      peer.sock.write(frame.slice(at, at + 4));
      await new Promise((r) => setTimeout(r, 2)); // one read each
    }
    await peer.until(() => peer.closed);
    assert.ok(drops.includes('trickle'));
  });

  it('answers a frame with no data BAD_REQUEST', async () => {
    const peer = await rawPeer(path);
    peer.sock.write('{"type":"pullnix.request"}\f');
    await peer.until(() => peer.responses().length > 0 || peer.closed);
    const [answer] = peer.responses();
    assert.equal(answer?.ok, false);
    assert.equal(!answer!.ok && answer!.error.code, 'BAD_REQUEST');
    peer.sock.destroy();
  });

  it('lets a connection that has not authenticated have one request waiting; more are refused BUSY unverified', async () => {
    const peer = await rawPeer(path);
    const forger = generateSigningKey('watcher');
    const frames = Array.from({ length: 4 }, () => `${JSON.stringify({ type: 'pullnix.request', data: signRequest(forger, RUN, 'status', {}) })}\f`);
    peer.sock.write(frames.join('')); // one write: all four arrive together
    await peer.until(() => peer.responses().length === 4 || peer.closed);
    const codes = peer.responses().map((r) => (!r.ok ? r.error.code : 'ok'));
    assert.deepEqual(codes.toSorted(), ['BAD_SIGNATURE', 'BUSY', 'BUSY', 'BUSY']);
    peer.sock.destroy();
  });

  it('at the connection limit, a newcomer closes the oldest connection that has not authenticated', { timeout: 10_000 }, async () => {
    const idle = await Promise.all(Array.from({ length: DEFAULT_MAX_CONNECTIONS + 6 }, () => rawPeer(path)));
    const honest = new SocketClient({ path, key: watcher });
    await honest.connect();
    assert.deepEqual(await honest.request('status', {}), { method: 'status' });
    await idle[0]!.until(() => idle[0]!.closed); // the oldest idle connection made room
    assert.ok(drops.includes('evicted'));
    for (const p of idle) p.sock.destroy();
    honest.close();
  });

  it('reports a missing socket as ENOENT', async () => {
    const client = new SocketClient({ path: join(dir, 'nope.sock'), key: watcher });
    await assert.rejects(client.connect(), (e: unknown) => e instanceof ConnectError && e.errno === 'ENOENT');
  });
});

describe('the client reads node-ipc frames over node:net', () => {
  /** A Unix-socket server that runs `serve` on each connection, recording what the client sent. */
  async function rawServer(serve: (socket: Socket) => void): Promise<{ path: string; close: () => void; received: string[] }> {
    const dir = mkdtempSync(join(tmpdir(), 'pullnix-client-frames-'));
    const path = join(dir, 's.sock');
    const received: string[] = [];
    const server = createServer((socket) => {
      socket.setEncoding('utf8');
      socket.on('data', (d: string) => received.push(d));
      socket.on('error', () => {});
      serve(socket);
    });
    await new Promise<void>((resolve) => server.listen(path, resolve));
    return { path, received, close: () => server.close() };
  }
  const frame = (type: string, data: unknown) => `${JSON.stringify({ type, data })}\f`;
  const waitUntil = async (what: string, cond: () => boolean) => {
    const deadline = Date.now() + 10_000;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setImmediate(r));
    }
  };

  it('a hello split across writes, and several frames in one write, arrive whole; requests go out as node-ipc frames', async () => {
    const hello = frame('pullnix.hello', { v: 2, run: RUN });
    const push = frame('pullnix.push', { type: 'sync' }) + frame('pullnix.push', { type: 'retry', commit: 'a'.repeat(40) });
    const srv = await rawServer((socket) => {
      socket.write(hello.slice(0, 7));
      setImmediate(() => socket.write(hello.slice(7) + push));
    });
    const client = new SocketClient({ path: srv.path, key: generateSigningKey('watcher') });
    const pushes: unknown[] = [];
    client.onPush((m) => pushes.push(m));
    try {
      await client.connect();
      assert.equal(client.run, RUN);
      client.request('status', {}, { timeoutMs: 0 }).catch(() => {});
      await waitUntil('the pushes and the request', () => pushes.length === 2 && srv.received.join('').includes('\f'));
      assert.deepEqual(pushes, [{ type: 'sync' }, { type: 'retry', commit: 'a'.repeat(40) }]);
      const sent = JSON.parse(srv.received.join('').split('\f')[0]!) as { type: string; data: { method: string; run: string } };
      assert.equal(sent.type, 'pullnix.request');
      assert.equal(sent.data.method, 'status');
      assert.equal(sent.data.run, RUN);
    } finally {
      client.close();
      srv.close();
    }
  });

  it('a frame larger than the limit closes the connection (node-ipc guarded parser): a waiting request fails, nothing is buffered without bound', { timeout: 10_000 }, async () => {
    const srv = await rawServer((socket) => {
      socket.write(frame('pullnix.hello', { v: 2, run: RUN }));
      // The answer to the first request: a frame without end (1 MiB + 1 byte is over the limit).
      socket.once('data', () => socket.write('{"type":"pullnix.response","data":"' + 'x'.repeat(MAX_FRAME_BYTES)));
    });
    const client = new SocketClient({ path: srv.path, key: generateSigningKey('watcher') });
    try {
      await client.connect();
      let closed = false;
      client.onClose(() => (closed = true));
      await assert.rejects(client.request('status', {}, { timeoutMs: 0 }), (error: Error) => error instanceof ConnectError && error.errno === 'ECONNRESET');
      assert.equal(closed, true);
      assert.equal(client.connected, false);
    } finally {
      client.close();
      srv.close();
    }
  });
});

/**
 * Benchmark 2: one signed request's round trip and verified requests per second over the real
 * SocketServer, against an unsigned newline-JSON echo over plain node:net (the transport's
 * limit), both servers in their own process. Then the same round trip while a second process
 * floods the socket with forged requests.
 */
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { generateSigningKey, SocketClient } from '@pullnix/shared';
import { withScratch } from './common.ts';
import { exited, startNode, stop } from './proc.ts';
import { percentile, type Row } from './table.ts';

const here = (name: string) => fileURLToPath(new URL(name, import.meta.url));

interface Latency {
  p50: number;
  p99: number;
  perSecond: number;
}

async function measure(send: () => Promise<unknown>, sequential: number, pipelined: number, inFlight: number): Promise<Latency> {
  for (let i = 0; i < 200; i++) await send(); // warm up JIT and caches
  const samples: number[] = [];
  for (let i = 0; i < sequential; i++) {
    const t = performance.now();
    await send();
    samples.push(performance.now() - t);
  }
  samples.sort((a, b) => a - b);
  let done = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (done < pipelined) {
        done++;
        await send();
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  return { p50: percentile(samples, 50), p99: percentile(samples, 99), perSecond: pipelined / seconds };
}

async function plainClient(path: string): Promise<{ send: () => Promise<unknown>; close: () => void }> {
  const socket = connect(path);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.setEncoding('utf8');
  const pending = new Map<string, () => void>();
  let buffer = '';
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    let nl: number;
    while ((nl = buffer.indexOf('\n')) !== -1) {
      const { id } = JSON.parse(buffer.slice(0, nl)) as { id: string };
      buffer = buffer.slice(nl + 1);
      pending.get(id)?.();
      pending.delete(id);
    }
  });
  let n = 0;
  return {
    send: () =>
      new Promise<void>((resolve) => {
        const id = String(++n);
        pending.set(id, resolve);
        socket.write(`${JSON.stringify({ v: 1, id, method: 'status', params: {} })}\n`);
      }),
    close: () => socket.destroy(),
  };
}

export async function benchSocket(options: { sequential?: number; pipelined?: number; underFlood?: number } = {}): Promise<Row[]> {
  const sequential = options.sequential ?? 3000;
  const pipelined = options.pipelined ?? 10000;
  const underFlood = options.underFlood ?? 1000;
  return withScratch('socket', async (scratch) => {
    const key = generateSigningKey('watcher');

    const plainPath = scratch.path('plain.sock');
    const plainPeer = await startNode(here('socket-peer.js'), ['plain', plainPath]);
    scratch.defer(() => stop(plainPeer));
    const plain = await plainClient(plainPath);
    const base = await measure(plain.send, sequential, pipelined, 16);
    plain.close();
    await stop(plainPeer);

    const path = scratch.path('pullnix.sock');
    const peer = await startNode(here('socket-peer.js'), ['pullnix', path, key.publicKey]);
    scratch.defer(() => stop(peer));
    const client = new SocketClient({ path, key });
    await client.connect();
    scratch.defer(() => client.close());
    const signed = await measure(() => client.request('status', {}), sequential, pipelined, 16);

    // The flood comparison, like with like: the same number of sequential requests right before
    // the flood, then during it, while another process sends forged requests as fast as it can.
    // The flood is bounded (count and 60 s) but must outlast the measurement; it is stopped after.
    const quiet = await measure(() => client.request('status', {}), underFlood, 0, 1);
    const flooder = await startNode(here('socket-flood.js'), [path, '10000000', '64', '60']);
    scratch.defer(() => stop(flooder));
    const flooded = await measure(() => client.request('status', {}), underFlood, 0, 1);
    if (flooder.exitCode !== null || flooder.signalCode !== null) throw new Error('the forged-request flood ended before the measurement under flood did');
    await stop(flooder);
    await exited(flooder);

    return [
      { group: 'socket', name: 'signed round trip p50 (vs unsigned echo)', figure: signed.p50, baseline: base.p50, unit: 'ms', goal: null },
      { group: 'socket', name: 'signed round trip p99 (vs unsigned echo)', figure: signed.p99, baseline: base.p99, unit: 'ms', goal: { text: 'p99 <= 5 ms', met: signed.p99 <= 5 } },
      { group: 'socket', name: 'verified requests/s, 16 in flight (vs echo)', figure: signed.perSecond, baseline: base.perSecond, unit: 'req/s', goal: null },
      { group: 'socket', name: `p50 under a forged-request flood (vs quiet p50 just before)`, figure: flooded.p50, baseline: quiet.p50, unit: 'ms', goal: null },
      {
        group: 'socket',
        name: `p99 under a forged-request flood (vs quiet p99 just before), ${underFlood} requests each`,
        figure: flooded.p99,
        baseline: quiet.p99,
        unit: 'ms',
        goal: { text: '<= 2x quiet', met: flooded.p99 <= 2 * quiet.p99 },
      },
    ];
  });
}

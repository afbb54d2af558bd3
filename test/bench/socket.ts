/**
 * Benchmark 2: one signed request's round trip and verified requests per second over the real
 * SocketServer, against an unsigned newline-JSON echo over plain node:net (the transport's
 * limit), both servers in their own process. Then the same round trip while a second process
 * floods the socket with forged requests.
 */
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { generateSigningKey, SocketClient } from '@pullnix/shared';
import { sleep, withScratch } from './common.ts';
import { daemonNodeFlags, exited, startNode, stop } from './proc.ts';
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
        socket.write(`${JSON.stringify({ v: 2, id, method: 'status', params: {} })}\n`);
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

/** Resident set size of a process (kB → MiB), from /proc. */
function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

async function sequentialP99(send: () => Promise<unknown>, n: number): Promise<{ p50: number; p99: number; failures: number }> {
  const samples: number[] = [];
  let failures = 0;
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    try {
      await send();
      samples.push(performance.now() - t);
    } catch {
      failures++;
    }
  }
  samples.sort((a, b) => a - b);
  return { p50: percentile(samples, 50), p99: percentile(samples, 99), failures };
}

/**
 * Benchmark 2b: the executor's two sockets (createServers, as the daemon runs them) while a
 * keyless member of the operator group floods the group's socket with reconnects (400 held
 * connections, re-opened as they are closed), 1 MiB frames and trickled half frames. Root's and
 * the watcher's requests on root's own socket, an operator's new connections on the group's, the
 * executor's memory, and its refusal log lines are measured against the same before the flood.
 */
/** The old-space limit V8 sets on a machine with 1 GiB of memory (a quarter of it). */
const FLOOD_HEAP_MIB = 256;

export async function benchKeylessFlood(options: { requests?: number; seconds?: number } = {}): Promise<Row[]> {
  const requests = options.requests ?? 500;
  const seconds = options.seconds ?? 60;
  return withScratch('socket-keyless', async (scratch) => {
    const watcherKey = generateSigningKey('watcher');
    const rootKey = generateSigningKey('local-root');
    const privatePath = scratch.path('root/executor.sock');
    const groupPath = scratch.path('executor.sock');
    // The executor under the heap V8 gives a 1 GiB machine (old space = a quarter of the memory).
    const peer = await startNode(here('socket-peer.js'), ['executor', privatePath, groupPath, watcherKey.publicKey, rootKey.publicKey], /^ready/, process.env, [...daemonNodeFlags('executor'), `--max-old-space-size=${FLOOD_HEAP_MIB}`]);
    scratch.defer(() => stop(peer));
    let logLines = 0;
    peer.stdout!.on('data', (chunk: Buffer) => {
      logLines += chunk.toString('utf8').split('\n').filter((l) => /^<\d>(request\.refused|socket\.)/.test(l)).length;
    });
    const root = new SocketClient({ path: privatePath, key: rootKey });
    const watcher = new SocketClient({ path: privatePath, key: watcherKey });
    await root.connect();
    await watcher.connect();
    // A connection must authenticate within 2 s of connecting: the first request right away.
    await root.request('status', {});
    await watcher.request('status', {});
    scratch.defer(() => (root.close(), watcher.close()));
    const groupOperator = async () => {
      const c = new SocketClient({ path: groupPath, key: rootKey, connectTimeoutMs: 5000 });
      try {
        await c.connect();
        return await c.request('status', {}, { timeoutMs: 5000 });
      } finally {
        c.close();
      }
    };
    const measureAll = async () => ({
      root: await sequentialP99(() => root.request('status', {}), requests),
      watcher: await sequentialP99(() => watcher.request('status', {}), requests),
      group: await sequentialP99(groupOperator, Math.ceil(requests / 10)),
    });

    await measureAll(); // warm up
    const quiet = await measureAll();
    const quietRss = rssMiB(peer.pid!);

    // idle 400, big 4, trickle 32, and 256 lanes of ~78 KiB frames (every group slot).
    const flooder = await startNode(here('socket-keyless.js'), [groupPath, String(seconds), '400', '4', '32', '256']);
    scratch.defer(() => stop(flooder));
    let flooderReport = '';
    flooder.stdout!.on('data', (chunk: Buffer) => (flooderReport += chunk.toString('utf8')));
    let peakRss = quietRss;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssMiB(peer.pid!))), 100);
    scratch.defer(() => clearInterval(sampler));
    await sleep(2000); // the flood reaches its steady state: every group slot taken, frames in flight
    const linesBefore = logLines;
    const t0 = performance.now();
    const flooded = await measureAll();
    const floodSeconds = (performance.now() - t0) / 1000;
    const lines = logLines - linesBefore;
    clearInterval(sampler);
    if (flooder.exitCode !== null) throw new Error('the keyless flood ended before the measurement under flood did');
    const survived = peer.exitCode === null && peer.signalCode === null;
    await stop(flooder);
    const connections = Number([...flooderReport.matchAll(/(\d+) connections/g)].at(-1)?.[1] ?? Number.NaN);
    const flooderSeconds = Number([...flooderReport.matchAll(/after ([\d.]+) s/g)].at(-1)?.[1] ?? Number.NaN);

    const goal50 = (p99: number, failures: number) => ({ text: 'p99 <= 50 ms, none failed', met: p99 <= 50 && failures === 0 });
    return [
      { group: 'socket', name: "keyless flood of the group socket: root's requests on its own socket, p99 (vs quiet)", figure: flooded.root.p99, baseline: quiet.root.p99, unit: 'ms', goal: goal50(flooded.root.p99, flooded.root.failures) },
      { group: 'socket', name: "keyless flood: the watcher's requests on root's socket, p99 (vs quiet)", figure: flooded.watcher.p99, baseline: quiet.watcher.p99, unit: 'ms', goal: goal50(flooded.watcher.p99, flooded.watcher.failures) },
      {
        group: 'socket',
        name: `keyless flood: an operator's new connection + status on the group socket, p99 (vs quiet), ${flooded.group.failures} of ${Math.ceil(requests / 10)} failed`,
        figure: flooded.group.p99,
        baseline: quiet.group.p99,
        unit: 'ms',
        goal: { text: 'none failed', met: flooded.group.failures === 0 },
      },
      { group: 'socket', name: `keyless flood with ~78 KiB frames on every group slot: executor peak RSS under --max-old-space-size=${FLOOD_HEAP_MIB} (vs quiet RSS)${survived ? '' : ', THE EXECUTOR DIED'}`, figure: peakRss, baseline: quietRss, unit: 'MiB', goal: { text: '<= quiet + 100 MiB, alive', met: survived && peakRss <= quietRss + 100 } },
      { group: 'socket', name: 'keyless flood: refusal log lines per second', figure: lines / floodSeconds, baseline: null, unit: 'lines/s', goal: { text: '<= 5 lines/s', met: lines / floodSeconds <= 5 } },
      { group: 'socket', name: 'keyless flood: connections the flooder opened per second', figure: connections / flooderSeconds, baseline: null, unit: 'conn/s', goal: null },
    ];
  });
}

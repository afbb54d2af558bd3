/**
 * Benchmark 5: history at scale. Real pullnix-executor processes started on a history.jsonl
 * holding 100, 1,000 and 10,000 deployments, written in the executor's own format (a full
 * snapshot line at every phase change, so 5 lines per deployment; one in ten rolled back).
 *  - start-up: spawn → the first `status` answered over the socket (median of 3 starts, the
 *    sizes interleaved);
 *  - `status` and `history --limit 20` round trips over the socket with the operator key
 *    (signed, verified, answered), the three executors interleaved request by request; p50 and
 *    p99. The growth is the ratio 10,000 / 100: linear would be 100×.
 */
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { loadSigningKey, SocketClient } from '@pullnix/shared';
import { fmtCount, timeCommand, withScratch, writeHistory, type Scratch } from './common.ts';
import { daemonNodeFlags, startNode, stop } from './proc.ts';
import { median, percentile, type Row } from './table.ts';

const EXECUTOR_MAIN = fileURLToPath(new URL('../../../executor/dist/src/main.js', import.meta.url));
const CTL_MAIN = fileURLToPath(new URL('../../../executor/dist/src/ctl/main.js', import.meta.url));

interface Instance {
  size: number;
  configPath: string;
  stateDir: string;
  socketPath: string;
  process: ChildProcess | null;
  client: SocketClient | null;
  startups: number[];
  status: number[];
  history: number[];
}

function prepare(scratch: Scratch, size: number): Instance {
  const dir = scratch.path(`h${size}`);
  const stateDir = join(dir, 'state');
  mkdirSync(stateDir, { recursive: true });
  writeHistory(join(stateDir, 'history.jsonl'), size);
  const socketPath = join(dir, 'run', 'executor.sock');
  const configPath = join(dir, 'config.json');
  writeFileSync(
    configPath,
    JSON.stringify({
      repository: { url: `file://${dir}/remote.git`, branch: 'main' },
      build: { mode: 'flake', host: 'bench' },
      stateDir,
      socketPath,
      logLevel: 'info',
      operators: { group: 'root' },
      paths: { systemProfile: join(dir, 'profiles', 'system'), currentSystem: join(dir, 'current-system') },
    }),
  );
  return { size, configPath, stateDir, socketPath, process: null, client: null, startups: [], status: [], history: [] };
}

/** Spawn → first status answered. Leaves the process and its connected client in the instance. */
async function start(instance: Instance): Promise<void> {
  const t0 = performance.now();
  const child = await startNode(EXECUTOR_MAIN, ['--config', instance.configPath], /executor\.started/, process.env, daemonNodeFlags('executor'));
  const client = new SocketClient({ path: instance.socketPath, key: loadSigningKey(join(instance.stateDir, 'keys', 'local-operator.key')) });
  await client.connect();
  await client.request('status', {});
  instance.startups.push(performance.now() - t0);
  instance.process = child;
  instance.client = client;
}

async function halt(instance: Instance): Promise<void> {
  instance.client?.close();
  instance.client = null;
  if (instance.process) await stop(instance.process);
  instance.process = null;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

export async function benchHistory(options: { sizes?: number[]; requests?: number; starts?: number; ctlRuns?: number } = {}): Promise<Row[]> {
  const ctlRuns = options.ctlRuns ?? 10;
  const sizes = options.sizes ?? [100, 1_000, 10_000];
  const requests = options.requests ?? 400;
  const starts = options.starts ?? 3;
  return withScratch('history', async (scratch) => {
    const instances = sizes.map((size) => prepare(scratch, size));
    scratch.defer(() => Promise.all(instances.map(halt)));
    const largest = instances.at(-1)!;
    process.stderr.write(`  history.jsonl with ${fmtCount(largest.size)} deployments: ${(statSync(join(largest.stateDir, 'history.jsonl')).size / 2 ** 20).toFixed(1)} MiB\n`);

    for (let rep = 0; rep < starts; rep++) {
      for (const instance of instances) {
        await start(instance);
        if (rep < starts - 1) await halt(instance);
      }
    }
    for (const instance of instances) {
      for (let i = 0; i < 100; i++) {
        await instance.client!.request('status', {});
        await instance.client!.request('history', { limit: 20 });
      }
    }
    for (let i = 0; i < requests; i++) {
      for (const instance of instances) {
        const client = instance.client!;
        instance.status.push(await timed(() => client.request('status', {})));
        const page = await client.request('history', { limit: 20 });
        if (i === 0 && (page.total !== instance.size || page.deployments.length !== Math.min(20, instance.size))) {
          throw new Error(`history of the ${instance.size} executor answered total ${page.total}, ${page.deployments.length} records`);
        }
        instance.history.push(await timed(() => client.request('history', { limit: 20 })));
      }
    }

    // What an operator waits for: a whole `pullnix-ctl` process against the largest history, against
    // a Node process that does nothing (`node -e ''`), interleaved.
    // `status` also without Node's compile cache (NODE_DISABLE_COMPILE_CACHE=1), to show what the cache gives.
    const ctl = { status: [] as number[], history: [] as number[], node: [] as number[], uncached: [] as number[] };
    const ctlArgs = ['--config', largest.configPath, '--key', join(largest.stateDir, 'keys', 'local-operator.key')];
    const noCache = { env: { ...process.env, NODE_DISABLE_COMPILE_CACHE: '1' } };
    for (let i = 0; i < ctlRuns + 1; i++) {
      const s = await timeCommand(process.execPath, [CTL_MAIN, 'status', ...ctlArgs]);
      const h = await timeCommand(process.execPath, [CTL_MAIN, 'history', '--limit', '20', ...ctlArgs]);
      const n = await timeCommand(process.execPath, ['-e', '']);
      const u = await timeCommand(process.execPath, [CTL_MAIN, 'status', ...ctlArgs], noCache);
      if (i === 0) continue; // warm the page cache (and fill the compile cache)
      ctl.status.push(s);
      ctl.history.push(h);
      ctl.node.push(n);
      ctl.uncached.push(u);
    }

    const small = instances[0]!;
    const sorted = (v: number[]) => [...v].sort((a, b) => a - b);
    const p = (v: number[], q: number) => percentile(sorted(v), q);
    const rows: Row[] = [];
    for (const [label, pick] of [
      ['status', (x: Instance) => x.status],
      ['history --limit 20', (x: Instance) => x.history],
    ] as const) {
      rows.push({ group: 'history', name: `${label} p50 @ ${fmtCount(small.size)} deployments`, figure: p(pick(small), 50), baseline: null, unit: 'ms', goal: null });
      for (const instance of instances.slice(1)) {
        const last = instance === largest;
        const fig = p(pick(instance), 50);
        const base = p(pick(small), 50);
        rows.push({
          group: 'history',
          name: `${label} p50 @ ${fmtCount(instance.size)} (vs @ ${fmtCount(small.size)}: growth)`,
          figure: fig,
          baseline: base,
          unit: 'ms',
          goal: last ? { text: '<= 100 ms, growth <= 10x', met: fig <= 100 && fig <= 10 * base } : null,
        });
      }
      const fig = p(pick(largest), 99);
      const base = p(pick(small), 99);
      rows.push({
        group: 'history',
        name: `${label} p99 @ ${fmtCount(largest.size)} (vs @ ${fmtCount(small.size)}: growth)`,
        figure: fig,
        baseline: base,
        unit: 'ms',
        goal: { text: '<= 100 ms, growth <= 10x', met: fig <= 100 && fig <= 10 * base },
      });
    }
    for (const instance of instances.slice(1)) {
      rows.push({
        group: 'history',
        name: `executor start-up @ ${fmtCount(instance.size)} (vs @ ${fmtCount(small.size)}), spawn -> first status answered`,
        figure: median(instance.startups),
        baseline: median(small.startups),
        unit: 'ms',
        goal: null,
      });
    }
    for (const [label, values] of [
      ['status', ctl.status],
      ['history --limit 20', ctl.history],
    ] as const) {
      rows.push({
        group: 'history',
        name: `pullnix-ctl ${label} process @ ${fmtCount(largest.size)} (vs node -e ''), median of ${ctlRuns}`,
        figure: median(values),
        baseline: median(ctl.node),
        unit: 'ms',
        goal: { text: '<= 1.5x', met: median(values) <= 1.5 * median(ctl.node) },
      });
    }
    rows.push({ group: 'history', name: `pullnix-ctl status process without the compile cache (vs node -e '')`, figure: median(ctl.uncached), baseline: median(ctl.node), unit: 'ms', goal: null });
    return rows;
  });
}

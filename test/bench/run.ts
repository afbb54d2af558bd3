/**
 * `npm run bench`: every benchmark, one table. Ratios are against baselines measured in the same
 * run (these machines are shared and noisy); absolute figures are for reference. A missed goal
 * never fails the run; only a benchmark that cannot run does.
 *
 *   node test/dist/bench/run.js [poll|socket|socket-flood|idle|deploy|deploy-restart|history|vulnix|trust|rings ...] [--idle-seconds=N]
 *
 * --idle-seconds (or PULLNIX_BENCH_IDLE_SEC) shortens the idle window for a quick run; the
 * default, and the figures in docs/benchmarks.md, use a full minute.
 */
import { cpus, totalmem } from 'node:os';
import { benchDeploy } from './deploy.ts';
import { benchHistory } from './history.ts';
import { benchIdle } from './idle.ts';
import { benchPoll } from './poll.ts';
import { benchKeylessFlood, benchSocket } from './socket.ts';
import { renderTable, type Row } from './table.ts';
import { benchVulnix } from './vulnix.ts';
import { benchTrust } from './trust.ts';
import { benchRings } from './rings.ts';

const args = process.argv.slice(2);
const only = args.filter((a) => !a.startsWith('-'));
const flag = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const idleSec = Number(flag('idle-seconds') ?? process.env.PULLNIX_BENCH_IDLE_SEC ?? 60);
if (!(idleSec > 0)) throw new Error('--idle-seconds must be a positive number');

const benches: Record<string, () => Promise<Row[]>> = {
  poll: () => benchPoll(),
  socket: () => benchSocket(),
  'socket-flood': () => benchKeylessFlood(),
  idle: () => benchIdle({ idleSec }),
  deploy: () => benchDeploy(),
  'deploy-restart': () => benchDeploy({ restartUnit: true }),
  history: () => benchHistory(),
  vulnix: () => benchVulnix(),
  trust: () => benchTrust(),
  rings: () => benchRings(),
};
const unknown = only.filter((name) => !(name in benches));
if (unknown.length > 0) throw new Error(`unknown benchmark ${unknown.join(', ')}; known: ${Object.keys(benches).join(', ')}`);

const started = performance.now();
const rows: Row[] = [];
for (const [name, bench] of Object.entries(benches)) {
  if (only.length > 0 && !only.includes(name)) continue;
  const t = performance.now();
  process.stderr.write(`running ${name}…\n`);
  rows.push(...(await bench()));
  process.stderr.write(`  ${name} took ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
}
console.log(`pullnix benchmarks — node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${Math.round(totalmem() / 2 ** 30)} GiB, ${new Date().toISOString()}, ${((performance.now() - started) / 1000).toFixed(0)} s`);
console.log(renderTable(rows));

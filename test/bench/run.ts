/**
 * `npm run bench`: every benchmark, one table. Ratios are against baselines measured in the same
 * run (these machines are shared and noisy); absolute figures are for reference. A missed goal
 * never fails the run; only a benchmark that cannot run does.
 */
import { cpus, totalmem } from 'node:os';
import { benchSocket } from './socket.ts';
import { renderTable, type Row } from './table.ts';

const only = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const benches: Record<string, () => Promise<Row[]>> = {
  socket: () => benchSocket(),
};

const rows: Row[] = [];
for (const [name, bench] of Object.entries(benches)) {
  if (only.length > 0 && !only.includes(name)) continue;
  process.stderr.write(`running ${name}…\n`);
  rows.push(...(await bench()));
}
console.log(`pullnix benchmarks — node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${Math.round(totalmem() / 2 ** 30)} GiB, ${new Date().toISOString()}`);
console.log(renderTable(rows));

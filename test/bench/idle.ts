/**
 * Benchmark 3: the idle machine. A real pullnix-executor process and a real pullnix-watcher
 * process (sharing one config file, as on a machine; the watcher polls a local bare repository
 * whose head is already deployed, every `intervalSec`), against two bare Node processes that only
 * keep an event loop alive, all four running side by side over the same window. After a warm-up,
 * two samples `idleSec` apart (default a full minute):
 *  - RSS: VmRSS from /proc/<pid>/status at the end of the window, and its private part (RssAnon);
 *  - CPU: every thread's time on a CPU from /proc/<pid>/task/<tid>/schedstat, plus the reaped
 *    children's cutime+cstime from /proc/<pid>/stat (the watcher's `git ls-remote` runs count
 *    against it), over the window;
 *  - wake-ups: voluntary_ctxt_switches summed over every thread (/proc/<pid>/task/<tid>/status),
 *    delta per second: each is the process going to sleep and being woken again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { makeBareRepo, sleep, withScratch, writeHistory, type Scratch } from './common.ts';
import { daemonNodeFlags, startNode, stop } from './proc.ts';
import type { Row } from './table.ts';

const EXECUTOR_MAIN = fileURLToPath(new URL('../../../executor/dist/src/main.js', import.meta.url));
const WATCHER_MAIN = fileURLToPath(new URL('../../../watcher/dist/src/main.js', import.meta.url));
const CLK_TCK = 100; // Linux USER_HZ

interface Sample {
  at: number;
  rssKiB: number;
  /** The private part of the RSS (RssAnon): heap, stacks, malloc; the rest is file pages, mostly the node binary, shared with every other Node process. */
  anonKiB: number;
  /** CPU time of every thread (schedstat, ns precision) plus reaped children (cutime+cstime). */
  cpuMs: number;
  wakeups: number;
}

function sample(pid: number): Sample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = /^VmRSS:\s+(\d+) kB/m.exec(status);
  const anon = /^RssAnon:\s+(\d+) kB/m.exec(status);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after "(comm)": state is field 3, utime 14, stime 15, cutime 16, cstime 17.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Reaped children (the watcher's git runs) only exist as cutime+cstime, in ticks.
  const childMs = ((Number(fields[13]) + Number(fields[14])) * 1000) / CLK_TCK;
  let wakeups = 0;
  let ownNs = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const m = /^voluntary_ctxt_switches:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'));
      wakeups += Number(m?.[1] ?? 0);
      // The process's own threads to the nanosecond: the first field of schedstat is time on a CPU.
      ownNs += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // a thread that ended between the listing and the read
    }
  }
  return { at: performance.now(), rssKiB: Number(rss?.[1] ?? Number.NaN), anonKiB: Number(anon?.[1] ?? Number.NaN), cpuMs: ownNs / 1e6 + childMs, wakeups };
}

interface Usage {
  rssMiB: number;
  anonMiB: number;
  /** CPU time per minute of wall time, ms. */
  cpuMsPerMin: number;
  wakeupsPerSec: number;
}

function usage(a: Sample, b: Sample): Usage {
  const seconds = (b.at - a.at) / 1000;
  return {
    rssMiB: b.rssKiB / 1024,
    anonMiB: b.anonKiB / 1024,
    cpuMsPerMin: ((b.cpuMs - a.cpuMs) / seconds) * 60,
    wakeupsPerSec: (b.wakeups - a.wakeups) / seconds,
  };
}

function bareNode(): ChildProcess {
  return spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
}

interface Pair {
  executor: ChildProcess;
  watcher: ChildProcess;
}

/** A real executor and a real watcher sharing one config file, the watcher polling every `intervalSec`. */
async function startPair(scratch: Scratch, name: string, remote: string, head: string, intervalSec: number): Promise<Pair> {
  const stateDir = scratch.path(name, 'state');
  mkdirSync(stateDir, { recursive: true });
  // The head is the last successful deployment: every poll is a no-op.
  writeHistory(join(stateDir, 'history.jsonl'), 10, { lastCommit: head });
  const configPath = scratch.path(name, 'config.json');
  writeFileSync(
    configPath,
    JSON.stringify({
      repository: { url: `file://${remote}`, branch: 'main' },
      build: { mode: 'flake', host: 'bench' },
      poll: { intervalSec, jitterSec: 0 },
      stateDir,
      socketPath: scratch.path(name, 'run', 'executor.sock'),
      logLevel: 'info',
      operators: { group: 'root' },
      paths: { systemProfile: scratch.path(name, 'profiles', 'system'), currentSystem: scratch.path(name, 'current-system') },
    }),
  );
  const executor = await startNode(EXECUTOR_MAIN, ['--config', configPath], /executor\.started/, process.env, daemonNodeFlags('executor'));
  scratch.defer(() => stop(executor));
  const watcher = await startNode(WATCHER_MAIN, ['--config', configPath], /executor\.connected/, process.env, daemonNodeFlags('watcher'));
  scratch.defer(() => stop(watcher));
  return { executor, watcher };
}

/**
 * Two pairs side by side: one polling every `intervalSec` (10 s: six no-op polls in the minute)
 * and one at the default 300 s (no poll in the window: the pure idle rate). The wake-up rate at
 * the default interval is the idle rate plus the per-poll cost spread over 300 s.
 */
export async function benchIdle(options: { idleSec?: number; intervalSec?: number; warmupSec?: number } = {}): Promise<Row[]> {
  const idleSec = options.idleSec ?? 60;
  const intervalSec = options.intervalSec ?? 10;
  const defaultIntervalSec = 300;
  const warmupSec = options.warmupSec ?? 20;
  return withScratch('idle', async (scratch) => {
    const remote = scratch.path('remote.git');
    const head = makeBareRepo(remote, 20, 20);
    const busy = await startPair(scratch, 'polling', remote, head, intervalSec);
    const quiet = await startPair(scratch, 'default', remote, head, defaultIntervalSec);
    const bare = [bareNode(), bareNode()];
    for (const b of bare) scratch.defer(() => stop(b));

    await sleep(warmupSec * 1000);
    const procs = [busy.executor, busy.watcher, quiet.executor, quiet.watcher, bare[0]!, bare[1]!];
    const before = procs.map((p) => sample(p.pid!));
    // Sampled every 5 s too, for PULLNIX_BENCH_DEBUG=1: when in the window the wake-ups happen.
    const debug = process.env.PULLNIX_BENCH_DEBUG === '1';
    const end = performance.now() + idleSec * 1000;
    while (performance.now() < end - 1) {
      await sleep(Math.min(5000, end - performance.now()));
      if (debug) process.stderr.write(`  t+${((performance.now() - before[0]!.at) / 1000).toFixed(0)}s wake-ups ${procs.map((p, i) => sample(p.pid!).wakeups - before[i]!.wakeups).join(' ')}\n`);
    }
    const after = procs.map((p) => sample(p.pid!));
    for (const p of procs) if (p.exitCode !== null || p.signalCode !== null) throw new Error(`a process of the idle benchmark exited during the window`);
    const [ex, wa, qex, qwa, b1, b2] = before.map((s, i) => usage(s, after[i]!)) as [Usage, Usage, Usage, Usage, Usage, Usage];
    const polls = idleSec / intervalSec;
    // Per-poll cost from the difference between the two pairs; at the default interval it is spread over 300 s.
    const atDefault = (pollingRate: number, idleRate: number) => idleRate + (Math.max(0, pollingRate - idleRate) * idleSec) / polls / defaultIntervalSec;
    const exDefault = atDefault(ex.wakeupsPerSec, qex.wakeupsPerSec);
    const waDefault = atDefault(wa.wakeupsPerSec, qwa.wakeupsPerSec);
    const bareRss = b1.rssMiB + b2.rssMiB;
    return [
      {
        group: 'idle',
        name: `RSS executor + watcher after ${idleSec} s, poll every ${intervalSec} s (vs 2 bare node)`,
        figure: ex.rssMiB + wa.rssMiB,
        baseline: bareRss,
        unit: 'MiB',
        goal: { text: '<= 1.3x', met: ex.rssMiB + wa.rssMiB <= 1.3 * bareRss },
      },
      { group: 'idle', name: 'RSS executor (vs bare node)', figure: ex.rssMiB, baseline: b1.rssMiB, unit: 'MiB', goal: null },
      { group: 'idle', name: 'RSS watcher (vs bare node)', figure: wa.rssMiB, baseline: b2.rssMiB, unit: 'MiB', goal: null },
      // The same RSS without its file pages (the node binary's code, shared with every Node process): what each process holds alone.
      { group: 'idle', name: 'private RSS (RssAnon) executor + watcher (vs 2 bare node)', figure: ex.anonMiB + wa.anonMiB, baseline: b1.anonMiB + b2.anonMiB, unit: 'MiB', goal: null },
      {
        group: 'idle',
        name: `CPU executor + watcher + git children, poll every ${intervalSec} s (vs 2 bare node)`,
        figure: ex.cpuMsPerMin + wa.cpuMsPerMin,
        baseline: b1.cpuMsPerMin + b2.cpuMsPerMin,
        unit: 'ms/min',
        goal: null,
      },
      { group: 'idle', name: `CPU executor + watcher, no poll in the window (vs 2 bare node)`, figure: qex.cpuMsPerMin + qwa.cpuMsPerMin, baseline: b1.cpuMsPerMin + b2.cpuMsPerMin, unit: 'ms/min', goal: null },
      { group: 'idle', name: `wake-ups/s executor, poll every ${intervalSec} s (vs bare node)`, figure: ex.wakeupsPerSec, baseline: b1.wakeupsPerSec, unit: '/s', goal: { text: '<= 1/s', met: ex.wakeupsPerSec <= 1 } },
      { group: 'idle', name: `wake-ups/s watcher, poll every ${intervalSec} s (vs bare node)`, figure: wa.wakeupsPerSec, baseline: b2.wakeupsPerSec, unit: '/s', goal: { text: '<= 1/s', met: wa.wakeupsPerSec <= 1 } },
      { group: 'idle', name: `wake-ups/s executor, no poll in the window (vs bare node)`, figure: qex.wakeupsPerSec, baseline: b1.wakeupsPerSec, unit: '/s', goal: { text: '<= 1/s', met: qex.wakeupsPerSec <= 1 } },
      { group: 'idle', name: `wake-ups/s watcher, no poll in the window (vs bare node)`, figure: qwa.wakeupsPerSec, baseline: b2.wakeupsPerSec, unit: '/s', goal: { text: '<= 1/s', met: qwa.wakeupsPerSec <= 1 } },
      { group: 'idle', name: `wake-ups/s executor at the default ${defaultIntervalSec} s poll (idle + per-poll/${defaultIntervalSec})`, figure: exDefault, baseline: b1.wakeupsPerSec, unit: '/s', goal: { text: '<= 1/s', met: exDefault <= 1 } },
      { group: 'idle', name: `wake-ups/s watcher at the default ${defaultIntervalSec} s poll (idle + per-poll/${defaultIntervalSec})`, figure: waDefault, baseline: b2.wakeupsPerSec, unit: '/s', goal: { text: '<= 1/s', met: waDefault <= 1 } },
    ];
  });
}

/**
 * `npm run chaos -- [options]`: a chaos campaign on the real-systemd bed (root). See docs/chaos.md.
 *
 *   --seed S            the campaign's seed (any string; default: random, printed)
 *   --deployments N     number of steps (default 20); a step pushes one commit or a burst
 *   --faults F          N: exactly N steps get one fault each; 0.4 or 40%: each step with that
 *                       probability (default 0.5)
 *   --from-step K       replay from step K: same plan, machine fast-forwarded to step K's pullnix version
 *   --keep-going        record violations and go on (default: stop at the first)
 *   --plan              print the plan and exit (no machine)
 *   --poll-interval S   poll.intervalSec of the machine (default 2)
 *   --verify-timeout S  verify.timeoutSec (default 6)
 *   --log FILE          also write the run log to FILE, line by line as the run goes (a run cut
 *                       short keeps what it did): a header (seed, code commit, date, load), the
 *                       plan, every output line, one `CHAOS-STEP {json}` per step (deployments,
 *                       outcomes, the fault aimed/hit, every invariant's result), the summary
 * Exit status: 0 no violation, 1 a violation, 2 the campaign itself failed (bed error), 64 bad usage.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, writeFileSync } from 'node:fs';
import { cpus, hostname, loadavg } from 'node:os';
import { bootloaderOf, describeStep, parseFaults, planCampaign } from './plan.ts';
import { DEFAULTS, liveFigures, requestStop, runCampaign, summarize } from './runner.ts';

const USAGE = 'usage: npm run chaos -- [--seed S] [--deployments N] [--faults N|P] [--from-step K] [--keep-going] [--plan] [--poll-interval S] [--verify-timeout S] [--log FILE]';

function parseArgs(argv: readonly string[]): Map<string, string> {
  const flags = new Set(['keep-going', 'plan', 'help']);
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m) throw new Error(`unexpected argument ${JSON.stringify(a)}`);
    const name = m[1]!;
    if (flags.has(name)) {
      out.set(name, 'true');
      continue;
    }
    const value = m[2] ?? argv[++i];
    if (value === undefined) throw new Error(`--${name} needs a value`);
    out.set(name, value);
  }
  const known = new Set([...flags, 'seed', 'deployments', 'faults', 'from-step', 'poll-interval', 'verify-timeout', 'log']);
  for (const k of out.keys()) if (!known.has(k)) throw new Error(`unknown option --${k}`);
  return out;
}

function positiveInt(args: Map<string, string>, name: string, fallback: number): number {
  const v = args.get(name);
  if (v === undefined) return fallback;
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new Error(`--${name} ${JSON.stringify(v)}: expected a positive integer`);
  return Number(v);
}

/** The run log's first lines: what ran, on which code, where and under which load. */
function logHeader(seed: string): string {
  const git = (...a: string[]) => {
    try {
      return execFileSync('git', a, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return '?';
    }
  };
  const dirty = git('status', '--porcelain', '--untracked-files=no') === '' ? '' : ' (with uncommitted changes)';
  return [
    `# pullnix chaos run log`,
    `# command: npm run chaos -- ${process.argv.slice(2).join(' ')}`,
    `# seed: ${seed}`,
    `# code: ${git('rev-parse', 'HEAD')}${dirty} (${git('log', '-1', '--format=%cd %s', '--date=iso-strict')})`,
    `# started: ${new Date().toISOString()} on ${hostname()}, ${cpus().length} CPUs, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`,
    '',
  ].join('\n');
}

/** Where the run log goes (null: none): the interrupted summary goes there too. */
let logTo: string | null = null;

function out(text: string): void {
  process.stdout.write(text);
  if (logTo !== null) appendFileSync(logTo, text);
}

async function main(): Promise<number> {
  let args: Map<string, string>;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
    return 64;
  }
  if (args.has('help')) {
    process.stdout.write(`${USAGE}\n(see docs/chaos.md)\n`);
    return 0;
  }
  let options;
  try {
    const deployments = positiveInt(args, 'deployments', 20);
    const seed = args.get('seed') ?? randomBytes(4).toString('hex');
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(seed)) throw new Error(`--seed ${JSON.stringify(seed)}: letters, digits, . _ - (at most 64)`);
    const fromStep = positiveInt(args, 'from-step', 1);
    if (fromStep > deployments) throw new Error(`--from-step ${fromStep} is past the last step (${deployments})`);
    options = {
      seed,
      deployments,
      faults: parseFaults(args.get('faults') ?? '0.5', deployments),
      fromStep,
      keepGoing: args.has('keep-going'),
      pollIntervalSec: positiveInt(args, 'poll-interval', DEFAULTS.pollIntervalSec),
      verifyTimeoutSec: positiveInt(args, 'verify-timeout', DEFAULTS.verifyTimeoutSec),
      keepGcRoots: DEFAULTS.keepGcRoots,
      settleTimeoutMs: DEFAULTS.settleTimeoutMs,
      log: (line: string): void => {
        process.stdout.write(`${line}\n`);
      },
    };
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
    return 64;
  }
  if (args.has('plan')) {
    process.stdout.write(`bootloader: ${bootloaderOf(options.seed)}\n`);
    for (const s of planCampaign({ seed: options.seed, deployments: options.deployments, faults: options.faults, pollIntervalSec: options.pollIntervalSec })) if (s.step >= options.fromStep) process.stdout.write(`${describeStep(s)}\n`);
    return 0;
  }
  const logFile = args.get('log');
  if (logFile !== undefined) {
    try {
      writeFileSync(logFile, logHeader(options.seed));
    } catch (e) {
      process.stderr.write(`--log ${logFile}: ${(e as Error).message}\n`);
      return 64;
    }
    const print = options.log;
    options.log = (line: string) => {
      print(line);
      appendFileSync(logFile, `${line}\n`);
    };
    logTo = logFile;
  }
  const record = (kind: 'plan' | 'step' | 'final', data: unknown) => {
    if (logFile !== undefined) appendFileSync(logFile, `CHAOS-${kind.toUpperCase()} ${JSON.stringify(data)}\n`);
  };
  const result = await runCampaign({ ...options, record });
  out(`\n${summarize(result.figures)}\nCHAOS-SUMMARY ${JSON.stringify(result.figures)}\n`);
  return result.error ? 2 : result.violations.length > 0 ? 1 : 0;
}

// The first Ctrl-C / SIGTERM ends the campaign after the running step (the final checks run: a
// long campaign stopped before a deadline still measures convergence and growth); the second
// prints the figures so far and exits at once (the bed's exit hook kills the machine).
let signals = 0;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (++signals === 1 && liveFigures) {
      out(`\n${signal}: ending after the running step, then the final checks (again to stop at once)\n`);
      requestStop();
      return;
    }
    if (liveFigures) out(`\ninterrupted (${signal}) after step ${liveFigures.steps}\n${summarize(liveFigures)}\nCHAOS-SUMMARY ${JSON.stringify(liveFigures)}\n`);
    process.exit(130);
  });
}
process.exitCode = await main();

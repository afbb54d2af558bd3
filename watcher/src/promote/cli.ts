/**
 * pullnix-promote's commands (docs/rings.md):
 *
 *   pullnix-promote [run] --config FILE [--dry-run] [--json]   one promotion round
 *   pullnix-promote status --config FILE [--json]              per ring: commit, hosts, soak left
 *
 * Exit codes: 0 done (also when nothing was promoted), 1 the round could not run (git,
 * Prometheus, an unreadable config), 2 refused (rings.json untrusted, missing or invalid),
 * 3 a ring is halted (a commit failed in it), 64 usage.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, createRunner, parsePromoteConfig, type Logger, type PromoteConfig, type Runner } from '@pullnix/shared';
import type { RingHealth } from './health.ts';
import { prometheusQuery, type Query } from './prometheus.ts';
import { inspect, promote, PromoteRefusal, type PromotionStep } from './promote.ts';

export interface PromoteIO {
  out: (text: string) => void;
  err: (text: string) => void;
  logger: Logger;
  now: () => number;
  /** Tests and the benchmark substitute these; by default the real runner and Prometheus. */
  runner?: Runner;
  query?: (config: PromoteConfig) => Query;
}

const USAGE = 'usage: pullnix-promote [run|status] --config FILE [--dry-run] [--json]';

export async function run(argv: readonly string[], io: PromoteIO): Promise<number> {
  const args = [...argv];
  const command = args[0] === 'run' || args[0] === 'status' ? args.shift()! : 'run';
  let configFile: string | null = null;
  let json = false;
  let dryRun = false;
  while (args.length > 0) {
    const a = args.shift()!;
    if (a === '--config' && args.length > 0) configFile = args.shift()!;
    else if (a === '--json') json = true;
    else if (a === '--dry-run' && command === 'run') dryRun = true;
    else if (a === '--help' || a === '-h') {
      io.out(USAGE);
      return 0;
    } else {
      io.err(`pullnix-promote: unexpected argument ${JSON.stringify(a)}\n${USAGE}`);
      return 64;
    }
  }
  if (configFile === null) {
    io.err(`pullnix-promote: --config FILE is required\n${USAGE}`);
    return 64;
  }
  let config: PromoteConfig;
  try {
    config = parsePromoteConfig(readFileSync(configFile, 'utf8'), configFile);
  } catch (error) {
    io.err(`pullnix-promote: ${error instanceof ConfigError ? error.message : `cannot read ${configFile}: ${(error as Error).message}`}`);
    return 1;
  }
  const deps = {
    config,
    runner: io.runner ?? createRunner(),
    query: (io.query ?? ((c: PromoteConfig) => prometheusQuery(c.prometheus.url, c.prometheus.timeoutSec * 1000)))(config),
    logger: io.logger,
    now: io.now,
  };
  try {
    if (command === 'status') {
      const { ringsCommit, rings } = await inspect(deps);
      io.out(json ? JSON.stringify({ ringsCommit, rings }, null, 2) : formatStatus(ringsCommit, config.repository.firstRingBranch, rings));
      return rings.some((r) => r.state === 'halted') ? 3 : 0;
    }
    const result = await promote(deps, { dryRun });
    io.out(json ? JSON.stringify(result, null, 2) : `${formatStatus(result.ringsCommit, config.repository.firstRingBranch, result.rings)}\n\n${formatSteps(result.steps)}`);
    return result.rings.some((r) => r.state === 'halted') ? 3 : 0;
  } catch (error) {
    if (error instanceof PromoteRefusal) {
      io.logger.event('promote.refused', { reason: error.reason, error: error.message });
      io.err(`pullnix-promote: refused: ${error.message}`);
      return 2;
    }
    io.logger.event('promote.failed', { error: (error as Error).message });
    io.err(`pullnix-promote: ${(error as Error).message}`);
    return 1;
  }
}

export function formatStatus(ringsCommit: string, branch: string, rings: readonly RingHealth[]): string {
  const rows = [['ring', 'commit', 'succeeded', 'failed', 'pending', 'soak left', 'state']];
  for (const r of rings) {
    const total = r.succeeded.length + r.failed.length + r.pending.length;
    rows.push([r.ring, r.commit?.slice(0, 12) ?? '-', `${r.succeeded.length}/${total}`, String(r.failed.length), String(r.pending.length), r.soakLeftSec === null ? '-' : `${Math.ceil(r.soakLeftSec)} s`, r.state]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const table = rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
  const failed = rings.filter((r) => r.failed.length > 0).map((r) => `failed in ${r.ring}: ${r.failed.join(', ')}`);
  return [`rings.json at ${ringsCommit} (${branch}, signature good)`, ...table, ...failed].join('\n');
}

function formatSteps(steps: readonly PromotionStep[]): string {
  return steps.map((s) => `${s.from} → ${s.to}: ${s.action}: ${s.message}`).join('\n');
}

/**
 * One round of pullnix-promote (docs/rings.md). Stateless: everything it knows comes from the
 * repository and from Prometheus at the time of the round, so it can run from any CI job on a
 * schedule, twice at once, or be killed at any point (its only write is a fast-forward push,
 * which git makes atomically or not at all).
 *
 *   1. One fetch of every branch of the repository into its own bare mirror (one connection).
 *   2. The head of the first ring's branch must carry a good signature from a key of the promote
 *      config's trust (the same TrustGate the watcher uses, mode head); else nothing is read.
 *   3. rings.json at that head, validated against shared/schema/rings.schema.json.
 *   4. What the hosts report, from Prometheus (three instant queries).
 *   5. For each ring R but the last: its head C; ring R+1 gets C only if ring R is healthy on C and
 *      C descends from ring R+1's head (a fast-forward). A ring branch that has commits C lacks is
 *      never forced: the round says so and leaves it.
 */
import { join } from 'node:path';
import { parseRingsFile, TrustGate, type Logger, type PromoteConfig, type RingsFile, type Runner } from '@pullnix/shared';
import { PromoteGit } from './commands/git.ts';
import { ringHealth, type FleetReport, type RingHealth } from './health.ts';
import { promString, type Query } from './prometheus.ts';

export const RINGS_FILE = 'rings.json';

export type StepAction = 'promoted' | 'up-to-date' | 'waiting' | 'halted' | 'diverged' | 'missing-branch' | 'dry-run';

export interface PromotionStep {
  from: string;
  to: string;
  commit: string | null;
  /** The head of the next ring's branch before this round. */
  previous: string | null;
  action: StepAction;
  message: string;
}

export interface RoundResult {
  ringsCommit: string;
  rings: RingHealth[];
  steps: PromotionStep[];
}

export class PromoteRefusal extends Error {
  readonly reason: 'untrusted' | 'no-rings-file' | 'invalid-rings-file' | 'no-branch';
  constructor(reason: PromoteRefusal['reason'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PromoteRefusal';
    this.reason = reason;
  }
}

export interface PromoteDeps {
  config: PromoteConfig;
  runner: Runner;
  query: Query;
  logger: Logger;
  now?: () => number;
}

/** Steps 1–4: the rings and their health; `promote` adds step 5. */
export async function inspect(d: PromoteDeps): Promise<{ ringsCommit: string; file: RingsFile; heads: Map<string, string>; rings: RingHealth[]; git: PromoteGit }> {
  const { config } = d;
  const git = new PromoteGit({ runner: d.runner, gitDir: join(config.workDir, 'mirror.git'), ...config.repository });
  const first = config.repository.firstRingBranch;
  const heads = await git.fetchAll();
  const firstHead = heads.get(first) ?? null;
  if (firstHead === null) throw new PromoteRefusal('no-branch', `the first ring's branch ${first} does not exist on ${config.repository.url}`);

  const gate = new TrustGate({ trust: { mode: 'head', since: null, ...config.trust }, runner: d.runner, gitDir: git.gitDir, dir: join(config.workDir, 'trust'), ...(d.now ? { now: d.now } : {}) });
  const trust = await gate.check(firstHead, []);
  if (!trust.ok) throw new PromoteRefusal('untrusted', `${RINGS_FILE} at the head of ${first} is not trusted: ${trust.message}`);

  const text = await git.show(firstHead, RINGS_FILE);
  if (text === null) throw new PromoteRefusal('no-rings-file', `no ${RINGS_FILE} at the root of commit ${firstHead} (the head of ${first})`);
  let file: RingsFile;
  try {
    file = parseRingsFile(text, `${RINGS_FILE} at ${firstHead}`);
  } catch (cause) {
    throw new PromoteRefusal('invalid-rings-file', (cause as Error).message, { cause });
  }
  if (file.rings[0]!.branch !== first) {
    throw new PromoteRefusal('invalid-rings-file', `${RINGS_FILE} at ${firstHead}: its first ring follows ${file.rings[0]!.branch}, but it was read from ${first} (the promote config's repository.firstRingBranch)`);
  }
  const commits = [...new Set(file.rings.map((r) => heads.get(r.branch)).filter((c): c is string => c !== undefined))];
  const report = await fleetReport(d.query, config.prometheus.hostLabel, commits);
  const nowSec = (d.now ?? Date.now)() / 1000;
  const rings = file.rings.map((r) => ringHealth(r, heads.get(r.branch) ?? null, report, nowSec));
  return { ringsCommit: firstHead, file, heads, rings, git };
}

/** A whole round: inspect, then promote every ring whose previous ring is healthy. */
export async function promote(d: PromoteDeps, options: { dryRun?: boolean } = {}): Promise<RoundResult> {
  const { ringsCommit, file, heads, rings, git } = await inspect(d);
  const steps: PromotionStep[] = [];
  for (let i = 0; i + 1 < file.rings.length; i++) {
    const from = file.rings[i]!;
    const to = file.rings[i + 1]!;
    const health = rings[i]!;
    const commit = health.commit;
    const previous = heads.get(to.branch) ?? null;
    const step = (action: StepAction, message: string): void => {
      steps.push({ from: from.name, to: to.name, commit, previous, action, message });
    };
    if (commit === null) {
      step('missing-branch', `ring ${from.name}'s branch ${from.branch} does not exist`);
      continue;
    }
    if (previous === null) {
      step('missing-branch', `ring ${to.name}'s branch ${to.branch} does not exist; create it once (git push origin <commit>:refs/heads/${to.branch}), pullnix-promote only moves branches forward`);
      continue;
    }
    if (previous === commit) {
      step('up-to-date', `ring ${to.name} has ${commit}`);
      continue;
    }
    if (!(await git.isAncestor(previous, commit))) {
      step('diverged', `ring ${to.name}'s head ${previous} is not an ancestor of ring ${from.name}'s ${commit}: not a fast-forward, left alone`);
      d.logger.event('promote.diverged', { from: from.name, to: to.name, commit, head: previous });
      continue;
    }
    if (health.state === 'halted') {
      step('halted', `ring ${from.name} reports ${health.failed.length} failure(s) on ${commit} (${health.failed.join(', ')}), more than its maxFailures ${from.maxFailures}: ${commit} goes no further`);
      d.logger.event('promote.halted', { from: from.name, to: to.name, commit, failed: health.failed });
      continue;
    }
    if (health.state !== 'healthy') {
      const why = health.state === 'soaking' ? `soaking, ${health.soakLeftSec} s left` : `${health.succeeded.length} of ${from.successes} successes needed`;
      step('waiting', `ring ${from.name} on ${commit}: ${why}`);
      continue;
    }
    if (options.dryRun) {
      step('dry-run', `would fast-forward ${to.branch} from ${previous} to ${commit}`);
      continue;
    }
    await git.fastForward(to.branch, commit);
    d.logger.event('promote.promoted', { from: from.name, to: to.name, branch: to.branch, commit, previous });
    step('promoted', `fast-forwarded ${to.branch} from ${previous} to ${commit}`);
  }
  d.logger.event('promote.round', { rings_commit: ringsCommit, promoted: steps.filter((s) => s.action === 'promoted').length, waiting: steps.filter((s) => s.action === 'waiting').length });
  return { ringsCommit, rings, steps };
}

/** The three instant queries, by host label, restricted to the ring heads' commits. */
export async function fleetReport(query: Query, hostLabel: string, commits: readonly string[]): Promise<FleetReport> {
  const report: FleetReport = { deployed: new Map(), succeededAt: new Map(), lastDeployment: new Map() };
  if (commits.length === 0) return report;
  const commitMatch = `commit=~${promString(commits.join('|'))}`;
  const [deployed, last, succeeded] = await Promise.all([
    query(`pullnix_deployed_info{${commitMatch}}`),
    query(`pullnix_last_deployment_info{${commitMatch}}`),
    query(`pullnix_last_deployment_timestamp_seconds{outcome="succeeded"}`),
  ]);
  for (const s of deployed) if (s.labels[hostLabel] && s.labels.commit) report.deployed.set(s.labels[hostLabel], s.labels.commit);
  for (const s of last) if (s.labels[hostLabel] && s.labels.commit && s.labels.outcome) report.lastDeployment.set(s.labels[hostLabel], { commit: s.labels.commit, outcome: s.labels.outcome });
  for (const s of succeeded) if (s.labels[hostLabel]) report.succeededAt.set(s.labels[hostLabel], s.value);
  return report;
}

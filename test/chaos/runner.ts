/**
 * The campaign: one machine, installed once, then the planned steps (plan.ts), each one
 *   push the step's commit(s) → strike the step's fault, if any (faults.ts) → wait until the
 *   machine is at rest (settle.ts) → check every invariant (invariants.ts) and print them;
 * then a final good commit measures convergence (convergence.ts) and the daemons' fd/RSS
 * growth is judged. A violation stops the run (unless keepGoing) with what is needed to look
 * at it and to replay it: seed, step, the machine's journal, its history, the replay command.
 */
import { copyFileSync, existsSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { TestBed, short } from '../system/lib/bed.ts';
import { delay } from '../system/lib/proc.ts';
import { convergenceProbe } from './convergence.ts';
import { injectFault, type FaultResult } from './faults.ts';
import { InvariantChecker, describeRecord, type Check } from './invariants.ts';
import { HistoryTail } from './observe.ts';
import { anytimeWindowMs, bootloaderOf, describeStep, formatFaults, kernelOfPath, planCampaign, specOf, versionBefore, type Bootloader, type FaultSpec, type MachineFacts, type PlannedCommit, type StepPlan } from './plan.ts';
import { waitForSettle } from './settle.ts';

export interface CampaignOptions {
  seed: string;
  deployments: number;
  faults: FaultSpec;
  /** Start at this step (replay): the machine is installed and fast-forwarded to that step's pullnix version. */
  fromStep: number;
  /** Record violations and go on instead of stopping at the first. */
  keepGoing: boolean;
  pollIntervalSec: number;
  verifyTimeoutSec: number;
  keepGcRoots: number;
  /** A step that is not at rest after this long is a violation. */
  settleTimeoutMs: number;
  log: (line: string) => void;
  /** Structured records for a run log (`--log`): the plan, one per step, the summary. */
  record?: (kind: 'plan' | 'step' | 'final', data: unknown) => void;
  /** Machine name prefix. */
  name?: string;
}

export const DEFAULTS = { pollIntervalSec: 2, verifyTimeoutSec: 6, keepGcRoots: 3, settleTimeoutMs: 600_000 } as const;

export interface Violation {
  step: number;
  check: Check;
}

export interface CampaignFigures {
  seed: string;
  steps: number;
  pushes: number;
  deployments: number;
  outcomes: Record<string, number>;
  faults: Record<string, number>;
  faultHits: Record<string, number>;
  /** Every fault struck: the phase it aimed at, the phase it hit, and whether that was its aim. */
  strikes: { step: number; kind: string; aimed: string; hit: string; onTarget: boolean }[];
  missedTargets: number;
  powerCuts: number;
  sigkills: number;
  nixDaemonRestarts: number;
  sshdRestarts: number;
  /** The machine's bootloader (alternates per seed), its reboots of its own (trial and fallback reboots), reboot deployments. */
  bootloader: Bootloader;
  reboots: number;
  rebootDeployments: number;
  violations: number;
  durationSec: number;
  convergence: { latencyMs: number | null; boundMs: number | null } | null;
}

export interface CampaignResult {
  violations: Violation[];
  figures: CampaignFigures;
  /** Set when the run stopped on a violation or an error: where its logs are. */
  evidence: { journal: string; history: string } | null;
  error: Error | null;
}

export function replayCommand(o: Pick<CampaignOptions, 'seed' | 'deployments' | 'faults'>, step: number): string {
  return `npm run chaos -- --seed ${o.seed} --deployments ${o.deployments} --faults ${formatFaults(o.faults)} --from-step ${step}`;
}

export async function runCampaign(o: CampaignOptions): Promise<CampaignResult> {
  const t0 = Date.now();
  const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(0).padStart(5)}s`;
  const say = (line: string) => o.log(`[${elapsed()}] ${line}`);
  const plan = planCampaign({ seed: o.seed, deployments: o.deployments, faults: o.faults, pollIntervalSec: o.pollIntervalSec }).filter((s) => s.step >= o.fromStep);
  say(`chaos campaign: seed ${o.seed}, ${o.deployments} steps, faults ${formatFaults(o.faults)}${o.fromStep > 1 ? `, from step ${o.fromStep}` : ''}; poll ${o.pollIntervalSec} s, verify ${o.verifyTimeoutSec} s, keepGcRoots ${o.keepGcRoots}`);

  const bootloader = bootloaderOf(o.seed);
  say(`bootloader: ${bootloader}; reboot.mode window, always open (00:00-00:00)`);
  o.record?.('plan', { seed: o.seed, deployments: o.deployments, faults: formatFaults(o.faults), fromStep: o.fromStep, bootloader, pollIntervalSec: o.pollIntervalSec, verifyTimeoutSec: o.verifyTimeoutSec, steps: plan });
  const figures: CampaignFigures = (liveFigures = {
    seed: o.seed,
    steps: 0,
    pushes: 0,
    deployments: 0,
    outcomes: {},
    faults: {},
    faultHits: {},
    strikes: [],
    missedTargets: 0,
    powerCuts: 0,
    sigkills: 0,
    nixDaemonRestarts: 0,
    sshdRestarts: 0,
    bootloader,
    reboots: 0,
    rebootDeployments: 0,
    violations: 0,
    durationSec: 0,
    convergence: null,
  });
  const violations: Violation[] = [];
  const kinds = new Map<string, string>();
  const bed = await TestBed.create({ name: o.name ?? 'chaos', pollIntervalSec: o.pollIntervalSec, verifyTimeoutSec: o.verifyTimeoutSec, log: (l) => say(`  bed: ${l}`) });
  let evidence: CampaignResult['evidence'] = null;
  let error: Error | null = null;
  let step = o.fromStep - 1;
  let firstId = 1;
  const INSTALLED_KERNEL = '6.6';
  /** What the next commits are made for: the kernel the machine booted is the kernel of every commit that needs no reboot. */
  const machine = async (): Promise<MachineFacts> => {
    const r = await bed.container.exec(['readlink', '-f', '/run/booted-system/kernel'], { timeoutMs: 30_000 }).catch(() => null);
    const kernel = kernelOfPath(r?.code === 0 ? r.stdout.trim() : null);
    if (kernel === null) throw new Error(`the booted system's kernel is unreadable: ${r ? `${r.stdout}${r.stderr}` : 'exec failed'}`);
    return { keepGcRoots: o.keepGcRoots, bootloader, bootedKernel: kernel };
  };
  try {
    // ---- install (nixos-install), and pullnix adopts it as deployment 1
    const install = { kind: 'good' as const, label: 's0c1-install', pullnixVersion: '1', slowMs: 500 };
    const c0 = await bed.commit(specOf(install, { keepGcRoots: o.keepGcRoots, bootloader, bootedKernel: INSTALLED_KERNEL }), 'chaos: install');
    kinds.set(c0, 'install');
    await bed.boot();
    const installed = await bed.install(c0);
    await bed.waitForPullnix(120_000);
    await bed.waitForOutcome(c0, { timeoutMs: 180_000 });
    const tail = new HistoryTail(bed);
    const checker = new InvariantChecker(bed, { keepGcRoots: o.keepGcRoots, installedToplevel: installed });
    const settleOptions = { timeoutMs: o.settleTimeoutMs, pollIntervalSec: o.pollIntervalSec };

    const verdict = async (stepNo: number, head: string, fault: string | null, step: { kinds: readonly string[]; idBefore: number; rebootsBefore: number } = { kinds: [], idBefore: tail.maxId(), rebootsBefore: bed.reboots }): Promise<Check[]> => {
      const settled = await waitForSettle(bed, tail, head, settleOptions);
      // A power cut armed for a trial boot that never came must not strike a later step.
      bed.cutNextReboot = false;
      if (!settled.settled) return [{ n: 2, ok: false, text: `not at rest after ${o.settleTimeoutMs / 1000} s: ${settled.why}` }];
      return checker.afterStep({ step: stepNo, status: settled.status, kinds, head, faulted: fault !== null, fault, stepKinds: step.kinds, idBefore: step.idBefore, rebootsInStep: bed.reboots - step.rebootsBefore, rebootsTotal: bed.reboots });
    };
    const report = (stepNo: number, checks: Check[]): boolean => {
      const bad = checks.filter((c) => !c.ok);
      for (const n of [1, 2, 3, 4, 5, 6]) {
        const of = checks.filter((c) => c.n === n);
        if (of.length === 0) continue;
        const failed = of.filter((c) => !c.ok);
        say(`    ${failed.length === 0 ? 'ok ' : 'BAD'} ${n}: ${(failed.length > 0 ? failed : of).map((c) => c.text).join(' | ')}`);
      }
      // With --keep-going a broken state persists for some steps: each distinct finding once.
      for (const c of bad) if (!violations.some((v) => v.check.n === c.n && v.check.text === c.text)) violations.push({ step: stepNo, check: c });
      return bad.length === 0;
    };

    // ---- a replay starts from the same pullnix version as the original run had at that step
    if (o.fromStep > 1) {
      const ff = { kind: 'good' as const, label: 'ff-good', pullnixVersion: versionBefore(planCampaign({ seed: o.seed, deployments: o.deployments, faults: o.faults, pollIntervalSec: o.pollIntervalSec }), o.fromStep), slowMs: 500 };
      const sha = await bed.commit(specOf(ff, await machine()), 'chaos: fast-forward for a replay');
      kinds.set(sha, 'good');
      say(`replay: fast-forwarded to pullnix version ${ff.pullnixVersion} with ${short(sha)}`);
      if (!report(0, await verdict(0, sha, null)) && !o.keepGoing) throw new Stop(0);
    } else {
      if (!report(0, await verdict(0, c0, null)) && !o.keepGoing) throw new Stop(0);
    }
    tail.poll();
    firstId = tail.maxId() + 1;

    // ---- the steps
    for (const s of plan) {
      if (stopRequested) {
        say(`stop requested: no step after ${step}; the final checks run now`);
        break;
      }
      step = s.step;
      const stepStart = Date.now();
      say(describeStep(s));
      const idBefore = tail.maxId();
      const rebootsBefore = bed.reboots;
      const { head, pushedAt } = await pushAll(bed, s.commits, kinds, await machine());
      figures.pushes += s.commits.length;
      let fault: FaultResult | null = null;
      if (s.fault) {
        fault = await injectFault({ bed, tail, idBefore, head, pushedAt, waitLimitMs: Math.max(180_000, anytimeWindowMs(o.pollIntervalSec)) }, s.fault);
        count(figures.faults, fault.kind);
        count(figures.faultHits, fault.hit);
        figures.strikes.push({ step: s.step, kind: fault.kind, aimed: fault.target, hit: fault.hit, onTarget: fault.onTarget });
        if (fault.missed) figures.missedTargets++;
        if (fault.kind === 'power-cut') figures.powerCuts++;
        if (fault.kind === 'kill-executor' || fault.kind === 'kill-watcher') figures.sigkills++;
        if (fault.kind === 'restart-nix-daemon') figures.nixDaemonRestarts++;
        if (fault.kind === 'restart-sshd') figures.sshdRestarts++;
        say(`  fault ${fault.kind} aimed at ${fault.target}${fault.target !== 'anytime' ? `+${fault.delayMs}ms` : ` ${fault.delayMs}ms after the push`}, hit ${fault.hit}${fault.deployment !== null ? ` of deployment ${fault.deployment}` : ''}${fault.missed ? ' (target not reached in time: struck then)' : ''}: ${fault.detail}`);
      }
      const checks = await verdict(s.step, head, fault?.kind ?? null, { kinds: s.commits.map((c) => c.kind), idBefore, rebootsBefore });
      const mine = bed.history().filter((r) => r.id > idBefore);
      const rebootsInStep = bed.reboots - rebootsBefore;
      say(`  ${mine.length === 0 ? 'no deployment' : mine.map(describeRecord).join('; ')}${rebootsInStep > 0 ? `; the machine rebooted itself ${rebootsInStep}×` : ''} (${((Date.now() - stepStart) / 1000).toFixed(1)} s)`);
      figures.steps++;
      figures.reboots = bed.reboots;
      figures.violations = violations.length;
      tally(figures, bed.history().filter((r) => r.id >= firstId), t0);
      const ok = report(s.step, checks);
      o.record?.('step', {
        step: s.step,
        seconds: Math.round((Date.now() - stepStart) / 100) / 10,
        load1: Math.round(loadavg()[0]! * 100) / 100,
        pushed: s.commits.map((c) => c.label),
        deployments: mine.map((r) => ({ id: r.id, commit: r.commit.slice(0, 8), kind: kinds.get(r.commit) ?? '?', phases: r.phases.map((p) => p.phase), outcome: r.outcome, exit: r.activationExit, error: r.error?.code ?? null, trialBoot: r.reboot?.trialBootId ? true : undefined, fallbackReboot: r.reboot?.fallbackFromBootId ? true : undefined })),
        reboots: rebootsInStep,
        fault: fault && { kind: fault.kind, aimed: fault.target, delayMs: fault.delayMs, hit: fault.hit, onTarget: fault.onTarget, missed: fault.missed, deployment: fault.deployment, detail: fault.detail },
        invariants: checks.map((c) => ({ n: c.n, ok: c.ok, text: c.text })),
      });
      if (!ok && !o.keepGoing) throw new Stop(s.step);
    }

    // ---- after the last fault: convergence, then growth across the campaign
    step = (stopRequested ? step : o.deployments) + 1;
    const lastVersion = plan.filter((p) => p.step < step).at(-1)?.commits.at(-1)?.pullnixVersion ?? '1';
    say(`final: a good commit after the last fault (convergence), then leaks across the campaign`);
    const conv = await convergenceProbe(bed, tail, specOf({ kind: 'good', label: 'final-good', pullnixVersion: lastVersion, slowMs: 500 }, await machine()), { pollIntervalSec: o.pollIntervalSec, settleTimeoutMs: o.settleTimeoutMs });
    kinds.set(conv.commit, 'good');
    figures.convergence = { latencyMs: conv.latencyMs, boundMs: conv.boundMs };
    const final = conv.check.ok ? await verdict(step, conv.commit, null) : [];
    const finalChecks = [conv.check, ...final, ...checker.growthChecks()];
    report(step, finalChecks);
    o.record?.('step', { step: 'final', convergence: figures.convergence, invariants: finalChecks.map((c) => ({ n: c.n, ok: c.ok, text: c.text })) });
  } catch (e) {
    if (!(e instanceof Stop)) {
      error = e as Error;
      say(`campaign error at step ${step}: ${(e as Error).stack ?? String(e)}`);
    }
  } finally {
    tally(figures, bed.history().filter((r) => r.id >= firstId), t0);
    figures.reboots = bed.reboots;
    figures.violations = violations.length;
    const failed = violations.length > 0 || error !== null;
    if (failed) {
      evidence = await collectEvidence(bed, o, step).catch((e: Error) => ({ journal: `(not collected: ${e.message})`, history: '-' }));
      const first = violations[0];
      say('');
      say(first ? `VIOLATION of invariant ${first.check.n} at step ${first.step} (seed ${o.seed}): ${first.check.text}` : `ERROR at step ${step} (seed ${o.seed}): ${error?.message.split('\n')[0]}`);
      for (const v of violations.slice(1)) say(`  also: invariant ${v.check.n} at step ${v.step}: ${v.check.text}`);
      say(`  journal (all boots): ${evidence.journal}`);
      say(`  history.jsonl:       ${evidence.history}`);
      for (const r of bed.history().slice(-8)) say(`    ${describeRecord(r)} ${r.phases.map((p) => p.phase).join('>')}${r.error ? ` — ${r.error.message.split('\n')[0]!.slice(0, 160)}` : ''}`);
      say(`  replay: ${replayCommand(o, first?.step ?? Math.max(1, step))}`);
    }
    await bed.destroy({ keepLogs: failed });
  }
  return { violations, figures, evidence, error };
}

class Stop extends Error {
  readonly step: number;
  constructor(step: number) {
    super(`stopped at step ${step}`);
    this.step = step;
  }
}

/** Commit the step's commits locally first, then push them one by one: a burst lands within one poll. */
async function pushAll(bed: TestBed, commits: readonly PlannedCommit[], kinds: Map<string, string>, machine: MachineFacts): Promise<{ head: string; pushedAt: number }> {
  const shas: string[] = [];
  for (const c of commits) {
    const sha = await bed.commit(specOf(c, machine), `chaos: ${c.label}`, { push: false });
    kinds.set(sha, c.kind);
    shas.push(sha);
  }
  let pushedAt = 0;
  for (const [i, c] of commits.entries()) {
    if (c.gapMs > 0) await delay(c.gapMs);
    await bed.push(shas[i]!, `chaos: ${c.label}`);
    if (pushedAt === 0) pushedAt = Date.now();
  }
  return { head: shas[shas.length - 1]!, pushedAt };
}

async function collectEvidence(bed: TestBed, o: CampaignOptions, step: number): Promise<{ journal: string; history: string }> {
  const label = `chaos-seed-${o.seed}-step-${step}`;
  const { path } = await bed.dumpJournal(label);
  const history = join(bed.dirs.logs, `${label}-history.jsonl`);
  const src = join(bed.dirs.state, 'history.jsonl');
  if (existsSync(src)) copyFileSync(src, history);
  else writeFileSync(history, '');
  return { journal: path, history };
}

let stopRequested = false;

/** End the campaign after the running step: the final checks (convergence, growth) still run. */
export function requestStop(): void {
  stopRequested = true;
}

/** The figures of the campaign running in this process, as of its last step (for an interrupted run's summary). */
export let liveFigures: CampaignFigures | null = null;

function tally(figures: CampaignFigures, records: readonly { outcome: string | null; phases: readonly { phase: string }[] }[], t0: number): void {
  figures.deployments = records.length;
  figures.rebootDeployments = records.filter((r) => r.phases.some((p) => p.phase === 'awaiting-boot')).length;
  figures.outcomes = {};
  for (const r of records) count(figures.outcomes, r.outcome ?? 'unresolved');
  figures.durationSec = Math.round((Date.now() - t0) / 1000);
}

function count(into: Record<string, number>, key: string): void {
  into[key] = (into[key] ?? 0) + 1;
}

export function summarize(f: CampaignFigures): string {
  const kv = (r: Record<string, number>) =>
    Object.entries(r)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${v}`)
      .join(', ') || 'none';
  return [
    `seed ${f.seed}: ${f.steps} steps, ${f.pushes} pushes, ${f.deployments} deployments in ${Math.round(f.durationSec / 60)} min`,
    `  outcomes: ${kv(f.outcomes)}`,
    `  faults: ${kv(f.faults)} (power cuts ${f.powerCuts}, SIGKILLs ${f.sigkills}, nix-daemon restarts ${f.nixDaemonRestarts}, sshd restarts ${f.sshdRestarts}); hit: ${kv(f.faultHits)}; target phase not seen ${f.missedTargets}`,
    `  reboots (${f.bootloader}): ${f.rebootDeployments} reboot deployments, the machine rebooted itself ${f.reboots} times (trial and fallback reboots)`,
    `  strikes (aimed -> hit): ${f.strikes.map((x) => `step ${x.step} ${x.kind} ${x.aimed} -> ${x.hit}${x.onTarget ? '' : ' (off target)'}`).join('; ') || 'none'}`,
    `  convergence: ${f.convergence?.latencyMs != null ? `${(f.convergence.latencyMs / 1000).toFixed(1)} s (bound ${((f.convergence.boundMs ?? 0) / 1000).toFixed(1)} s)` : 'not measured'}`,
    `  violations: ${f.violations}`,
  ].join('\n');
}

/** The aimed phases no strike of the campaign hit (each aimed phase must be hit at least once). */
export function aimedNotHit(f: Pick<CampaignFigures, 'strikes'>): string[] {
  const aimed = new Set(f.strikes.map((x) => x.aimed));
  return [...aimed].filter((a) => !f.strikes.some((x) => x.aimed === a && x.onTarget)).sort();
}

export type { StepPlan };

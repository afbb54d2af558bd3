/**
 * The six invariants of issue 15, checked after every step (and at the end of the campaign).
 * Where possible they are judged independently of what pullnix claims: the runner knows which
 * commits are good by construction, and every toplevel's store name ends in its kind
 * (`nixos-system-bed-s12c1-actfail`), so "the boot default is a system that can pass
 * verification" is read from /boot's own log, not from the history.
 *
 *   1 boot default: every default the bootloader ever wrote is a good system (or the installed
 *     one); the profile's current generation is the boot default; no failed kind ever recorded
 *     `succeeded`, no broken build ever deployed.
 *   2 history: every line parses; append-only (the previous check's lines are a prefix); ids
 *     1..N contiguous, created in order; a deployment's identity never changes, its phases only
 *     grow, its outcome once set never changes, none unresolved at rest; state.json agrees
 *     (nextId, no current deployment, the failure memory holds exactly the commits whose newest
 *     deploy failed, paused only after rollback-failed); status's deployed = the last success.
 *   3 live system = the last succeeded deployment's toplevel = the boot default, and it is good.
 *   4 git reachable (ls-remote with the deploy key, as pullnix does).
 *   5 progress: a good head pushed in a step without a fault is deployed; never rollback-failed
 *     (the previous system is good by construction) nor paused. The end-of-campaign convergence
 *     bound is checked by the runner (convergence.ts).
 *   Reboot deployments (a trial boot through the bootloader's one-shot entry) add to 1, 2 and 5:
 *     1 a failing system is booted at most once (its trial), the boot default never moved to it;
 *       the machine never rebooted more often than pullnix asked (one trial and at most one
 *       fallback reboot per reboot deployment);
 *     2 a reboot deployment that succeeded was verified in its trial boot (reboot.trialBootId, a
 *       boot other than the one it was requested from, verifying and committing after
 *       awaiting-boot); the fallback reboot is marked at most once and ends rolled-back;
 *     5 without a fault: a `reboot` commit reboots once, succeeds, and its system is booted; a
 *       `rebootfail` commit reboots twice (trial + exactly one fallback), ends rolled-back, the
 *       previous system booted again.
 *   6 no leaks: no pullnix-activate-* / pullnix-rollback-* unit left, the watcher's GC roots at
 *     most build.keepGcRoots + 2 (the deployed and the newest build are always kept), the
 *     executor's per-deployment roots (/nix/var/nix/gcroots/pullnix) at most one pair; fd count
 *     and RSS of the two daemons sampled (judged at the end).
 */
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { DeploymentRecord, StatusResult } from '@pullnix/shared';
import { shortPath, type TestBed } from '../system/lib/bed.ts';
import { executorState, hostNixPath } from './observe.ts';
import { GOOD_KINDS, kindOfPath } from './plan.ts';

export type InvariantNumber = 1 | 2 | 3 | 4 | 5 | 6;

export interface Check {
  n: InvariantNumber;
  ok: boolean;
  text: string;
}

export interface StepFacts {
  step: number;
  status: StatusResult;
  /** Every pushed commit's kind, by sha (the installed one is "install"). */
  kinds: ReadonlyMap<string, string>;
  head: string;
  faulted: boolean;
  /** The step's fault kind (null: none). */
  fault?: string | null;
  /** The step's planned commit kinds, the newest deployment id before it, the machine's own reboots during it and in all. */
  stepKinds?: readonly string[];
  idBefore?: number;
  rebootsInStep?: number;
  rebootsTotal?: number;
}

export interface DaemonSample {
  step: number;
  daemon: 'executor' | 'watcher';
  pid: number;
  fds: number;
  rssKiB: number;
}

const FAILED_OUTCOMES = new Set(['rolled-back', 'rollback-failed', 'reboot-required']);
/** The executor's failure memory keeps this many commits (docs/executor.md, step 6). */
const KNOWN_BAD_LIMIT = 256;

export class InvariantChecker {
  readonly samples: DaemonSample[] = [];
  private previousLines: string[] = [];
  private readonly bed: TestBed;
  private readonly keepGcRoots: number;
  private readonly installed: string;

  constructor(bed: TestBed, options: { keepGcRoots: number; installedToplevel: string }) {
    this.bed = bed;
    this.keepGcRoots = options.keepGcRoots;
    this.installed = options.installedToplevel;
  }

  async afterStep(facts: StepFacts): Promise<Check[]> {
    const lines = this.bed.historyLines();
    const { records, checks: historyChecks } = this.checkHistory(lines, facts);
    this.previousLines = lines;
    const checks: Check[] = [];
    checks.push(...this.checkBootDefault(records, facts));
    checks.push(...historyChecks);
    checks.push(...(await this.checkReboots(records, facts)));
    checks.push(...(await this.checkLive(records, facts)));
    checks.push(await this.checkGit());
    checks.push(...this.checkProgress(records, facts));
    checks.push(...(await this.checkLeaks(facts.step)));
    return checks;
  }

  // ------------------------------------------------------------------ 1: the boot default

  private checkBootDefault(records: readonly DeploymentRecord[], facts: StepFacts): Check[] {
    const out: Check[] = [];
    const bad = this.bed
      .bootLog()
      .map((line) => line.split(' ')[2] ?? '')
      .filter((p) => !this.isGood(p));
    out.push(check(1, bad.length === 0, bad.length === 0 ? 'every boot default ever written is a good system' : `the bootloader was pointed at ${bad.map(describePath).join(', ')}`));
    const def = this.bed.bootDefault();
    const profile = this.profileTarget();
    const defGood = def !== null && this.isGood(def);
    out.push(check(1, defGood && def === profile, `boot default ${describePath(def)}${defGood ? '' : ' is not a good system'}${def === profile ? ' = profile' : `, but the profile is ${describePath(profile)}`}`));
    const committed = new Set(records.filter((r) => r.phases.some((p) => p.phase === 'committing')).map((r) => r.toplevel));
    out.push(check(1, def === this.installed || (def !== null && committed.has(def)), 'pullnix history agrees: the boot default passed verification (a committing phase) or is the installed system'));
    const wronglySucceeded = records.filter((r) => r.outcome === 'succeeded' && !GOOD_KINDS.has(facts.kinds.get(r.commit) ?? kindOfPath(r.toplevel) ?? '?'));
    out.push(check(1, wronglySucceeded.length === 0, wronglySucceeded.length === 0 ? 'no failing kind recorded succeeded' : `recorded succeeded although failing by construction: ${wronglySucceeded.map(describeRecord).join('; ')}`));
    const builtBroken = records.filter((r) => facts.kinds.get(r.commit) === 'broken');
    out.push(check(1, builtBroken.length === 0, builtBroken.length === 0 ? 'no broken build deployed' : `a commit whose build fails was deployed: ${builtBroken.map(describeRecord).join('; ')}`));
    return out;
  }

  private isGood(path: string): boolean {
    return path === this.installed || GOOD_KINDS.has(kindOfPath(path) ?? '');
  }

  private profileTarget(): string | null {
    const profile = join(this.bed.dirs.nix, 'var/nix/profiles/system');
    try {
      const link = readlinkSync(profile); // system-N-link
      return readlinkSync(join(this.bed.dirs.nix, 'var/nix/profiles', link));
    } catch {
      return null;
    }
  }

  // ------------------------------------------------------------------ 2: the history

  private checkHistory(lines: readonly string[], facts: StepFacts): { records: DeploymentRecord[]; checks: Check[] } {
    const problems: string[] = [];
    const snapshots: DeploymentRecord[] = [];
    lines.forEach((line, i) => {
      try {
        snapshots.push(JSON.parse(line) as DeploymentRecord);
      } catch {
        problems.push(`line ${i + 1} does not parse: ${line.slice(0, 80)}`);
      }
    });
    const prefixOk = this.previousLines.every((l, i) => lines[i] === l);
    const setAside = readdirSync(this.bed.dirs.state).filter((f) => f.startsWith('history.jsonl.corrupt'));
    if (!prefixOk) problems.push(`history.jsonl is not an extension of what it was at the previous step (${this.previousLines.length} lines then, ${lines.length} now${setAside.length ? `; set aside: ${setAside.join(', ')}` : ''})`);
    if (new Set(lines).size !== lines.length) problems.push('a history line appears twice');

    const byId = new Map<number, DeploymentRecord>();
    const order: number[] = [];
    for (const r of snapshots) {
      const prev = byId.get(r.id);
      if (prev === undefined) {
        order.push(r.id);
      } else {
        for (const k of ['kind', 'commit', 'toplevel', 'startedAt', 'activation'] as const) {
          if (prev[k] !== r[k]) problems.push(`deployment ${r.id}: ${k} changed from ${String(prev[k])} to ${String(r[k])}`);
        }
        if (JSON.stringify(prev.previous) !== JSON.stringify(r.previous)) problems.push(`deployment ${r.id}: previous system changed`);
        if (!prev.phases.every((p, i) => JSON.stringify(p) === JSON.stringify(r.phases[i]))) problems.push(`deployment ${r.id}: phase marks rewritten (${phaseList(prev)} → ${phaseList(r)})`);
        if (prev.outcome !== null && prev.outcome !== r.outcome) problems.push(`deployment ${r.id}: outcome ${prev.outcome} changed to ${String(r.outcome)}`);
      }
      if ((r.outcome !== null) !== (r.phase === 'finished')) problems.push(`deployment ${r.id}: phase ${r.phase} with outcome ${String(r.outcome)}`);
      byId.set(r.id, r);
    }
    order.forEach((id, i) => {
      if (id !== i + 1) problems.push(`ids are not 1..N in creation order: position ${i + 1} holds ${id}`);
    });
    const records = [...byId.values()].sort((a, b) => a.id - b.id);
    const open = records.filter((r) => r.outcome === null);
    if (open.length > 0 && !facts.status.paused) problems.push(`unresolved at rest: ${open.map(describeRecord).join('; ')}`);
    const checks: Check[] = [check(2, problems.length === 0, problems.length === 0 ? `${records.length} deployments, ${lines.length} lines: append-only, ids contiguous, all resolved` : problems.slice(0, 6).join('; '))];

    // state.json and status agree with the history.
    const state = executorState(this.bed);
    const stateProblems: string[] = [];
    if (state === null) stateProblems.push('state.json unreadable');
    else {
      if (state.nextId !== records.length + 1) stateProblems.push(`nextId ${state.nextId}, history has ${records.length}`);
      if (state.current !== null) stateProblems.push(`current=${state.current} at rest`);
      const expectedBad = new Set<string>();
      const newestDeploy = new Map<string, DeploymentRecord>();
      for (const r of records) if (r.kind === 'deploy' && r.outcome !== null) newestDeploy.set(r.commit, r);
      // The failure memory keeps the newest KNOWN_BAD_LIMIT failures.
      const failed = [...newestDeploy.values()].filter((r) => FAILED_OUTCOMES.has(r.outcome!)).sort((a, b) => a.id - b.id);
      for (const r of failed.slice(-KNOWN_BAD_LIMIT)) expectedBad.add(r.commit);
      for (const c of expectedBad) if (!(c in state.knownBad)) stateProblems.push(`${c.slice(0, 8)} failed (deployment ${newestDeploy.get(c)!.id}) but is not in the failure memory`);
      for (const c of Object.keys(state.knownBad)) {
        const r = newestDeploy.get(c);
        if (r?.outcome === 'succeeded') stateProblems.push(`${c.slice(0, 8)} is in the failure memory but its newest deployment (${r.id}) succeeded`);
        if (r === undefined) stateProblems.push(`${c.slice(0, 8)} is in the failure memory without a deployment`);
      }
      // Nobody resumes in a campaign: paused exactly when some rollback failed.
      const shouldPause = records.some((r) => r.outcome === 'rollback-failed');
      if ((state.paused !== null) !== shouldPause) stateProblems.push(`paused=${JSON.stringify(state.paused)} ${shouldPause ? 'although a rollback failed' : 'without a failed rollback'}`);
    }
    const lastSuccess = records.filter((r) => r.outcome === 'succeeded').at(-1);
    if (facts.status.deployed?.deploymentId !== lastSuccess?.id) stateProblems.push(`status says deployed=${facts.status.deployed?.deploymentId ?? 'none'}, the history's last success is ${lastSuccess?.id ?? 'none'}`);
    checks.push(check(2, stateProblems.length === 0, stateProblems.length === 0 ? 'state.json and status consistent with the history' : stateProblems.slice(0, 6).join('; ')));
    return { records, checks };
  }

  // ------------------------------------------------------------------ reboot deployments (1, 2, 5)

  private async checkReboots(records: readonly DeploymentRecord[], facts: StepFacts): Promise<Check[]> {
    const booted = await this.bed.container.execOk(['readlink', '-f', '/run/booted-system']).then((t) => t.trim(), (e: Error) => `unreadable: ${e.message.split('\n')[0]}`);
    return rebootChecks(records, {
      bootedEntries: this.bed.bootedEntries,
      rebootsTotal: facts.rebootsTotal ?? this.bed.reboots,
      booted,
      isGood: (p) => this.isGood(p),
      installed: this.installed,
      step: facts.faulted ? null : { kinds: facts.stepKinds ?? [], head: facts.head, idBefore: facts.idBefore ?? Number.POSITIVE_INFINITY, reboots: facts.rebootsInStep ?? -1 },
    });
  }

  // ------------------------------------------------------------------ 3: the live system

  private async checkLive(records: readonly DeploymentRecord[], facts: StepFacts): Promise<Check[]> {
    const live = await this.bed.liveSystem().catch((e: Error) => `unreadable: ${e.message}`);
    const lastSuccess = records.filter((r) => r.outcome === 'succeeded').at(-1);
    const expected = lastSuccess?.toplevel ?? this.installed;
    const def = this.bed.bootDefault();
    const problems: string[] = [];
    if (live !== expected) problems.push(`live ${describePath(live)}, the last success (${lastSuccess?.id ?? '-'}) is ${describePath(expected)}`);
    if (!this.isGood(live)) problems.push(`live ${describePath(live)} is not a good system`);
    if (def !== expected) problems.push(`boot default ${describePath(def)} is not the last success ${describePath(expected)}`);
    if (facts.status.liveSystem !== live) problems.push(`status says live ${describePath(facts.status.liveSystem)}`);
    const out = [check(3, problems.length === 0, problems.length === 0 ? `live = boot default = last success ${describePath(live)}` : problems.join('; '))];
    // Live means running: every service of the live generation is active (a switch killed
    // half-way leaves the units it stopped stopped: issue 10 item 2).
    const unitsDir = join(hostNixPath(this.bed, live), 'etc/systemd/system');
    const services = listDir(unitsDir).filter((u) => u.endsWith('.service'));
    if (services.length > 0) {
      const r = await this.bed.container.exec(['systemctl', 'is-active', '--', ...services], { timeoutMs: 30_000 });
      const states = r.stdout.split('\n').filter((l) => l !== '');
      const down = services.flatMap((u, i) => (states[i] === 'active' ? [] : [`${u}=${states[i] ?? '?'}`]));
      out.push(check(3, down.length === 0, down.length === 0 ? `the live generation's ${services.length} services are active` : `services of the live generation not active: ${down.join(', ')}`));
    }
    return out;
  }

  // ------------------------------------------------------------------ 4: git

  private async checkGit(): Promise<Check> {
    for (let attempt = 1; attempt <= 3; attempt++) {
      if (await this.bed.gitReachable()) return check(4, true, attempt === 1 ? 'git reachable' : `git reachable (attempt ${attempt})`);
      await new Promise((r) => setTimeout(r, 2000));
    }
    return check(4, false, 'git ls-remote with the deploy key failed 3 times over 4 s');
  }

  // ------------------------------------------------------------------ 5: progress (per step)

  private checkProgress(records: readonly DeploymentRecord[], facts: StepFacts): Check[] {
    const out: Check[] = [];
    const failedRollbacks = records.filter((r) => r.outcome === 'rollback-failed');
    out.push(check(5, failedRollbacks.length === 0 && !facts.status.paused, failedRollbacks.length === 0 && !facts.status.paused ? 'not paused, no rollback-failed' : `rollback-failed (the previous system was good by construction): ${failedRollbacks.map(describeRecord).join('; ')}${facts.status.paused ? `; executor paused: ${facts.status.paused.reason ?? ''}` : ''}`));
    const headKind = facts.kinds.get(facts.head) ?? '?';
    if (GOOD_KINDS.has(headKind) && !facts.faulted) {
      const deployed = facts.status.deployed?.commit === facts.head;
      const last = records.filter((r) => r.commit === facts.head).at(-1);
      out.push(check(5, deployed, deployed ? 'the good head (no fault) is deployed' : `the good head ${facts.head.slice(0, 8)} was not deployed though no fault hit it: ${last ? describeRecord(last) : 'never requested'}`));
    }
    return out;
  }

  // ------------------------------------------------------------------ 6: leaks

  private async checkLeaks(step: number): Promise<Check[]> {
    const out: Check[] = [];
    const units = await this.bed.container.exec(['systemctl', 'list-units', '--all', '--plain', '--no-legend', '--no-pager', 'pullnix-activate-*', 'pullnix-rollback-*'], { timeoutMs: 30_000 });
    const left = units.stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '');
    out.push(check(6, units.code === 0 && left.length === 0, left.length === 0 ? 'no transient activation unit left' : `left over: ${left.join(' | ')}`));
    const watcherRoots = listDir(join(this.bed.dirs.watcherState, 'gcroots'));
    const otherRoots = pullnixRoots(join(this.bed.dirs.nix, 'var/nix/gcroots'));
    const bound = this.keepGcRoots + 2;
    // The executor roots a deployment's previous and new systems until its outcome: at rest at
    // most one deployment's pair may be left (a crash between the outcome and the unpinning).
    const otherBound = 2;
    out.push(
      check(
        6,
        watcherRoots.length <= bound && otherRoots.length <= otherBound,
        `GC roots: watcher ${watcherRoots.length} (bound ${bound} = keepGcRoots ${this.keepGcRoots} + deployed + newest), executor ${otherRoots.length} (bound ${otherBound})${otherRoots.length > otherBound ? `: ${otherRoots.join(', ')}` : ''}`,
      ),
    );
    const samples = await this.sampleDaemons(step);
    this.samples.push(...samples);
    out.push(check(6, samples.length === 2, samples.map((s) => `${s.daemon} pid ${s.pid} fds ${s.fds} rss ${Math.round(s.rssKiB / 1024)} MiB`).join(', ') || 'no daemon running'));
    return out;
  }

  private async sampleDaemons(step: number): Promise<DaemonSample[]> {
    const script = `for d in executor watcher; do p=$(systemctl show -P MainPID pullnix-$d.service); [ "$p" -gt 0 ] || continue; n=$(ls /proc/$p/fd 2>/dev/null | wc -l); r=$(awk '/^VmRSS/{print $2}' /proc/$p/status 2>/dev/null); echo "$d $p $n \${r:-0}"; done`;
    const r = await this.bed.container.exec(['sh', '-c', script], { timeoutMs: 30_000 });
    return r.stdout
      .split('\n')
      .map((l) => l.trim().split(' '))
      .filter((f) => f.length === 4)
      .map(([daemon, pid, fds, rss]) => ({ step, daemon: daemon as 'executor' | 'watcher', pid: Number(pid), fds: Number(fds), rssKiB: Number(rss) }));
  }

  /**
   * Across the campaign: the daemons' open fds and RSS at rest must not grow. Baseline: the
   * largest of the first three samples; the last sample may exceed it by at most 10 fds and
   * 50 % + 16 MiB of RSS (Node's heap breathes); within one executor process's life the fd
   * count may not grow by more than 10 either.
   */
  growthChecks(): Check[] {
    const out: Check[] = [];
    for (const daemon of ['executor', 'watcher'] as const) {
      const s = this.samples.filter((x) => x.daemon === daemon);
      if (s.length < 4) {
        out.push(check(6, true, `${daemon}: ${s.length} samples, too few to judge growth`));
        continue;
      }
      const base = s.slice(0, 3);
      const baseFds = Math.max(...base.map((x) => x.fds));
      const baseRss = Math.max(...base.map((x) => x.rssKiB));
      const last = s[s.length - 1]!;
      const maxFds = Math.max(...s.map((x) => x.fds));
      const maxRss = Math.max(...s.map((x) => x.rssKiB));
      const pids = new Map<number, DaemonSample[]>();
      for (const x of s) pids.set(x.pid, [...(pids.get(x.pid) ?? []), x]);
      const longest = [...pids.values()].sort((a, b) => b.length - a.length)[0]!;
      const inLife = longest[longest.length - 1]!.fds - longest[0]!.fds;
      const ok = last.fds <= baseFds + 10 && last.rssKiB <= baseRss * 1.5 + 16 * 1024 && inLife <= 10;
      out.push(
        check(
          6,
          ok,
          `${daemon}: fds first ${baseFds} / max ${maxFds} / last ${last.fds}; RSS first ${mib(baseRss)} / max ${mib(maxRss)} / last ${mib(last.rssKiB)} MiB; ${s.length} samples over ${pids.size} processes, the longest-lived (${longest.length} samples) ${inLife >= 0 ? '+' : ''}${inLife} fds`,
        ),
      );
    }
    return out;
  }
}

export function check(n: InvariantNumber, ok: boolean, text: string): Check {
  return { n, ok, text };
}

function listDir(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}

/**
 * GC roots under /nix/var/nix/gcroots made by pullnix: not nix's own auto/, profiles/, per-user/,
 * nor NixOS's current-system and booted-system links (which the bed makes as NixOS does).
 */
function pullnixRoots(dir: string): string[] {
  const out: string[] = [];
  for (const e of listDir(dir)) {
    if (e === 'auto' || e === 'profiles' || e === 'per-user' || e === 'current-system' || e === 'booted-system') continue;
    const p = join(dir, e);
    let sub: string[] = [];
    try {
      sub = readdirSync(p).map((x) => `${e}/${x}`);
    } catch {
      sub = [e];
    }
    out.push(...sub);
  }
  return out;
}

function mib(kib: number): number {
  return Math.round(kib / 1024);
}

export function describePath(p: string | null): string {
  if (p === null) return 'none';
  return p.startsWith('/nix/store/') ? `${shortPath(p).replace(/^\/nix\/store\//, '').replace(/-nixos-system-bed-/, ':')}` : p;
}

export function describeRecord(r: DeploymentRecord): string {
  return `#${r.id} ${r.commit.slice(0, 8)} ${kindOfPath(r.toplevel) ?? '?'} ${r.phase}/${r.outcome ?? '-'} exit=${r.activationExit ?? '-'}${r.error ? ` ${r.error.code}` : ''}`;
}

function phaseList(r: DeploymentRecord): string {
  return r.phases.map((p) => p.phase).join('>');
}

/** What the reboot checks look at besides the history (the bed's records, the booted system). */
export interface RebootFacts {
  /** Every boot's pick, in order (the bed's bootedEntries). */
  bootedEntries: readonly (string | null)[];
  /** The machine's reboots of its own so far (trial and fallback reboots). */
  rebootsTotal: number;
  /** readlink -f /run/booted-system now. */
  booted: string;
  isGood: (path: string) => boolean;
  installed: string;
  /** The step, when no fault struck it: its planned kinds, head, the newest id before it, its reboots. */
  step: { kinds: readonly string[]; head: string; idBefore: number; reboots: number } | null;
}

/**
 * The invariants of reboot deployments (numbers 1, 2, 5), as a pure function of the history and
 * the bed's records: every failing system booted at most once, no reboot pullnix did not ask
 * for; a succeeded reboot deployment verified in its trial boot, never activated live; at most
 * one fallback reboot per deployment, ending rolled-back; an unfaulted `reboot` step succeeds
 * with one reboot and boots its system, an unfaulted `rebootfail` step ends rolled-back with
 * two (the trial, one fallback) and boots the previous system again.
 */
export function rebootChecks(records: readonly DeploymentRecord[], f: RebootFacts): Check[] {
  const out: Check[] = [];
  const rebootDeployments = records.filter((r) => r.phases.some((p) => p.phase === 'awaiting-boot'));
  const bootCounts = new Map<string, number>();
  for (const e of f.bootedEntries) if (e !== null) bootCounts.set(e, (bootCounts.get(e) ?? 0) + 1);
  const bootedAgain = [...bootCounts].filter(([p, n]) => !f.isGood(p) && n > 1);
  const fallbacks = rebootDeployments.filter((r) => r.phases.some((p) => p.phase === 'fallback-reboot')).length;
  const asked = rebootDeployments.length + fallbacks;
  const bootProblems: string[] = [];
  if (bootedAgain.length > 0) bootProblems.push(`a failing system booted more than once: ${bootedAgain.map(([p, n]) => `${describePath(p)} ${n}×`).join(', ')}`);
  if (f.rebootsTotal > asked) bootProblems.push(`the machine rebooted itself ${f.rebootsTotal} times, pullnix asked for at most ${asked} (${rebootDeployments.length} trial, ${fallbacks} fallback)`);
  out.push(
    check(1, bootProblems.length === 0, bootProblems.length === 0 ? `booted ${describePath(f.booted)}; ${f.rebootsTotal} reboots of the machine's own for ${rebootDeployments.length} reboot deployments and ${fallbacks} fallback reboots; no failing system booted twice` : bootProblems.join('; ')),
  );

  const problems: string[] = [];
  for (const r of rebootDeployments) {
    const phases = r.phases.map((p) => p.phase);
    const lastAwait = phases.lastIndexOf('awaiting-boot');
    const marks = phases.filter((p) => p === 'fallback-reboot').length;
    if (marks > 1) problems.push(`#${r.id}: ${marks} fallback-reboot marks (at most one per deployment)`);
    if (marks > 0 && r.outcome !== null && r.outcome !== 'rolled-back') problems.push(`#${r.id}: fell back, ended ${r.outcome}`);
    if (r.outcome === 'succeeded') {
      if (!r.reboot?.trialBootId || r.reboot.trialBootId === r.reboot.fromBootId) problems.push(`#${r.id} succeeded without a trial boot of its own (trialBootId ${r.reboot?.trialBootId ?? '-'}, from ${r.reboot?.fromBootId ?? '-'})`);
      if (!(phases.indexOf('verifying', lastAwait) > lastAwait && phases.indexOf('committing', lastAwait) > lastAwait)) problems.push(`#${r.id} succeeded without verifying and committing after its trial boot: ${phases.join('>')}`);
      if (phases.includes('activating')) problems.push(`#${r.id} was activated live: ${phases.join('>')}`);
      if (marks > 0) problems.push(`#${r.id} succeeded after a fallback reboot`);
    }
  }
  out.push(check(2, problems.length === 0, problems.length === 0 ? `${rebootDeployments.length} reboot deployments: each succeeded one verified in its trial boot, at most one fallback reboot each, which ended rolled-back` : problems.slice(0, 6).join('; ')));

  const step = f.step;
  const kind = step?.kinds.length === 1 ? step.kinds[0] : undefined;
  if (step !== null && (kind === 'reboot' || kind === 'rebootfail')) {
    const r = records.find((x) => x.id > step.idBefore && x.commit === step.head);
    const last = records.filter((x) => x.outcome === 'succeeded').at(-1);
    const want = kind === 'reboot' ? { outcome: 'succeeded', reboots: 1, booted: r?.toplevel } : { outcome: 'rolled-back', reboots: 2, booted: last?.toplevel ?? f.installed };
    const fell = r?.phases.some((p) => p.phase === 'fallback-reboot') ?? false;
    const ok = r !== undefined && r.outcome === want.outcome && step.reboots === want.reboots && f.booted === want.booted && fell === (kind === 'rebootfail');
    out.push(
      check(
        5,
        ok,
        `${kind} without a fault: ${r ? describeRecord(r) : 'no deployment'}, ${step.reboots} reboot(s) (want ${want.outcome}, ${want.reboots}${kind === 'rebootfail' ? ', one of them the fallback' : ''}), fallback ${fell ? 'marked' : 'not marked'}, booted ${describePath(f.booted)}${f.booted === want.booted ? '' : ` (want ${describePath(want.booted ?? null)})`}`,
      ),
    );
  }
  return out;
}

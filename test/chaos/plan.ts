/**
 * The generators: what a campaign does, step by step, as a pure function of the seed and the
 * campaign's size. Nothing here looks at the machine, so the plan of step K is the same in the
 * original run and in a replay (`--seed S --from-step K`), and `--plan` prints it without a bed.
 *
 * A step pushes one commit, or a burst of 2-4 pushes within one poll interval, and may carry one
 * fault aimed at a phase of the deployments it causes.
 */
import type { GenerationSpec } from '../system/lib/bed.ts';
import { derive } from './prng.ts';

/**
 * What a commit is, by construction. good/upgrade build, activate with exit 0 and keep git
 * reachable: the only systems allowed to become the boot default (besides the installed one).
 *   nogit     no git server in the generation: activates, fails verification
 *   broken    the build fails
 *   unitfail  a unit of the generation fails to start: switch-to-configuration exits 4
 *   actfail   a snippet of the activation script fails: exit 2 (after repointing current-system)
 *   upgrade   a good commit with a new pullnix package: new pullnix units (self-upgrade)
 *   badconfig a new pullnix package with a configuration its daemons reject (an http check
 *             without a scheme, issue 21): activates, fails verification (pullnix-config); if
 *             it were committed, the self-upgraded executor would exit 78 for ever
 *   reboot    a new kernel (a reboot deployment, reboot.mode window, always open): booted on
 *             trial through the bootloader's one-shot entry, verified after the boot, made the
 *             boot default
 *   rebootfail a new kernel and no git server: booted on trial, fails its verification after
 *             the boot, left by one fallback reboot; never the boot default
 * Every other commit carries the kernel the machine booted (resolved by the runner when it
 * commits: `kernel: null`), so only the reboot kinds need a reboot; they are never part of a
 * burst (a commit after one in the same burst could not know which kernel will be booted, and an
 * `actfail` booted instead of activated would pass: a boot does not stop at a failing snippet).
 */
export const COMMIT_KINDS = ['good', 'upgrade', 'nogit', 'broken', 'unitfail', 'actfail', 'badconfig', 'reboot', 'rebootfail'] as const;
export type CommitKind = (typeof COMMIT_KINDS)[number];
const KIND_WEIGHTS: Record<CommitKind, number> = { good: 34, upgrade: 8, nogit: 14, broken: 10, unitfail: 14, actfail: 14, badconfig: 6, reboot: 8, rebootfail: 6 };
/** Kinds that need a reboot (a new kernel); never in a burst. */
export const REBOOT_KINDS: ReadonlySet<CommitKind> = new Set(['reboot', 'rebootfail']);
/** Kinds without the git server in their generation (no sshd restarts in their steps). */
const NO_GIT: ReadonlySet<CommitKind> = new Set(['nogit', 'rebootfail']);
/** Commits that carry a new pullnix package (a new version: new pullnix units). */
const NEW_PACKAGE: ReadonlySet<CommitKind> = new Set(['upgrade', 'badconfig']);

/** Labels (and so toplevel store names) end in their kind; these may be booted or live at rest. */
export const GOOD_KINDS: ReadonlySet<string> = new Set(['good', 'upgrade', 'reboot', 'install']);

/** restart-nix-daemon: `systemctl restart nix-daemon.service` (builds and nix-env see it refuse or drop connections). */
export const FAULT_KINDS = ['power-cut', 'kill-executor', 'kill-watcher', 'restart-sshd', 'restart-nix-daemon'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];
const FAULT_WEIGHTS: Record<FaultKind, number> = { 'power-cut': 35, 'kill-executor': 35, 'kill-watcher': 18, 'restart-sshd': 12, 'restart-nix-daemon': 10 };

/**
 * A phase of history.jsonl to strike in; `activated`: inside `activating`, once the switch has
 * repointed /run/current-system at the new system but has not exited yet (NixOS's activation
 * script repoints it whatever its status; exits 2 and 4 come after: the window of issue 10
 * item 1); or `anytime`: a uniform instant after the push. The reboot phases:
 *   awaiting-boot    the trial boot being prepared, the machine rebooting into it, booting
 *   trial-boot       power cuts only: the firmware has used the one-shot entry, the power goes
 *                    before userspace (the bed's cutNextReboot): the previous system boots next
 *   trial-verifying  `verifying` after the trial boot (the record has reboot.trialBootId)
 *   fallback-reboot  the trial system failed; the fallback reboot recorded, rebooting
 */
export const FAULT_TARGETS = ['accepted', 'activating', 'activated', 'verifying', 'committing', 'rolling-back', 'awaiting-boot', 'trial-boot', 'trial-verifying', 'fallback-reboot', 'anytime'] as const;
export type FaultTarget = (typeof FAULT_TARGETS)[number];
const TARGET_WEIGHTS: Record<FaultTarget, number> = {
  accepted: 5,
  activating: 18,
  activated: 15,
  verifying: 15,
  committing: 12,
  'rolling-back': 18,
  'awaiting-boot': 10,
  'trial-boot': 25,
  'trial-verifying': 25,
  'fallback-reboot': 20,
  anytime: 17,
};
/** After the target phase is seen, the fault waits a uniform fraction of this (ms). */
const PHASE_DELAY_MS: Record<Exclude<FaultTarget, 'anytime'>, number> = {
  accepted: 300,
  activating: 2500,
  activated: 300,
  verifying: 1500,
  committing: 400,
  'rolling-back': 2500,
  'awaiting-boot': 1500,
  'trial-boot': 0,
  'trial-verifying': 2000,
  'fallback-reboot': 800,
};

/** Which history phases a deployment of this kind goes through. */
const REACHABLE: Record<CommitKind, readonly FaultTarget[]> = {
  good: ['accepted', 'activating', 'activated', 'verifying', 'committing'],
  upgrade: ['accepted', 'activating', 'activated', 'verifying', 'committing'],
  nogit: ['accepted', 'activating', 'activated', 'verifying', 'rolling-back'],
  broken: [],
  unitfail: ['accepted', 'activating', 'activated', 'rolling-back'],
  actfail: ['accepted', 'activating', 'activated', 'rolling-back'],
  badconfig: ['accepted', 'activating', 'activated', 'verifying', 'rolling-back'],
  reboot: ['accepted', 'awaiting-boot', 'trial-boot', 'trial-verifying', 'committing'],
  rebootfail: ['accepted', 'awaiting-boot', 'trial-boot', 'trial-verifying', 'fallback-reboot'],
};

export interface PlannedCommit {
  kind: CommitKind;
  /** `s<step>c<i>-<kind>`: unique, and the toplevel's store name ends in it. */
  label: string;
  pullnixVersion: string;
  /** The generation's kernel: a new one for the reboot kinds; null: the kernel the machine booted (resolved when committing). */
  kernel: string | null;
  /** Duration of the generation's slow oneshot unit (widens activating and rolling-back). */
  slowMs: number;
  /** Wait before this push (0 for the first of a step; bursts: all within one poll interval). */
  gapMs: number;
}

export interface PlannedFault {
  kind: FaultKind;
  target: FaultTarget;
  /** After the target phase is seen (or after the step's first push for `anytime`). */
  delayMs: number;
}

/** The bootloader of the campaign's machine, and the reboot settings every commit carries. */
export type Bootloader = 'systemd-boot' | 'grub';

/** Alternates per seed: half the seeds run on systemd-boot, half on GRUB. */
export function bootloaderOf(seed: string): Bootloader {
  return derive(seed, 'bootloader').chance(0.5) ? 'grub' : 'systemd-boot';
}

/** reboot.mode window, always open (start = end): a reboot deployment proceeds at once. */
export function rebootConfig(loader: Bootloader): Record<string, unknown> {
  return { mode: 'window', window: { start: '00:00', end: '00:00' }, bootloader: loader };
}

export interface StepPlan {
  step: number;
  commits: PlannedCommit[];
  fault: PlannedFault | null;
}

export type FaultSpec = { mode: 'count'; count: number } | { mode: 'probability'; p: number };

export interface CampaignShape {
  seed: string;
  deployments: number;
  faults: FaultSpec;
  pollIntervalSec: number;
}

/** `--faults N` (exactly N steps get a fault) or `--faults 0.4` / `40%` (each step with that probability). */
export function parseFaults(text: string, deployments: number): FaultSpec {
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(text);
  if (pct) return probability(Number(pct[1]) / 100, text);
  if (/^\d+$/.test(text)) {
    const count = Number(text);
    if (count > deployments) throw new Error(`--faults ${count}: at most one fault per step, and there are ${deployments} steps (--deployments)`);
    return { mode: 'count', count };
  }
  if (/^(0?\.\d+|1(\.0*)?)$/.test(text)) return probability(Number(text), text);
  throw new Error(`--faults ${JSON.stringify(text)}: expected a count (e.g. 4) or a probability per step (e.g. 0.4 or 40%)`);
}

function probability(p: number, text: string): FaultSpec {
  if (!(p >= 0 && p <= 1)) throw new Error(`--faults ${text}: a probability is between 0 and 1 (0% and 100%)`);
  return { mode: 'probability', p };
}

export function formatFaults(f: FaultSpec): string {
  return f.mode === 'count' ? String(f.count) : String(f.p);
}

/** The whole campaign: steps 1..deployments. */
export function planCampaign(shape: CampaignShape): StepPlan[] {
  const { seed, deployments, faults } = shape;
  const faulty =
    faults.mode === 'count'
      ? new Set(derive(seed, 'faults', deployments, faults.count).sample(deployments, faults.count).map((i) => i + 1))
      : new Set(Array.from({ length: deployments }, (_, i) => i + 1).filter((n) => derive(seed, 'step', n, 'faulty').chance(faults.p)));
  const steps: StepPlan[] = [];
  let version = 1;
  for (let n = 1; n <= deployments; n++) {
    const step = planStep(shape, n, version, faulty.has(n));
    for (const c of step.commits) version = Number(c.pullnixVersion);
    steps.push(step);
  }
  return steps;
}

/** The pullnix version the commits carry after the steps before `step` (for a replay's fast-forward). */
export function versionBefore(steps: readonly StepPlan[], step: number): string {
  let version = '1';
  for (const s of steps) if (s.step < step) for (const c of s.commits) version = c.pullnixVersion;
  return version;
}

function planStep(shape: CampaignShape, n: number, version: number, withFault: boolean): StepPlan {
  const r = derive(shape.seed, 'step', n);
  const count = r.chance(0.12) ? r.int(2, 4) : 1;
  const commits: PlannedCommit[] = [];
  const weights: Partial<Record<CommitKind, number>> = { ...KIND_WEIGHTS };
  if (count > 1) for (const k of REBOOT_KINDS) weights[k] = 0;
  for (let i = 1; i <= count; i++) {
    const kind = r.weighted(weights);
    if (NEW_PACKAGE.has(kind)) version++;
    commits.push({
      kind,
      label: `s${n}c${i}-${kind}`,
      pullnixVersion: String(version),
      // A kernel of its own per commit (a store name of its own: bed-linux-6.6.<step>.<i>).
      kernel: REBOOT_KINDS.has(kind) ? `6.6.${n}.${i}` : null,
      slowMs: r.int(300, 2500),
      gapMs: i === 1 ? 0 : r.int(0, Math.floor((shape.pollIntervalSec * 1000) / count)),
    });
  }
  return { step: n, commits, fault: withFault ? planFault(shape, n, commits) : null };
}

function planFault(shape: CampaignShape, n: number, commits: readonly PlannedCommit[]): PlannedFault {
  const r = derive(shape.seed, 'step', n, 'fault');
  // A restart of sshd while a generation without the git server is being switched to could
  // start the old sshd again behind switch-to-configuration's back (the bed's fault, not
  // pullnix's): never in a step that pushes such a commit.
  const kinds = { ...FAULT_WEIGHTS };
  if (commits.some((c) => NO_GIT.has(c.kind))) kinds['restart-sshd'] = 0;
  const kind = r.weighted(kinds);
  const reachable = new Set<FaultTarget>(['anytime', ...commits.flatMap((c) => REACHABLE[c.kind])]);
  // trial-boot is a power cut by definition (the one-shot used, the power gone before userspace).
  if (kind !== 'power-cut') reachable.delete('trial-boot');
  const targets: Partial<Record<FaultTarget, number>> = {};
  for (const t of FAULT_TARGETS) if (reachable.has(t)) targets[t] = TARGET_WEIGHTS[t];
  const target = r.weighted(targets);
  const delayMs = target === 'anytime' ? r.int(0, anytimeWindowMs(shape.pollIntervalSec)) : r.int(0, PHASE_DELAY_MS[target]);
  return { kind, target, delayMs };
}

/** `anytime` faults fall uniformly in [0, this) after the push: a poll, the build and the deployment. */
export function anytimeWindowMs(pollIntervalSec: number): number {
  return (2 * pollIntervalSec + 12) * 1000;
}

/** The machine a commit is made for: its bootloader, and the kernel it booted (for `kernel: null`). */
export interface MachineFacts {
  keepGcRoots: number;
  bootloader: Bootloader;
  bootedKernel: string;
}

/** The generation a planned commit pushes. */
export function specOf(c: Pick<PlannedCommit, 'kind' | 'label' | 'pullnixVersion' | 'slowMs'> & { kernel?: string | null }, m: MachineFacts): GenerationSpec {
  const extraUnits: Record<string, string> = { 'chaos-slow.service': slowUnit(c.label, c.slowMs) };
  if (c.kind === 'unitfail') extraUnits['chaos-fail.service'] = failingUnit(c.label);
  return {
    label: c.label,
    pullnixVersion: c.pullnixVersion,
    gitServer: !NO_GIT.has(c.kind),
    broken: c.kind === 'broken' ? `chaos: ${c.label} does not build` : null,
    activationFails: c.kind === 'actfail' ? `chaos: ${c.label} fails its activation` : null,
    kernel: c.kernel ?? m.bootedKernel,
    bootloader: { loader: m.bootloader },
    extraUnits,
    config: { build: { keepGcRoots: m.keepGcRoots }, reboot: rebootConfig(m.bootloader), ...(c.kind === 'badconfig' ? { checks: { api: { type: 'http', url: 'localhost:8080/health' } } } : {}) },
  };
}

/** The kernel version of a system, from its kernel link's store name (bed-linux-<version>); null when unreadable. */
export function kernelOfPath(kernelTarget: string | null): string | null {
  const m = kernelTarget === null ? null : /-bed-linux-([^/]+)\/bzImage$/.exec(kernelTarget);
  return m ? m[1]! : null;
}

/** The kind a toplevel (or label) was built as, from its store name; null for something else. */
export function kindOfPath(path: string | null): string | null {
  if (path === null) return null;
  const m = /-nixos-system-bed-[A-Za-z0-9-]*-([a-z]+)$/.exec(path) ?? /^[A-Za-z0-9-]*-([a-z]+)$/.exec(path);
  return m ? m[1]! : null;
}

/** A oneshot with a different definition in every commit: restarted by every switch, it lasts slowMs. */
function slowUnit(label: string, slowMs: number): string {
  return `[Unit]
Description=chaos: a slow oneshot that widens the activation window
[Service]
Type=oneshot
RemainAfterExit=yes
Environment=CHAOS_COMMIT=${label}
ExecStart=/usr/bin/sleep ${(slowMs / 1000).toFixed(3)}
[Install]
WantedBy=multi-user.target
`;
}

function failingUnit(label: string): string {
  return `[Unit]
Description=chaos: a unit that fails to start
[Service]
Type=oneshot
Environment=CHAOS_COMMIT=${label}
ExecStart=/usr/bin/sh -c 'sleep 0.3; echo "chaos: failing on purpose" >&2; exit 3'
[Install]
WantedBy=multi-user.target
`;
}

export function describeStep(s: StepPlan): string {
  const commits = s.commits.map((c) => `${c.label.replace(/^s\d+/, '')}${c.kernel ? `(kernel ${c.kernel})` : ''}`).join(' ');
  const fault = s.fault ? ` | ${s.fault.kind} @ ${s.fault.target}+${s.fault.delayMs}ms` : '';
  return `step ${s.step}: ${s.commits.length > 1 ? 'burst ' : ''}${commits}${fault}`;
}

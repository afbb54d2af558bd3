/**
 * The fault injector: waits for the planned instant (a phase of one of the step's deployments
 * in history.jsonl plus a random delay; `activated`: the switch repointed /run/current-system
 * and still runs; or a random delay after the push), then strikes:
 *   kill-executor / kill-watcher   systemctl kill -s KILL <unit>   (every process of the unit)
 *   power-cut                      SIGKILL to the container's PID 1, then boot again
 *   restart-sshd                   systemctl restart bed-git-sshd.service
 *   restart-nix-daemon             systemctl restart nix-daemon.service (a build or nix-env in
 *                                  flight loses its connection; new ones are refused meanwhile)
 * `trial-boot` (power cuts only) arms the bed's cutNextReboot: the machine's next reboot of its
 * own (pullnix's trial reboot) uses the bootloader's pick, one-shot entry included, and the power
 * goes before userspace; the machine is then booted again (the previous default).
 * A machine rebooting (a reboot deployment) is waited for before a systemctl fault; a power cut
 * strikes it wherever it is (powerCutAnyTime: a boot in progress is cut too).
 * When the target phase never comes (the deployment ended first, a burst skipped the commit,
 * the build failed), it strikes when the step's head has been handled, so every planned fault
 * is delivered; the report says which phase it actually hit.
 */
import type { TestBed } from '../system/lib/bed.ts';
import { delay } from '../system/lib/proc.ts';
import { headHandled, type HistoryTail } from './observe.ts';
import type { FaultKind, PlannedFault } from './plan.ts';

export interface FaultResult {
  kind: FaultKind;
  target: string;
  delayMs: number;
  /** The phase the step's newest deployment was in at the strike ("none": not accepted yet). */
  hit: string;
  deployment: number | null;
  /** The target phase was never seen: struck when the step's head was handled (or gave up waiting). */
  missed: boolean;
  /**
   * The strike landed where it aimed: in the target phase (`activated`: in `activating` after
   * the repoint; `anytime` always). A target seen but left before the strike (the delay outlasted
   * the phase) is not a hit.
   */
  onTarget: boolean;
  at: Date;
  detail: string;
}

export interface FaultContext {
  bed: TestBed;
  tail: HistoryTail;
  /** Deployments with an id above this belong to the step. */
  idBefore: number;
  /** The step's last pushed commit, and when its first push happened. */
  head: string;
  pushedAt: number;
  /** Give up waiting for the target phase after this long (then strike anyway). */
  waitLimitMs: number;
}

export async function injectFault(ctx: FaultContext, fault: PlannedFault): Promise<FaultResult> {
  let missed = false;
  if (fault.target === 'trial-boot') return trialBootCut(ctx, fault);
  if (fault.target === 'anytime') {
    await delay(Math.max(0, ctx.pushedAt + fault.delayMs - Date.now()));
  } else if (fault.target === 'activated') {
    const seen = (await waitForPhase(ctx, 'activating')) && (await waitForRepoint(ctx));
    missed = !seen;
    if (seen) await delay(fault.delayMs);
  } else {
    const seen = await waitForPhase(ctx, fault.target);
    missed = !seen;
    if (seen) await delay(fault.delayMs);
  }
  const { hit, deployment } = phaseNow(ctx);
  const at = new Date();
  const detail = await strike(ctx.bed, fault.kind);
  return { kind: fault.kind, target: fault.target, delayMs: fault.delayMs, hit, deployment, missed, onTarget: onTarget(fault.target, hit, missed), at, detail };
}

/** The phase of the step's newest deployment now ("none": not accepted yet; `trial-verifying`: verifying after a trial boot). */
function phaseNow(ctx: FaultContext): { hit: string; deployment: number | null } {
  ctx.tail.poll();
  const newest = [...ctx.tail.latest.values()].filter((r) => r.id > ctx.idBefore).sort((a, b) => b.id - a.id)[0];
  const hit = newest === undefined ? 'none' : newest.outcome !== null ? `after:${newest.outcome}` : phaseName(newest);
  return { hit, deployment: newest?.id ?? null };
}

export function onTarget(target: PlannedFault['target'], hit: string, missed: boolean): boolean {
  if (target === 'anytime') return true;
  if (missed) return false;
  // activated is a moment inside activating; trial-boot a moment of awaiting-boot (the reboot into the trial system).
  return hit === (target === 'activated' ? 'activating' : target === 'trial-boot' ? 'awaiting-boot' : target);
}

/**
 * A power cut while the trial system boots: the next reboot of the machine's own is cut short
 * after the bootloader's pick (bed.cutNextReboot), then the machine is powered on again. Missed
 * when the step ends without a reboot (the flag is taken back, and the power is cut then).
 */
async function trialBootCut(ctx: FaultContext, fault: PlannedFault): Promise<FaultResult> {
  const { bed } = ctx;
  const before = bed.reboots;
  bed.cutNextReboot = true;
  let seen: { hit: string; deployment: number | null } | null = null;
  const deadline = Date.now() + ctx.waitLimitMs;
  let lastHandledCheck = 0;
  while (Date.now() < deadline) {
    const now = phaseNow(ctx);
    if (bed.reboots > before) {
      seen = now;
      break;
    }
    if (Date.now() - lastHandledCheck > 250) {
      lastHandledCheck = Date.now();
      const unfinished = [...ctx.tail.latest.values()].some((r) => r.id > ctx.idBefore && r.outcome === null);
      if (!unfinished && headHandled(bed, ctx.tail, ctx.head)) break;
    }
    await delay(20);
  }
  if (seen === null) {
    bed.cutNextReboot = false;
    const { hit, deployment } = phaseNow(ctx);
    const at = new Date();
    const detail = await strike(bed, 'power-cut');
    return { kind: fault.kind, target: fault.target, delayMs: fault.delayMs, hit, deployment, missed: true, onTarget: false, at, detail };
  }
  const at = new Date();
  // The bed cut the power once the bootloader picked (the one-shot used): wait for it to be off, then power on.
  await waitUntil(() => !bed.container.running, 60_000);
  const t = Date.now();
  await bootAgain(bed);
  const detail = `power cut while the trial system boots (the bootloader had picked ${bed.bootedEntries.at(-2) ?? '-'}), booted again in ${((Date.now() - t) / 1000).toFixed(1)} s on ${bed.bootDefault()}`;
  return { kind: fault.kind, target: fault.target, delayMs: fault.delayMs, hit: seen.hit, deployment: seen.deployment, missed: false, onTarget: onTarget(fault.target, seen.hit, false), at, detail };
}

function phaseName(r: { phase: string; reboot?: { trialBootId?: string | null } }): string {
  return r.phase === 'verifying' && r.reboot?.trialBootId ? 'trial-verifying' : r.phase;
}

async function waitUntil(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (cond()) return true;
    await delay(50);
  }
  return cond();
}

/** Power on after a cut; a boot that times out on a starved machine is killed by the bed: one more power-on. */
async function bootAgain(bed: TestBed): Promise<string> {
  try {
    await bed.boot();
    return '';
  } catch (error) {
    bed.log(`boot failed (${(error as Error).message.split('\n')[0]}); powering on again`);
    await bed.powerCutAnyTime();
    await bed.boot();
    return ' (second attempt)';
  }
}

/** true once a deployment of the step has entered `phase`; false when the step ended without it. */
async function waitForPhase(ctx: FaultContext, phase: string): Promise<boolean> {
  const deadline = Date.now() + ctx.waitLimitMs;
  let lastHandledCheck = 0;
  for (;;) {
    ctx.tail.poll();
    for (const [id, phases] of ctx.tail.phasesSeen) if (id > ctx.idBefore && phases.has(phase)) return true;
    const now = Date.now();
    if (now > deadline) return false;
    if (now - lastHandledCheck > 250) {
      lastHandledCheck = now;
      const unfinished = [...ctx.tail.latest.values()].some((r) => r.id > ctx.idBefore && r.outcome === null);
      if (!unfinished && headHandled(ctx.bed, ctx.tail, ctx.head)) return false;
    }
    await delay(20);
  }
}

/**
 * Inside `activating`: true once /run/current-system points at the activating deployment's
 * toplevel (the switch repointed it and is still running: starting units, judging them);
 * false when the deployment left `activating` first.
 */
async function waitForRepoint(ctx: FaultContext): Promise<boolean> {
  const deadline = Date.now() + ctx.waitLimitMs;
  while (Date.now() < deadline) {
    ctx.tail.poll();
    const record = [...ctx.tail.latest.values()].filter((r) => r.id > ctx.idBefore && r.phase === 'activating').sort((a, b) => b.id - a.id)[0];
    if (record === undefined) return false;
    const r = await ctx.bed.container.exec(['readlink', '-f', '/run/current-system'], { timeoutMs: 10_000 }).catch(() => null);
    if (r?.stdout.trim() === record.toplevel) return true;
    await delay(50);
  }
  return false;
}

async function strike(bed: TestBed, kind: FaultKind): Promise<string> {
  // A machine rebooting (a reboot deployment): a systemctl fault waits until it is up again.
  let waited = '';
  if (kind !== 'power-cut' && !(await machineUp(bed))) {
    const t = Date.now();
    await waitUntilAsync(() => machineUp(bed), 180_000);
    waited = ` (after waiting ${((Date.now() - t) / 1000).toFixed(1)} s for the machine to be up)`;
  }
  return (await strikeNow(bed, kind).catch((e: Error) => `not delivered: ${e.message.split('\n')[0]}`)) + waited;
}

async function machineUp(bed: TestBed): Promise<boolean> {
  if (!bed.container.running) return false;
  const r = await bed.container.exec(['true'], { timeoutMs: 5000 }).catch(() => null);
  return r?.code === 0;
}

async function waitUntilAsync(cond: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !(await cond())) await delay(200);
}

async function strikeNow(bed: TestBed, kind: FaultKind): Promise<string> {
  switch (kind) {
    case 'kill-executor':
    case 'kill-watcher': {
      const unit = kind === 'kill-executor' ? 'pullnix-executor.service' : 'pullnix-watcher.service';
      const pid = await bed.mainPid(unit).catch(() => 0);
      const r = await bed.container.exec(['systemctl', 'kill', '-s', 'KILL', unit], { timeoutMs: 30_000 });
      return `systemctl kill -s KILL ${unit} (MainPID ${pid}) exited ${r.code}${r.code !== 0 ? `: ${r.stderr.trim()}` : ''}`;
    }
    case 'power-cut': {
      const wasUp = bed.container.running;
      await bed.powerCutAnyTime();
      const t = Date.now();
      const again = await bootAgain(bed);
      return `power cut${wasUp ? '' : ' (while the machine rebooted)'}, booted again${again} in ${((Date.now() - t) / 1000).toFixed(1)} s on ${bed.bootDefault()}`;
    }
    case 'restart-sshd':
    case 'restart-nix-daemon': {
      const unit = kind === 'restart-sshd' ? 'bed-git-sshd.service' : 'nix-daemon.service';
      const r = await bed.container.exec(['systemctl', 'restart', unit], { timeoutMs: 30_000 });
      return `systemctl restart ${unit} exited ${r.code}${r.code !== 0 ? `: ${r.stderr.trim()}` : ''}`;
    }
  }
}

/**
 * The fault injector: waits for the planned instant (a phase of one of the step's deployments
 * in history.jsonl plus a random delay; `activated`: the switch repointed /run/current-system
 * and still runs; or a random delay after the push), then strikes:
 *   kill-executor / kill-watcher   systemctl kill -s KILL <unit>   (every process of the unit)
 *   power-cut                      SIGKILL to the container's PID 1, then boot again
 *   restart-sshd                   systemctl restart bed-git-sshd.service
 *   restart-nix-daemon             systemctl restart nix-daemon.service (a build or nix-env in
 *                                  flight loses its connection; new ones are refused meanwhile)
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
  ctx.tail.poll();
  const newest = [...ctx.tail.latest.values()].filter((r) => r.id > ctx.idBefore).sort((a, b) => b.id - a.id)[0];
  const hit = newest === undefined ? 'none' : newest.outcome !== null ? `after:${newest.outcome}` : newest.phase;
  const at = new Date();
  const detail = await strike(ctx.bed, fault.kind);
  return { kind: fault.kind, target: fault.target, delayMs: fault.delayMs, hit, deployment: newest?.id ?? null, missed, onTarget: onTarget(fault.target, hit, missed), at, detail };
}

export function onTarget(target: PlannedFault['target'], hit: string, missed: boolean): boolean {
  if (target === 'anytime') return true;
  if (missed) return false;
  return hit === (target === 'activated' ? 'activating' : target);
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
  switch (kind) {
    case 'kill-executor':
    case 'kill-watcher': {
      const unit = kind === 'kill-executor' ? 'pullnix-executor.service' : 'pullnix-watcher.service';
      const pid = await bed.mainPid(unit).catch(() => 0);
      const r = await bed.container.exec(['systemctl', 'kill', '-s', 'KILL', unit], { timeoutMs: 30_000 });
      return `systemctl kill -s KILL ${unit} (MainPID ${pid}) exited ${r.code}${r.code !== 0 ? `: ${r.stderr.trim()}` : ''}`;
    }
    case 'power-cut': {
      await bed.powerCut();
      const t = Date.now();
      try {
        await bed.boot();
      } catch (error) {
        // A boot that times out on a starved machine is killed by the bed: one more power-on.
        bed.log(`boot failed (${(error as Error).message.split('\n')[0]}); powering on again`);
        await bed.boot();
        return `power cut, booted again (second attempt) in ${((Date.now() - t) / 1000).toFixed(1)} s on ${bed.bootDefault()}`;
      }
      return `power cut, booted again in ${((Date.now() - t) / 1000).toFixed(1)} s on ${bed.bootDefault()}`;
    }
    case 'restart-sshd':
    case 'restart-nix-daemon': {
      const unit = kind === 'restart-sshd' ? 'bed-git-sshd.service' : 'nix-daemon.service';
      const r = await bed.container.exec(['systemctl', 'restart', unit], { timeoutMs: 30_000 });
      return `systemctl restart ${unit} exited ${r.code}${r.code !== 0 ? `: ${r.stderr.trim()}` : ''}`;
    }
  }
}

/**
 * "The step is over": the machine is quiet and the step's head has been handled. Judged from
 * files first (cheap, host side), then from pullnix-ctl status:
 *   - every deployment in history.jsonl has an outcome, state.json has no current deployment;
 *   - the head was handled: deployed (the newest success), in the failure memory, a remembered
 *     build failure, or recorded handled in the watcher's memory;
 *   - the executor answers status: not busy, nothing current, the watcher connected;
 *   - the same holds a poll interval later with no new deployment (nothing was still on its way).
 * A pause (the executor pauses itself after rollback-failed) ends the wait: nothing would move.
 * Generous timeouts: the machine is shared and slow; a step that never settles is a violation
 * (a deployment stuck in a phase, or a head never handled).
 */
import type { StatusResult } from '@pullnix/shared';
import type { TestBed } from '../system/lib/bed.ts';
import { delay } from '../system/lib/proc.ts';
import { executorState, headHandled, watcherMemory, type HistoryTail } from './observe.ts';

export type Settled = { settled: true; status: StatusResult; paused: boolean } | { settled: false; why: string };

export async function waitForSettle(bed: TestBed, tail: HistoryTail, head: string, options: { timeoutMs: number; pollIntervalSec: number }): Promise<Settled> {
  const deadline = Date.now() + options.timeoutMs;
  let why = 'not looked yet';
  while (Date.now() < deadline) {
    const quiet = await quietNow(bed, tail, head);
    if (quiet.ok) {
      if (quiet.status.paused) return { settled: true, status: quiet.status, paused: true };
      const before = tail.maxId();
      await delay(options.pollIntervalSec * 1000 + 500);
      const again = await quietNow(bed, tail, head);
      if (again.ok && tail.maxId() === before) return { settled: true, status: again.status, paused: again.status.paused !== null };
      why = again.ok ? 'a new deployment started meanwhile' : again.why;
    } else {
      why = quiet.why;
    }
    await delay(500);
  }
  return { settled: false, why };
}

async function quietNow(bed: TestBed, tail: HistoryTail, head: string): Promise<{ ok: true; status: StatusResult } | { ok: false; why: string }> {
  tail.poll();
  const open = [...tail.latest.values()].filter((r) => r.outcome === null);
  if (open.length > 0) return { ok: false, why: `deployment ${open.map((r) => `${r.id} (${r.phase})`).join(', ')} unresolved` };
  const state = executorState(bed);
  if (state?.current != null) return { ok: false, why: `state.json has current=${state.current}` };
  if (state?.paused == null && !headHandled(bed, tail, head)) {
    const handled = watcherMemory(bed)?.lastHandled;
    return { ok: false, why: `the head ${head.slice(0, 8)} is neither deployed, failed nor handled by the watcher (last handled: ${handled ? `${handled.commit.slice(0, 8)} ${handled.result}` : 'none'})` };
  }
  let status: StatusResult;
  try {
    status = await bed.status();
  } catch (error) {
    return { ok: false, why: `status: ${(error as Error).message.split('\n')[0]}` };
  }
  if (status.paused) return { ok: true, status };
  if (status.executor.busy || status.current !== null) return { ok: false, why: `executor busy (current ${status.current?.id ?? '-'})` };
  if (!status.watcher.connected) return { ok: false, why: 'the watcher is not connected' };
  return { ok: true, status };
}

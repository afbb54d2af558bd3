/**
 * Reading the machine from the host side of its binds, cheaply enough to poll every few ten
 * milliseconds: the new lines of history.jsonl (read from the last offset, not the whole file),
 * the watcher's memory and the executor's state file.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { DeploymentRecord } from '@pullnix/shared';
import type { TestBed } from '../system/lib/bed.ts';

/** Follows /var/lib/pullnix/history.jsonl: the newest snapshot of every deployment seen so far. */
export class HistoryTail {
  readonly latest = new Map<number, DeploymentRecord>();
  /** Every phase each deployment was seen in (all its snapshots, not only the newest). */
  readonly phasesSeen = new Map<number, Set<string>>();
  private readonly path: string;
  private offset = 0;
  private partial = '';

  constructor(bed: TestBed) {
    this.path = join(bed.dirs.state, 'history.jsonl');
  }

  /** Read what was appended since the last call; returns the snapshots read, in file order. */
  poll(): DeploymentRecord[] {
    if (!existsSync(this.path)) return [];
    const size = statSync(this.path).size;
    if (size < this.offset) {
      // Rewritten (a damaged file repaired by the executor): start over.
      this.offset = 0;
      this.partial = '';
      this.latest.clear();
      this.phasesSeen.clear();
    }
    if (size === this.offset) return [];
    const fd = openSync(this.path, 'r');
    const buf = Buffer.alloc(size - this.offset);
    try {
      readSync(fd, buf, 0, buf.length, this.offset);
    } finally {
      closeSync(fd);
    }
    this.offset = size;
    const text = this.partial + buf.toString('utf8');
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    const out: DeploymentRecord[] = [];
    for (const line of lines) {
      if (line === '') continue;
      try {
        const r = JSON.parse(line) as DeploymentRecord;
        this.latest.set(r.id, r);
        const seen = this.phasesSeen.get(r.id) ?? new Set<string>();
        seen.add(r.phase);
        // verifying after a trial boot: a target of its own (faults.ts)
        if (r.phase === 'verifying' && r.reboot?.trialBootId) seen.add('trial-verifying');
        this.phasesSeen.set(r.id, seen);
        out.push(r);
      } catch {
        // A torn line: the invariants judge the file as a whole; the tail only follows phases.
      }
    }
    return out;
  }

  maxId(): number {
    let max = 0;
    for (const id of this.latest.keys()) max = Math.max(max, id);
    return max;
  }
}

export interface WatcherMemoryView {
  lastHandled: { commit: string; result: string; at: string } | null;
  failures: { commit: string }[];
}

/**
 * Whether the watcher is done with `head`, from files only: it recorded it handled, or it is
 * the executor's newest success (a head equal to the deployed commit is not recorded as handled),
 * or in the executor's failure memory, or a remembered build failure.
 */
export function headHandled(bed: TestBed, tail: HistoryTail, head: string): boolean {
  const memory = watcherMemory(bed);
  if (memory?.lastHandled?.commit === head) return true;
  if (memory?.failures.some((f) => f.commit === head)) return true;
  if (executorState(bed)?.knownBad[head] !== undefined) return true;
  const succeeded = [...tail.latest.values()].filter((r) => r.outcome === 'succeeded').sort((a, b) => a.id - b.id).at(-1);
  return succeeded?.commit === head;
}

export function watcherMemory(bed: TestBed): WatcherMemoryView | null {
  return readJson<WatcherMemoryView>(join(bed.dirs.watcherState, 'watcher.json'));
}

export interface ExecutorStateView {
  paused: { reason: string | null; by: string } | null;
  nextId: number;
  knownBad: Record<string, { deploymentId: number; reason: string }>;
  interruptions?: Record<string, number>;
  current: number | null;
}

export function executorState(bed: TestBed): ExecutorStateView | null {
  return readJson<ExecutorStateView>(join(bed.dirs.state, 'state.json'));
}

function readJson<T>(path: string): T | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

/** A container path of the machine's /nix, seen from the host. */
export function hostNixPath(bed: TestBed, containerPath: string): string {
  return join(bed.dirs.nix, containerPath.replace(/^\/nix\//, ''));
}

/**
 * The executor's small mutable state, `state.json`, written atomically (temp file, fsync,
 * rename, fsync dir). Everything in it except a manual pause can be rebuilt from the history,
 * which is what happens when it is corrupt (see `rebuildState`).
 */
import { chmodSync, existsSync, readFileSync, renameSync } from 'node:fs';
import { basename } from 'node:path';
import { writeFileAtomic, type DeploymentRecord, type PauseInfo } from '@pullnix/shared';
import { timestamp, type CorruptionReport } from './history.ts';

export interface KnownBad {
  deploymentId: number;
  reason: string;
  at: string;
}

export interface ExecutorState {
  v: 1;
  paused: PauseInfo | null;
  nextId: number;
  /** commit -> why it is not deployed again until an operator says retry. */
  knownBad: Record<string, KnownBad>;
  /** commit -> how many of its deployments were interrupted by an executor crash in a row. */
  interruptions: Record<string, number>;
  /** The deployment in flight (also derivable from the history: its outcome is null). */
  current: number | null;
  /**
   * Commits an operator said `retry` for while no watcher was connected: the watcher's own
   * failure memory still holds them. Handed to the next watcher that subscribes.
   */
  pendingRetries: string[];
}

/** Interruptions after which a commit counts as failed (DESIGN.md "Crash safety"). */
export const MAX_INTERRUPTIONS = 2;
/**
 * Failed commits remembered at most; the oldest are forgotten first. A commit that failed hundreds
 * of deployments ago is far behind the branch head (the watcher refuses non-descendant heads by
 * default), and the bound keeps state.json and `status` small on a machine that runs for years.
 */
export const MAX_KNOWN_BAD = 256;

export function rememberFailure(s: ExecutorState, commit: string, entry: KnownBad): void {
  s.knownBad[commit] = entry;
  const commits = Object.keys(s.knownBad);
  if (commits.length <= MAX_KNOWN_BAD) return;
  commits.sort((a, b) => s.knownBad[a]!.deploymentId - s.knownBad[b]!.deploymentId);
  for (const c of commits.slice(0, commits.length - MAX_KNOWN_BAD)) delete s.knownBad[c];
}

export function emptyState(): ExecutorState {
  return { v: 1, paused: null, nextId: 1, knownBad: {}, interruptions: {}, current: null, pendingRetries: [] };
}

export class StateStore {
  readonly path: string;
  state: ExecutorState = emptyState();

  constructor(path: string) {
    this.path = path;
  }

  /** Loads state.json; returns what was wrong when it had to be set aside (the caller rebuilds). */
  load(): CorruptionReport | null {
    if (!existsSync(this.path)) return null;
    chmodSync(this.path, 0o600);
    const text = readFileSync(this.path, 'utf8');
    const parsed = parseState(text);
    if (typeof parsed !== 'string') {
      this.state = parsed;
      return null;
    }
    const setAside = `${this.path}.corrupt-${timestamp()}`;
    renameSync(this.path, setAside);
    return { file: this.path, reason: parsed, setAside: basename(setAside) };
  }

  save(): void {
    writeFileAtomic(this.path, `${JSON.stringify(this.state, null, 2)}\n`, { mode: 0o600 });
  }

  /** Apply a change and persist it; the in-memory state only changes when the write succeeded. */
  update(change: (state: ExecutorState) => void): void {
    const next = structuredClone(this.state);
    change(next);
    writeFileAtomic(this.path, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o600 });
    this.state = next;
  }
}

function parseState(text: string): ExecutorState | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return `not JSON (${(error as Error).message})`;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const s = value as Record<string, unknown>;
  const bad: string[] = [];
  if (s.v !== 1) bad.push('v (want 1)');
  if (!Number.isSafeInteger(s.nextId) || (s.nextId as number) < 1) bad.push('nextId');
  if (s.paused !== null && (typeof s.paused !== 'object' || typeof (s.paused as PauseInfo).since !== 'string')) bad.push('paused');
  if (typeof s.knownBad !== 'object' || s.knownBad === null || Array.isArray(s.knownBad)) bad.push('knownBad');
  if (typeof s.interruptions !== 'object' || s.interruptions === null || Array.isArray(s.interruptions)) bad.push('interruptions');
  if (s.current !== null && !Number.isSafeInteger(s.current)) bad.push('current');
  // Added after the first release: absent means none.
  s.pendingRetries ??= [];
  if (!Array.isArray(s.pendingRetries) || !s.pendingRetries.every((c) => typeof c === 'string')) bad.push('pendingRetries');
  if (bad.length > 0) return `bad or missing keys: ${bad.join(', ')}`;
  return value as ExecutorState;
}

/**
 * What can be known again from the history alone: the next id, the failure memory (a commit whose
 * newest finished deployment failed, or that was interrupted MAX_INTERRUPTIONS times in a row),
 * and a pause the executor put itself in after a failed rollback. An operator's own pause and
 * earlier `retry`s cannot be known; the failure memory errs on the side of refusing.
 */
export function rebuildState(records: readonly DeploymentRecord[], now: string): ExecutorState {
  const state = emptyState();
  for (const r of records) {
    state.nextId = Math.max(state.nextId, r.id + 1);
    if (r.outcome === null) {
      state.current = r.id;
      continue;
    }
    // An operator's rollback that fails says nothing against the target commit's future deploys.
    if (r.kind !== 'deploy') continue;
    if (r.outcome === 'succeeded') {
      delete state.knownBad[r.commit];
      delete state.interruptions[r.commit];
    } else if (r.outcome === 'interrupted') {
      const n = (state.interruptions[r.commit] ?? 0) + 1;
      state.interruptions[r.commit] = n;
      if (n >= MAX_INTERRUPTIONS) rememberFailure(state, r.commit, { deploymentId: r.id, reason: `interrupted ${n} times`, at: r.finishedAt ?? now });
    } else {
      rememberFailure(state, r.commit, { deploymentId: r.id, reason: `${r.outcome}: ${r.error?.message ?? ''}`.replace(/: $/, ''), at: r.finishedAt ?? now });
    }
  }
  const last = [...records].reverse().find((r) => r.outcome !== null);
  if (last?.outcome === 'rollback-failed') {
    state.paused = { since: now, reason: `deployment ${last.id} failed to roll back (rebuilt from history after state.json was set aside)`, by: 'executor' };
  }
  return state;
}

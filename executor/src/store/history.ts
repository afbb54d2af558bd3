/**
 * The deployment history: `history.jsonl`, append-only JSON lines. Each line is a full
 * DeploymentRecord snapshot written at every phase change; the newest line per id is current.
 * Nothing is ever rewritten in place: a corrupt file is set aside and a clean copy is written
 * from its complete lines (see `load`).
 *
 * An in-memory index (records in id order, one entry per id) answers `status` and
 * `history --limit N` in O(N + log total) without touching the file.
 */
import { chmodSync, existsSync, linkSync, readFileSync, rmSync } from 'node:fs';
import { basename } from 'node:path';
import { appendLineDurable, DEPLOYMENT_OUTCOMES, DEPLOYMENT_PHASES, writeFileAtomic, type DeploymentOutcome, type DeploymentRecord } from '@pullnix/shared';

export interface CorruptionReport {
  file: string;
  reason: string;
  setAside: string;
}

const PHASES: ReadonlySet<string> = new Set(DEPLOYMENT_PHASES);
const OUTCOMES: ReadonlySet<string> = new Set(DEPLOYMENT_OUTCOMES);

export const FAILURE_OUTCOMES: ReadonlySet<DeploymentOutcome> = new Set(['rolled-back', 'rollback-failed', 'reboot-required', 'interrupted']);

export class HistoryStore {
  readonly path: string;
  /** One record per id, ascending by id (ids only grow, so append order is id order). */
  private readonly records: DeploymentRecord[] = [];
  private readonly byId = new Map<number, number>(); // id -> index in records
  private lastSucceededIndex = -1;
  private lastFailureIndex = -1;

  constructor(path: string) {
    this.path = path;
  }

  /**
   * Reads the file and builds the index. A line that is not a complete record (truncated by a
   * crash, or damaged) makes the whole file suspect: it is renamed aside and the complete lines are
   * written back as a clean file, so no good record is lost and the damage stays inspectable.
   */
  load(): CorruptionReport | null {
    if (!existsSync(this.path)) return null;
    // Deployment records name keys and systems: root only, whoever created the file.
    chmodSync(this.path, 0o600);
    const text = readFileSync(this.path, 'utf8');
    const lines = text.split('\n');
    const endsClean = text === '' || text.endsWith('\n');
    if (endsClean) lines.pop();
    const good: string[] = [];
    const problems: string[] = [];
    lines.forEach((raw, i) => {
      let line = raw;
      const isLast = i === lines.length - 1;
      if (line.trim() === '') {
        problems.push(`line ${i + 1} is empty`);
        return;
      }
      let record = parseRecord(line);
      if (typeof record === 'string') {
        const glued = salvageGlued(line);
        if (glued === null) {
          problems.push(`line ${i + 1} ${!endsClean && isLast ? 'is truncated (no newline at the end): ' : ''}${record}`);
          return;
        }
        // An append cut short (before appends were cut back on failure) and the next one glued on.
        problems.push(`line ${i + 1} is half a record with a complete one glued to it: the complete one is kept`);
        record = glued.record;
        line = glued.line;
      }
      if (!endsClean && isLast) {
        // Parsed, but the newline never made it: treat as complete (the record is whole) and say so.
        problems.push(`line ${i + 1} has no newline at the end`);
      }
      good.push(line);
      this.index(record);
    });
    if (problems.length === 0) return null;
    // The damaged file stays under a second name (a hard link: no space needed) and the clean
    // copy replaces it atomically; if that cannot be written (a full disk), nothing changed.
    const setAside = freeName(`${this.path}.corrupt-${timestamp()}`);
    linkSync(this.path, setAside);
    try {
      writeFileAtomic(this.path, good.map((l) => `${l}\n`).join(''), { mode: 0o600 });
    } catch (error) {
      rmSync(setAside, { force: true });
      throw error;
    }
    const more = problems.length > 3 ? ` (and ${problems.length - 3} more)` : '';
    return { file: this.path, reason: `${problems.slice(0, 3).join('; ')}${more}; kept ${good.length} complete lines`, setAside: basename(setAside) };
  }

  /** Durably appends a snapshot and makes it the current record of its id. */
  append(record: DeploymentRecord): void {
    appendLineDurable(this.path, JSON.stringify(record), 0o600);
    this.index(structuredClone(record));
  }

  get total(): number {
    return this.records.length;
  }

  get(id: number): DeploymentRecord | null {
    const i = this.byId.get(id);
    return i === undefined ? null : this.records[i]!;
  }

  get maxId(): number {
    return this.records.at(-1)?.id ?? 0;
  }

  /** Newest first; only ids below `before` when given. */
  page(limit: number, before?: number): DeploymentRecord[] {
    let end = this.records.length; // exclusive
    if (before !== undefined) end = lowerBound(this.records, before);
    const out: DeploymentRecord[] = [];
    for (let i = end - 1; i >= 0 && out.length < limit; i--) out.push(this.records[i]!);
    return out;
  }

  lastSucceeded(): DeploymentRecord | null {
    return this.lastSucceededIndex < 0 ? null : this.records[this.lastSucceededIndex]!;
  }

  lastFailure(): DeploymentRecord | null {
    return this.lastFailureIndex < 0 ? null : this.records[this.lastFailureIndex]!;
  }

  /** The successful deployment with the highest id below `id`. */
  succeededBefore(id: number): DeploymentRecord | null {
    for (let i = lowerBound(this.records, id) - 1; i >= 0; i--) {
      if (this.records[i]!.outcome === 'succeeded') return this.records[i]!;
    }
    return null;
  }

  unfinished(): DeploymentRecord[] {
    // Only a crash leaves one; looking at the whole list once at start is fine.
    return this.records.filter((r) => r.outcome === null);
  }

  all(): readonly DeploymentRecord[] {
    return this.records;
  }

  private index(record: DeploymentRecord): void {
    const existing = this.byId.get(record.id);
    let i: number;
    if (existing !== undefined) {
      this.records[existing] = record;
      i = existing;
    } else if (this.records.length === 0 || this.records.at(-1)!.id < record.id) {
      i = this.records.push(record) - 1;
      this.byId.set(record.id, i);
    } else {
      // Out of order (only a hand-edited file): insert and rebuild the positions.
      const at = lowerBound(this.records, record.id);
      this.records.splice(at, 0, record);
      this.byId.clear();
      this.records.forEach((r, k) => this.byId.set(r.id, k));
      this.lastSucceededIndex = this.lastFailureIndex = -1;
      this.records.forEach((r, k) => this.track(r, k));
      return;
    }
    this.track(record, i);
  }

  private track(record: DeploymentRecord, i: number): void {
    if (record.outcome === 'succeeded' && i >= this.lastSucceededIndex) this.lastSucceededIndex = i;
    if (record.outcome !== null && FAILURE_OUTCOMES.has(record.outcome) && i >= this.lastFailureIndex) this.lastFailureIndex = i;
  }
}

/** First index whose id is >= id. */
function lowerBound(records: readonly DeploymentRecord[], id: number): number {
  let lo = 0;
  let hi = records.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (records[mid]!.id < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * A complete record at the end of a damaged line: what an append cut short by a full disk followed
 * by the next append looks like (`{"id":7,"kind":"dep{"id":7,...}`). Records start with their id.
 */
export function salvageGlued(line: string): { record: DeploymentRecord; line: string } | null {
  for (let at = line.indexOf('{"id":', 1); at > 0; at = line.indexOf('{"id":', at + 1)) {
    const rest = line.slice(at);
    const record = parseRecord(rest);
    if (typeof record !== 'string') return { record, line: rest };
  }
  return null;
}

/** A record, or a string saying what is wrong with the line. */
export function parseRecord(line: string): DeploymentRecord | string {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    return `is not JSON (${(error as Error).message})`;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'is not a JSON object';
  const r = value as Record<string, unknown>;
  const missing: string[] = [];
  if (!Number.isSafeInteger(r.id) || (r.id as number) < 1) missing.push('id');
  if (r.kind !== 'deploy' && r.kind !== 'rollback') missing.push('kind');
  for (const key of ['commit', 'toplevel', 'requestedBy', 'startedAt'] as const) if (typeof r[key] !== 'string') missing.push(key);
  if (typeof r.phase !== 'string' || !PHASES.has(r.phase)) missing.push('phase');
  if (!Array.isArray(r.phases)) missing.push('phases');
  if (r.outcome !== null && (typeof r.outcome !== 'string' || !OUTCOMES.has(r.outcome))) missing.push('outcome');
  if (typeof r.previous !== 'object' || r.previous === null) missing.push('previous');
  if (missing.length > 0) return `is not a deployment record (bad or missing: ${missing.join(', ')})`;
  return value as DeploymentRecord;
}

/** `base`, or `base.1`, `base.2`, ... when a file of that name exists (two starts within a second). */
function freeName(base: string): string {
  let name = base;
  for (let n = 1; existsSync(name); n++) name = `${base}.${n}`;
  return name;
}

export function timestamp(date = new Date()): string {
  return date.toISOString().replaceAll(':', '').replace(/\.\d+Z$/, 'Z');
}

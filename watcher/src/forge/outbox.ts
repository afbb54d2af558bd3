/**
 * The commit-status outbox, `<stateDir>/report-outbox.json`: every status the watcher means to
 * post is written here first (write, fsync, rename, fsync the directory: shared/src/fs/atomic.ts)
 * and removed only once the forge has it. So a forge outage, a SIGKILL or a power cut delays a
 * status and never loses it.
 *
 * Never twice either: before each post the outbox reads the commit's latest status for that
 * context and skips the post when it is identical (state and description), as Flux's
 * notification-controller does (fluxcd/notification-controller internal/notifier/github.go
 * duplicateGithubStatus, gitea.go duplicateGiteaStatus: "the latest status with a matching
 * context has the same state and description"). A crash between the forge's 201 and the removal
 * from the file therefore ends, after the restart, in a skip, not a second status.
 *
 * Bounded (report.outboxLimit): a newer status of the same commit and context replaces a
 * queued pending one; past the limit the oldest non-terminal status goes first, terminal ones
 * (success, failure, error) last. Writes are paced below the forge's own limits
 * (ForgeClient.writeLimits: GitHub's 80 a minute, 500 an hour), the times of recent writes kept
 * in the file, and a `Retry-After` or spent rate limit holds every post until it has passed.
 */
import { readFileSync, renameSync } from 'node:fs';
import { writeFileAtomic, type Logger } from '@pullnix/shared';
import { cutDescription, ForgeError, STATUS_STATES, type ForgeClient, type StatusBody } from './client.ts';

export interface OutboxEntry {
  sha: string;
  status: StatusBody;
  /** Epoch ms. */
  queuedAt: number;
  attempts: number;
}

interface OutboxFile {
  v: 1;
  entries: OutboxEntry[];
  /** Epoch ms of the content-creating writes of the last hour (the pacing survives restarts). */
  writes: number[];
  /** No request before this (epoch ms): a Retry-After, a spent limit, a back-off. */
  notBefore: number;
  /** Failed attempts in a row (the back-off's exponent). */
  failures: number;
  /** The commit whose latest status is still pending, and whether its deploy request went out (reporter.ts). */
  open: OpenCommit | null;
}

export interface OpenCommit {
  sha: string;
  requested: boolean;
}

export const TERMINAL: ReadonlySet<string> = new Set(['success', 'failure', 'error']);

export interface OutboxOptions {
  path: string;
  client: ForgeClient;
  logger: Logger;
  limit: number;
  now: () => number;
}

/** What one flush did; `nextInMs` is when to flush again (null: nothing queued). */
export interface FlushResult {
  posted: number;
  skipped: number;
  dropped: number;
  nextInMs: number | null;
}

const BACKOFF_BASE_MS = 5_000;
const BACKOFF_MAX_MS = 10 * 60_000;

export class Outbox {
  private readonly options: OutboxOptions;
  private file: OutboxFile;
  private flushing: Promise<FlushResult> | null = null;

  constructor(options: OutboxOptions) {
    this.options = options;
    this.file = this.load();
  }

  /** The queued statuses, oldest first (a copy). */
  get entries(): OutboxEntry[] {
    return structuredClone(this.file.entries);
  }

  get open(): OpenCommit | null {
    return this.file.open ? { ...this.file.open } : null;
  }

  setOpen(open: OpenCommit | null): void {
    if (open?.sha === this.file.open?.sha && open?.requested === this.file.open?.requested) return;
    this.file.open = open;
    this.save();
  }

  /** When the next request may go out (epoch ms); 0: now. */
  get notBefore(): number {
    return this.file.notBefore;
  }

  /**
   * Queue a status. Returns false when it changes nothing: the same status is already queued,
   * or a terminal one of this commit and context is queued and this one is not (a late pending
   * never hides an outcome).
   */
  enqueue(sha: string, given: StatusBody): boolean {
    const status = { ...given, description: cutDescription(given.description) };
    const entries = this.file.entries;
    const i = entries.findIndex((e) => e.sha === sha && e.status.context === status.context);
    if (i >= 0) {
      const queued = entries[i]!;
      if (same(queued.status, status)) return false;
      if (TERMINAL.has(queued.status.state) && !TERMINAL.has(status.state)) return false;
      // The forge keeps only the latest status of a context: the queued one would be overwritten at once.
      entries.splice(i, 1);
    }
    entries.push({ sha, status, queuedAt: this.options.now(), attempts: 0 });
    this.bound();
    this.save();
    this.options.logger.event('report.queued', { commit: sha, context: status.context, state: status.state, description: status.description, queued: entries.length });
    return true;
  }

  /** Post what is queued, in order, as far as the forge and the pacing allow. One flush at a time. */
  flush(signal?: AbortSignal): Promise<FlushResult> {
    if (!this.flushing) {
      this.flushing = this.drain(signal).finally(() => {
        this.flushing = null;
      });
    }
    return this.flushing;
  }

  private async drain(signal?: AbortSignal): Promise<FlushResult> {
    const { client, logger, now } = this.options;
    const result: FlushResult = { posted: 0, skipped: 0, dropped: 0, nextInMs: null };
    while (this.file.entries.length > 0 && !signal?.aborted) {
      const wait = Math.max(this.file.notBefore - now(), this.paceWait());
      if (wait > 0) {
        result.nextInMs = wait;
        return result;
      }
      const entry = this.file.entries[0]!;
      const { status } = entry;
      try {
        const latest = (await client.latest(entry.sha, signal)).find((s) => s.context === status.context);
        if (latest && latest.state === status.state && latest.description === status.description) {
          logger.event('report.skipped', { commit: entry.sha, context: status.context, state: status.state, reason: 'the forge already shows this status' });
          result.skipped += 1;
        } else {
          entry.attempts += 1;
          await client.create(entry.sha, status, signal);
          this.file.writes.push(now());
          logger.event('report.posted', { commit: entry.sha, context: status.context, state: status.state, description: status.description, attempts: entry.attempts });
          result.posted += 1;
        }
        this.ack(entry);
        if (this.file.failures > 0) logger.event('report.forge_reachable', { after_failures: this.file.failures, queued: this.file.entries.length });
        this.file.failures = 0;
        this.save();
      } catch (error) {
        if (signal?.aborted) break;
        const forge = error instanceof ForgeError ? error : new ForgeError((error as Error).message, { status: null, cause: error });
        if (forge.permanent) {
          this.ack(entry);
          this.save();
          logger.event('report.rejected', { commit: entry.sha, context: status.context, state: status.state, status: forge.status, error: forge.message });
          result.dropped += 1;
          continue;
        }
        this.file.failures += 1;
        const backoff = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(this.file.failures - 1, 16));
        const delay = forge.retryAfterMs ?? backoff;
        this.file.notBefore = now() + delay;
        this.save();
        logger.event('report.deferred', { commit: entry.sha, context: status.context, state: status.state, status: forge.status, error: forge.message, retry_in: `${Math.round(delay / 1000)}s`, retry_after: forge.retryAfterMs !== null, queued: this.file.entries.length });
        result.nextInMs = delay;
        return result;
      }
    }
    return result;
  }

  /** How long GitHub's secondary limits on content-creating writes ask us to wait now (0: not at all). */
  private paceWait(): number {
    const limits = this.options.client.writeLimits;
    if (!limits) return 0;
    const now = this.options.now();
    this.file.writes = this.file.writes.filter((t) => t > now - 3_600_000);
    const lastMinute = this.file.writes.filter((t) => t > now - 60_000);
    if (lastMinute.length >= limits.perMinute) return lastMinute[lastMinute.length - limits.perMinute]! + 60_000 - now;
    if (this.file.writes.length >= limits.perHour) return this.file.writes[this.file.writes.length - limits.perHour]! + 3_600_000 - now;
    return 0;
  }

  private ack(entry: OutboxEntry): void {
    const i = this.file.entries.indexOf(entry);
    if (i >= 0) this.file.entries.splice(i, 1);
  }

  /** Past the limit: the oldest non-terminal status first; a terminal one only when nothing else is left. */
  private bound(): void {
    const entries = this.file.entries;
    while (entries.length > this.options.limit) {
      let i = entries.findIndex((e) => !TERMINAL.has(e.status.state));
      if (i < 0) i = 0;
      const [gone] = entries.splice(i, 1);
      this.options.logger.event('report.dropped', { commit: gone!.sha, context: gone!.status.context, state: gone!.status.state, limit: this.options.limit });
    }
  }

  private save(): void {
    writeFileAtomic(this.options.path, `${JSON.stringify(this.file)}\n`, { mode: 0o600 });
  }

  /** A corrupt file is reported and set aside, never silently reset (as watcher.json). */
  private load(): OutboxFile {
    const empty: OutboxFile = { v: 1, entries: [], writes: [], notBefore: 0, failures: 0, open: null };
    let text: string;
    try {
      text = readFileSync(this.options.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return empty;
      return this.setAside(empty, error as Error);
    }
    try {
      const data = JSON.parse(text) as unknown;
      if (!isOutboxFile(data)) throw new Error('not an outbox file (v 1)');
      return { ...data, open: data.open ?? null };
    } catch (error) {
      return this.setAside(empty, error as Error);
    }
  }

  private setAside(empty: OutboxFile, problem: Error): OutboxFile {
    const aside = `${this.options.path}.corrupt-${new Date(this.options.now()).toISOString().replaceAll(':', '')}`;
    let movedTo: string | null = aside;
    try {
      renameSync(this.options.path, aside);
    } catch {
      movedTo = null;
    }
    this.options.logger.event('state.corrupt', { file: this.options.path, moved_to: movedTo, error: problem.message });
    return empty;
  }
}

function same(a: StatusBody, b: StatusBody): boolean {
  return a.state === b.state && a.description === b.description && a.context === b.context && a.targetUrl === b.targetUrl;
}

function isOutboxFile(data: unknown): data is OutboxFile {
  if (typeof data !== 'object' || data === null) return false;
  const f = data as Partial<OutboxFile>;
  return (
    f.v === 1 &&
    Array.isArray(f.entries) &&
    f.entries.every((e) => typeof e?.sha === 'string' && typeof e.status?.context === 'string' && STATUS_STATES.includes(e.status.state) && typeof e.status.description === 'string') &&
    Array.isArray(f.writes) &&
    typeof f.notBefore === 'number' &&
    typeof f.failures === 'number' &&
    (f.open === undefined || f.open === null || typeof f.open.sha === 'string')
  );
}

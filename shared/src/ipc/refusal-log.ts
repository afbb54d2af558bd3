/**
 * Rate-limited reporting of what the socket refused or dropped. A keyless local peer can make
 * thousands of refusals a second; one journal line each would push the executor past journald's
 * rate limit (10,000 lines per 30 s by default) and drop its own rollback warnings. So: the first
 * refusal of a kind (socket, peer, cause) in an interval is reported in full at once; the rest of
 * that interval are counted and reported as one summary line when it ends, with the count and the
 * number of connections they came on.
 *
 * The peer is what the executor can actually vouch for: the key that signed the request when
 * its signature verified, otherwise only the socket it came on (SO_PEERCRED is not available to
 * Node without native code; anything the peer wrote about itself is not used, so a flood cannot
 * make new lines by varying a claimed key id).
 */
export interface RefusalKind {
  /** Which socket: "private" (root only) or "group" (the operator group's). */
  socket: string;
  /** The key that signed the request, when its signature verified; null otherwise. */
  key: string | null;
  /** The error code (a refused request) or the reason a connection was closed. */
  cause: string;
}

export interface RefusalSummary extends RefusalKind {
  /** How many more like the first one, after it, in this interval. */
  count: number;
  /** On how many distinct connections they came. */
  connections: number;
  intervalMs: number;
}

interface Entry {
  kind: RefusalKind;
  count: number;
  connections: Set<number>;
}

export class RefusalLog {
  private readonly entries = new Map<string, Entry>();
  private timer: NodeJS.Timeout | null = null;
  private readonly intervalMs: number;
  private readonly summarize: (summary: RefusalSummary) => void;

  constructor(options: { intervalMs?: number; summarize: (summary: RefusalSummary) => void }) {
    this.intervalMs = options.intervalMs ?? DEFAULT_REFUSAL_LOG_INTERVAL_MS;
    this.summarize = options.summarize;
  }

  /**
   * Count one refusal of `kind` on connection `connection`. Returns true when it is the first of
   * its kind in the current interval: the caller logs it in full. Otherwise it is only counted.
   */
  note(kind: RefusalKind, connection: number): boolean {
    const id = `${kind.socket}\u0000${kind.key ?? ''}\u0000${kind.cause}`;
    const entry = this.entries.get(id);
    this.schedule();
    if (!entry) {
      this.entries.set(id, { kind, count: 0, connections: new Set() });
      return true;
    }
    entry.count += 1;
    // Bounded: the set only tells "how many connections", so it stops growing at a large number.
    if (entry.connections.size < 100_000) entry.connections.add(connection);
    return false;
  }

  /** End the interval now: summarize what was counted (also called on stop). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const [id, entry] of this.entries) {
      if (entry.count === 0) {
        // Quiet for a whole interval: the next one of this kind is news again.
        this.entries.delete(id);
        continue;
      }
      this.summarize({ ...entry.kind, count: entry.count, connections: entry.connections.size, intervalMs: this.intervalMs });
      entry.count = 0;
      entry.connections.clear();
    }
    if (this.entries.size > 0) this.schedule();
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => this.flush(), this.intervalMs);
    this.timer.unref();
  }
}

export const DEFAULT_REFUSAL_LOG_INTERVAL_MS = 10_000;

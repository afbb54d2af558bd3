/**
 * The source stage: where a commit's system closure comes from. One interface, `SystemSource`;
 * today's source is `build` (source-build.ts: the commit is checked out and built on this
 * machine). `createSource` is the one place a source is chosen.
 *
 * A source realises the commit's toplevel in the local store, GC-rooted (`gcroots/<commit>`), or
 * says why not, classified (fault.ts): the commit's fault is remembered against the commit (not
 * tried again until the branch moves or an operator retries), the machine's is tried again after
 * a back-off and never remembered.
 */
import type { Fault } from '../fault.ts';
import type { Ending, WatcherContext } from './context.ts';
import { BuildSource } from './source-build.ts';
import { PrebuiltSystemSource } from './source-prebuilt.ts';

export type SourceMode = 'build' | 'prebuilt';

export type Realised =
  | { ok: true; toplevel: string; durationMs: number }
  /**
   * stopped: the signal aborted it. error: one line; logTail: the last lines of the command's output.
   * waiting: not there yet (a prebuilt manifest pushed before the cache has its paths): looked at
   * again at the next poll, neither remembered nor backed off. reason: the source's name for it
   * (the prebuilt source's checks, status and the journal name it).
   */
  | { ok: false; stopped: boolean; fault: Fault; faultReason: string; error: string; logTail: string; durationMs: number; waiting?: boolean; reason?: string };

export interface SystemSource {
  readonly mode: SourceMode;
  /**
   * The system of `commit` (fetched, its range trusted) in the store and GC-rooted, or why not.
   * `deployed` is the commit the executor reports as deployed (its root is kept). Logs its own
   * journal events.
   */
  realise(commit: string, deployed: string | null, signal: AbortSignal): Promise<Realised>;
}

/** The source the configuration asks for. */
export function createSource(context: WatcherContext): SystemSource {
  return context.config.source.mode === 'prebuilt' ? new PrebuiltSystemSource(context) : new BuildSource(context);
}

/** How a cycle ends when the source could not realise the system. */
export function sourceEnding(source: SystemSource, commit: string, r: Extract<Realised, { ok: false }>): Ending {
  const tail = r.logTail ? `\n${r.logTail}` : '';
  if (r.stopped) return { outcome: 'stopped', failures: 'keep' };
  const kind = source.mode === 'prebuilt' ? 'prebuilt' : 'build';
  const named = r.reason ? `${r.reason}: ${r.error}` : r.error;
  if (r.waiting) return { outcome: 'source-waiting', failures: 'reset', error: { kind, message: named } };
  if (r.fault === 'machine') {
    // The nix-daemon, the network, the disk or a timeout: not the commit's fault, not remembered.
    return { outcome: 'machine-error', failures: 'count', error: { kind: 'machine', message: `the ${source.mode} of ${commit} failed for a reason of the machine's (${r.faultReason}), not the commit's; tried again: ${named}${tail}` } };
  }
  return {
    outcome: source.mode === 'prebuilt' ? 'source-refused' : 'build-failed',
    failures: 'reset',
    error: { kind, message: `${named}${tail}` },
    handled: { result: 'build-failed', detail: named },
    failure: { error: named, logTail: r.logTail, ...(source.mode === 'prebuilt' ? { kind: 'prebuilt' } : {}) },
  };
}

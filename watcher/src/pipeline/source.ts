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

export type SourceMode = 'build';

export type Realised =
  | { ok: true; toplevel: string; durationMs: number }
  /** stopped: the signal aborted it. error: one line; logTail: the last lines of the command's output. */
  | { ok: false; stopped: boolean; fault: Fault; faultReason: string; error: string; logTail: string; durationMs: number };

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
  return new BuildSource(context);
}

/** How a cycle ends when the source could not realise the system. */
export function sourceEnding(source: SystemSource, commit: string, r: Extract<Realised, { ok: false }>): Ending {
  const tail = r.logTail ? `\n${r.logTail}` : '';
  if (r.stopped) return { outcome: 'stopped', failures: 'keep' };
  if (r.fault === 'machine') {
    // The nix-daemon, the network, the disk or a timeout: not the commit's fault, not remembered.
    return { outcome: 'machine-error', failures: 'count', error: { kind: 'machine', message: `the ${source.mode} of ${commit} failed for a reason of the machine's (${r.faultReason}), not the commit's; tried again: ${r.error}${tail}` } };
  }
  return {
    outcome: 'build-failed',
    failures: 'reset',
    error: { kind: 'build', message: `${r.error}${tail}` },
    handled: { result: 'build-failed', detail: r.error },
    failure: { error: r.error, logTail: r.logTail },
  };
}

/**
 * The `build` source (source.ts): the commit is checked out and its system closure built with
 * nix (commands/nix-build.ts) on this machine, into a GC root per commit
 * (`<stateDir>/gcroots/<commit>`); old roots are pruned.
 */
import { lstatSync, mkdirSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describeFailure, isCommit, isStorePath, lastLines, type Config, type Runner } from '@pullnix/shared';
import { buildArgv, nixBuild } from '../commands/nix-build.ts';
import { faultOf, type Fault } from '../fault.ts';
import type { WatcherContext } from './context.ts';
import type { Realised, SystemSource } from './source.ts';

export const LOG_TAIL_LINES = 30;

export type BuildResult =
  | { ok: true; toplevel: string; outLink: string; durationMs: number }
  /** fault: whose failure it is (fault.ts); only the commit's is remembered against the commit. */
  | { ok: false; stopped: boolean; error: string; logTail: string; durationMs: number; fault: Fault; faultReason: string };

export interface BuildOptions {
  build: Config['build'];
  runner: Runner;
  checkoutDir: string;
  gcrootsDir: string;
  commit: string;
  signal?: AbortSignal;
  host?: string;
}

export async function buildSystem(options: BuildOptions): Promise<BuildResult> {
  const { build, runner, checkoutDir, gcrootsDir, commit } = options;
  if (!isCommit(commit)) throw new Error(`not a commit id: ${JSON.stringify(commit)}`);
  mkdirSync(gcrootsDir, { recursive: true, mode: 0o755 });
  const outLink = join(gcrootsDir, commit);
  // A link left by an earlier, interrupted run must not be mistaken for this build's result.
  rmSync(outLink, { force: true });
  const argv = buildArgv(build, checkoutDir, outLink, options.host);
  const result = await nixBuild(runner, build, argv, checkoutDir, options.signal);
  const fail = (error: string, stopped = false, fault = faultOf(result)): BuildResult => {
    rmSync(outLink, { force: true });
    return { ok: false, stopped, error, logTail: lastLines(result.stderr, LOG_TAIL_LINES), durationMs: result.durationMs, fault: fault.fault, faultReason: fault.why };
  };
  if (result.aborted) return fail(`${argv[0]} was stopped`, true);
  if (result.exitCode !== 0) return fail(describeFailure(result));
  let toplevel: string;
  try {
    toplevel = readlinkSync(outLink);
  } catch (error) {
    return fail(`${argv[0]} exited 0 but did not create the out-link ${outLink}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  if (!isStorePath(toplevel)) return fail(`${argv[0]} exited 0 but the out-link points at ${toplevel}, not a top-level Nix store path`);
  return { ok: true, toplevel, outLink, durationMs: result.durationMs };
}

/**
 * Keep the `keep` newest GC roots (by the link's own mtime) and every protected commit (the
 * deployed one, the one just built); remove the rest. Returns the commits removed.
 */
export function pruneGcRoots(gcrootsDir: string, keep: number, protect: readonly (string | null)[]): string[] {
  let names: string[];
  try {
    names = readdirSync(gcrootsDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const roots = names
    .filter(isCommit)
    .map((name) => {
      try {
        return { name, mtime: lstatSync(join(gcrootsDir, name)).mtimeMs };
      } catch {
        return null;
      }
    })
    .filter((r): r is { name: string; mtime: number } => r !== null)
    .sort((a, b) => b.mtime - a.mtime || a.name.localeCompare(b.name));
  const removed: string[] = [];
  for (const [index, root] of roots.entries()) {
    if (index < keep || protect.includes(root.name)) continue;
    rmSync(join(gcrootsDir, root.name), { force: true });
    removed.push(root.name);
  }
  return removed;
}

/** Today's source: check the commit out, build it here, prune the roots of older builds. */
export class BuildSource implements SystemSource {
  readonly mode = 'build' as const;
  private readonly c: WatcherContext;

  constructor(context: WatcherContext) {
    this.c = context;
  }

  async realise(commit: string, deployed: string | null, signal: AbortSignal): Promise<Realised> {
    const { config, logger, host } = this.c;
    await this.c.git.checkout(commit, signal);
    const flakeHost = config.build.mode === 'flake' ? host : undefined;
    logger.event('build.started', { commit, mode: config.build.mode, host: flakeHost });
    const build = await buildSystem({ build: config.build, runner: this.c.runner, checkoutDir: this.c.checkoutDir, gcrootsDir: this.c.gcrootsDir, commit, signal, host });
    if (!build.ok) {
      if (build.stopped) logger.event('build.stopped', { commit, ms: build.durationMs });
      else if (build.fault === 'machine') logger.event('build.deferred', { commit, cause: build.faultReason, error: build.error, ms: build.durationMs });
      else logger.event('build.failed', { commit, error: build.error, ms: build.durationMs });
      return build;
    }
    logger.event('build.succeeded', { commit, toplevel: build.toplevel, ms: build.durationMs });
    const removed = pruneGcRoots(this.c.gcrootsDir, config.build.keepGcRoots, [commit, deployed]);
    if (removed.length > 0) logger.event('gcroots.pruned', { removed, kept: config.build.keepGcRoots });
    return { ok: true, toplevel: build.toplevel, durationMs: build.durationMs };
  }
}

/**
 * Building a commit's system closure with nix, into a GC root per commit
 * (`<stateDir>/gcroots/<commit>`), and pruning old roots.
 */
import { lstatSync, mkdirSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describeFailure, isCommit, isStorePath, lastLines, type Config, type Runner } from '@pullnix/shared';
import { faultOf, type Fault } from './fault.ts';

export const LOG_TAIL_LINES = 30;

/**
 * The build command as an argv array. Flake mode builds from the checkout's PATH, never a
 * `git+file` reference: Nix 2.8 caches branch lookups of those and can build an old commit.
 * The host is quoted, as nixos-rebuild does: `web1.example.com` is one attribute, not three (the
 * schema's pattern for build.host, like a host name, has no `"` that would need escaping).
 */
export function buildArgv(build: Config['build'], checkoutDir: string, outLink: string, host: string = build.host ?? hostname()): string[] {
  if (build.mode === 'flake') {
    return ['nix', 'build', `${checkoutDir}#nixosConfigurations."${host}".config.system.build.toplevel`, '--out-link', outLink, ...build.extraFlags];
  }
  return ['nix-build', '<nixpkgs/nixos>', '-A', 'system', '-I', `nixos-config=${join(checkoutDir, build.file)}`, '--out-link', outLink, ...build.extraFlags];
}

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
  const result = await runner(argv, {
    timeoutMs: build.timeoutSec * 1000,
    killAfterMs: 5000,
    cwd: checkoutDir,
    ...(options.signal ? { signal: options.signal } : {}),
  });
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

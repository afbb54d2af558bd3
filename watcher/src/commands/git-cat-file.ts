/**
 * `git cat-file blob <commit>:<path>`: a file of a fetched commit, read from the object store
 * without checking anything out (the prebuilt manifest, docs/prebuilt.md). In the environment the
 * trust gate uses: no system or user git configuration.
 */
import { describeFailure, MANIFEST_MAX_BYTES, type Runner } from '@pullnix/shared';

export function catFileArgv(gitDir: string, commit: string, path: string): string[] {
  return ['git', '--git-dir', gitDir, 'cat-file', 'blob', `${commit}:${path}`];
}

/** The file's text; null when the commit has no such file. Throws when git cannot answer. */
export async function readCommitFile(runner: Runner, gitDir: string, commit: string, path: string, signal?: AbortSignal): Promise<string | null> {
  const r = await runner(catFileArgv(gitDir, commit, path), {
    timeoutMs: 60_000,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', HOME: '/nonexistent', LANG: 'C', LC_ALL: 'C' },
    extendEnv: false,
    maxOutputBytes: MANIFEST_MAX_BYTES + 1,
    ...(signal ? { signal } : {}),
  });
  if (r.exitCode === 0) return r.stdout;
  // git 2.39: "fatal: path 'hosts/x.json' does not exist in '<commit>'" (or "exists on disk, but not in").
  if (r.exitCode === 128 && /fatal: path '.*' (does not exist in|exists on disk, but not in)/.test(r.stderr)) return null;
  throw new Error(`git could not read ${path} at ${commit}: ${describeFailure(r)}`);
}

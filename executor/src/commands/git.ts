/**
 * The git connectivity check: `git ls-remote <url> refs/heads/<branch>` with the watcher's
 * credentials (shared gitEnvironment). Exit 0 proves the machine still reaches its remote; an
 * absent branch still proves that, so `--exit-code` is not used.
 */
import { gitEnvironment, type Config, type Runner, type RunResult } from '@pullnix/shared';

export function lsRemote(runner: Runner, config: Config, timeoutMs: number, signal?: AbortSignal): Promise<RunResult> {
  const argv = ['git', 'ls-remote', '--', config.repository.url, `refs/heads/${config.repository.branch}`];
  return runner(argv, { timeoutMs, killAfterMs: 2000, env: gitEnvironment(config), ...(signal ? { signal } : {}) });
}

/**
 * The executor's own object-only mirror of the configured branch (pipeline/trust.ts): a bare
 * repository, root's, fetched over the deploy key. Nothing is ever checked out in it; git reads
 * no user or system configuration there, and a fetch runs no hook.
 */
const MIRROR_ENV = { GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' };

export function initMirror(runner: Runner, gitDir: string): Promise<RunResult> {
  return runner(['git', 'init', '--quiet', '--bare', '--', gitDir], { timeoutMs: 60_000, env: MIRROR_ENV });
}

/** `git fetch` of refs/heads/<branch> (forced: a force-push moves the mirror too; `--prune`: nothing else is kept). */
export function fetchMirror(runner: Runner, config: Config, gitDir: string): Promise<RunResult> {
  const ref = `refs/heads/${config.repository.branch}`;
  return runner(['git', '--git-dir', gitDir, 'fetch', '--quiet', '--no-tags', '--prune', '--no-write-fetch-head', '--', config.repository.url, `+${ref}:${ref}`], {
    timeoutMs: config.repository.fetchTimeoutSec * 1000,
    killAfterMs: 2000,
    env: { ...gitEnvironment(config), ...MIRROR_ENV },
  });
}

/** `git merge-base --is-ancestor`: exit 0 yes, 1 no, anything else an error. */
export function isAncestor(runner: Runner, gitDir: string, commit: string, ref: string): Promise<RunResult> {
  return runner(['git', '--git-dir', gitDir, 'merge-base', '--is-ancestor', commit, ref], { timeoutMs: 60_000, env: MIRROR_ENV });
}

/** `git cat-file blob <commit>:<path>` in the mirror: a file of a commit, nothing checked out (the prebuilt manifest). */
export function catFile(runner: Runner, gitDir: string, commit: string, path: string): Promise<RunResult> {
  return runner(['git', '--git-dir', gitDir, 'cat-file', 'blob', `${commit}:${path}`], { timeoutMs: 60_000, env: MIRROR_ENV, maxOutputBytes: 64 * 1024 + 1 });
}

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

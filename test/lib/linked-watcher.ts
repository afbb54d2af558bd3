/**
 * A Watcher with a real ExecutorLink to a (fake) executor's socket, connected and subscribed;
 * stopped by the teardown it registers.
 */
import { join } from 'node:path';
import { createRunner, gitEnvironment, type Config } from '@pullnix/shared';
import { GitCheckout, Watcher, type GitOps } from '@pullnix/watcher';
import { subscribedLink, type CapturedLog } from './watcher-fixtures.ts';

/** `wrapGit`: the watcher's real git (as it makes it), wrapped: a test makes some of its answers fail. */
export async function linkedWatcher(options: { config: Config; log: CapturedLog; teardowns: (() => Promise<void> | void)[]; wrapGit?: (git: GitOps) => GitOps }): Promise<Watcher> {
  const { config, log } = options;
  // The watcher uses root's own socket (privateSocketPath), as pullnix-watcher does.
  const link = await subscribedLink({ socketPath: config.privateSocketPath, stateDir: config.stateDir, logger: log.logger, teardowns: options.teardowns });
  const git = options.wrapGit?.(
    new GitCheckout({ url: config.repository.url, branch: config.repository.branch, dir: join(config.watcher.stateDir, 'checkout'), env: gitEnvironment(config), logger: log.logger, fetchTimeoutMs: config.repository.fetchTimeoutSec * 1000 }),
  );
  return new Watcher({ config, runner: createRunner(log.logger), logger: log.logger, executor: link, baseBackoffMs: 100, ...(git ? { git } : {}) });
}

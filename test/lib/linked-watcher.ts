/**
 * A Watcher with a real ExecutorLink to a (fake) executor's socket, connected and subscribed;
 * stopped by the teardown it registers.
 */
import { createRunner, type Config } from '@pullnix/shared';
import { Watcher } from '@pullnix/watcher';
import { subscribedLink, type CapturedLog } from './watcher-fixtures.ts';

export async function linkedWatcher(options: { config: Config; log: CapturedLog; teardowns: (() => Promise<void> | void)[] }): Promise<Watcher> {
  const { config, log } = options;
  // The watcher uses root's own socket (privateSocketPath), as pullnix-watcher does.
  const link = await subscribedLink({ socketPath: config.privateSocketPath, stateDir: config.stateDir, logger: log.logger, teardowns: options.teardowns });
  return new Watcher({ config, runner: createRunner(log.logger), logger: log.logger, executor: link, baseBackoffMs: 100 });
}

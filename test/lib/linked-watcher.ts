/**
 * A Watcher with a real ExecutorLink to a (fake) executor's socket, connected and subscribed;
 * stopped by the teardown it registers.
 */
import { createRunner, type Config } from '@pullnix/shared';
import { ExecutorLink, Watcher, watcherKeyPath } from '@pullnix/watcher';
import { waitFor, type CapturedLog } from './watcher-fixtures.ts';

export async function linkedWatcher(options: { config: Config; log: CapturedLog; teardowns: (() => Promise<void> | void)[] }): Promise<Watcher> {
  const { config, log } = options;
  const controller = new AbortController();
  const link = new ExecutorLink({ socketPath: config.socketPath, keyPath: watcherKeyPath(config.stateDir), logger: log.logger, pid: process.pid, version: 'test', maxBackoffMs: 1000, baseBackoffMs: 20 });
  const watcher = new Watcher({ config, runner: createRunner(log.logger), logger: log.logger, executor: link, baseBackoffMs: 100 });
  const running = link.start(controller.signal);
  options.teardowns.push(async () => {
    controller.abort();
    await running;
  });
  await waitFor('the watcher to subscribe', () => link.connected);
  return watcher;
}

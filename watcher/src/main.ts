#!/usr/bin/env node
/** pullnix-watcher: wires configuration, logger, runner, executor link and watcher together. */
import { parseArgs } from 'node:util';
import { ConfigError, createLogger, createRunner, DEFAULT_CONFIG_PATH, loadConfig, VERSION } from '@pullnix/shared';
import { ExecutorLink, watcherKeyPath } from './executor-link.ts';
import { ensureOwnKey, ownKeyPaths } from './own-key.ts';
import { Watcher } from './watcher.ts';

const USAGE = `usage: pullnix-watcher [--config FILE] [--check-config]

Polls the configured git branch, builds the NixOS system of a new head and asks
pullnix-executor (over its socket) to deploy it. Changes nothing on the system itself.

  --config FILE   configuration file (default ${DEFAULT_CONFIG_PATH})
  --check-config  load the configuration as a start would, then exit: 0 if it loads,
                  78 (EX_CONFIG) with the problems on stderr if not
  --version       print the version
  --help          this text
`;

/** After SIGTERM a build gets this long to stop before the process gives up waiting (the unit's stop timeout is longer). */
const STOP_DEADLINE_MS = 30_000;

async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({ args: argv, options: { config: { type: 'string' }, 'check-config': { type: 'boolean' }, version: { type: 'boolean' }, help: { type: 'boolean' } }, strict: true, allowPositionals: false });
  } catch (error) {
    process.stderr.write(`pullnix-watcher: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (args.values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (args.values.version) {
    process.stdout.write(`pullnix-watcher ${VERSION}\n`);
    return 0;
  }
  let config;
  try {
    config = loadConfig(args.values.config ?? DEFAULT_CONFIG_PATH);
  } catch (error) {
    process.stderr.write(`<3>pullnix-watcher: ${error instanceof ConfigError ? error.message : String(error)}\n`);
    return args.values['check-config'] ? 78 : 1;
  }
  if (args.values['check-config']) {
    process.stdout.write(`pullnix-watcher: ${args.values.config ?? DEFAULT_CONFIG_PATH} is a valid configuration\n`);
    return 0;
  }
  const logger = createLogger({ level: config.logLevel });
  const controller = new AbortController();
  const stop = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) return;
    controller.abort(signal);
    setTimeout(() => {
      process.stderr.write(`<3>pullnix-watcher: did not stop within ${STOP_DEADLINE_MS / 1000} s after ${signal}; exiting\n`);
      process.exit(1);
    }, STOP_DEADLINE_MS).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  // With a user of its own (docs/decisions.md D20) the watcher holds its own key and has a socket
  // of its own; without one it uses the key the executor made and root's own socket. Never the
  // operator group's socket: a keyless group member cannot crowd it.
  const keyPath = config.watcher.user === null ? watcherKeyPath(config.stateDir) : ownKeyPaths(config.watcher.stateDir).key;
  if (config.watcher.user !== null) ensureOwnKey(config.watcher.stateDir, logger);
  const executor = new ExecutorLink({
    socketPath: config.watcher.socketPath,
    keyPath,
    logger,
    pid: process.pid,
    version: VERSION,
    maxBackoffMs: config.poll.maxBackoffSec * 1000,
  });
  const watcher = new Watcher({ config, runner: createRunner(logger), logger, executor });
  await watcher.start(controller.signal);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    // Let winston flush the last lines before leaving.
    process.exitCode = code;
    setImmediate(() => process.exit(code));
  },
  (error: unknown) => {
    process.stderr.write(`<3>pullnix-watcher: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);

#!/usr/bin/env node
/**
 * pullnix-executor: the root daemon that changes the system. Only wiring: arguments, config,
 * logger, runner, then daemon.ts. Exits non-zero with a message naming the problem.
 */
import { ConfigError, createLogger, createRunner, loadConfig } from '@pullnix/shared';
import { parseArgs } from './args.ts';
import { startDaemon } from './daemon.ts';
import { runRecorded } from './pipeline/activation-record.ts';
import { guardHandover } from './guard.ts';
import { committedConfigPath } from './config-fallback.ts';
import { realpathSync } from 'node:fs';


async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if ('exit' in args) {
    if (args.out) process.stdout.write(`${args.out}\n`);
    if (args.err) process.stderr.write(`${args.err}\n`);
    process.exit(args.exit);
  }
  if ('record' in args) process.exit(await runRecorded(args.record, args.command));
  if ('guard' in args) {
    const config = loadConfig(args.guard.config);
    const log = createLogger({ level: config.logLevel });
    process.exit(await guardHandover({ config, runner: createRunner(log), log, deploymentId: args.guard.deployment, restartsBefore: args.guard.restarts }));
  }
  let config;
  /** Set when the configured file is unusable and the last committed system's configuration stands in for it. */
  let fallback: { unusable: string; using: string; error: string } | undefined;
  /** The file loaded, resolved (a store path on NixOS): the hand-over's guard loads the same one. */
  let configFile = args.config;
  try {
    config = loadConfig(args.config);
  } catch (error) {
    const message = error instanceof ConfigError ? error.message : String(error);
    process.stderr.write(`pullnix-executor: ${message}\n`);
    if (args.checkOnly) process.exit(78);
    // A commit whose configuration this executor cannot load may be live mid-deployment (the
    // executor killed after the activation: systemd starts it again from the new unit). Exiting
    // would leave that deployment unresolved for ever, so start on the configuration of the last
    // committed system, which passed verification before it became the profile, and let crash
    // recovery roll the deployment back. Without a usable one, exit as before.
    const committed = committedConfigPath(args.config);
    try {
      config = loadConfig(committed);
      fallback = { unusable: args.config, using: committed, error: message };
      configFile = committed;
    } catch {
      process.exit(78); // EX_CONFIG: systemd shows it as a configuration problem
    }
  }
  if (args.checkOnly) {
    process.stdout.write(`pullnix-executor: ${args.config} is a valid configuration\n`);
    process.exit(0);
  }
  try {
    configFile = realpathSync(configFile);
  } catch {
    // Loaded a moment ago: keep the name as given.
  }
  const log = createLogger({ level: config.logLevel });
  if (fallback) log.event('executor.config_fallback', { config: fallback.unusable, using: fallback.using, error: fallback.error });
  let shuttingDown = false;
  const shutdown = (reason: string, code: number) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.event('executor.stopping', { reason });
    daemon?.close();
    // Give winston a turn to flush the last lines.
    setImmediate(() => process.exit(code));
  };
  let daemon: Awaited<ReturnType<typeof startDaemon>> | undefined;
  try {
    daemon = await startDaemon({ config, configFile, log, runner: createRunner(log), onSelfUpgrade: () => shutdown('self-upgrade', 0), onFatal: () => shutdown('fatal', 1) });
  } catch (error) {
    log.event('executor.fatal', { during: 'start', error: (error as Error).message });
    process.stderr.write(`pullnix-executor: cannot start: ${(error as Error).message}\n`);
    process.exit(1);
  }
  // An in-flight deployment is not waited for: its record is durable, and the next start
  // resolves it (crash recovery). systemd's stop timeout would kill a long verify anyway.
  process.on('SIGTERM', () => shutdown('SIGTERM', 0));
  process.on('SIGINT', () => shutdown('SIGINT', 0));
}

await main();

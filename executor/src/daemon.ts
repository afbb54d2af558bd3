/**
 * Wires the parts into a running executor: keys, stores, socket, crash recovery. main.ts adds
 * argument parsing and signals; tests start the same thing in-process with a fake Runner.
 */
import { createConnection } from 'node:net';
import { lookupUser, type Config, type Logger, type Runner } from '@pullnix/shared';
import { Executor } from './executor.ts';
import { ensureKeys, keysDir, trustedKeys, watcherKeyResolver, type ExecutorKeys } from './keys.ts';
import type { Clock } from './pipeline/context.ts';
import { createServers, type ExecutorServers } from './server.ts';

export interface DaemonOptions {
  config: Config;
  /** The configuration file loaded (resolved): the self-upgrade's guard loads it (handover.ts). */
  configFile?: string;
  log: Logger;
  runner: Runner;
  clock?: Clock;
  onSelfUpgrade?: () => void;
  onFatal?: (error: unknown) => void;
  /** Rate-limit interval of refusal logging (tests). */
  refusalLogIntervalMs?: number;
}

export interface Daemon {
  executor: Executor;
  /** Root's own socket and the operator group's. */
  servers: ExecutorServers;
  keys: ExecutorKeys;
  /** Crash recovery of an unfinished deployment; resolves when it is resolved. */
  recovered: Promise<void>;
  /** Stop accepting, close the socket. An in-flight deployment is recovered on the next start. */
  close(): void;
}

export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const { config, log } = options;
  // node-ipc replaces an existing socket file; a second executor must not steal a live one.
  await assertNotServed(config.privateSocketPath);
  await assertNotServed(config.socketPath);
  const watcherUser = config.watcher.user === null ? null : lookupUser(config.watcher.user);
  if (watcherUser) await assertNotServed(config.watcher.socketPath);
  const keys = ensureKeys(config.stateDir, log, config.watcher);
  const executor = new Executor({
    config,
    log,
    runner: options.runner,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.onSelfUpgrade ? { onSelfUpgrade: options.onSelfUpgrade } : {}),
    ...(options.onFatal ? { onFatal: options.onFatal } : {}),
    ...(options.configFile ? { configFile: options.configFile } : {}),
  });
  executor.open();
  const servers = createServers({
    executor,
    log,
    keys: trustedKeys(config, keys),
    privatePath: config.privateSocketPath,
    groupPath: config.socketPath,
    group: config.operators.group,
    ...(watcherUser ? { watcher: { path: config.watcher.socketPath, gid: watcherUser.gid, resolveKey: watcherKeyResolver({ stateDir: config.watcher.stateDir, uid: watcherUser.uid, keysDir: keysDir(config.stateDir), log }) } } : {}),
    ...(options.refusalLogIntervalMs !== undefined ? { refusalLogIntervalMs: options.refusalLogIntervalMs } : {}),
  });
  await servers.start();
  log.event('executor.started', {
    pid: process.pid,
    socket: config.socketPath,
    private_socket: config.privateSocketPath,
    watcher_socket: watcherUser ? config.watcher.socketPath : undefined,
    watcher_user: config.watcher.user ?? undefined,
    group: config.operators.group,
    run: servers.runId,
    state_dir: config.stateDir,
    activation: config.activation,
    deployments: executor.history.total,
  });
  // Started after the socket is up so status answers while a recovery verifies.
  const recovered = executor.recover().catch((error: unknown) => {
    log.event('executor.fatal', { during: 'recovery', error: (error as Error).message });
  });
  return {
    executor,
    servers,
    keys,
    recovered,
    close() {
      executor.stop();
      servers.stop();
    },
  };
}

/** Rejects when something already accepts connections on `path`; a stale file (crash) is fine. */
function assertNotServed(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    socket.once('connect', () => {
      socket.destroy();
      reject(new Error(`another executor is already listening on ${path}; stop it first (two executors must never share a state directory)`));
    });
    socket.once('error', () => resolve());
  });
}

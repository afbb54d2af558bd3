/**
 * Method handlers: each authenticated request (SocketServer + Authenticator already refused
 * anything forged, stale, replayed or malformed) is mapped onto the Executor. Refusals from here
 * (BUSY, PAUSED, KNOWN_BAD, INVALID_SYSTEM, ...) and from the gate are logged the same way.
 */
import {
  Authenticator,
  newRunId,
  type AuthenticatedRequest,
  type DeployParams,
  type HistoryParams,
  type Logger,
  type PauseParams,
  type PullnixError,
  type RetryParams,
  type RollbackParams,
  type SubscribeParams,
  type TrustedKey,
  type WatcherReport,
} from '@pullnix/shared';
import { RefusalLog, type DropCause, type DropInfo, type RefusalInfo, SocketServer, type Connection, type Handler } from '@pullnix/shared/server';
import type { Executor } from './executor.ts';
import { LOCAL_OPERATOR_KEY_ID } from './keys.ts';

export function createHandler(executor: Executor, log: Logger): Handler {
  return async (request: AuthenticatedRequest, connection: Connection) => {
    const keyId = request.envelope.keyId;
    const params: unknown = request.envelope.params;
    log.event('request.accepted', { method: request.method, key: keyId, id: request.envelope.id });
    switch (request.method) {
      case 'deploy':
        return { deployment: await executor.deploy(params as DeployParams, keyId) };
      case 'rollback':
        return { deployment: await executor.rollback(params as RollbackParams, keyId) };
      case 'status':
        return executor.status();
      case 'history':
        return executor.historyPage(params as HistoryParams);
      case 'pause':
        return executor.pause((params as PauseParams).reason, keyId);
      case 'resume':
        return executor.resume(keyId);
      case 'retry':
        return executor.retry((params as RetryParams).commit, keyId);
      case 'sync':
        return executor.sync(keyId);
      case 'reboot-now':
        return { deployment: await executor.rebootNow(keyId) };
      case 'subscribe':
        return executor.subscribe(connection, params as SubscribeParams);
      case 'report':
        return executor.report(params as WatcherReport);
    }
  };
}

/**
 * Refusals and dropped connections, rate-limited (RefusalLog): the first of a kind (socket, the
 * key that really signed, cause) in an interval is logged in full, the rest of the interval as
 * one `socket.refusals_repeated` line with a count.
 */
export function refusalReporter(log: Logger, intervalMs?: number) {
  const limiter = new RefusalLog({
    ...(intervalMs !== undefined ? { intervalMs } : {}),
    summarize: (s) => log.event('socket.refusals_repeated', { socket: s.socket, key: s.key, cause: s.cause, count: s.count, connections: s.connections, interval: `${s.intervalMs / 1000}s` }),
  });
  return {
    limiter,
    onRefused(error: PullnixError, info: RefusalInfo): void {
      if (!limiter.note({ socket: info.socket, key: info.verifiedKey, cause: error.code }, info.connection)) return;
      log.event('request.refused', { code: error.code, socket: info.socket, connection: info.connection, key: info.keyId, verified: info.verifiedKey !== null, method: info.method, id: info.id || null, reason: error.message });
    },
    onDropped(cause: DropCause, info: DropInfo): void {
      if (!limiter.note({ socket: info.socket, key: null, cause }, info.connection)) return;
      log.event('socket.dropped', { cause, socket: info.socket, connection: info.connection, detail: info.detail });
    },
  };
}

export interface ExecutorServerOptions {
  executor: Executor;
  log: Logger;
  keys: readonly TrustedKey[];
  /** Root's own socket (the watcher, root's pullnix-ctl), in a 0700 directory of its own. */
  privatePath: string;
  /** The operator group's socket. */
  groupPath: string;
  group: string | null;
  /**
   * The watcher's own socket, when it runs as a user of its own (docs/decisions.md D20): 0660
   * root:<its group> in a 0750 directory, and its key, resolved from its state directory.
   */
  watcher?: { path: string; gid: number; resolveKey: (keyId: string) => TrustedKey | null };
  windowMs?: number;
  /** Rate-limit interval of refusal logging (default 10 s). */
  refusalLogIntervalMs?: number;
}

export interface ExecutorServers {
  private: SocketServer;
  group: SocketServer;
  /** The watcher's own socket (null when the watcher shares root's). */
  watcher: SocketServer | null;
  runId: string;
  start(): Promise<void>;
  stop(): void;
}

/** Connections at once on root's own socket: the watcher and root's pullnix-ctl. */
export const PRIVATE_MAX_CONNECTIONS = 64;
/**
 * On the group's socket: larger, so that a keyless member reconnecting as fast as it can must
 * cycle through this many slots to evict an honest newcomer before its first request verifies.
 */
export const GROUP_MAX_CONNECTIONS = 256;

/**
 * The executor's two sockets (docs/decisions.md D12), one Authenticator (one nonce memory: a
 * request accepted on one socket cannot be replayed on the other) and one run id.
 */
export function createServers(options: ExecutorServerOptions): ExecutorServers {
  const { executor, log } = options;
  const runId = newRunId();
  const authenticator = new Authenticator({
    keys: options.keys,
    runId,
    // Root's own key has a nonce quota of its own, outside the operators' pool (and so has the watcher's).
    ownPoolKeyIds: [LOCAL_OPERATOR_KEY_ID],
    ...(options.windowMs !== undefined ? { windowMs: options.windowMs } : {}),
    ...(options.watcher ? { resolveKey: options.watcher.resolveKey } : {}),
  });
  const handler = createHandler(executor, log);
  const reporter = refusalReporter(log, options.refusalLogIntervalMs);
  const common = { authenticator, handler, onRefused: reporter.onRefused, onDropped: reporter.onDropped, onClose: (conn: Connection) => executor.connectionClosed(conn) };
  const privateServer = new SocketServer({ ...common, name: 'private', path: options.privatePath, group: null, ownDirectory: true, maxConnections: PRIVATE_MAX_CONNECTIONS });
  const groupServer = new SocketServer({ ...common, name: 'group', path: options.groupPath, group: options.group, maxConnections: GROUP_MAX_CONNECTIONS });
  const watcherServer = options.watcher
    ? new SocketServer({ ...common, name: 'watcher', path: options.watcher.path, group: null, gid: options.watcher.gid, maxConnections: PRIVATE_MAX_CONNECTIONS })
    : null;
  return {
    private: privateServer,
    group: groupServer,
    watcher: watcherServer,
    runId,
    async start() {
      await privateServer.start();
      await groupServer.start();
      await watcherServer?.start();
    },
    stop() {
      watcherServer?.stop();
      groupServer.stop();
      privateServer.stop();
      reporter.limiter.flush();
    },
  };
}

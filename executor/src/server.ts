/**
 * Method handlers: each authenticated request (SocketServer + Authenticator already refused
 * anything forged, stale, replayed or malformed) is mapped onto the Executor. Refusals from here
 * (BUSY, PAUSED, KNOWN_BAD, INVALID_SYSTEM, ...) and from the gate are logged the same way.
 */
import {
  Authenticator,
  SocketServer,
  type AuthenticatedRequest,
  type Connection,
  type DeployParams,
  type Handler,
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
import type { Executor } from './executor.ts';

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
      case 'subscribe':
        return executor.subscribe(connection, params as SubscribeParams);
      case 'report':
        return executor.report(params as WatcherReport);
    }
  };
}

export function logRefusal(log: Logger) {
  return (error: PullnixError, info: { keyId: string | null; method: string | null; id: string }): void => {
    log.event('request.refused', { code: error.code, key: info.keyId, method: info.method, id: info.id || null, reason: error.message });
  };
}

export interface ExecutorServerOptions {
  executor: Executor;
  log: Logger;
  keys: readonly TrustedKey[];
  path: string;
  group: string | null;
  windowMs?: number;
}

export function createServer(options: ExecutorServerOptions): SocketServer {
  const { executor, log } = options;
  return new SocketServer({
    path: options.path,
    group: options.group,
    authenticator: new Authenticator({ keys: options.keys, notBefore: Date.now(), ...(options.windowMs !== undefined ? { windowMs: options.windowMs } : {}) }),
    handler: createHandler(executor, log),
    onRefused: logRefusal(log),
    onClose: (conn) => executor.connectionClosed(conn),
  });
}

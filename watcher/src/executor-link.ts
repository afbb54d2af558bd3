/**
 * The watcher's persistent connection to the executor's socket. It connects, subscribes (so the
 * executor can push `sync` and `retry`), and when the executor goes away it reconnects with a
 * bounded exponential back-off, logging once per change of state with the cause. A missing key
 * file is one such cause: the executor creates the watcher's key on its first start.
 */
import { join } from 'node:path';
import {
  ConnectError,
  loadSigningKey,
  PullnixError,
  SocketClient,
  type DeployParams,
  type DeploymentRecord,
  type Logger,
  type Push,
  type StatusResult,
  type WatcherReport,
} from '@pullnix/shared';
import { backoffDelayMs } from './backoff.ts';
import { sleep, systemClock, type Clock } from './clock.ts';

/** What the watcher needs from the executor; tests may substitute an in-process fake. */
export interface ExecutorClient {
  readonly connected: boolean;
  /** Keep a connection until the signal aborts (reconnecting as needed). */
  start(signal: AbortSignal): Promise<void>;
  status(): Promise<StatusResult>;
  deploy(params: DeployParams, timeoutMs: number): Promise<{ deployment: DeploymentRecord }>;
  report(report: WatcherReport): Promise<void>;
  /** Deployments, newest first (the commit-status reporter's reconciliation); optional for fakes. */
  history?(limit: number): Promise<DeploymentRecord[]>;
  onPush(listener: (message: Push) => void): () => void;
  /** Called after every (re)connection, once subscribed. */
  onConnected(listener: () => void): () => void;
}

export interface ExecutorLinkOptions {
  socketPath: string;
  /** The watcher's private key file (`<stateDir>/keys/watcher.key`). */
  keyPath: string;
  logger: Logger;
  pid: number;
  version: string;
  maxBackoffMs: number;
  baseBackoffMs?: number;
  clock?: Clock;
}

export function watcherKeyPath(stateDir: string): string {
  return join(stateDir, 'keys', 'watcher.key');
}

const CLOSED = 'closed';

export class ExecutorLink implements ExecutorClient {
  private readonly options: ExecutorLinkOptions;
  private readonly clock: Clock;
  private client: SocketClient | null = null;
  private readonly pushListeners = new Set<(message: Push) => void>();
  private readonly connectedListeners = new Set<() => void>();
  /** The cause last logged, so a failure that repeats is logged once. null: connected or never tried. */
  private loggedCause: string | null = null;

  constructor(options: ExecutorLinkOptions) {
    this.options = options;
    this.clock = options.clock ?? systemClock;
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  async start(signal: AbortSignal): Promise<void> {
    const { logger, maxBackoffMs } = this.options;
    const baseMs = this.options.baseBackoffMs ?? 500;
    let failures = 0;
    while (!signal.aborted) {
      let client: SocketClient | null = null;
      try {
        client = await this.connect();
      } catch (error) {
        const { cause, reason } = describeConnectFailure(error, this.options);
        failures += 1;
        if (this.loggedCause === CLOSED && cause.startsWith('connect:')) {
          // Right after a close the socket is usually just gone (executor restarting): the same
          // outage, already logged. A refusal or a missing key is news and is logged.
          this.loggedCause = cause;
        } else if (cause !== this.loggedCause) {
          logger.event('executor.unreachable', { reason, socket: this.options.socketPath, retry_in: `${backoffDelayMs(failures, baseMs, maxBackoffMs) / 1000}s` });
          this.loggedCause = cause;
        }
        await sleep(this.clock, backoffDelayMs(failures, baseMs, maxBackoffMs), signal);
        continue;
      }
      failures = 0;
      this.loggedCause = null;
      this.client = client;
      logger.event('executor.connected', { socket: this.options.socketPath });
      for (const listener of this.connectedListeners) listener();
      await new Promise<void>((resolve) => {
        const off = client.onClose(() => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        });
        const onAbort = () => {
          off();
          resolve();
        };
        signal.addEventListener('abort', onAbort, { once: true });
        // It may have closed, or the stop may have come, before the listeners were in place.
        if (!client.connected || signal.aborted) onAbort();
      });
      this.client = null;
      client.close();
      if (signal.aborted) break;
      this.loggedCause = CLOSED;
      logger.event('executor.unreachable', { reason: 'the connection closed (executor stopped or restarting)', socket: this.options.socketPath });
      failures = 1;
      await sleep(this.clock, backoffDelayMs(failures, baseMs, maxBackoffMs), signal);
    }
  }

  async status(): Promise<StatusResult> {
    return this.live().request('status', {});
  }

  async deploy(params: DeployParams, timeoutMs: number): Promise<{ deployment: DeploymentRecord }> {
    return this.live().request('deploy', params, { timeoutMs });
  }

  async report(report: WatcherReport): Promise<void> {
    await this.live().request('report', report);
  }

  async history(limit: number): Promise<DeploymentRecord[]> {
    return (await this.live().request('history', { limit })).deployments;
  }

  onPush(listener: (message: Push) => void): () => void {
    this.pushListeners.add(listener);
    return () => this.pushListeners.delete(listener);
  }

  onConnected(listener: () => void): () => void {
    this.connectedListeners.add(listener);
    return () => this.connectedListeners.delete(listener);
  }

  private live(): SocketClient {
    const client = this.client;
    if (!client || !client.connected) throw new ConnectError(this.options.socketPath, 'ENOTCONN');
    return client;
  }

  private async connect(): Promise<SocketClient> {
    // Read the key on every attempt: the executor creates it on its first start, and may replace it.
    const key = loadSigningKey(this.options.keyPath);
    const client = new SocketClient({ path: this.options.socketPath, key });
    await client.connect();
    try {
      client.onPush((message) => {
        for (const listener of this.pushListeners) listener(message);
      });
      const { retries } = await client.request('subscribe', { pid: this.options.pid, version: this.options.version }, { timeoutMs: 10_000 });
      // Operator retries made while no watcher was connected: the same as a pushed retry.
      for (const commit of retries ?? []) for (const listener of this.pushListeners) listener({ type: 'retry', commit });
    } catch (error) {
      client.close();
      throw error;
    }
    return client;
  }
}

/** `cause` groups failures that are the same problem (logged once); `reason` is what the operator reads. */
export function describeConnectFailure(error: unknown, options: { keyPath: string; socketPath: string }): { cause: string; reason: string } {
  if (error instanceof ConnectError) {
    const hint =
      error.errno === 'ENOENT' ? ' (the executor is not running)' : error.errno === 'EACCES' ? ' (no permission on the socket)' : error.errno === 'ECONNREFUSED' ? ' (nobody listens on the socket)' : '';
    return { cause: `connect:${error.errno}`, reason: `${error.message}${hint}` };
  }
  if (error instanceof PullnixError) {
    return { cause: `refused:${error.code}`, reason: `the executor refused subscribe: ${error.code}: ${error.message}` };
  }
  const errno = (error as NodeJS.ErrnoException).code;
  if (errno === 'ENOENT') {
    return { cause: 'key:ENOENT', reason: `no key file ${options.keyPath} (the executor creates it on its first start)` };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { cause: `other:${message}`, reason: message };
}

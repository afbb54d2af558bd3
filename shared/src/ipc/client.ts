/**
 * A client of the executor's socket: learns the executor run's id from the connection's hello,
 * signs every request with its key for that run, matches responses by id,
 * turns error responses into PullnixError (code preserved), and reports connection failures as
 * ConnectError with the errno the operator needs (ENOENT: executor not running; EACCES: not in
 * the operator group).
 */
import { RUN_ID_PATTERN } from '../protocol/grammar.ts';
import { PROTOCOL_VERSION, WIRE, signRequest, type Hello, type Push, type Response, type ResultFor } from '../protocol/envelope.ts';
import { isErrorCode, PullnixError } from '../protocol/errors.ts';
import type { SigningKey } from '../protocol/keys.ts';
import type { ParamsOf } from '../protocol/method.ts';
import type { MethodName, Methods } from '../protocol/methods/index.ts';
import { newIpc, type IPCModuleInstance, type IpcPeer } from './common.ts';

export class ConnectError extends Error {
  readonly errno: string;
  readonly path: string;

  constructor(path: string, errno: string | undefined, options?: { cause?: unknown }) {
    super(`cannot connect to ${path}: ${errno ?? 'connection failed'}`, options);
    this.name = 'ConnectError';
    this.path = path;
    this.errno = errno ?? 'ECONNREFUSED';
  }
}

export interface ClientOptions {
  path: string;
  key: SigningKey;
  connectTimeoutMs?: number;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout | null;
}

let clientSerial = 0;
const runIdRe = new RegExp(RUN_ID_PATTERN);

export class SocketClient {
  private readonly ipc: IPCModuleInstance;
  private readonly ipcId = `pullnix-client-${process.pid}-${++clientSerial}`;
  private peer: IpcPeer | null = null;
  private readonly pending = new Map<string, Pending>();
  private readonly pushListeners = new Set<(message: Push) => void>();
  private readonly closeListeners = new Set<() => void>();
  private isConnected = false;
  /** The executor run this connection talks to (from its hello); null until it arrived. */
  private runId: string | null = null;
  /**
   * Until the first answer on this connection, requests go one at a time: the executor lets a
   * connection that has not authenticated have one request waiting (and refuses more BUSY).
   */
  private firstAnswer: Promise<void> | null = null;
  private answered = false;

  private readonly options: ClientOptions;

  constructor(options: ClientOptions) {
    this.options = options;
    this.ipc = newIpc(this.ipcId);
  }

  get connected(): boolean {
    return this.isConnected;
  }

  /** The executor run's id, from the connection's hello (null before connect). */
  get run(): string | null {
    return this.runId;
  }

  connect(): Promise<void> {
    const { path } = this.options;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => finish(new ConnectError(path, 'ETIMEDOUT')), this.options.connectTimeoutMs ?? 5000);
      const finish = (error?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error) {
          this.ipc.disconnect(this.ipcId);
          reject(error);
        } else resolve();
      };
      this.ipc.connectTo(this.ipcId, path, () => {
        const peer = this.ipc.of[this.ipcId];
        if (!peer) return finish(new ConnectError(path, undefined));
        this.peer = peer;
        // Connected once the executor's hello names its run: every request is signed for it.
        peer.on(WIRE.hello, ((hello: Hello) => {
          if (settled) return;
          if (hello?.v !== PROTOCOL_VERSION || typeof hello.run !== 'string' || !runIdRe.test(hello.run)) {
            return finish(new ConnectError(path, 'EPROTO', { cause: new Error(`the executor speaks protocol v${String(hello?.v)}; this client speaks v${PROTOCOL_VERSION}`) }));
          }
          this.runId = hello.run;
          this.isConnected = true;
          finish();
        }) as never);
        peer.on('error', ((error: NodeJS.ErrnoException) => {
          if (!settled) finish(new ConnectError(path, error.code, { cause: error }));
        }) as never);
        peer.on('disconnect', (() => this.onDisconnect()) as never);
        peer.on(WIRE.response, ((response: Response) => this.onResponse(response)) as never);
        peer.on(WIRE.push, ((message: Push) => {
          for (const listener of this.pushListeners) listener(message);
        }) as never);
      });
    });
  }

  /** Send a signed request; resolves with the result, rejects with PullnixError (code from the executor). */
  async request<M extends MethodName>(method: M, params: ParamsOf<Methods[M]>, options: { timeoutMs?: number } = {}): Promise<ResultFor<M>> {
    if (!this.answered) {
      if (this.firstAnswer) {
        await this.firstAnswer;
      } else {
        const result = this.send(method, params, options);
        this.firstAnswer = result.then(
          () => undefined,
          () => undefined,
        );
        return result;
      }
    }
    return this.send(method, params, options);
  }

  private send<M extends MethodName>(method: M, params: ParamsOf<Methods[M]>, options: { timeoutMs?: number }): Promise<ResultFor<M>> {
    const peer = this.peer;
    if (!peer || !this.isConnected || this.runId === null) return Promise.reject(new ConnectError(this.options.path, 'ENOTCONN'));
    const envelope = signRequest(this.options.key, this.runId, method, params);
    return new Promise<ResultFor<M>>((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? 30_000;
      const timer =
        timeoutMs > 0
          ? setTimeout(() => {
              this.pending.delete(envelope.id);
              reject(new Error(`${method}: no answer from the executor within ${Math.round(timeoutMs / 1000)} s`));
            }, timeoutMs)
          : null;
      this.pending.set(envelope.id, { resolve: resolve as (value: unknown) => void, reject, timer });
      peer.emit(WIRE.request, envelope);
    });
  }

  /** Send an arbitrary frame payload (tests: forged and malformed requests). */
  sendRaw(payload: unknown, id: string, timeoutMs = 5000): Promise<Response> {
    const peer = this.peer;
    if (!peer || !this.isConnected) return Promise.reject(new ConnectError(this.options.path, 'ENOTCONN'));
    return new Promise<Response>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error('no answer'));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer, raw: true } as Pending);
      peer.emit(WIRE.request, payload);
    });
  }

  onPush(listener: (message: Push) => void): () => void {
    this.pushListeners.add(listener);
    return () => this.pushListeners.delete(listener);
  }

  onClose(listener: () => void): () => void {
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  close(): void {
    this.ipc.disconnect(this.ipcId);
    this.onDisconnect();
  }

  private onResponse(response: Response): void {
    this.answered = true;
    const pending = this.pending.get(response?.id);
    if (!pending) return;
    this.pending.delete(response.id);
    if (pending.timer) clearTimeout(pending.timer);
    if ((pending as Pending & { raw?: boolean }).raw) return pending.resolve(response);
    if (response.ok) pending.resolve(response.result);
    else {
      const code = isErrorCode(response.error?.code) ? response.error.code : 'INTERNAL';
      pending.reject(new PullnixError(code, response.error?.message ?? 'request refused'));
    }
  }

  private onDisconnect(): void {
    const wasConnected = this.isConnected;
    this.isConnected = false;
    this.peer = null;
    for (const [id, pending] of this.pending) {
      if (pending.timer) clearTimeout(pending.timer);
      pending.reject(new ConnectError(this.options.path, 'ECONNRESET'));
      this.pending.delete(id);
    }
    if (wasConnected) for (const listener of this.closeListeners) listener();
  }
}

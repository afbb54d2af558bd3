/**
 * A client of the executor's socket: learns the executor run's id from the connection's hello,
 * signs every request with its key for that run, matches responses by id,
 * turns error responses into PullnixError (code preserved), and reports connection failures as
 * ConnectError with the errno the operator needs (ENOENT: executor not running; EACCES: not in
 * the operator group).
 *
 * It speaks node-ipc's wire format (the executor's server is node-ipc) over a plain `node:net`
 * socket, without loading node-ipc: one connection, one peer, no retries, which is all a client
 * needs, and node-ipc with its dependencies and `node:tls` was ~40 ms of every `pullnix-ctl` run
 * and several MiB of the watcher's idle memory (docs/benchmarks.md §3 and §5, docs/decisions.md).
 * The format, from node-ipc 14.0.0 (node_modules/node-ipc):
 *   - a frame is `JSON.stringify({type, data})` followed by the delimiter (entities/EventParser.js
 *     lines 66–67, Parser.encode; the delimiter is the instance's config, FRAME_DELIMITER here and
 *     on the server: ipc/common.ts);
 *   - reading: the socket's text (utf8: dao/client.js line 141, `socket.setEncoding`) is split at
 *     each delimiter, each piece JSON-parsed and dispatched as `type` with `data`; what is left
 *     waits for the next chunk (EventParser.js lines 153–171, GuardedParser.read);
 *   - the guarded parser's bound: a frame, or the unfinished rest, over `maxMessageSize` bytes
 *     (MAX_FRAME_BYTES) is a protocol failure that destroys the socket (EventParser.js lines
 *     185–220; dao/client.js lines 281–288, protocolFailure), as is a frame that is not a JSON
 *     object with a non-empty string `type` (EventParser.js lines 190–198);
 *   - with `stopRetrying`, a closed socket is a final 'disconnect' (dao/client.js lines 188–204).
 */
import { connect as netConnect, type Socket } from 'node:net';
import { RUN_ID_PATTERN } from '../protocol/grammar.ts';
import { PROTOCOL_VERSION, WIRE, signRequest, type Hello, type Push, type Response, type ResultFor } from '../protocol/envelope.ts';
import { isErrorCode, PullnixError } from '../protocol/errors.ts';
import type { SigningKey } from '../protocol/keys.ts';
import type { ParamsOf } from '../protocol/method.ts';
import type { MethodName, Methods } from '../protocol/methods/index.ts';
import { FRAME_DELIMITER, MAX_FRAME_BYTES } from './frame.ts';

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

const runIdRe = new RegExp(RUN_ID_PATTERN);

export class SocketClient {
  private socket: Socket | null = null;
  /** The unfinished rest of the text read so far (node-ipc's `socket.ipcBuffer`). */
  private buffer = '';
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
          socket.destroy();
          reject(error);
        } else resolve();
      };
      const socket = netConnect({ path });
      this.socket = socket;
      this.buffer = '';
      socket.setEncoding('utf8');
      socket.on('error', (error: NodeJS.ErrnoException) => {
        if (!settled) finish(new ConnectError(path, error.code, { cause: error }));
      });
      socket.on('close', () => {
        if (!settled) finish(new ConnectError(path, 'ECONNRESET'));
        if (this.socket === socket) this.onDisconnect();
      });
      socket.on('data', (chunk: string) => {
        let frames: Array<{ type: string; data: unknown }>;
        try {
          frames = this.read(chunk);
        } catch (error) {
          // node-ipc's protocolFailure: the connection is unusable from here on.
          socket.destroy();
          if (!settled) finish(new ConnectError(path, 'EPROTO', { cause: error }));
          return;
        }
        for (const frame of frames) {
          if (frame.type === WIRE.hello) {
            // Connected once the executor's hello names its run: every request is signed for it.
            if (settled) continue;
            const hello = frame.data as Hello | undefined;
            if (hello?.v !== PROTOCOL_VERSION || typeof hello.run !== 'string' || !runIdRe.test(hello.run)) {
              finish(new ConnectError(path, 'EPROTO', { cause: new Error(`the executor speaks protocol v${String(hello?.v)}; this client speaks v${PROTOCOL_VERSION}`) }));
              return;
            }
            this.runId = hello.run;
            this.isConnected = true;
            finish();
          } else if (frame.type === WIRE.response) {
            this.onResponse(frame.data as Response);
          } else if (frame.type === WIRE.push) {
            for (const listener of this.pushListeners) listener(frame.data as Push);
          }
        }
      });
    });
  }

  /** Split what arrived into frames (see the file's comment); throws on a protocol violation. */
  private read(chunk: string): Array<{ type: string; data: unknown }> {
    const text = this.buffer + chunk;
    const frames: Array<{ type: string; data: unknown }> = [];
    let start = 0;
    let end = text.indexOf(FRAME_DELIMITER);
    while (end !== -1) {
      const frame = text.slice(start, end);
      if (Buffer.byteLength(frame) > MAX_FRAME_BYTES) throw new Error('a frame from the executor exceeds the frame size limit');
      const message: unknown = JSON.parse(frame);
      if (typeof message !== 'object' || message === null || Array.isArray(message) || typeof (message as { type?: unknown }).type !== 'string' || (message as { type: string }).type === '') {
        throw new Error('a frame from the executor is not a message');
      }
      frames.push(message as { type: string; data: unknown });
      start = end + FRAME_DELIMITER.length;
      end = text.indexOf(FRAME_DELIMITER, start);
    }
    this.buffer = start === 0 ? text : text.slice(start);
    if (Buffer.byteLength(this.buffer) > MAX_FRAME_BYTES) throw new Error('a frame from the executor exceeds the frame size limit');
    return frames;
  }

  private emit(type: string, data: unknown): void {
    this.socket?.write(JSON.stringify({ type, data }) + FRAME_DELIMITER);
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
    if (!this.isConnected || this.runId === null) return Promise.reject(new ConnectError(this.options.path, 'ENOTCONN'));
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
      this.emit(WIRE.request, envelope);
    });
  }

  /** Send an arbitrary frame payload (tests: forged and malformed requests). */
  sendRaw(payload: unknown, id: string, timeoutMs = 5000): Promise<Response> {
    if (!this.isConnected) return Promise.reject(new ConnectError(this.options.path, 'ENOTCONN'));
    return new Promise<Response>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error('no answer'));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer, raw: true } as Pending);
      this.emit(WIRE.request, payload);
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
    this.socket?.destroy();
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
    this.socket = null;
    this.buffer = '';
    for (const [id, pending] of this.pending) {
      if (pending.timer) clearTimeout(pending.timer);
      pending.reject(new ConnectError(this.options.path, 'ECONNRESET'));
      this.pending.delete(id);
    }
    if (wasConnected) for (const listener of this.closeListeners) listener();
  }
}

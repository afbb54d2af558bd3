/**
 * The executor's socket: node-ipc over a Unix socket, one request → one response matched by id.
 * Every frame goes through the Authenticator before any handler sees it; a refusal is answered
 * with `{code, message}` and reported, and changes nothing.
 *
 * What a local peer without a key can cost (docs/decisions.md D12):
 *   - bytes: a frame is bounded by its raw size before node-ipc parses it (MAX_FRAME_IN_BYTES);
 *     a connection that sends more before a delimiter is closed. Partial frames are scanned once,
 *     not re-scanned on every chunk.
 *   - work: until a connection has made one authenticated request it may have one frame waiting;
 *     more are refused BUSY unverified, and MAX_REFUSALS_PER_CONNECTION refusals close it.
 *   - time: a connection must authenticate within authDeadlineMs (2 s) of connecting, and until
 *     it has, deliver each frame within MAX_CHUNKS_PER_FRAME_UNAUTHENTICATED reads.
 *   - slots: at maxConnections, a new connection closes the oldest connection that has not
 *     authenticated, so reconnecting as fast as possible cannot keep an honest client out.
 *   - memory, in all: the bytes held for connections that have not authenticated (partial frames
 *     and the frame waiting in the queue) are bounded per server (unauthenticatedBufferBytes, not
 *     only per frame): past it, the connections holding the most are closed first, so an honest
 *     client's small frame survives a flood of large ones.
 */
import { chmodSync, chownSync, lstatSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Socket } from 'node:net';
import { Authenticator, type AuthenticatedRequest } from '../protocol/authenticate.ts';
import { MAX_FRAME_IN_BYTES, PROTOCOL_VERSION, WIRE, type Hello, type Push, type Response } from '../protocol/envelope.ts';
import { PullnixError } from '../protocol/errors.ts';
import { REQUEST_ID_PATTERN } from '../protocol/grammar.ts';
import { FRAME_DELIMITER, newIpc, type IPCModuleInstance } from './common.ts';
import { lookupGid } from '../users.ts';

export interface Connection {
  readonly serial: number;
  push(message: Push): void;
  readonly closed: boolean;
}

export type Handler = (request: AuthenticatedRequest, connection: Connection) => Promise<unknown>;

export interface RefusalInfo {
  /** The request id, when the frame had a valid one ('' otherwise). */
  id: string;
  /** The key id the frame claimed (unverified unless verifiedKey is set). */
  keyId: string | null;
  method: string | null;
  /** The key that really signed the request, when its signature verified. */
  verifiedKey: string | null;
  /** The socket's name (ServerOptions.name). */
  socket: string;
  connection: number;
}

/** Why the server closed a connection itself. */
export type DropCause = 'auth-deadline' | 'frame-too-large' | 'trickle' | 'evicted' | 'full' | 'refusals' | 'over-budget';

export interface DropInfo {
  socket: string;
  connection: number;
  detail: string;
}

export interface ServerOptions {
  path: string;
  /** The socket's name in reports ("private", "group"). */
  name?: string;
  authenticator: Authenticator;
  handler: Handler;
  /** Group that may connect (socket 0660 root:group, directory 0750). null: owner only. */
  group: string | null;
  /** The same group by number (the watcher's user's primary group); takes precedence over `group`. */
  gid?: number;
  /**
   * The socket's directory belongs to this socket alone: created (or narrowed to) 0700, and
   * refused when it is a symbolic link or owned by another user.
   */
  ownDirectory?: boolean;
  /** Connections at once (default 64); past it the oldest unauthenticated one is closed for the new one. */
  maxConnections?: number;
  onRefused?: (error: PullnixError, info: RefusalInfo) => void;
  onDropped?: (cause: DropCause, info: DropInfo) => void;
  /**
   * A connection that has not made one authenticated request by then is closed, so that idle
   * connections cannot use up maxConnections and lock the watcher and operators out.
   */
  authDeadlineMs?: number;
  onClose?: (connection: Connection) => void;
  /** Bytes held at most, in all, for connections that have not authenticated (default UNAUTHENTICATED_BUFFER_BYTES). */
  unauthenticatedBufferBytes?: number;
}

const requestIdRe = new RegExp(REQUEST_ID_PATTERN);
/** Connection serials are unique across every server in the process (the executor has two). */
let connectionSerial = 0;
/** Requests an authenticated connection may have waiting; past it, new ones are refused BUSY unverified. */
export const MAX_QUEUED_PER_CONNECTION = 64;
/** Requests a connection that has not authenticated yet may have waiting. */
export const MAX_QUEUED_UNAUTHENTICATED = 1;
/** Refused-at-the-gate requests after which a connection is closed: an honest client sends none. */
export const MAX_REFUSALS_PER_CONNECTION = 8;
/** Time from connecting to the first authenticated request: an honest client needs a few ms. */
export const DEFAULT_AUTH_DEADLINE_MS = 2_000;
export const DEFAULT_MAX_CONNECTIONS = 64;
/**
 * Reads (chunks) a connection that has not authenticated may take to deliver a frame. A client
 * writes a request in one write, which arrives in one or two reads; a peer trickling a frame a few
 * bytes at a time would otherwise cost one event per few bytes for the whole auth deadline.
 */
export const MAX_CHUNKS_PER_FRAME_UNAUTHENTICATED = 32;
/**
 * Bytes all connections that have not authenticated may hold at once, per socket: 100 frames at
 * the frame limit. An honest request is a few hundred bytes; 256 slots of ~80 KiB frames (each
 * also held as parsed strings) once held ~400 MiB of heap, more than V8 gives a 1 GiB machine.
 */
export const UNAUTHENTICATED_BUFFER_BYTES = 8 * 1024 * 1024;

export class SocketServer {
  private ipc: IPCModuleInstance | null = null;
  private readonly connections = new Map<Socket, ConnectionImpl>();
  private drainScheduled = false;
  private readonly name: string;
  private readonly maxConnections: number;
  private readonly unauthenticatedBudget: number;
  /** Bytes held now for connections that have not authenticated (ConnectionImpl.held). */
  private unauthenticated = 0;

  private readonly options: ServerOptions;

  constructor(options: ServerOptions) {
    this.options = options;
    this.name = options.name ?? 'socket';
    this.maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    this.unauthenticatedBudget = options.unauthenticatedBufferBytes ?? UNAUTHENTICATED_BUFFER_BYTES;
  }

  /** Bytes held now for connections that have not authenticated (partial frames, queued frames). */
  get unauthenticatedBytes(): number {
    return this.unauthenticated;
  }

  /** Set what a connection holds; past the budget, close the unauthenticated connections holding the most. */
  private hold(conn: ConnectionImpl, pending: number, queued: number): void {
    const before = conn.pending + conn.queuedBytes;
    conn.pending = pending;
    conn.queuedBytes = queued;
    if (conn.authenticated || conn.closed) return;
    this.unauthenticated += pending + queued - before;
    while (this.unauthenticated > this.unauthenticatedBudget) {
      let worst: [Socket, ConnectionImpl] | null = null;
      for (const entry of this.connections) {
        const c = entry[1];
        if (!c.authenticated && !c.closed && (!worst || c.pending + c.queuedBytes > worst[1].pending + worst[1].queuedBytes)) worst = entry;
      }
      if (!worst) break;
      this.drop(worst[0], worst[1], 'over-budget', `connections that have not authenticated hold more than ${this.unauthenticatedBudget} bytes; this one held the most (${worst[1].pending + worst[1].queuedBytes})`);
    }
  }

  /** A connection stops counting against the budget: it authenticated, or it is gone. */
  private release(conn: ConnectionImpl): void {
    if (!conn.authenticated && !conn.closed) this.unauthenticated -= conn.pending + conn.queuedBytes;
  }

  async start(): Promise<void> {
    const { path, group } = this.options;
    const gid = this.options.gid ?? (group === null ? null : lookupGid(group));
    const dir = dirname(path);
    if (this.options.ownDirectory) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const st = lstatSync(dir);
      if (!st.isDirectory() || st.isSymbolicLink()) throw new Error(`${dir} (the directory of ${path}) is not a directory`);
      if (st.uid !== (process.getuid?.() ?? st.uid)) throw new Error(`${dir} (the directory of ${path}) is owned by uid ${st.uid}, not by this user; remove it`);
      if (st.mode & 0o1002) throw new Error(`${dir} (the directory of ${path}) is world-writable or sticky (a shared directory); give the socket a directory of its own`);
      chmodSync(dir, 0o700);
    } else {
      mkdirSync(dir, { recursive: true, mode: 0o750 });
    }
    if (gid !== null) {
      chownSync(dir, 0, gid);
      chmodSync(dir, 0o750);
    }
    // node-ipc's own limit is only the hard backstop (file descriptors): closed sockets leave its
    // count a moment later, and the eviction below must be what decides who gets a slot.
    const ipc = newIpc(`pullnix-executor-${this.name}`, { maxConnections: this.maxConnections * 4 });
    this.ipc = ipc;
    await new Promise<void>((resolve, reject) => {
      ipc.serve(path, () => resolve());
      ipc.server.on('error', ((error: Error) => reject(error)) as never);
      ipc.server.on(WIRE.request, ((data: unknown, socket: Socket) => this.onRequest(data, socket)) as never);
      ipc.server.on('connect', ((socket: Socket) => this.onConnect(socket)) as never);
      ipc.server.on('socket.disconnected', ((socket: Socket) => this.onClose(socket)) as never);
      ipc.server.on('close', ((socket: Socket) => this.onClose(socket)) as never);
      ipc.server.start();
    });
    // The socket file is created with the umask's mode; narrow it before anyone can rely on it.
    chmodSync(path, gid === null ? 0o600 : 0o660);
    if (gid !== null) chownSync(path, process.getuid?.() ?? 0, gid);
  }

  stop(): void {
    this.ipc?.server.stop();
    this.ipc = null;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  private onConnect(socket: Socket): void {
    // node-ipc also publishes 'connect' once with the listening server itself; only sockets count.
    if (typeof (socket as Partial<Socket>).destroy !== 'function' || !('remoteAddress' in socket)) return;
    if (this.connections.has(socket)) return;
    const conn = new ConnectionImpl(++connectionSerial, socket, (message) => this.send(socket, WIRE.push, message));
    this.connections.set(socket, conn);
    this.gate(socket, conn);
    if (this.connections.size > this.maxConnections && !this.evictFor(conn)) {
      this.drop(socket, conn, 'full', `${this.maxConnections} connections, all authenticated`);
      return;
    }
    conn.authTimer = setTimeout(() => {
      if (!conn.authenticated) this.drop(socket, conn, 'auth-deadline', `no authenticated request within ${this.authDeadlineMs} ms of connecting`);
    }, this.authDeadlineMs);
    conn.authTimer.unref();
    const hello: Hello = { v: PROTOCOL_VERSION, run: this.options.authenticator.runId };
    this.send(socket, WIRE.hello, hello);
  }

  private get authDeadlineMs(): number {
    return this.options.authDeadlineMs ?? DEFAULT_AUTH_DEADLINE_MS;
  }

  /** Close the oldest connection that has not authenticated (never `newcomer`); false if there is none. */
  private evictFor(newcomer: ConnectionImpl): boolean {
    for (const [socket, conn] of this.connections) {
      if (conn === newcomer || conn.authenticated || conn.closed) continue;
      this.drop(socket, conn, 'evicted', `${this.maxConnections} connections; the oldest that had not authenticated made room for a new one`);
      return true;
    }
    return false;
  }

  private drop(socket: Socket, conn: ConnectionImpl, cause: DropCause, detail: string): void {
    if (conn.closed) return;
    this.options.onDropped?.(cause, { socket: this.name, connection: conn.serial, detail });
    this.forget(socket, conn);
    socket.destroy();
  }

  /**
   * Put the raw-size gate in front of node-ipc's parser: node-ipc's 'data' listener only ever
   * receives whole frames, each at most MAX_FRAME_IN_BYTES; a connection that sends a longer one
   * is closed before any of it is parsed. The partial frame is kept as a list of chunks (each
   * chunk scanned once for the delimiter), so trickling a frame costs linear time, not quadratic.
   */
  private gate(socket: Socket, conn: ConnectionImpl): void {
    const parsers = socket.listeners('data') as ((chunk: string) => void)[];
    socket.removeAllListeners('data');
    const parse = (frames: string) => {
      for (const p of parsers) p(frames);
    };
    let parts: string[] = [];
    let pending = 0; // bytes of the frame not yet terminated
    const tooLarge = (bytes: number) => {
      this.drop(socket, conn, 'frame-too-large', `a frame of more than ${bytes} bytes (at most ${MAX_FRAME_IN_BYTES})`);
      parts = [];
    };
    socket.on('data', (chunk: string | Buffer) => {
      if (conn.closed) return;
      const text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
      let start = 0;
      let end = text.indexOf(FRAME_DELIMITER);
      if (end === -1) {
        pending += Buffer.byteLength(text);
        if (pending > MAX_FRAME_IN_BYTES) return tooLarge(pending);
        parts.push(text);
        this.hold(conn, pending, conn.queuedBytes);
        if (conn.closed) return;
        if (!conn.authenticated && parts.length > MAX_CHUNKS_PER_FRAME_UNAUTHENTICATED) {
          this.drop(socket, conn, 'trickle', `a frame still incomplete after ${parts.length} reads, before authenticating`);
          parts = [];
        }
        return;
      }
      while (end !== -1) {
        const bytes = (start === 0 ? pending : 0) + Buffer.byteLength(text.slice(start, end));
        if (bytes > MAX_FRAME_IN_BYTES) return tooLarge(bytes);
        start = end + FRAME_DELIMITER.length;
        end = text.indexOf(FRAME_DELIMITER, start);
      }
      const rest = text.slice(start);
      const restBytes = Buffer.byteLength(rest);
      if (restBytes > MAX_FRAME_IN_BYTES) return tooLarge(restBytes);
      parts.push(text.slice(0, start));
      const frames = parts.join('');
      parts = rest ? [rest] : [];
      pending = restBytes;
      // The frames' bytes count while node-ipc parses them; onRequest keeps what it queues.
      conn.arriving = Buffer.byteLength(frames);
      this.hold(conn, pending + conn.arriving, conn.queuedBytes);
      if (conn.closed) return;
      parse(frames);
      conn.arriving = 0;
      this.hold(conn, pending, conn.queuedBytes);
    });
  }

  private forget(socket: Socket, conn: ConnectionImpl): void {
    if (conn.closed) return;
    this.release(conn);
    if (conn.authTimer) clearTimeout(conn.authTimer);
    conn.queue.length = 0;
    this.connections.delete(socket);
    conn.closed = true;
    this.options.onClose?.(conn);
  }

  private onClose(socket: Socket): void {
    const conn = this.connections.get(socket);
    if (conn) this.forget(socket, conn);
  }

  /**
   * Frames are queued per connection and served round-robin, one per connection per turn of the
   * event loop: a local process flooding the socket with forged requests (each costs an Ed25519
   * verify) delays another connection's request by about one verify, not by the flood's backlog.
   */
  private onRequest(data: unknown, socket: Socket): void {
    const conn = this.connections.get(socket);
    if (!conn || conn.closed) return;
    const limit = conn.authenticated ? MAX_QUEUED_PER_CONNECTION : MAX_QUEUED_UNAUTHENTICATED;
    if (conn.queue.length >= limit) {
      const why = conn.authenticated ? `more than ${limit} requests waiting on this connection` : 'one request at a time until this connection has made an authenticated request';
      this.refuse(socket, conn, new PullnixError('BUSY', why), data);
      return;
    }
    // Wrapped: a frame with no `data` is a request too (answered BAD_REQUEST), not an empty slot.
    // Until it authenticates, a connection's queued frame counts at its raw size (at most one).
    const bytes = conn.authenticated ? 0 : Math.min(conn.arriving, MAX_FRAME_IN_BYTES);
    conn.queue.push({ data, bytes });
    if (bytes > 0) this.hold(conn, conn.pending, conn.queuedBytes + bytes);
    if (conn.closed) return;
    this.scheduleDrain();
  }

  private scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    setImmediate(() => {
      this.drainScheduled = false;
      // Passes of one request per connection, until the queues are empty or ~1 ms is spent;
      // then yield to I/O so a newly arrived request joins the rotation.
      const deadline = performance.now() + 1;
      let more = true;
      while (more && performance.now() < deadline) {
        more = false;
        for (const [socket, conn] of this.connections) {
          const frame = conn.queue.shift();
          if (frame === undefined) continue;
          if (frame.bytes > 0) this.hold(conn, conn.pending, Math.max(0, conn.queuedBytes - frame.bytes));
          this.serve(frame.data, socket, conn);
          if (conn.queue.length > 0) more = true;
        }
      }
      if (more) this.scheduleDrain();
    });
  }

  /** Answer a frame refused before any handler ran; a connection that keeps sending them is closed. */
  private refuse(socket: Socket, conn: ConnectionImpl, err: PullnixError, data: unknown): void {
    const id = requestIdOf(data);
    const d = data as { keyId?: unknown; method?: unknown } | null | undefined;
    this.options.onRefused?.(err, {
      id,
      keyId: typeof d?.keyId === 'string' ? d.keyId.slice(0, 64) : null,
      method: typeof d?.method === 'string' ? d.method.slice(0, 64) : null,
      verifiedKey: err.verifiedKey,
      socket: this.name,
      connection: conn.serial,
    });
    this.respond(socket, { v: PROTOCOL_VERSION, id, ok: false, error: err.toJSON() });
    if (++conn.refusals >= MAX_REFUSALS_PER_CONNECTION) {
      this.options.onDropped?.('refusals', { socket: this.name, connection: conn.serial, detail: `${conn.refusals} refused requests` });
      this.forget(socket, conn);
      socket.end();
      socket.destroySoon();
    }
  }

  private serve(data: unknown, socket: Socket, conn: ConnectionImpl): void {
    const id = requestIdOf(data);
    let request: AuthenticatedRequest;
    try {
      if (data === undefined) throw new PullnixError('BAD_REQUEST', 'the frame has no data: a request is the frame\'s `data`');
      request = this.options.authenticator.authenticate(data);
    } catch (error) {
      this.refuse(socket, conn, PullnixError.from(error), data);
      return;
    }
    this.release(conn);
    conn.authenticated = true;
    if (conn.authTimer) clearTimeout(conn.authTimer);
    conn.authTimer = null;
    this.options.handler(request, conn).then(
      (result) => this.respond(socket, { v: PROTOCOL_VERSION, id, ok: true, result: result ?? {} }),
      (error: unknown) => {
        const err = PullnixError.from(error);
        const keyId = request.envelope.keyId;
        this.options.onRefused?.(err, { id, keyId, method: request.method, verifiedKey: keyId, socket: this.name, connection: conn.serial });
        this.respond(socket, { v: PROTOCOL_VERSION, id, ok: false, error: err.toJSON() });
      },
    );
  }

  private respond(socket: Socket, response: Response): void {
    this.send(socket, WIRE.response, response);
  }

  private send(socket: Socket, event: string, data: unknown): void {
    if (!this.ipc || socket.destroyed) return;
    try {
      this.ipc.server.emit(socket, event, data);
    } catch {
      // The peer went away; nothing to answer.
    }
  }
}

class ConnectionImpl implements Connection {
  closed = false;
  refusals = 0;
  authenticated = false;
  authTimer: NodeJS.Timeout | null = null;
  readonly queue: { data: unknown; bytes: number }[] = [];
  /** Bytes of the frame not yet terminated, and of the frames queued before authenticating. */
  pending = 0;
  queuedBytes = 0;
  /** Bytes of the frames node-ipc is parsing now (counted until onRequest queues or refuses them). */
  arriving = 0;
  readonly serial: number;
  private readonly socket: Socket;
  private readonly sendPush: (message: Push) => void;

  constructor(serial: number, socket: Socket, sendPush: (message: Push) => void) {
    this.serial = serial;
    this.socket = socket;
    this.sendPush = sendPush;
  }

  push(message: Push): void {
    if (!this.closed && !this.socket.destroyed) this.sendPush(message);
  }
}

function requestIdOf(data: unknown): string {
  const raw = (data as { id?: unknown } | null | undefined)?.id;
  return typeof raw === 'string' && requestIdRe.test(raw) ? raw : '';
}

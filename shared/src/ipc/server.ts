/**
 * The executor's socket: node-ipc over a Unix socket, one request → one response matched by id.
 * Every frame goes through the Authenticator before any handler sees it; a refusal is answered
 * with `{code, message}` and logged, and changes nothing.
 */
import { chmodSync, chownSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Socket } from 'node:net';
import { Authenticator, type AuthenticatedRequest } from '../protocol/authenticate.ts';
import { PROTOCOL_VERSION, WIRE, type Push, type Response } from '../protocol/envelope.ts';
import { PullnixError } from '../protocol/errors.ts';
import { REQUEST_ID_PATTERN } from '../protocol/grammar.ts';
import { newIpc, type IPCModuleInstance } from './common.ts';

export interface Connection {
  readonly serial: number;
  push(message: Push): void;
  readonly closed: boolean;
}

export type Handler = (request: AuthenticatedRequest, connection: Connection) => Promise<unknown>;

export interface ServerOptions {
  path: string;
  authenticator: Authenticator;
  handler: Handler;
  /** Group that may connect (socket 0660 root:group, directory 0750). null: owner only. */
  group: string | null;
  onRefused?: (error: PullnixError, info: { keyId: string | null; method: string | null; id: string }) => void;
  /**
   * A connection that has not made one authenticated request by then is closed, so that idle
   * connections cannot use up maxConnections and lock the watcher and operators out.
   */
  authDeadlineMs?: number;
  onClose?: (connection: Connection) => void;
}

const requestIdRe = new RegExp(REQUEST_ID_PATTERN);
/** Requests one connection may have waiting; past it, new ones are refused BUSY unverified. */
export const MAX_QUEUED_PER_CONNECTION = 64;
/** Refused-at-the-gate requests after which a connection is closed: an honest client sends none. */
export const MAX_REFUSALS_PER_CONNECTION = 8;
export const DEFAULT_AUTH_DEADLINE_MS = 10_000;

export class SocketServer {
  private ipc: IPCModuleInstance | null = null;
  private readonly connections = new Map<Socket, ConnectionImpl>();
  private serial = 0;
  private drainScheduled = false;

  private readonly options: ServerOptions;

  constructor(options: ServerOptions) {
    this.options = options;
  }

  async start(): Promise<void> {
    const { path, group } = this.options;
    const gid = group === null ? null : lookupGid(group);
    const dir = dirname(path);
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    if (gid !== null) {
      chownSync(dir, 0, gid);
      chmodSync(dir, 0o750);
    }
    const ipc = newIpc('pullnix-executor');
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

  private connectionFor(socket: Socket): ConnectionImpl {
    let conn = this.connections.get(socket);
    if (!conn) {
      conn = new ConnectionImpl(++this.serial, socket, (message) => this.send(socket, WIRE.push, message));
      this.connections.set(socket, conn);
    }
    return conn;
  }

  private onConnect(socket: Socket): void {
    // node-ipc also publishes 'connect' once with the listening server itself; only sockets count.
    if (typeof (socket as Partial<Socket>).destroy !== 'function' || !('remoteAddress' in socket)) return;
    const conn = this.connectionFor(socket);
    conn.authTimer = setTimeout(() => {
      if (!conn.authenticated) socket.destroy();
    }, this.options.authDeadlineMs ?? DEFAULT_AUTH_DEADLINE_MS);
    conn.authTimer.unref();
  }

  private onClose(socket: Socket): void {
    const conn = this.connections.get(socket);
    if (!conn) return;
    if (conn.authTimer) clearTimeout(conn.authTimer);
    this.connections.delete(socket);
    conn.closed = true;
    this.options.onClose?.(conn);
  }

  /**
   * Frames are queued per connection and served round-robin, one per connection per turn of the
   * event loop: a local process flooding the socket with forged requests (each costs an Ed25519
   * verify) delays another connection's request by about one verify, not by the flood's backlog.
   */
  private onRequest(data: unknown, socket: Socket): void {
    const conn = this.connectionFor(socket);
    if (conn.queue.length >= MAX_QUEUED_PER_CONNECTION) {
      const err = new PullnixError('BUSY', `more than ${MAX_QUEUED_PER_CONNECTION} requests waiting on this connection`);
      this.respond(socket, { v: PROTOCOL_VERSION, id: requestIdOf(data), ok: false, error: err.toJSON() });
      return;
    }
    conn.queue.push(data);
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
          const data = conn.queue.shift();
          if (data === undefined) continue;
          this.serve(data, socket, conn);
          if (conn.queue.length > 0) more = true;
        }
      }
      if (more) this.scheduleDrain();
    });
  }

  private serve(data: unknown, socket: Socket, conn: ConnectionImpl): void {
    const id = requestIdOf(data);
    let request: AuthenticatedRequest;
    try {
      request = this.options.authenticator.authenticate(data);
    } catch (error) {
      const err = PullnixError.from(error);
      const d = data as { keyId?: unknown; method?: unknown } | null;
      this.options.onRefused?.(err, {
        id,
        keyId: typeof d?.keyId === 'string' ? d.keyId.slice(0, 64) : null,
        method: typeof d?.method === 'string' ? d.method.slice(0, 64) : null,
      });
      this.respond(socket, { v: PROTOCOL_VERSION, id, ok: false, error: err.toJSON() });
      if (++conn.refusals >= MAX_REFUSALS_PER_CONNECTION) {
        conn.queue.length = 0;
        socket.end();
        socket.destroySoon();
      }
      return;
    }
    conn.authenticated = true;
    this.options.handler(request, conn).then(
      (result) => this.respond(socket, { v: PROTOCOL_VERSION, id, ok: true, result: result ?? {} }),
      (error: unknown) => {
        const err = PullnixError.from(error);
        this.options.onRefused?.(err, { id, keyId: request.envelope.keyId, method: request.method });
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
  readonly queue: unknown[] = [];
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
  const raw = (data as { id?: unknown } | null)?.id;
  return typeof raw === 'string' && requestIdRe.test(raw) ? raw : '';
}

/** getgrnam for the one thing we need: a group's id, from /etc/group. */
export function lookupGid(group: string): number {
  const text = readFileSync('/etc/group', 'utf8');
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new Error(`operator group ${JSON.stringify(group)} does not exist (create it, or set operators.group)`);
}

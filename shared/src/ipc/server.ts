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
  onClose?: (connection: Connection) => void;
}

const requestIdRe = new RegExp(REQUEST_ID_PATTERN);

export class SocketServer {
  private ipc: IPCModuleInstance | null = null;
  private readonly connections = new Map<Socket, ConnectionImpl>();
  private serial = 0;

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

  private onClose(socket: Socket): void {
    const conn = this.connections.get(socket);
    if (!conn) return;
    this.connections.delete(socket);
    conn.closed = true;
    this.options.onClose?.(conn);
  }

  private onRequest(data: unknown, socket: Socket): void {
    const conn = this.connectionFor(socket);
    const rawId = (data as { id?: unknown } | null)?.id;
    const id = typeof rawId === 'string' && requestIdRe.test(rawId) ? rawId : '';
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
      return;
    }
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

/** getgrnam for the one thing we need: a group's id, from /etc/group. */
export function lookupGid(group: string): number {
  const text = readFileSync('/etc/group', 'utf8');
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new Error(`operator group ${JSON.stringify(group)} does not exist (create it, or set operators.group)`);
}

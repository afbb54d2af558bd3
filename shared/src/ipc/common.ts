import { IPCModule } from 'node-ipc';
import { FRAME_DELIMITER, MAX_FRAME_BYTES } from './frame.ts';

export { FRAME_DELIMITER, MAX_FRAME_BYTES };

/** A fresh node-ipc instance (never the module singleton), quiet, with the guarded parser. */
export function newIpc(id: string, overrides: { maxConnections?: number } = {}): IPCModuleInstance {
  const ipc = new IPCModule() as unknown as IPCModuleInstance;
  Object.assign(ipc.config, {
    id,
    silent: true,
    parser: 'guarded',
    maxMessageSize: MAX_FRAME_BYTES,
    messageTimeout: 10_000,
    maxConnections: overrides.maxConnections ?? 64,
    delimiter: FRAME_DELIMITER,
    maxRetries: 0,
    stopRetrying: true,
    logInColor: false,
  });
  return ipc;
}

/** The parts of node-ipc 14's untyped API pullnix uses. */
export interface IPCModuleInstance {
  config: Record<string, unknown>;
  of: Record<string, IpcPeer | undefined>;
  server: IpcServerHandle;
  serve(path: string, callback: () => void): void;
  connectTo(id: string, path: string, callback: () => void): void;
  disconnect(id: string): void;
}

export interface IpcPeer {
  on(event: string, handler: (...args: never[]) => void): void;
  off?(event: string, handler: (...args: never[]) => void): void;
  emit(event: string, data: unknown): boolean;
  socket: import('node:net').Socket | false;
}

export interface IpcServerHandle {
  on(event: string, handler: (...args: never[]) => void): void;
  emit(socket: import('node:net').Socket, event: string, data: unknown): void;
  start(): void;
  stop(): void;
  server: import('node:net').Server;
}

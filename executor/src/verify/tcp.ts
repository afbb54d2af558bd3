/** A `tcp` check: host and port accept a connection (which is closed at once). */
import { connect } from 'node:net';
import type { CheckConfig } from '@pullnix/shared';
import { attemptSignal, type Check } from './check.ts';

export function tcpCheck(name: string, check: CheckConfig): Check {
  const host = check.host!;
  const port = check.port!;
  return {
    name,
    kind: 'tcp',
    what: `connect to ${host}:${port}`,
    attemptTimeoutMs: check.timeoutSec * 1000,
    attempt({ timeoutMs, signal }) {
      return new Promise((resolve) => {
        const abort = attemptSignal(signal, timeoutMs);
        const socket = connect({ host, port, signal: abort });
        socket.once('connect', () => {
          socket.destroy();
          resolve({ ok: true });
        });
        socket.once('error', (error: NodeJS.ErrnoException) => {
          socket.destroy();
          resolve({ ok: false, error: abort.aborted ? `no connection within ${timeoutMs} ms` : (error.code ?? error.message) });
        });
      });
    },
  };
}

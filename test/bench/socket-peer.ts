/**
 * The server half of the socket benchmark, in its own process as in production:
 *   node socket-peer.js pullnix <socket> <watcher-public-key>   the real SocketServer + Authenticator
 *   node socket-peer.js plain <socket>                           newline-JSON echo over node:net (baseline)
 * Prints "ready" when listening.
 */
import { createServer } from 'node:net';
import { rmSync } from 'node:fs';
import { Authenticator, newRunId, SocketServer } from '@pullnix/shared';

const [mode, path, publicKey] = process.argv.slice(2);
if (!path) throw new Error('usage: socket-peer.js pullnix|plain <socket> [public key]');

const statusLike = { version: '0.1.0', executor: { pid: process.pid, startedAt: new Date().toISOString(), busy: false }, paused: null, deployed: null };

if (mode === 'plain') {
  rmSync(path, { force: true });
  createServer((socket) => {
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) !== -1) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        const request = JSON.parse(line) as { id: string };
        socket.write(`${JSON.stringify({ v: 1, id: request.id, ok: true, result: statusLike })}\n`);
      }
    });
    socket.on('error', () => {});
  }).listen(path, () => console.log('ready'));
} else {
  if (!publicKey) throw new Error('pullnix mode needs the public key');
  const server = new SocketServer({
    path,
    group: null,
    authenticator: new Authenticator({ keys: [{ keyId: 'watcher', role: 'watcher', publicKey }], maxNonces: 10_000_000, runId: newRunId() }),
    handler: async () => statusLike,
  });
  await server.start();
  console.log('ready');
}

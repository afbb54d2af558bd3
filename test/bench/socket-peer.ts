/**
 * The server half of the socket benchmark, in its own process as in production:
 *   node socket-peer.js pullnix <socket> <watcher-public-key>   the real SocketServer + Authenticator
 *   node socket-peer.js executor <private socket> <group socket> <watcher-public-key> <operator-public-key>
 *                                                                the executor's two sockets (createServers),
 *                                                                its rate-limited refusal log on stdout
 *   node socket-peer.js plain <socket>                           newline-JSON echo over node:net (baseline)
 * Prints "ready" when listening.
 */
import { createServer } from 'node:net';
import { rmSync } from 'node:fs';
import { Authenticator, createLogger, newRunId } from '@pullnix/shared';
import { SocketServer } from '@pullnix/shared/server';
import { createServers, type Executor } from '@pullnix/executor';

const [mode, path, publicKey] = process.argv.slice(2);
if (!path) throw new Error('usage: socket-peer.js pullnix|plain <socket> [public key]');

const statusLike = { version: '0.1.0', executor: { pid: process.pid, startedAt: new Date().toISOString(), busy: false }, paused: null, deployed: null };

if (mode === 'executor') {
  const [, privatePath, groupPath, watcherKey, operatorKey] = process.argv.slice(2);
  if (!privatePath || !groupPath || !watcherKey || !operatorKey) throw new Error('executor mode needs two sockets and two public keys');
  // Only what the socket needs of the Executor: status, and being told a connection closed.
  const executor = { status: () => statusLike, connectionClosed: () => {} } as unknown as Executor;
  const servers = createServers({
    executor,
    log: createLogger({ level: 'info' }),
    keys: [
      { keyId: 'watcher', role: 'watcher', publicKey: watcherKey },
      { keyId: 'local-root', role: 'operator', publicKey: operatorKey },
    ],
    privatePath,
    groupPath,
    group: null,
  });
  await servers.start();
  console.log('ready');
} else if (mode === 'plain') {
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
    authenticator: new Authenticator({ keys: [{ keyId: 'watcher', role: 'watcher', publicKey }], maxNonces: 10_000_000, maxNoncesPerKey: 10_000_000, runId: newRunId() }),
    handler: async () => statusLike,
  });
  await server.start();
  console.log('ready');
}

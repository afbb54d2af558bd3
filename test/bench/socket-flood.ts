/**
 * A hostile local client for the socket benchmark: sends up to `count` forged requests (valid key
 * id, wrong signature: the most expensive refusal, one Ed25519 verify each), `inFlight` at a
 * time, for at most `seconds`, then exits (the benchmark stops it sooner, once it has measured).
 * Bounded in count and time, loopback Unix socket only.
 */
import { generateSigningKey, signRequest, SocketClient } from '@pullnix/shared';

const [path, countText, inFlightText, secondsText] = process.argv.slice(2);
if (!path) throw new Error('usage: socket-flood.js <socket> <count> <in flight> [seconds]');
const deadline = Date.now() + Number(secondsText ?? 60) * 1000;
const socketPath: string = path;
const count = Number(countText ?? 20000);
const inFlight = Number(inFlightText ?? 32);
const forger = generateSigningKey('watcher'); // same key id as the real watcher, different key
// The server closes a connection after a few refusals; a determined attacker reconnects.
let client = new SocketClient({ path: socketPath, key: forger });
await client.connect();
console.log('ready');
let sent = 0;
let reconnects = 0;
let connecting: Promise<void> | null = null;
async function reconnect(): Promise<void> {
  connecting ??= (async () => {
    client.close();
    client = new SocketClient({ path: socketPath, key: forger });
    await client.connect();
    reconnects++;
  })().finally(() => (connecting = null));
  await connecting;
}
async function lane(): Promise<void> {
  while (sent < count && Date.now() < deadline) {
    sent++;
    const forged = signRequest(forger, client.run!, 'status', {});
    try {
      await client.sendRaw(forged, forged.id, 30_000);
    } catch {
      await reconnect().catch(() => undefined);
    }
  }
}
await Promise.all(Array.from({ length: inFlight }, lane));
client.close();
console.log(`done ${sent} forged requests, ${reconnects} reconnects`);

/**
 * A keyless member of the operator group, for the socket benchmark: it can open the group's
 * socket and nothing else. For `seconds` seconds it
 *   - holds `idle` connections, re-opening each one the moment the executor closes it (the
 *     reconnect flood that used to hold every connection slot);
 *   - sends 1 MiB frames on `big` lanes, reconnecting after each close;
 *   - trickles a half frame a few bytes at a time on `trickle` lanes, never finishing it;
 *   - on `frames` lanes, writes 8 frames just under the frame limit (~78 KiB) at once, never
 *     reading an answer, and reconnects when closed (the flood of ~80 KiB frames on every group
 *     slot of issue 21).
 * Prints "ready" once the first wave is open, and its counts at the end. Loopback Unix socket only.
 *
 *   node socket-keyless.js <group socket> <seconds> [idle=400] [big=4] [trickle=32] [frames=0]
 */
import { connect, type Socket } from 'node:net';

const [path, secondsText, idleText, bigText, trickleText, framesText] = process.argv.slice(2);
if (!path || !secondsText) throw new Error('usage: socket-keyless.js <socket> <seconds> [idle] [big] [trickle]');
const socketPath: string = path;
const deadline = Date.now() + Number(secondsText) * 1000;
const counts = { connections: 0, bigFrames: 0, trickledBytes: 0 };
const live = new Set<Socket>();
const over = () => Date.now() >= deadline;

function open(onConnect: (s: Socket) => void, again: () => void): void {
  if (over()) return;
  const s = connect(socketPath);
  live.add(s);
  counts.connections++;
  s.on('error', () => {});
  s.resume(); // read and drop the hello and any answers
  s.on('connect', () => onConnect(s));
  s.on('close', () => {
    live.delete(s);
    setImmediate(again);
  });
}

const idleLane = (): void => open(() => {}, idleLane);

const MiB = 'x'.repeat(1024 * 1024);
const bigLane = (): void =>
  open((s) => {
    // One 1 MiB frame (node-ipc's own limit), then a delimiter, then more: until the executor closes it.
    const write = (error?: Error | null) => {
      if (error || s.destroyed || over()) return;
      counts.bigFrames++;
      s.write(`{"type":"pullnix.request","data":{"pad":"${MiB}"}}\f`, write);
    };
    write();
  }, bigLane);

const half = JSON.stringify({ type: 'pullnix.request', data: { v: 2, id: 'trickle', method: 'status', params: {}, pad: 'y'.repeat(60_000) } });
const trickleLane = (): void =>
  open((s) => {
    let at = 0;
    const timer = setInterval(() => {
      if (s.destroyed || over() || at >= half.length / 2) return clearInterval(timer);
      s.write(half.slice(at, at + 64));
      at += 64;
      counts.trickledBytes += 64;
    }, 1);
    s.on('close', () => clearInterval(timer));
  }, trickleLane);

// Under MAX_FRAME_IN_BYTES (80 KiB): each is a whole frame, parsed, then queued or refused.
const nearLimit = `{"type":"pullnix.request","data":{"v":2,"id":"flood","method":"status","params":{},"pad":"${'z'.repeat(78 * 1024)}"}}\f`;
const frameLane = (): void =>
  open((s) => {
    s.pause(); // never read an answer
    for (let i = 0; i < 8 && !s.destroyed && !over(); i++) (s.write(nearLimit), counts.bigFrames++);
  }, frameLane);

for (let i = 0; i < Number(idleText ?? 400); i++) idleLane();
for (let i = 0; i < Number(framesText ?? 0); i++) frameLane();
for (let i = 0; i < Number(bigText ?? 4); i++) bigLane();
for (let i = 0; i < Number(trickleText ?? 32); i++) trickleLane();
console.log('ready');
const started = Date.now();
const progress = setInterval(() => console.log(`${counts.connections} connections, ${counts.bigFrames} 1 MiB frames, ${counts.trickledBytes} trickled bytes after ${((Date.now() - started) / 1000).toFixed(1)} s`), 1000);
await new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())));
clearInterval(progress);
for (const s of live) s.destroy();
console.log(`done ${counts.connections} connections, ${counts.bigFrames} 1 MiB frames, ${counts.trickledBytes} trickled bytes`);
process.exit(0);

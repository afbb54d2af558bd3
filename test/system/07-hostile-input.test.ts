/**
 * Scenario 7 — hostile local input. A user outside the operator group cannot open the socket (or
 * read the keys); a user inside it who holds no key gets nowhere with an unsigned request, a forged
 * signature (an operator's key id, someone else's key) or an unknown key; garbage on the socket is
 * dropped. Every request is refused, the refusals are logged, nothing changes. Then that user
 * floods the group's socket (reconnects holding every slot, 1 MiB frames, trickled half frames)
 * while root's pullnix-ctl and a restarted watcher keep working on root's own socket, and the
 * journal gets a handful of lines, not one per refusal.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { PULLNIX_GID, UIDS, sha256 } from './lib/bed.ts';
import { waitFor } from './lib/proc.ts';
import { installed, withBed } from './lib/scenario.ts';

/**
 * Runs inside the machine (Node 22, as an unprivileged user): one connection per frame, the
 * frame written raw with node-ipc 14's framing (JSON `{type, data}` + "\f"), the first answer
 * frame (or the connection's end) reported. Signed envelopes are made with the project's own
 * shared/ code, so only the part under test (key, signature) is wrong.
 */
const CLIENT = String.raw`
const net = await import('node:net');
const shared = await import('/opt/pullnix/shared/dist/src/index.js');
const [socketPath, operatorKeyId] = process.argv.slice(1);
const request = 'pullnix.request';
const forger = shared.generateSigningKey(operatorKeyId);        // the operator's key id, not its key
const stranger = shared.generateSigningKey('stranger');          // a key the executor never heard of
// Each frame is made once the connection's hello named the executor run (as a real client does).
const cases = {
  unsigned: (run) => { const { sig: _drop, ...unsigned } = shared.signRequest(stranger, run, 'pause', { reason: 'unsigned' }); return unsigned; },
  forged: (run) => shared.signRequest(forger, run, 'pause', { reason: 'forged' }),
  unknownKey: (run) => shared.signRequest(stranger, run, 'pause', { reason: 'stranger' }),
  forgedDeploy: (run) => shared.signRequest(forger, run, 'deploy', { commit: 'a'.repeat(40), toplevel: '/nix/store/' + '0'.repeat(32) + '-evil' }),
  garbage: null,
};
const results = {};
for (const [name, make] of Object.entries(cases)) {
  results[name] = await new Promise((resolve) => {
    let buf = '';
    const done = (r) => { clearTimeout(timer); sock.destroy(); resolve(r); };
    const sock = net.connect(socketPath);
    const timer = setTimeout(() => done({ timeout: true }), 5000);
    sock.on('error', (e) => done({ error: e.code }));
    sock.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\f')) >= 0) {
        const frame = JSON.parse(buf.slice(0, i));
        buf = buf.slice(i + 1);
        if (frame.type === 'pullnix.hello') sock.write(make ? JSON.stringify({ type: request, data: make(frame.data.run) }) + '\f' : 'this is not json\f');
        else return done({ frame });
      }
    });
    sock.on('end', () => done({ closed: true }));
  });
}
console.log(JSON.stringify(results));
`;

/**
 * The keyless flood, inside the machine as a member of the operator group: for SECONDS seconds,
 * 300 connections re-opened as soon as the executor closes them, 2 lanes of 1 MiB frames, 16
 * lanes trickling a half frame 64 bytes at a time. Prints its counts.
 */
const FLOOD = String.raw`
const net = await import('node:net');
const [socketPath, secondsText] = process.argv.slice(1);
const deadline = Date.now() + Number(secondsText) * 1000;
const counts = { connections: 0, bigFrames: 0, trickled: 0, errors: 0 };
const over = () => Date.now() >= deadline;
const live = new Set();
function open(onConnect, again) {
  if (over()) return;
  const s = net.connect(socketPath);
  live.add(s);
  counts.connections++;
  s.on('error', () => counts.errors++);
  s.resume();
  s.on('connect', () => onConnect(s));
  s.on('close', () => { live.delete(s); setImmediate(again); });
}
const idle = () => open(() => {}, idle);
const MiB = 'x'.repeat(1024 * 1024);
const big = () => open((s) => { const w = (err) => { if (err || s.destroyed || over()) return; counts.bigFrames++; s.write('{"type":"pullnix.request","data":{"pad":"' + MiB + '"}}\f', w); }; w(); }, big);
const half = JSON.stringify({ type: 'pullnix.request', data: { v: 2, id: 't', method: 'status', params: {}, pad: 'y'.repeat(60000) } });
const trickle = () => open((s) => { let at = 0; const t = setInterval(() => { if (s.destroyed || over() || at > half.length / 2) return clearInterval(t); s.write(half.slice(at, at + 64)); at += 64; counts.trickled += 64; }, 1); }, trickle);
for (let i = 0; i < 300; i++) idle();
for (let i = 0; i < 2; i++) big();
for (let i = 0; i < 16; i++) trickle();
await new Promise((r) => setTimeout(r, Number(secondsText) * 1000));
for (const s of live) s.destroy();
console.log(JSON.stringify(counts));
process.exit(0);
`;

test('hostile local input: outsiders cannot connect; unsigned, forged and unknown-key requests are refused and logged; nothing changes', { timeout: 300_000 }, async (t) => {
  await withBed(t, { name: 'hostile-input' }, async (bed) => {
    const first = await installed(bed);
    const operatorKeyId = (JSON.parse(readFileSync(join(bed.dirs.state, 'keys/local-operator.key'), 'utf8')) as { keyId: string }).keyId;
    const stateFile = join(bed.dirs.state, 'state.json');
    const snapshot = async () => ({
      history: bed.historyLines(),
      state: sha256(readFileSync(stateFile, 'utf8')),
      live: await bed.liveSystem(),
      executorPid: await bed.mainPid('pullnix-executor.service'),
      bootLog: bed.bootLog(),
    });
    const before = await snapshot();
    const startedAt = new Date();

    // Modes: the socket and its directory keep everyone but root and the operator group out.
    const modes = (await bed.container.execOk(['stat', '-c', '%n %U:%G %a', '/run/pullnix', '/run/pullnix/executor.sock', '/run/pullnix/root', '/run/pullnix/root/executor.sock', '/var/lib/pullnix/keys'])).trim().split('\n');
    assert.deepEqual(modes, [
      '/run/pullnix root:pullnix 750',
      '/run/pullnix/executor.sock root:pullnix 660',
      '/run/pullnix/root root:root 700',
      '/run/pullnix/root/executor.sock root:root 600',
      '/var/lib/pullnix/keys root:root 700',
    ]);

    // mallory is not in the operator group: cannot connect at all, cannot read any key.
    const mallory = { uid: UIDS.mallory, gid: UIDS.mallory };
    const asMallory = await bed.container.exec(['/opt/node/bin/node', '--input-type=module', '-e', CLIENT, '/run/pullnix/executor.sock', operatorKeyId], { user: mallory });
    assert.equal(asMallory.code, 0, asMallory.stderr);
    const malloryResults = JSON.parse(asMallory.stdout) as Record<string, { error?: string }>;
    for (const [name, r] of Object.entries(malloryResults)) assert.equal(r.error, 'EACCES', `mallory, ${name}: ${JSON.stringify(r)}`);
    const malloryCtl = await bed.ctl(['status'], mallory);
    assert.equal(malloryCtl.code, 4, `pullnix-ctl status as mallory should exit 4 (denied): ${malloryCtl.stdout}${malloryCtl.stderr}`);
    assert.match(malloryCtl.stderr + malloryCtl.stdout, /pullnix/, 'the message names the group to join');
    const readKey = await bed.container.exec(['cat', '/var/lib/pullnix/keys/local-operator.key'], { user: mallory });
    assert.notEqual(readKey.code, 0, 'mallory cannot read the operator key');

    // opal is in the operator group but holds no operator key: connects, and is refused.
    const opal = { uid: UIDS.opal, gid: UIDS.opal, groups: [PULLNIX_GID] };
    const asOpal = await bed.container.exec(['/opt/node/bin/node', '--input-type=module', '-e', CLIENT, '/run/pullnix/executor.sock', operatorKeyId], { user: opal });
    assert.equal(asOpal.code, 0, asOpal.stderr);
    const r = JSON.parse(asOpal.stdout) as Record<string, { frame?: { type: string; data: { ok: boolean; error?: { code: string } } }; closed?: boolean; error?: string }>;
    const codeOf = (name: string) => {
      const res = r[name]!;
      assert.ok(res.frame, `${name}: expected an answer, got ${JSON.stringify(res)}`);
      assert.equal(res.frame.type, 'pullnix.response');
      assert.equal(res.frame.data.ok, false, `${name} must be refused: ${JSON.stringify(res.frame)}`);
      return res.frame.data.error?.code;
    };
    assert.equal(codeOf('unsigned'), 'BAD_REQUEST');
    assert.equal(codeOf('forged'), 'BAD_SIGNATURE');
    assert.equal(codeOf('unknownKey'), 'UNKNOWN_KEY');
    assert.equal(codeOf('forgedDeploy'), 'BAD_SIGNATURE');
    assert.ok(!r.garbage!.frame || r.garbage!.frame.data.ok === false, `garbage is never executed: ${JSON.stringify(r.garbage)}`);
    const opalCtl = await bed.ctl(['pause', '--reason', 'opal'], opal);
    assert.notEqual(opalCtl.code, 0, 'pullnix-ctl pause without an operator key fails');
    // Root's own socket is not for the group.
    const opalPrivate = await bed.container.exec(['/opt/node/bin/node', '--input-type=module', '-e', CLIENT, '/run/pullnix/root/executor.sock', operatorKeyId], { user: opal });
    for (const [name, res] of Object.entries(JSON.parse(opalPrivate.stdout) as Record<string, { error?: string }>)) assert.equal(res.error, 'EACCES', `opal on root's socket, ${name}`);

    // Each refusal is in the journal at warning priority, with its code.
    for (const code of ['BAD_REQUEST', 'BAD_SIGNATURE', 'UNKNOWN_KEY']) {
      const e = await bed.waitForEvent('request.refused', { code }, { after: startedAt, timeoutMs: 10_000 });
      assert.equal(e.priority, 4, `request.refused code=${code} is a warning`);
    }
    const refusals = (await bed.events('request.refused')).filter((e) => e.at >= startedAt);
    // Rate-limited: the first of each kind (socket, signing key, code) per interval in full; the
    // second BAD_SIGNATURE (forgedDeploy) is counted in the interval's socket.refusals_repeated.
    assert.ok(refusals.length >= 3, `every kind of hostile request was logged: ${refusals.map((e) => e.message).join(' | ')}`);
    assert.ok(!(await bed.events('control.paused')).length, 'nothing was paused');
    assert.ok(!(await bed.events('deploy.accepted')).some((e) => e.at >= startedAt), 'nothing was deployed');

    // Nothing changed, and the executor still serves its operator.
    const after = await waitFor('the executor answering root', async () => ((await bed.status()).executor.pid ? snapshot() : undefined));
    assert.deepEqual(after, before, 'history, state, live system, executor and boot default are unchanged');
    const status = await bed.status();
    assert.equal(status.paused, null);
    assert.equal(status.deployed?.commit, first.commit);

    // The keyless flood of the group's socket. Meanwhile root's pullnix-ctl answers, and a watcher
    // restarted in the middle of it (as after every deployment) connects again.
    const floodStart = new Date();
    const flood = bed.container.exec(['/opt/node/bin/node', '--input-type=module', '-e', FLOOD, '/run/pullnix/executor.sock', '40'], { user: opal, timeoutMs: 120_000 });
    await bed.waitForEvent('socket.dropped', { cause: 'evicted' }, { after: floodStart, timeoutMs: 30_000 });
    for (let i = 0; i < 5; i++) {
      const r = await bed.ctl(['status', '--json']);
      assert.equal(r.code, 0, `root's pullnix-ctl status during the flood: ${r.stderr}`);
      assert.equal((JSON.parse(r.stdout) as { executor: { pid: number } }).executor.pid, before.executorPid);
    }
    const restartedAt = new Date();
    await bed.container.execOk(['systemctl', 'restart', 'pullnix-watcher.service']);
    await bed.waitForEvent('executor.connected', {}, { after: restartedAt, timeoutMs: 30_000, units: ['pullnix-watcher.service'] });
    const synced = await bed.ctl(['sync']);
    assert.equal(synced.code, 0, `pullnix-ctl sync reaches the watcher during the flood: ${synced.stderr}`);
    await bed.waitForEvent('poll.sync_requested', {}, { after: restartedAt, timeoutMs: 30_000, units: ['pullnix-watcher.service'] });
    const flooded = await flood;
    assert.equal(flooded.code, 0, flooded.stderr);
    const counts = JSON.parse(flooded.stdout) as { connections: number; bigFrames: number; trickled: number };
    assert.ok(counts.connections > 300 && counts.bigFrames > 0 && counts.trickled > 0, `the flood ran: ${flooded.stdout}`);
    // Rate-limited: a few lines per socket and cause per interval, and the rest counted.
    await bed.waitForEvent('socket.refusals_repeated', {}, { after: floodStart, timeoutMs: 30_000 });
    const floodLines = [...(await bed.events('socket.dropped')), ...(await bed.events('request.refused')), ...(await bed.events('socket.refusals_repeated'))].filter((e) => e.at >= floodStart);
    assert.ok(floodLines.length < 60, `${counts.connections} connections made ${floodLines.length} journal lines`);
    const final = await bed.status();
    assert.equal(final.executor.pid, before.executorPid, 'the executor did not restart');
    assert.equal(final.watcher.connected, true);
  });
});

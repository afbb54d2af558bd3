/**
 * Scenario 7 — hostile local input. A user outside the operator group cannot open the socket (or
 * read the keys); a user inside it who holds no key gets nowhere with an unsigned request, a forged
 * signature (an operator's key id, someone else's key) or an unknown key; garbage on the socket is
 * dropped. Every request is refused, the refusals are logged, nothing changes.
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
const signed = (key, method, params) => shared.signRequest(key, method, params);
const { sig: _drop, ...unsigned } = signed(stranger, 'pause', { reason: 'unsigned' });
const cases = {
  unsigned: JSON.stringify({ type: request, data: unsigned }) + '\f',
  forged: JSON.stringify({ type: request, data: signed(forger, 'pause', { reason: 'forged' }) }) + '\f',
  unknownKey: JSON.stringify({ type: request, data: signed(stranger, 'pause', { reason: 'stranger' }) }) + '\f',
  forgedDeploy: JSON.stringify({ type: request, data: signed(forger, 'deploy', { commit: 'a'.repeat(40), toplevel: '/nix/store/' + '0'.repeat(32) + '-evil' }) }) + '\f',
  garbage: 'this is not json\f',
};
const results = {};
for (const [name, frame] of Object.entries(cases)) {
  results[name] = await new Promise((resolve) => {
    let buf = '';
    const done = (r) => { clearTimeout(timer); sock.destroy(); resolve(r); };
    const sock = net.connect(socketPath);
    const timer = setTimeout(() => done({ timeout: true }), 5000);
    sock.on('error', (e) => done({ error: e.code }));
    sock.on('connect', () => sock.write(frame));
    sock.on('data', (d) => {
      buf += d;
      const i = buf.indexOf('\f');
      if (i >= 0) done({ frame: JSON.parse(buf.slice(0, i)) });
    });
    sock.on('end', () => done({ closed: true }));
  });
}
console.log(JSON.stringify(results));
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
    const modes = (await bed.container.execOk(['stat', '-c', '%n %U:%G %a', '/run/pullnix', '/run/pullnix/executor.sock', '/var/lib/pullnix/keys'])).trim().split('\n');
    assert.deepEqual(modes, ['/run/pullnix root:pullnix 750', '/run/pullnix/executor.sock root:pullnix 660', '/var/lib/pullnix/keys root:root 700']);

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

    // Each refusal is in the journal at warning priority, with its code.
    for (const code of ['BAD_REQUEST', 'BAD_SIGNATURE', 'UNKNOWN_KEY']) {
      const e = await bed.waitForEvent('request.refused', { code }, { after: startedAt, timeoutMs: 10_000 });
      assert.equal(e.priority, 4, `request.refused code=${code} is a warning`);
    }
    const refusals = (await bed.events('request.refused')).filter((e) => e.at >= startedAt);
    assert.ok(refusals.length >= 4, `every hostile request was logged: ${refusals.map((e) => e.message).join(' | ')}`);
    assert.ok(!(await bed.events('control.paused')).length, 'nothing was paused');
    assert.ok(!(await bed.events('deploy.accepted')).some((e) => e.at >= startedAt), 'nothing was deployed');

    // Nothing changed, and the executor still serves its operator.
    const after = await waitFor('the executor answering root', async () => ((await bed.status()).executor.pid ? snapshot() : undefined));
    assert.deepEqual(after, before, 'history, state, live system, executor and boot default are unchanged');
    const status = await bed.status();
    assert.equal(status.paused, null);
    assert.equal(status.deployed?.commit, first.commit);
  });
});

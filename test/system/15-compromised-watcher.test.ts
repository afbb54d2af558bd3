/**
 * Scenario 15 — a compromised watcher (issue 21, item 1). trust.mode = all; code runs as the
 * watcher's user `pullnix-watcher` (it can read the watcher's own private key, write its state
 * directory, talk to its socket, build through the daemon) and tries to make root activate a
 * system that was not built from a trusted commit:
 *
 *   main: c1 (alice, installed) ─ c2 (alice: deployed by the watcher, verified by root)
 *                                                     ─ c3 (unsigned: the watcher refuses it; the attacker builds it)
 *
 *   a. a key of its own written into watcher.pub, a deploy of c3 signed with it: UNKNOWN_KEY (root pinned the key)
 *   b. the real watcher key, a deploy of the unsigned c3 with its system: UNTRUSTED, stage=signatures
 *   c. the real watcher key, a deploy of the signed, deployed c2 with c3's system: UNTRUSTED, stage=system
 *
 * After each: nothing recorded, c2's system live and the boot default. Each attack succeeds on the
 * executor of main 25d0040 (it trusted watcher.pub and activated any store path for any commit).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { SshSigner } from '../lib/signing.ts';
import { HOST, short, WATCHER_UID, type TestBed } from './lib/bed.ts';
import { installed, withBed } from './lib/scenario.ts';

const alice = new SshSigner('alice');
after(() => alice.cleanup());

const trust = { mode: 'all', allowedSigners: [alice.allowed()] };
const gen = (label: string) => ({ label, config: { trust } });
const AS_WATCHER = { user: { uid: WATCHER_UID, gid: WATCHER_UID } };

/**
 * The attacker: a script run as pullnix-watcher with the project's own client. `key` "own" mints a
 * key and puts its public half into watcher.pub first; "watcher" signs with the watcher's real key.
 * Prints the answer or the refusal as one JSON line.
 */
async function attack(bed: TestBed, key: 'own' | 'watcher', commit: string, toplevel: string): Promise<{ ok: boolean; code?: string; message?: string; outcome?: string }> {
  const script = `
    import { writeFileSync } from 'node:fs';
    import { generateSigningKey, loadSigningKey, SocketClient } from '/opt/pullnix/shared/dist/src/index.js';
    const state = '/var/lib/pullnix-watcher';
    let key;
    if (process.env.KEY === 'own') {
      key = generateSigningKey('watcher');
      writeFileSync(state + '/watcher.pub', key.publicKey + '\\n');
    } else key = loadSigningKey(state + '/watcher.key');
    const c = new SocketClient({ path: '/run/pullnix-watcher/executor.sock', key });
    try {
      await c.connect();
      const r = await c.request('deploy', { commit: process.env.COMMIT, toplevel: process.env.TOPLEVEL }, { timeoutMs: 600000 });
      console.log(JSON.stringify({ ok: true, outcome: r.deployment.outcome }));
    } catch (e) {
      console.log(JSON.stringify({ ok: false, code: e.code, message: e.message }));
    } finally { c.close(); }`;
  const out = await bed.container.execOk(['env', `KEY=${key}`, `COMMIT=${commit}`, `TOPLEVEL=${toplevel}`, '/opt/node/bin/node', '--input-type=module', '-e', script], { ...AS_WATCHER, timeoutMs: 700_000 });
  return JSON.parse(out.trim().split('\n').pop()!) as { ok: boolean; code?: string; message?: string };
}

test('a compromised watcher cannot make root activate a system not built from a trusted commit', { timeout: 900_000 }, async (t) => {
  await withBed(t, { name: 'compromised-watcher' }, async (bed) => {
    await installed(bed, { spec: gen('gen1'), options: { sign: alice } });
    const c2 = await bed.commit(gen('gen2'), 'alice signs', { sign: alice });
    const deployed = await bed.waitForOutcome(c2);
    assert.equal(deployed.outcome, 'succeeded', JSON.stringify(deployed));
    await bed.waitForWatcherRestart(deployed.id);
    // The watcher is stopped: the attacker has its user, its files and its socket, not its process.
    await bed.container.execOk(['systemctl', 'stop', 'pullnix-watcher.service']);
    const c3 = await bed.commit(gen('gen3'), 'unsigned: the attacker wants this one');
    // The attacker builds c3's system through the daemon, as the watcher would.
    const evil = (
      await bed.container.shOk(
        `d=$(mktemp -d) && export HOME="$d" XDG_CACHE_HOME="$d/cache" NIX_REMOTE=daemon
         printf '[safe]\\n\\tdirectory = *\\n' > "$d/gitconfig" && export GIT_CONFIG_GLOBAL="$d/gitconfig"
         git clone -q /srv/git/config.git "$d/c"
         git -C "$d/c" -c advice.detachedHead=false checkout -q ${c3}
         nix build --out-link "$d/result" "$d/c#nixosConfigurations.${HOST}.config.system.build.toplevel"
         readlink -f "$d/result"`,
        { ...AS_WATCHER, timeoutMs: 300_000 },
      )
    )
      .trim()
      .split('\n')
      .pop()!;
    assert.match(evil, /^\/nix\/store\/[a-z0-9]{32}-nixos-system-bed-gen3$/);
    const historyBefore = bed.historyLines();
    const untouched = async (what: string) => {
      assert.deepEqual(bed.historyLines(), historyBefore, `${what}: nothing recorded`);
      assert.equal(await bed.liveSystem(), deployed.toplevel, `${what}: c2's system stays live`);
      assert.equal(bed.bootDefault(), deployed.toplevel, `${what}: c2's system stays the boot default`);
    };

    // a. A key of its own in watcher.pub.
    const own = await attack(bed, 'own', c3, evil);
    assert.equal(own.ok, false, `a deploy signed with a key the watcher's user made must be refused: ${JSON.stringify(own)}`);
    assert.equal(own.code, 'UNKNOWN_KEY', own.message);
    assert.match(own.message ?? '', /not the watcher key root pinned/);
    const changed = await bed.waitForEvent('keys.watcher_key_changed', {}, { units: ['pullnix-executor.service'] });
    assert.equal(changed.fields.file, '/var/lib/pullnix-watcher/watcher.pub');
    await untouched('a key of its own');
    // Put the real public key back (the attacker could; the pin is what counts).
    await bed.container.shOk(
      `/opt/node/bin/node --input-type=module -e "import { loadSigningKey } from '/opt/pullnix/shared/dist/src/index.js'; console.log(loadSigningKey('/var/lib/pullnix-watcher/watcher.key').publicKey)" > /var/lib/pullnix-watcher/watcher.pub`,
      AS_WATCHER,
    );

    // b. The real key, an unsigned commit.
    const unsigned = await attack(bed, 'watcher', c3, evil);
    assert.equal(unsigned.ok, false, `a deploy of an unsigned commit must be refused: ${JSON.stringify(unsigned)}`);
    assert.equal(unsigned.code, 'UNTRUSTED', unsigned.message);
    assert.match(unsigned.message ?? '', new RegExp(`${c3}.*not signed`));
    assert.equal((await bed.waitForEvent('deploy.untrusted', { commit: c3, stage: 'signatures' }, { units: ['pullnix-executor.service'] })).priority, 4);
    await untouched('an unsigned commit');

    // c. The real key, a trusted commit, another system.
    const swapped = await attack(bed, 'watcher', c2, evil);
    assert.equal(swapped.ok, false, `a toplevel that is not the commit's system must be refused: ${JSON.stringify(swapped)}`);
    assert.equal(swapped.code, 'UNTRUSTED', swapped.message);
    assert.match(swapped.message ?? '', new RegExp(`${evil.replace(/[.]/g, '\\.')} is not the system of commit ${c2}.*${deployed.toplevel.replace(/[.]/g, '\\.')}`));
    await bed.waitForEvent('deploy.untrusted', { commit: c2, stage: 'system' }, { units: ['pullnix-executor.service'] });
    await untouched('a swapped system');
    // Root verified c2 itself (checked last, so that on an executor without these checks the attacks above are what fails): fetched, signatures checked, the system evaluated as nobody.
    const verified = await bed.events('deploy.trust_verified', { commit: c2 }, ['pullnix-executor.service']);
    assert.equal(verified.length, 1, 'root verified c2 before activating it');
    assert.equal(verified[0]!.fields.toplevel, deployed.toplevel);
    t.diagnostic(`root's verification of c2: fetch ${verified[0]!.fields.fetch_ms} ms, signatures ${verified[0]!.fields.signatures_ms} ms, evaluation ${verified[0]!.fields.evaluation_ms} ms`);
    const pinned = (await bed.container.execOk(['stat', '-c', '%u %a', '/var/lib/pullnix/keys/watcher.pub'])).trim();
    assert.equal(pinned, '0 600', "root's record of the watcher key");

    bed.log(`refused: own key, unsigned ${short(c3)}, ${short(c2)} with ${evil}`);
  });
});

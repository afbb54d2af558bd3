/**
 * Commit trust (shared/src/trust.ts, run by watcher/src/pipeline/trust.ts) with real keys: SSH signatures made by `ssh-keygen -Y sign`
 * (git's gpg.format=ssh) and OpenPGP signatures made by GnuPG, checked by real git. First the
 * gate alone, then the watcher's poll cycle with it (stand-in nix, fake executor on a real socket).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { createRunner, type TrustConfig } from '@pullnix/shared';
import { TrustGate, type TrustResult } from '@pullnix/watcher';
import { git, GitRemote, REAL_GIT } from '../lib/git-remote.ts';
import { linkedWatcher } from '../lib/linked-watcher.ts';
import { GpgSigner, SshSigner } from '../lib/signing.ts';
import { FakeExecutor } from '../lib/watcher-fake-executor.ts';
import { CapturedLog, Fixtures, waitFor, watcherConfig } from '../lib/watcher-fixtures.ts';

const fx = new Fixtures();
fx.installOnPath();
const root = mkdtempSync(join(tmpdir(), 'pullnix-trust-'));
let alice: SshSigner; // trusted SSH key
let mallory: SshSigner; // an SSH key nobody trusts
let retired: SshSigner; // trusted once: valid-before in the past
let carol: GpgSigner; // trusted OpenPGP key
let oscar: GpgSigner; // an OpenPGP key nobody imported
let expired: GpgSigner; // trusted OpenPGP key that expired in 2020

before(() => {
  alice = new SshSigner('alice', root);
  mallory = new SshSigner('mallory', root);
  retired = new SshSigner('retired', root);
  carol = new GpgSigner('carol', { root });
  oscar = new GpgSigner('oscar', { root });
  expired = new GpgSigner('expired', { root, expire: '2d', fakeTime: '20200101T000000' });
});
after(() => {
  for (const s of [alice, mallory, retired, carol, oscar, expired]) s?.cleanup();
  rmSync(root, { recursive: true, force: true });
  fx.cleanup();
});

function trust(mode: TrustConfig['mode'], extra: Partial<TrustConfig> = {}): TrustConfig {
  return { mode, since: null, allowedSigners: [alice.allowed(), retired.allowed('retired@example.org', { validBefore: '20200101' })], openpgpKeys: [carol.armored, expired.armored], ...extra };
}

function gate(remote: GitRemote, config: TrustConfig, role: 'human' | 'builder' = 'human'): TrustGate {
  return new TrustGate({ trust: config, runner: createRunner(), gitDir: join(remote.work, '.git'), dir: mkdtempSync(join(root, 'state-')), role });
}

function refused(r: TrustResult): Extract<TrustResult, { ok: false }> {
  assert.equal(r.ok, false, `expected a refusal, got ${JSON.stringify(r)}`);
  return r as Extract<TrustResult, { ok: false }>;
}

/** A commit whose message was changed after signing: the signature no longer matches. */
function tamper(remote: GitRemote): string {
  const text = git(remote.work, ['cat-file', 'commit', 'HEAD']);
  const forged = execFileSync(REAL_GIT, ['hash-object', '-t', 'commit', '-w', '--stdin'], { cwd: remote.work, input: `${text.replace(/\n\n([^\n]*)$/, '\n\n$1 (forged)')}\n`, encoding: 'utf8' }).trim();
  git(remote.work, ['reset', '--quiet', '--hard', forged]);
  return forged;
}

describe('trust gate (real ssh-keygen and gpg signatures, real git)', () => {
  it('roles (issue 23): a builder key signs manifest commits only, a human key source commits only', async () => {
    const ci = new SshSigner('ci', root);
    try {
      const config = trust('head', { allowedSigners: [alice.allowed(), ci.allowed('ci@example.org', {}, 'builder')] });
      const remote = new GitRemote();
      const manifest = remote.commit('ci: hosts/edge-01.json', {}, ci);
      assert.deepEqual(await gate(remote, config, 'builder').check(manifest, []), { ok: true, mode: 'head', checked: 1, signers: ['ci@example.org'] });
      const asSource = refused(await gate(remote, config, 'human').check(manifest, []));
      assert.equal(asSource.reason, 'wrong-role');
      assert.match(asSource.message, /builder keys sign manifest commits only/);
      const source = remote.commit('a human change', {}, alice);
      assert.equal(refused(await gate(remote, config, 'builder').check(source, [])).reason, 'wrong-role');
      assert.equal(refused(await gate(remote, config, 'builder').check(remote.commit('x', {}, carol), [])).reason, 'unknown-key', 'OpenPGP keys are human keys');
      assert.equal(refused(await gate(remote, config, 'builder').check(remote.commit('y', {}, mallory), [])).reason, 'unknown-key');
    } finally {
      ci.cleanup();
    }
  });

  it('passes a chain signed by trusted SSH and OpenPGP keys, the whole history when nothing is deployed', async () => {
    const remote = new GitRemote();
    remote.commit('c1', {}, alice);
    remote.commit('c2', {}, carol);
    const c3 = remote.commit('c3', {}, alice);
    const r = await gate(remote, trust('all')).check(c3, []);
    assert.deepEqual(r, { ok: true, mode: 'all', checked: 3, signers: ['alice@example.org', 'carol <carol@example.org>'] });
  });

  it('refuses an unsigned commit in the middle of a signed range, naming it; mode head only looks at the head', async () => {
    const remote = new GitRemote();
    const c1 = remote.commit('c1', {}, alice);
    const c2 = remote.commit('c2: sneaked in', {}, undefined);
    const c3 = remote.commit('c3', {}, alice);
    const r = refused(await gate(remote, trust('all')).check(c3, [c1]));
    assert.equal(r.commit, c2);
    assert.equal(r.reason, 'unsigned');
    assert.equal(r.checked, 2);
    assert.equal(r.bad, 1);
    assert.match(r.message, new RegExp(`commit ${c2} \\("c2: sneaked in"\\): not signed`));
    assert.deepEqual(await gate(remote, trust('head')).check(c3, [c1]), { ok: true, mode: 'head', checked: 1, signers: ['alice@example.org'] });
    assert.equal(refused(await gate(remote, trust('head')).check(c2, [c1])).reason, 'unsigned');
  });

  it('still refuses a signed commit on top of a refused one (mode all), naming the first bad commit', async () => {
    const remote = new GitRemote();
    const c1 = remote.commit('c1', {}, alice);
    const c2 = remote.commit('c2', {}, undefined);
    remote.commit('c3', {}, alice);
    const c4 = remote.commit('c4', {}, mallory);
    const c5 = remote.commit('c5', {}, carol);
    const r = refused(await gate(remote, trust('all')).check(c5, [c1]));
    assert.equal(r.commit, c2, 'the oldest failing commit is named');
    assert.equal(r.bad, 2);
    assert.match(r.message, /2 of 4 commits in the range fail/);
    // Once the deployed commit is past c2 (say an operator vouched for it), c4 is the next one named.
    assert.equal(refused(await gate(remote, trust('all')).check(c5, [c2])).commit, c4);
  });

  it('checks merges and both sides of them: an unsigned commit on a merged branch is refused under a signed merge', async () => {
    const remote = new GitRemote();
    const c1 = remote.commit('c1', {}, alice);
    git(remote.work, ['checkout', '--quiet', '-b', 'side']);
    const side = remote.commit('side: unsigned', { 'side.txt': 'x\n' });
    git(remote.work, ['checkout', '--quiet', 'main']);
    remote.commit('c2', {}, carol);
    git(remote.work, [...alice.gitArgs, 'merge', '--quiet', '--no-ff', '-S', '-m', 'merge side', 'side']);
    const merge = remote.head();
    const r = refused(await gate(remote, trust('all')).check(merge, [c1]));
    assert.equal(r.commit, side);
    assert.equal(r.checked, 3, 'c2, side and the merge');
    assert.equal((await gate(remote, trust('head')).check(merge, [c1])).ok, true, 'head only: the signed merge passes');
  });

  it('refuses an SSH-signed commit when only OpenPGP keys are trusted, and the other way round', async () => {
    const remote = new GitRemote();
    const c1 = remote.commit('c1', {}, alice);
    assert.equal(refused(await gate(remote, trust('head', { allowedSigners: [] })).check(c1, [])).reason, 'unknown-key');
    const c2 = remote.commit('c2', {}, carol);
    assert.equal(refused(await gate(remote, trust('head', { openpgpKeys: [] })).check(c2, [])).reason, 'unknown-key');
  });

  it('refuses keys outside the configuration: an SSH key not in allowedSigners, an OpenPGP key not imported', async () => {
    const remote = new GitRemote();
    const c1 = remote.commit('c1', {}, alice);
    const c2 = remote.commit('c2', {}, mallory);
    const r = refused(await gate(remote, trust('all')).check(c2, [c1]));
    assert.equal(r.commit, c2);
    assert.equal(r.reason, 'unknown-key');
    assert.ok(r.message.includes(execFileSync('ssh-keygen', ['-lf', join(mallory.dir, 'key.pub')], { encoding: 'utf8' }).split(' ')[1]!), r.message);

    const c3 = remote.commit('c3', {}, oscar);
    const o = refused(await gate(remote, trust('all')).check(c3, [c2]));
    assert.equal(o.commit, c3);
    assert.equal(o.reason, 'unknown-key');
    // The watcher's keyring is its own: oscar's own keyring (with his key, ultimately trusted) in
    // the environment changes nothing.
    const saved = process.env.GNUPGHOME;
    process.env.GNUPGHOME = oscar.home;
    try {
      assert.equal(refused(await gate(remote, trust('all')).check(c3, [c2])).reason, 'unknown-key');
    } finally {
      if (saved === undefined) delete process.env.GNUPGHOME;
      else process.env.GNUPGHOME = saved;
    }
  });

  it('refuses expired keys: an SSH key past its valid-before, an OpenPGP key past its expiry', async () => {
    const remote = new GitRemote();
    const c1 = remote.commit('c1', {}, alice);
    const c2 = remote.commit('c2', {}, retired);
    const r = refused(await gate(remote, trust('all')).check(c2, [c1]));
    assert.equal(r.commit, c2);
    assert.equal(r.reason, 'expired-key');
    // The same key with a window that holds now and at the commit's date is good.
    const open = trust('all', { allowedSigners: [alice.allowed(), retired.allowed('retired@example.org', { validAfter: '20200101', validBefore: '29991231' })] });
    assert.equal((await gate(remote, open).check(c2, [c1])).ok, true);
    // A window that held at the commit's (signer-chosen) date but not now: still refused.
    const now = new Date();
    const today = `${now.getUTCFullYear()}${String(now.getUTCMonth() + 1).padStart(2, '0')}${String(now.getUTCDate()).padStart(2, '0')}`;
    const endedToday = trust('all', { allowedSigners: [retired.allowed('retired@example.org', { validBefore: `${today}000000Z` })] });
    const backdated = new GitRemote();
    backdated.commit('old-looking', {}, { gitArgs: retired.gitArgs, env: { GIT_COMMITTER_DATE: '2020-06-01T00:00:00Z', GIT_AUTHOR_DATE: '2020-06-01T00:00:00Z' } });
    assert.equal(refused(await gate(backdated, endedToday).check(backdated.head(), [])).reason, 'expired-key');

    const c3 = remote.commit('c3', {}, expired);
    const e = refused(await gate(remote, open).check(c3, [c2]));
    assert.equal(e.commit, c3);
    assert.equal(e.reason, 'expired-key');
  });

  it('refuses an OpenPGP key revoked since it signed: the configured key carries its revocation', async () => {
    const revoked = new GpgSigner('revoked', { root });
    try {
      const remote = new GitRemote();
      const c1 = remote.commit('c1', {}, alice);
      const c2 = remote.commit('c2', {}, revoked);
      // Trusted while it stands,
      assert.equal((await gate(remote, trust('all', { openpgpKeys: [revoked.armored] })).check(c2, [c1])).ok, true);
      // refused once the configured key is the revoked one (commits it signed before included).
      const r = refused(await gate(remote, trust('all', { openpgpKeys: [revoked.revoke()] })).check(c2, [c1]));
      assert.equal(r.commit, c2);
      assert.equal(r.reason, 'revoked-key');
      assert.match(r.message, /revoked key/);
    } finally {
      revoked.cleanup();
    }
  });

  it('refuses a bad signature (a signed commit changed afterwards)', async () => {
    const remote = new GitRemote();
    const c1 = remote.commit('c1', {}, alice);
    remote.commit('c2', {}, alice);
    const forgedSsh = tamper(remote);
    const r = refused(await gate(remote, trust('all')).check(forgedSsh, [c1]));
    assert.equal(r.commit, forgedSsh);
    assert.equal(r.reason, 'bad-signature');

    const remote2 = new GitRemote();
    remote2.commit('c1', {}, carol);
    const forgedGpg = tamper(remote2);
    assert.equal(refused(await gate(remote2, trust('all')).check(forgedGpg, [])).reason, 'bad-signature');
  });

  it('starts the chain after trust.since when nothing is deployed, and refuses an anchor that is not in the repository', async () => {
    const remote = new GitRemote();
    remote.commit('old, unsigned history');
    const anchor = remote.commit('anchor, unsigned, vouched for by the operator');
    const c3 = remote.commit('c3', {}, alice);
    refused(await gate(remote, trust('all')).check(c3, []));
    assert.deepEqual(await gate(remote, trust('all', { since: anchor })).check(c3, []), { ok: true, mode: 'all', checked: 1, signers: ['alice@example.org'] });
    const missing = refused(await gate(remote, trust('all', { since: 'f'.repeat(40) })).check(c3, []));
    assert.equal(missing.reason, 'anchor-missing');
    assert.equal(missing.commit, null);
  });

  it('refuses everything, naming the key, when a configured OpenPGP key cannot be imported', async () => {
    const remote = new GitRemote();
    const c1 = remote.commit('c1', {}, alice);
    const r = refused(await gate(remote, trust('all', { openpgpKeys: ['-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbm90IGEga2V5\n-----END PGP PUBLIC KEY BLOCK-----\n'] })).check(c1, []));
    assert.equal(r.reason, 'trust-setup');
    assert.match(r.message, /openpgpKeys\[0\]/);
  });

  it('keeps its keyring and allowed-signers file private, and starts no gpg-agent', async () => {
    const remote = new GitRemote();
    const c1 = remote.commit('c1', {}, carol);
    const dir = mkdtempSync(join(root, 'state-'));
    const g = new TrustGate({ trust: trust('all'), runner: createRunner(), gitDir: join(remote.work, '.git'), dir });
    assert.equal((await g.check(c1, [])).ok, true);
    for (const d of ['.', 'gnupg', 'home']) assert.equal(statSync(join(dir, d)).mode & 0o777, 0o700, d);
    assert.equal(statSync(join(dir, 'allowed_signers')).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(join(dir, 'home')), [], 'nothing is written to the empty HOME');
    assert.ok(!readdirSync(join(dir, 'gnupg')).some((f) => f.startsWith('S.gpg-agent')), 'no agent socket in the keyring');
  });
});

// ---------------------------------------------------------------- the watcher with the gate

const teardowns: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const t of teardowns.splice(0).reverse()) await t();
  fx.resetCalls();
});

async function watcherRig(remote: GitRemote, trustConfig: Record<string, unknown>, existing?: { stateDir: string; executor: FakeExecutor }) {
  const stateDir = existing?.stateDir ?? fx.newStateDir();
  const socketPath = join(stateDir, 'run', 'executor.sock');
  const config = watcherConfig({ url: remote.url, stateDir, socketPath, extra: { trust: trustConfig } });
  let executor = existing?.executor;
  if (!executor) {
    const started = new FakeExecutor({ socketPath, stateDir });
    await started.start();
    teardowns.push(() => started.stop());
    executor = started;
  }
  const log = new CapturedLog();
  const watcher = await linkedWatcher({ config, log, teardowns });
  return { stateDir, executor, watcher, log };
}

const json = (t: TrustConfig) => JSON.parse(JSON.stringify(t)) as Record<string, unknown>;

describe('watcher with trust.mode all', () => {
  it('builds a signed range; refuses an unsigned one before checkout or build, reports it, and does not look again until the head moves', async () => {
    const remote = new GitRemote();
    const c1 = remote.commit('c1', {}, alice);
    const c2 = remote.commit('c2', {}, carol);
    remote.push();
    const r = await watcherRig(remote, json(trust('all')));
    r.executor.deployed = c1;
    assert.equal((await r.watcher.pollOnce()).outcome, 'deployed');
    assert.equal(r.log.events('trust.verified')[0]?.fields.checked, '1');

    // c3 unsigned, then c4 signed on top of it.
    const c3 = remote.commit('c3: unsigned', {}, undefined);
    remote.push();
    fx.resetCalls();
    assert.equal((await r.watcher.pollOnce()).outcome, 'untrusted');
    assert.equal(fx.nixCalls().length, 0, 'nothing built');
    assert.ok(!fx.gitCalls().some((argv) => argv.includes('checkout')), `nothing checked out: ${JSON.stringify(fx.gitCalls())}`);
    const line = r.log.events('trust.refused')[0];
    assert.equal(line?.priority, 4, 'a warning');
    assert.equal(line?.fields.commit, c3);
    assert.equal(line?.fields.offending, c3);
    assert.equal(line?.fields.reason, 'unsigned');
    await waitFor('a report naming the refused commit', () => r.executor.lastReport?.untrusted?.commit === c3);
    assert.equal(r.executor.lastReport?.untrusted?.reason, 'unsigned');
    assert.equal(r.executor.lastReport?.lastError?.kind, 'trust');
    assert.equal((await r.watcher.pollOnce()).outcome, 'unchanged', 'not checked again while the head stays');
    assert.equal(r.log.count('trust.refused'), 1);

    const c4 = remote.commit('c4: signed on top', {}, alice);
    remote.push();
    assert.equal((await r.watcher.pollOnce()).outcome, 'untrusted', 'the head moved: checked again, still refused');
    const again = r.log.events('trust.refused')[1];
    assert.equal(again?.fields.commit, c4);
    assert.equal(again?.fields.offending, c3);
    assert.deepEqual(r.executor.deploys.map((d) => d.commit), [c2]);

    // retry re-checks (never bypasses): refused again, named again.
    r.executor.push({ type: 'retry', commit: c3 });
    await waitFor('the retry to reach the watcher', () => r.log.count('poll.retry_requested') === 1);
    assert.equal(r.log.events('poll.retry_requested')[0]?.fields.forgotten, 'true');
    assert.equal((await r.watcher.pollOnce()).outcome, 'untrusted');
    assert.equal(r.log.count('trust.refused'), 3);
    assert.deepEqual(r.executor.deploys.map((d) => d.commit), [c2]);
  });

  it("keeps no refused range on disk: two refused 2 MB pushes leave the checkout's objects at the deployed commit's size", async () => {
    const remote = new GitRemote();
    const c1 = remote.commit('c1', {}, alice);
    remote.push();
    const r = await watcherRig(remote, json(trust('all')));
    assert.equal((await r.watcher.pollOnce()).outcome, 'deployed');
    const checkout = join(r.stateDir, 'checkout');
    const objectBytes = () => Number(execFileSync('du', ['-sb', join(checkout, '.git', 'objects')], { encoding: 'utf8' }).split('\t')[0]);
    const has = (commit: string) => {
      try {
        execFileSync(REAL_GIT, ['-C', checkout, 'cat-file', '-e', commit], { stdio: 'ignore' });
        return true;
      } catch {
        return false;
      }
    };
    const before = objectBytes();
    const refusedHeads: string[] = [];
    for (const n of [1, 2]) {
      const big = remote.commit(`big ${n}: unsigned`, { [`blob${n}.bin`]: randomBytes(1_000_000).toString('base64') }, undefined);
      remote.push();
      assert.equal((await r.watcher.pollOnce()).outcome, 'untrusted');
      refusedHeads.push(big);
      for (const h of refusedHeads) assert.equal(has(h), false, `refused ${h} is gone from the checkout`);
      assert.ok(objectBytes() < before + 500_000, `objects: ${objectBytes()} bytes, ${before} before the refused pushes`);
    }
    assert.equal(has(c1), true, 'the deployed commit stays');
    assert.equal(r.log.count('trust.discarded'), 2);
  });

  it('takes the deployed commit from the executor: a wiped memory and checkout neither reset the force-push guard nor widen the range', async () => {
    // main: c1 (unsigned, deployed before trust was on) - c2 (signed)
    const remote = new GitRemote();
    const c1 = remote.commit('c1: before trust');
    const c2 = remote.commit('c2', {}, alice);
    remote.push();
    const first = await watcherRig(remote, json(trust('all')));
    first.executor.deployed = c1;
    assert.equal((await first.watcher.pollOnce()).outcome, 'deployed');

    // The watcher's state is lost; the executor still knows c2 is deployed.
    rmSync(join(first.stateDir, 'watcher.json'));
    rmSync(join(first.stateDir, 'checkout'), { recursive: true });
    const c3 = remote.commit('c3', {}, alice);
    remote.push();
    const second = await watcherRig(remote, json(trust('all')), first);
    assert.equal((await second.watcher.pollOnce()).outcome, 'deployed', 'only c3 is checked, not the unsigned c1');
    assert.equal(second.log.events('trust.verified')[0]?.fields.checked, '1');

    // Force-push back to c1 + a signed commit, after another wipe: still refused as not descending.
    rmSync(join(first.stateDir, 'watcher.json'));
    rmSync(join(first.stateDir, 'checkout'), { recursive: true });
    remote.resetTo(c1);
    remote.commit('c4: rewrite', {}, alice);
    remote.forcePush();
    const third = await watcherRig(remote, json(trust('all')), first);
    assert.equal((await third.watcher.pollOnce()).outcome, 'not-descendant');
    assert.deepEqual(first.executor.deploys.map((d) => d.commit), [c2, c3]);
  });

  it('rotates keys through the configuration: a signed commit by the old key adds the new one, then the new key is trusted', async () => {
    const bob = new SshSigner('bob', root);
    teardowns.push(() => bob.cleanup());
    const before = trust('all', { allowedSigners: [alice.allowed()], openpgpKeys: [] });
    const rotated = trust('all', { allowedSigners: [alice.allowed(), bob.allowed()], openpgpKeys: [] });
    const remote = new GitRemote();
    const c1 = remote.commit('c1', {}, alice);

    // bob cannot vouch for himself: a commit by bob that adds bob is judged by the running configuration.
    remote.commit('c2: bob trusts bob', { 'trust.json': JSON.stringify(rotated) }, bob);
    remote.push();
    const w1 = await watcherRig(remote, json(before));
    w1.executor.deployed = c1;
    assert.equal((await w1.watcher.pollOnce()).outcome, 'untrusted');
    assert.equal(w1.log.events('trust.refused')[0]?.fields.reason, 'unknown-key');

    // The rotation: alice signs the commit that adds bob; it deploys under the old keys.
    remote.resetTo(c1);
    const c2 = remote.commit('c2: trust bob', { 'trust.json': JSON.stringify(rotated) }, alice);
    remote.forcePush();
    assert.equal((await w1.watcher.pollOnce()).outcome, 'deployed');
    const c3 = remote.commit('c3: first commit by bob', {}, bob);
    remote.push();
    // Until the executor restarts the watcher on the new configuration, bob is not trusted.
    assert.equal((await w1.watcher.pollOnce()).outcome, 'untrusted');

    // The executor restarts the watcher after the outcome: it runs the configuration c2 brought.
    const deployedConfig = JSON.parse(git(remote.work, ['show', `${c2}:trust.json`])) as Record<string, unknown>;
    const w2 = await watcherRig(remote, deployedConfig, w1);
    assert.equal((await w2.watcher.pollOnce()).outcome, 'deployed');
    assert.deepEqual(w1.executor.deploys.map((d) => d.commit), [c2, c3]);
  });
});

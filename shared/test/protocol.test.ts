import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  Authenticator,
  canonicalJson,
  decodePublicKey,
  generateSigningKey,
  MAX_REQUEST_BYTES,
  PullnixError,
  newRunId,
  signRequest,
  type ErrorCode,
} from '../src/index.ts';

const watcher = generateSigningKey('watcher');
const alice = generateSigningKey('alice');
const mallory = generateSigningKey('mallory');
const COMMIT = 'a'.repeat(40);
const TOPLEVEL = '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-host-24.11';
const RUN = newRunId();

function gate(now = () => Date.now()) {
  return new Authenticator({
    keys: [
      { keyId: 'watcher', role: 'watcher', publicKey: watcher.publicKey },
      { keyId: 'alice', role: 'operator', publicKey: alice.publicKey },
    ],
    now,
    runId: RUN,
  });
}

function refusedWith(auth: Authenticator, data: unknown, code: ErrorCode, pattern?: RegExp): void {
  assert.throws(
    () => auth.authenticate(data),
    (e: unknown) => {
      assert.ok(e instanceof PullnixError, `expected PullnixError, got ${String(e)}`);
      assert.equal(e.code, code, e.message);
      if (pattern) assert.match(e.message, pattern);
      return true;
    },
  );
}

describe('canonical JSON', () => {
  it('sorts keys at every depth and drops whitespace', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: 'x' } }), '{"a":{"c":"x","d":[1,{"y":2,"z":1}]},"b":1}');
  });
  it('refuses values JSON cannot round-trip', () => {
    assert.throws(() => canonicalJson({ a: undefined }), /undefined/);
    assert.throws(() => canonicalJson(Number.NaN), /non-finite/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assert.throws(() => canonicalJson(cyclic), /cycle/);
  });
});

describe('keys', () => {
  it('round-trips the ed25519: public key form', () => {
    assert.match(alice.publicKey, /^ed25519:[A-Za-z0-9_-]{43}$/);
    const key = decodePublicKey(alice.publicKey);
    assert.equal(key.asymmetricKeyType, 'ed25519');
  });
  it('names the expected form of a malformed public key', () => {
    assert.throws(() => decodePublicKey('ssh-ed25519 AAAA'), /ed25519:<43 base64url characters>/);
  });
});

describe('Authenticator', () => {
  it('accepts a signed request from a key whose role allows the method', () => {
    const auth = gate();
    const req = auth.authenticate(signRequest(watcher, RUN, 'deploy', { commit: COMMIT, toplevel: TOPLEVEL }));
    assert.equal(req.method, 'deploy');
    assert.equal(req.role, 'watcher');
    assert.equal(auth.rememberedNonces, 1);
  });

  it('refuses every forged or malformed request with its code, remembering no nonce', () => {
    const auth = gate();
    const good = () => signRequest(watcher, RUN, 'status', {});
    refusedWith(auth, { ...good(), sig: good().sig }, 'BAD_SIGNATURE');
    refusedWith(auth, signRequest(mallory, RUN, 'status', {}), 'UNKNOWN_KEY', /mallory/);
    refusedWith(auth, { ...signRequest(mallory, RUN, 'status', {}), keyId: 'alice' }, 'BAD_SIGNATURE');
    refusedWith(auth, signRequest(watcher, RUN, 'pause', {}), 'FORBIDDEN', /role watcher; pause needs operator/);
    refusedWith(auth, { ...good(), v: 1 }, 'UNSUPPORTED_VERSION');
    refusedWith(auth, signRequest(watcher, RUN, 'reboot' as never, {} as never), 'UNKNOWN_METHOD', /reboot/);
    refusedWith(auth, signRequest(watcher, RUN, 'deploy', { commit: 'not-hex', toplevel: TOPLEVEL }), 'BAD_REQUEST', /commit/);
    refusedWith(auth, signRequest(watcher, RUN, 'deploy', { commit: COMMIT, toplevel: '/tmp/evil' }), 'BAD_REQUEST', /toplevel/);
    refusedWith(auth, signRequest(watcher, RUN, 'deploy', { commit: COMMIT, toplevel: `${TOPLEVEL}/../../etc` }), 'BAD_REQUEST', /toplevel/);
    refusedWith(auth, signRequest(watcher, RUN, 'deploy', { commit: COMMIT, toplevel: TOPLEVEL, extra: 1 } as never), 'BAD_REQUEST', /unexpected field "extra"/);
    refusedWith(auth, { ...good(), extra: true }, 'BAD_REQUEST', /unexpected field/);
    refusedWith(auth, signRequest(alice, RUN, 'pause', { reason: 'x'.repeat(MAX_REQUEST_BYTES) }), 'TOO_LARGE');
    refusedWith(auth, 'hello', 'BAD_REQUEST');
    refusedWith(auth, { method: 'status' }, 'UNSUPPORTED_VERSION');
    refusedWith(auth, null, 'BAD_REQUEST');
    assert.equal(auth.rememberedNonces, 0);
  });

  it('refuses stale and future issuedAt', () => {
    let now = 1_000_000_000_000;
    const auth = gate(() => now);
    refusedWith(auth, signRequest(watcher, RUN, 'status', {}, { now: now - 31_000 }), 'STALE', /-31 s/);
    refusedWith(auth, signRequest(watcher, RUN, 'status', {}, { now: now + 31_000 }), 'STALE', /31 s/);
    auth.authenticate(signRequest(watcher, RUN, 'status', {}, { now: now - 29_000 }));
    now += 1;
  });

  it('refuses a replayed nonce, and forgets nonces once they are outside the window', () => {
    let now = 1_000_000_000_000;
    const auth = gate(() => now);
    const req = signRequest(alice, RUN, 'status', {}, { now });
    auth.authenticate(req);
    refusedWith(auth, req, 'REPLAY');
    // A replay of the same bytes later is STALE; the memory of the nonce can go.
    now += 61_000;
    refusedWith(auth, req, 'STALE');
    auth.authenticate(signRequest(alice, RUN, 'status', {}, { now }));
    assert.equal(auth.rememberedNonces, 1);
  });

  it('a key past its nonce quota is BUSY alone; operator keys filling the shared pool never make the watcher or root BUSY', () => {
    const bob = generateSigningKey('bob');
    const root = generateSigningKey('local-root');
    const auth = new Authenticator({
      keys: [
        { keyId: 'watcher', role: 'watcher', publicKey: watcher.publicKey },
        { keyId: 'alice', role: 'operator', publicKey: alice.publicKey },
        { keyId: 'bob', role: 'operator', publicKey: bob.publicKey },
        { keyId: 'mallory', role: 'operator', publicKey: mallory.publicKey },
        { keyId: 'local-root', role: 'operator', publicKey: root.publicKey },
      ],
      maxNonces: 8,
      maxNoncesPerKey: 5,
      ownPoolKeyIds: ['local-root'],
      runId: RUN,
    });
    for (let i = 0; i < 5; i++) auth.authenticate(signRequest(mallory, RUN, 'status', {}));
    refusedWith(auth, signRequest(mallory, RUN, 'status', {}), 'BUSY', /key mallory has 5 requests in the replay window, its quota/);
    for (let i = 0; i < 3; i++) auth.authenticate(signRequest(bob, RUN, 'status', {}));
    // The shared pool (8) is full: another operator waits, the watcher and root do not.
    refusedWith(auth, signRequest(alice, RUN, 'status', {}), 'BUSY', /too many requests in the replay window/);
    for (let i = 0; i < 5; i++) {
      auth.authenticate(signRequest(watcher, RUN, 'status', {}));
      auth.authenticate(signRequest(root, RUN, 'status', {}));
    }
    refusedWith(auth, signRequest(watcher, RUN, 'status', {}), 'BUSY', /key watcher has 5/);
    assert.equal(auth.rememberedNonces, 18);
  });

  it('refuses a request signed for another executor run (no replay across a restart)', () => {
    const start = 1_000_000_000_000;
    const before = signRequest(alice, RUN, 'status', {}, { now: start - 1 });
    const restarted = new Authenticator({ keys: [{ keyId: 'alice', role: 'operator', publicKey: alice.publicKey }], now: () => start + 5, runId: newRunId() });
    refusedWith(restarted, before, 'STALE', /another executor run/);
    restarted.authenticate(signRequest(alice, restarted.runId, 'status', {}, { now: start + 5 }));
  });

  it('keeps accepting requests after the clock is stepped back (no wall-clock bound on the run)', () => {
    // The executor starts at `start`; an hour later NTP steps the clock back two hours. Client and
    // executor share that clock; the run binds the request, not the executor's start time.
    let now = 1_000_000_000_000;
    const auth = gate(() => now);
    auth.authenticate(signRequest(alice, RUN, 'status', {}, { now }));
    now += 3_600_000;
    auth.authenticate(signRequest(alice, RUN, 'status', {}, { now }));
    now -= 2 * 3_600_000;
    const req = auth.authenticate(signRequest(alice, RUN, 'pause', {}, { now }));
    assert.equal(req.method, 'pause');
  });

  it('refuses deploy from an operator key: only the watcher deploys what it built', () => {
    const auth = gate();
    refusedWith(auth, signRequest(alice, RUN, 'deploy', { commit: COMMIT, toplevel: TOPLEVEL }), 'FORBIDDEN', /deploy needs watcher/);
  });

  it('names the key that really signed a refusal after the signature verified, and no key before', () => {
    const auth = gate();
    assert.throws(() => auth.authenticate(signRequest(watcher, RUN, 'pause', {})), (e: unknown) => e instanceof PullnixError && e.verifiedKey === 'watcher');
    assert.throws(() => auth.authenticate({ ...signRequest(mallory, RUN, 'status', {}), keyId: 'alice' }), (e: unknown) => e instanceof PullnixError && e.verifiedKey === null);
  });

  it('does not let a refused request consume a nonce', () => {
    const auth = gate();
    const req = signRequest(watcher, RUN, 'pause', {});
    refusedWith(auth, req, 'FORBIDDEN');
    refusedWith(auth, req, 'FORBIDDEN'); // not REPLAY: the first refusal remembered nothing
  });

  it('refuses a configuration that trusts one key id twice', () => {
    assert.throws(
      () => new Authenticator({ keys: [{ keyId: 'a', role: 'operator', publicKey: alice.publicKey }, { keyId: 'a', role: 'watcher', publicKey: watcher.publicKey }], runId: RUN }),
      /configured twice/,
    );
  });
});

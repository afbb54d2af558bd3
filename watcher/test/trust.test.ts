/** The pure parts of commit trust; the checks with real keys are in test/integration/watcher-trust.test.ts. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emptyMemory, forgetCommit, parseMemory } from '../src/memory.ts';
import { allowedSignersLine, primaryFingerprints, sshFingerprint, sshTime, validAt } from '@pullnix/shared';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJzDE2z/V2SYGvswcsj7bLop/tZMNbwND9+L+pykS7Nn';
const H = 'a'.repeat(40);
const BAD = 'b'.repeat(40);

describe('allowed signers', () => {
  it('writes git allowed-signers lines restricted to the git namespace, with the validity window', () => {
    assert.equal(allowedSignersLine({ principal: 'alice@example.org', key: KEY, validAfter: null, validBefore: null }), `alice@example.org namespaces="git" ${KEY}\n`);
    assert.equal(
      allowedSignersLine({ principal: 'a@x,b@x', key: KEY, validAfter: '20260101', validBefore: '20270101120000Z' }),
      `a@x,b@x namespaces="git",valid-after="20260101",valid-before="20270101120000Z" ${KEY}\n`,
    );
  });

  it('reads ssh-keygen times (Z: UTC, otherwise local time) and judges a window at a moment', () => {
    assert.equal(sshTime('20260102030405Z'), Date.UTC(2026, 0, 2, 3, 4, 5));
    assert.equal(sshTime('202601020304Z'), Date.UTC(2026, 0, 2, 3, 4));
    assert.equal(sshTime('20260102'), new Date(2026, 0, 2).getTime());
    assert.throws(() => sshTime('2026-01-02'), /not an ssh-keygen time/);
    const s = { principal: 'p', key: KEY, validAfter: '20260101Z', validBefore: '20270101Z' };
    assert.equal(validAt(s, Date.UTC(2025, 11, 31)), false);
    assert.equal(validAt(s, Date.UTC(2026, 5, 1)), true);
    assert.equal(validAt(s, Date.UTC(2027, 0, 1)), false, 'valid-before is exclusive');
    assert.equal(validAt({ ...s, validAfter: null, validBefore: null }, 0), true);
  });

  it('computes the SHA256 fingerprint git prints (%GF) for an SSH key', () => {
    // ssh-keygen -lf of KEY printed SHA256:d2MH3CLuppKLtysVFAWTW0/hoDI2nem79h5+sdu+8DU
    assert.equal(sshFingerprint(KEY), 'SHA256:d2MH3CLuppKLtysVFAWTW0/hoDI2nem79h5+sdu+8DU');
  });

  it('takes the primary key fingerprints from gpg --with-colons output, not the subkeys', () => {
    const out = ['pub:u:255:22:F4510AE05B04E00E:1796048210:::u:::scSC:::::ed25519:::0:', 'fpr:::::::::528D3D7DF063617239158C23F4510AE05B04E00E:', 'uid:u::::1796048210::X::Carol <carol@x>::::::::::0:', 'sub:u:255:18:1111111111111111:1796048210::::::e:::::cv25519::', 'fpr:::::::::1111111111111111111111111111111111111111:', 'pub:-:255:22:2222222222222222:1::::::scSC::::', 'fpr:::::::::2222222222222222222222222222222222222222:'].join('\n');
    assert.deepEqual(primaryFingerprints(out), ['528D3D7DF063617239158C23F4510AE05B04E00E', '2222222222222222222222222222222222222222']);
  });
});

describe('memory of a refused range', () => {
  it('is forgotten by a retry of the head or of the commit that failed, and then the head is checked again', () => {
    for (const commit of [H, BAD]) {
      const m = emptyMemory();
      m.lastHandled = { commit: H, result: 'untrusted', at: 'now', detail: `unsigned ${BAD}` };
      m.untrusted = { head: H, commit: BAD, reason: 'unsigned', message: 'not signed', at: 'now', config: 'x' };
      assert.equal(forgetCommit(m, commit), true);
      assert.equal(m.lastHandled, null);
      assert.equal(m.untrusted, null);
    }
    const m = emptyMemory();
    m.untrusted = { head: H, commit: BAD, reason: 'unsigned', message: 'not signed', at: 'now', config: 'x' };
    assert.equal(forgetCommit(m, 'c'.repeat(40)), false);
    assert.notEqual(m.untrusted, null);
  });

  it('survives a restart (watcher.json), and a file without it still loads', () => {
    const m = emptyMemory();
    m.untrusted = { head: H, commit: null, reason: 'trust-setup', message: 'bad key', at: 'now', config: 'x' };
    assert.deepEqual(parseMemory(JSON.stringify(m)).untrusted, m.untrusted);
    assert.equal(parseMemory(JSON.stringify(emptyMemory())).untrusted ?? null, null);
    assert.throws(() => parseMemory(JSON.stringify({ ...emptyMemory(), untrusted: { head: 'nope' } })), /untrusted is not/);
  });
});

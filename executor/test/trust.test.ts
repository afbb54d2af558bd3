/**
 * End-to-end trust in the executor (issue 21), on the fake machine: with trust.mode on, a deploy
 * is refused UNTRUSTED, before anything is recorded or activated, when root cannot fetch the
 * commit, its signatures fail, or the evaluation of the commit's system gives another toplevel;
 * it goes ahead only when the evaluation gives exactly the requested toplevel. The real commands
 * (git, ssh-keygen, nix eval in a DynamicUser unit) run in scenario 15 and the bench.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { COMMIT_A } from './lib/fake-system.ts';
import { harness, type Harness } from './lib/harness.ts';

const ALICE = { principal: 'alice@example.org', key: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJzDE2z/V2SYGvswcsj7bLop/tZMNbwND9+L+pykS7Nn' };
const TRUST = { trust: { mode: 'all', allowedSigners: [ALICE] } };

/** git as the fake remote answers: fetch and ancestry fine, every commit signed G (or `status`). */
function signedRepo(h: Harness, status = 'G'): void {
  h.sys.hooks.set('git', (argv) => (argv.includes('log') ? { exitCode: 0, stdout: `${COMMIT_A}\x1f${status}\x1fSHA256:x\x1falice@example.org\x1fa change\0` } : { exitCode: 0, stdout: '' }));
}

/** The evaluation unit prints `path` as the commit's toplevel. */
function evaluatesTo(h: Harness, path: string): void {
  h.sys.hooks.set('systemd-run', (argv) => (argv.includes('DynamicUser=yes') ? { exitCode: 0, stdout: `${path}\n` } : {}));
}

describe('end-to-end trust in the executor', () => {
  let h: Harness;
  afterEach(() => h?.sys.cleanup());

  const refused = async (stage: string, message: RegExp, toplevel: string) => {
    await assert.rejects(h.executor.deploy({ commit: COMMIT_A, toplevel }, 'watcher'), (e: { code: string; message: string }) => e.code === 'UNTRUSTED' && message.test(e.message));
    const event = h.log.events.find((e) => e.name === 'deploy.untrusted');
    assert.equal(event?.fields.stage, stage);
    assert.equal(h.executor.history.total, 0, 'nothing recorded');
    assert.equal(h.sys.calls.filter((c) => c.some((a) => a.endsWith('/bin/switch-to-configuration'))).length, 0, 'nothing activated');
    assert.equal(h.executor.busy, false);
  };

  it('refuses when root cannot fetch the commit itself', async () => {
    h = harness(TRUST);
    h.sys.gitResults = [0, 128]; // git init of the mirror, then the fetch
    await refused('fetch', /could not fetch file:\/\/\/fake\/remote\.git/, h.sys.makeSystem('next'));
  });

  it('refuses an unsigned commit, and never evaluates it', async () => {
    h = harness(TRUST);
    signedRepo(h, 'N');
    const next = h.sys.makeSystem('next');
    evaluatesTo(h, next);
    await refused('signatures', new RegExp(`${COMMIT_A}.*not signed`), next);
    assert.equal(h.sys.calls.filter((c) => c.includes('DynamicUser=yes')).length, 0, 'not evaluated');
  });

  it("refuses a toplevel that is not the commit's system", async () => {
    h = harness(TRUST);
    signedRepo(h);
    const theirs = h.sys.makeSystem('built-by-the-watcher');
    evaluatesTo(h, h.sys.makeSystem('the-commits-own'));
    await refused('system', /built-by-the-watcher is not the system of commit a{40}: .*the-commits-own/, theirs);
  });

  it('deploys when the unprivileged evaluation gives exactly the toplevel, in a DynamicUser unit without network', async () => {
    h = harness(TRUST);
    signedRepo(h);
    const next = h.sys.makeSystem('next');
    evaluatesTo(h, next);
    const record = await h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
    assert.equal(record.outcome, 'succeeded', JSON.stringify(record.error));
    const evaluation = h.sys.calls.find((c) => c.includes('DynamicUser=yes'))!;
    for (const p of ['PrivateNetwork=yes', 'ProtectSystem=strict', 'CapabilityBoundingSet=']) assert.ok(evaluation.includes(p), `${p} in ${evaluation.join(' ')}`);
    assert.ok(evaluation.some((a) => a.startsWith('BindReadOnlyPaths=') && a.endsWith(':/run/pullnix-eval/repo.git')));
    assert.ok(evaluation.some((a) => a.includes(`rev=${COMMIT_A}#nixosConfigurations.`)));
    assert.equal(h.log.events.filter((e) => e.name === 'deploy.trust_verified').length, 1);
  });

  it('with trust.mode off, nothing of it runs', async () => {
    h = harness();
    const record = await h.executor.deploy({ commit: COMMIT_A, toplevel: h.sys.makeSystem('next') }, 'watcher');
    assert.equal(record.outcome, 'succeeded');
    assert.equal(h.sys.calls.filter((c) => c.includes('DynamicUser=yes') || c.includes('--bare')).length, 0);
  });

  describe('source.mode prebuilt (issue 23): the manifest proves the toplevel, no evaluation', () => {
    const CI = { principal: 'ci@example.org', key: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG3Z6gC6ZdKq6dsl0Ww8nq8iQp7V9r8kqH9n1a0dM3tX', role: 'builder' };
    const PREBUILT = {
      trust: { mode: 'all', allowedSigners: [ALICE, CI] },
      build: { mode: 'flake', host: 'edge-01' },
      source: { mode: 'prebuilt', caches: ['https://cache.example.org'], publicKeys: ['ci.example.org-1:3tA9XAaB5mZOjr5Tz9i9Kw8FGv2s0l7H7h2c7uNwQxk='] },
    };
    /** The mirror's commit: signed by `signer` (git's %G? and %GF for the builder gate's -1 look), with hosts/edge-01.json naming `toplevel`. */
    function manifestRepo(h: Harness, toplevel: string, builderStatus = 'G'): void {
      h.sys.hooks.set('git', (argv) => {
        if (argv.includes('cat-file')) return argv.at(-1) === `${COMMIT_A}:hosts/edge-01.json` ? { exitCode: 0, stdout: JSON.stringify({ toplevel, sourceCommit: 'b'.repeat(40) }) } : { exitCode: 128, stderr: `fatal: path 'x' does not exist in '${COMMIT_A}'` };
        if (argv.includes('log')) return { exitCode: 0, stdout: `${COMMIT_A}\x1f${argv.includes('-1') ? builderStatus : 'G'}\x1fSHA256:x\x1fci@example.org\x1fci: hosts/edge-01.json\0` };
        return { exitCode: 0, stdout: '' };
      });
    }

    it('deploys the toplevel the builder-signed manifest names, without evaluating anything', async () => {
      h = harness(PREBUILT);
      const next = h.sys.makeSystem('next');
      manifestRepo(h, next);
      const record = await h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
      assert.equal(record.outcome, 'succeeded', JSON.stringify(record.error));
      assert.equal(h.sys.calls.filter((c) => c.includes('DynamicUser=yes')).length, 0, 'not evaluated');
      assert.ok(h.sys.calls.some((c) => c.includes('cat-file') && c.at(-1) === `${COMMIT_A}:hosts/edge-01.json`), 'the manifest read from root\'s mirror');
    });

    it('refuses a toplevel the manifest does not name, and a manifest commit no builder signed', async () => {
      h = harness(PREBUILT);
      const theirs = h.sys.makeSystem('the-watchers');
      manifestRepo(h, h.sys.makeSystem('the-manifests'));
      await refused('system', /the-watchers is not the system of manifest commit a{40}: its hosts\/edge-01.json names .*the-manifests/, theirs);
      h.sys.cleanup();
      h = harness(PREBUILT);
      const next = h.sys.makeSystem('next');
      manifestRepo(h, next, 'N');
      await refused('signatures', /the manifest commit a{40} is not signed by a builder key: unsigned/, next);
    });
  });
});


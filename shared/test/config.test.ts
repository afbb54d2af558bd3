import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, gitEnvironment, loadConfig, manifestPath, parseConfig } from '../src/index.ts';

const minimal = { repository: { url: 'ssh://git@example.org/cfg.git' }, build: { mode: 'flake' } };

function problems(text: string): string[] {
  try {
    parseConfig(text, 'test.json');
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    return e.problems;
  }
  assert.fail('expected a ConfigError');
}

describe('config', () => {
  it("derives root's own socket from socketPath, and keeps it out of the group's directory", () => {
    assert.equal(parseConfig(JSON.stringify({ ...minimal, socketPath: '/run/x/e.sock' })).privateSocketPath, '/run/x/root/e.sock');
    assert.equal(parseConfig(JSON.stringify({ ...minimal, privateSocketPath: '/run/y/e.sock' })).privateSocketPath, '/run/y/e.sock');
    assert.match(problems(JSON.stringify({ ...minimal, privateSocketPath: '/run/pullnix/other.sock' })).join(), /directory of its own/);
  });

  it("resolves the watcher's identity: its own state directory and socket with a user, root's without", () => {
    const root = parseConfig(JSON.stringify(minimal));
    assert.deepEqual(root.watcher, { user: null, stateDir: '/var/lib/pullnix', socketPath: '/run/pullnix/root/executor.sock' });
    const own = parseConfig(JSON.stringify({ ...minimal, watcher: { user: 'pullnix-watcher' } }));
    assert.deepEqual(own.watcher, { user: 'pullnix-watcher', stateDir: '/var/lib/pullnix-watcher', socketPath: '/run/pullnix-watcher/executor.sock' });
    assert.match(problems(JSON.stringify({ ...minimal, watcher: { user: 'w', stateDir: '/var/lib/pullnix/w' } })).join(), /watcher.stateDir .* must be apart from stateDir/);
    assert.match(problems(JSON.stringify({ ...minimal, watcher: { user: 'w', stateDir: '/var/lib' } })).join(), /must be apart/);
    assert.match(problems(JSON.stringify({ ...minimal, watcher: { user: 'w', socketPath: '/run/pullnix/w.sock' } })).join(), /directory of its own/);
    assert.match(problems(JSON.stringify({ ...minimal, watcher: { user: 'Bad User' } })).join(), /watcher.user: must match pattern/);
    assert.match(
      problems(JSON.stringify({ ...minimal, watcher: { user: 'w' }, hooks: { preDeploy: { argv: ['/bin/true'], user: 'alice' } } })).join(),
      /hooks.preDeploy.user: "alice" cannot be used: the watcher runs as "w"/,
    );
  });

  it('fills every default from the schema', () => {
    const c = parseConfig(JSON.stringify(minimal));
    assert.equal(c.repository.branch, 'main');
    assert.equal(c.poll.intervalSec, 300);
    assert.equal(c.verify.timeoutSec, 120);
    assert.equal(c.activation, 'test');
    assert.equal(c.socketPath, '/run/pullnix/executor.sock');
    assert.equal(c.privateSocketPath, '/run/pullnix/root/executor.sock');
    assert.equal(c.paths.systemProfile, '/nix/var/nix/profiles/system');
    assert.deepEqual(c.operators, { group: 'pullnix', keys: [] });
  });

  it('names an unknown key and a wrong value with what was expected', () => {
    const p = problems(JSON.stringify({ ...minimal, repository: { url: 'x', brnch: 'main' }, activation: 'boot', poll: { intervalSec: 'often' } }));
    assert.ok(p.includes('repository.brnch: unknown key (not in the schema)'), p.join('\n'));
    assert.ok(p.includes('activation: must be one of "test", "switch"'), p.join('\n'));
    assert.ok(p.includes('poll.intervalSec: must be integer'), p.join('\n'));
  });

  it('source (issue 23): build by default; prebuilt needs a cache and a key, and a manifest inside the repository', () => {
    const c = parseConfig(JSON.stringify(minimal));
    assert.deepEqual(c.source, { mode: 'build', manifest: 'hosts/<host>.json', caches: [], publicKeys: [], requireSignedSource: false, freeSpaceMarginMiB: 512 });
    assert.equal(manifestPath(c.source, 'edge-01'), 'hosts/edge-01.json');
    assert.deepEqual(problems(JSON.stringify({ ...minimal, source: { mode: 'prebuilt', manifest: '../x/<host>.json' } })), [
      'source.caches: source.mode is "prebuilt" but no binary cache is configured; the closure could be fetched from nowhere',
      'source.publicKeys: source.mode is "prebuilt" but no cache key is trusted; Nix would refuse every path',
      `source.manifest: "../x/<host>.json" leaves the repository ('..')`,
    ]);
    assert.match(problems(JSON.stringify({ ...minimal, source: { mode: 'prebuilt', caches: ['https://c'], publicKeys: ['not a key'] } })).join('\n'), /source.publicKeys.0: must match pattern/);
    assert.equal(parseConfig(JSON.stringify({ ...minimal, trust: { allowedSigners: [{ principal: 'ci', key: 'ssh-ed25519 AAAA', role: 'builder' }] } })).trust.allowedSigners[0]?.role, 'builder');
  });

  it('names a missing required key', () => {
    assert.deepEqual(problems('{"build": {"mode": "flake"}}'), ['repository: required key is missing']);
  });

  it('reports JSON syntax errors and unreadable files with the file name', () => {
    assert.match(problems('{"repository": ')[0]!, /not valid JSON/);
    const dir = mkdtempSync(join(tmpdir(), 'pullnix-config-'));
    assert.throws(() => loadConfig(join(dir, 'missing.json')), /missing\.json[\s\S]*ENOENT/);
    writeFileSync(join(dir, 'ok.json'), JSON.stringify(minimal));
    assert.equal(loadConfig(join(dir, 'ok.json')).build.mode, 'flake');
  });

  it('builds one ssh command with the deploy key and strict pinned host keys', () => {
    const c = parseConfig(JSON.stringify({ ...minimal, repository: { url: 'x', sshKeyFile: '/etc/pullnix/deploy key', knownHostsFile: '/etc/pullnix/known_hosts' } }));
    const env = gitEnvironment(c);
    assert.equal(
      env.GIT_SSH_COMMAND,
      "ssh -o BatchMode=yes -o ConnectTimeout=10 -i '/etc/pullnix/deploy key' -o IdentitiesOnly=yes -o UserKnownHostsFile=/etc/pullnix/known_hosts -o StrictHostKeyChecking=yes",
    );
    assert.equal(env.GIT_TERMINAL_PROMPT, '0');
  });
});

describe('config: ring', () => {
  it('no ring: the host follows repository.branch', () => {
    const c = parseConfig(JSON.stringify(minimal));
    assert.deepEqual(c.ring, { name: null, branch: null, phases: [] });
    assert.equal(c.repository.branch, 'main');
  });

  it('a ring: the host follows rings/<name>, or ring.branch', () => {
    const c = parseConfig(JSON.stringify({ ...minimal, ring: { name: 'canary' } }));
    assert.equal(c.ring.branch, 'rings/canary');
    assert.equal(c.repository.branch, 'rings/canary');
    const d = parseConfig(JSON.stringify({ ...minimal, ring: { name: 'prod', branch: 'stable' } }));
    assert.equal(d.repository.branch, 'stable');
  });

  it('refuses a repository.branch that contradicts the ring, phases out of order or short of 100 %', () => {
    assert.deepEqual(problems(JSON.stringify({ ...minimal, repository: { ...minimal.repository, branch: 'production' }, ring: { name: 'canary' } })), [
      'repository.branch: "production" with ring.name "canary": a ring\'s host follows ring.branch (rings/canary); leave repository.branch unset, or set ring.branch',
    ]);
    const p = problems(JSON.stringify({ ...minimal, ring: { name: 'prod', phases: [{ afterSec: 60, share: 50 }, { afterSec: 60, share: 10 }] } }));
    assert.deepEqual(p, [
      'ring.phases[1].afterSec: 60 must be later than the phase before it (60)',
      'ring.phases[1].share: 10 is less than the phase before it (50); a share never shrinks',
      'ring.phases: the last phase allows 10 %; it must allow 100, or some hosts would never deploy',
    ]);
    assert.deepEqual(problems(JSON.stringify({ ...minimal, ring: { phases: [{ afterSec: 0, share: 100 }] } })), ['ring.phases: set without ring.name (a phased start is a share of a ring)']);
    assert.ok(problems(JSON.stringify({ ...minimal, ring: { name: 'a b' } }))[0]!.startsWith('ring.name: must match pattern'));
  });
});

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { generateSigningKey, saveSigningKey } from '@pullnix/shared';
import { findKey, keyCandidates, loadSettings, userKeyPath } from '../../src/ctl/context.ts';
import { CtlError } from '../../src/ctl/exit.ts';

describe('ctl settings and key discovery', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pullnix-ctl-ctx-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads the config, or falls back to the schema defaults with a note', () => {
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ repository: { url: 'x' }, build: { mode: 'flake' }, socketPath: '/tmp/p.sock', operators: { group: 'wheel' } }));
    const s = loadSettings(file, false);
    assert.deepEqual(s, { socketPath: '/tmp/p.sock', stateDir: '/var/lib/pullnix', group: 'wheel', units: { executor: 'pullnix-executor.service', watcher: 'pullnix-watcher.service' }, note: null });

    const missing = loadSettings(join(dir, 'none.json'), false);
    assert.equal(missing.socketPath, '/run/pullnix/executor.sock');
    assert.equal(missing.group, 'pullnix');
    assert.match(missing.note ?? '', /not used \(cannot read: ENOENT\); using the defaults/);
  });

  it("uses root's own socket as root and the operator group's otherwise", () => {
    const file = join(dir, 'sockets.json');
    writeFileSync(file, JSON.stringify({ repository: { url: 'x' }, build: { mode: 'flake' } }));
    assert.equal(loadSettings(file, true).socketPath, '/run/pullnix/root/executor.sock');
    assert.equal(loadSettings(file, false).socketPath, '/run/pullnix/executor.sock');
    assert.equal(loadSettings(join(dir, 'none.json'), true).socketPath, '/run/pullnix/root/executor.sock');
    writeFileSync(file, JSON.stringify({ repository: { url: 'x' }, build: { mode: 'flake' }, privateSocketPath: '/run/own/x.sock' }));
    assert.equal(loadSettings(file, true).socketPath, '/run/own/x.sock');
  });

  it('keeps what it can use from a config that does not validate, and says what is wrong', () => {
    const file = join(dir, 'broken.json');
    writeFileSync(file, JSON.stringify({ repository: { url: 'x' }, build: { mode: 'flake' }, socketPath: '/srv/p.sock', units: { watcher: 'w.service' }, frobnicate: true }));
    const s = loadSettings(file, false);
    assert.equal(s.socketPath, '/srv/p.sock');
    assert.equal(loadSettings(file, true).socketPath, '/srv/root/p.sock', 'root: the private socket derived from the one that could be read');
    assert.equal(s.units.watcher, 'w.service');
    assert.match(s.note ?? '', /frobnicate: unknown key/);
  });

  it('looks for keys in the documented order', () => {
    const env = { HOME: '/home/al', XDG_CONFIG_HOME: '/cfg' };
    assert.deepEqual(keyCandidates('k.key', env, '/s').map((c) => c.source), ['--key']);
    assert.deepEqual(keyCandidates(undefined, { ...env, PULLNIX_KEY: '/e.key' }, '/s').map((c) => c.path), ['/e.key']);
    assert.deepEqual(keyCandidates(undefined, env, '/s').map((c) => c.path), ['/cfg/pullnix/operator.key', '/s/keys/local-operator.key']);
    assert.equal(userKeyPath({ HOME: '/home/al' }), '/home/al/.config/pullnix/operator.key');
    assert.equal(userKeyPath({ HOME: '/home/al', XDG_CONFIG_HOME: 'relative' }), '/home/al/.config/pullnix/operator.key', 'a relative XDG_CONFIG_HOME is ignored (XDG spec)');
  });

  it('falls through a missing user key to the local operator key; a missing explicit key is an error', () => {
    const state = join(dir, 'state');
    saveSigningKey(join(state, 'keys', 'local-operator.key'), generateSigningKey('local-root'));
    const found = findKey(undefined, { HOME: join(dir, 'home') }, state);
    assert.equal(found.key.keyId, 'local-root');
    assert.throws(() => findKey(join(dir, 'nope.key'), {}, state), (e: unknown) => e instanceof CtlError && e.exitCode === 4 && /cannot read the key file .*nope\.key \(from --key\): ENOENT/.test(e.message));
    assert.throws(() => findKey(undefined, { HOME: join(dir, 'home') }, join(dir, 'other')), (e: unknown) => e instanceof CtlError && e.code === 'NO_KEY' && /pullnix-ctl key create/.test(e.hint ?? ''));
    writeFileSync(join(dir, 'junk.key'), 'not a key');
    assert.throws(() => findKey(join(dir, 'junk.key'), {}, state), (e: unknown) => e instanceof CtlError && /is not usable: .*not JSON/.test(e.message));
  });
});

/** The executor's configuration fallback (main.ts, config-fallback.ts): the committed system's file, under the configured profile. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { committedConfigPath, DEFAULT_SYSTEM_PROFILE } from '../src/config-fallback.ts';

describe('the configuration fallback', () => {
  let dir = '';
  afterEach(() => dir && rmSync(dir, { recursive: true, force: true }));
  const file = (text: string) => {
    dir = mkdtempSync(join(tmpdir(), 'pnx-fallback-'));
    const f = join(dir, 'config.json');
    writeFileSync(f, text);
    return f;
  };

  it("takes the unusable file's paths.systemProfile when that much of it reads", () => {
    // Unusable (the url has no scheme), its profile still readable.
    const f = file(JSON.stringify({ paths: { systemProfile: '/nix/var/nix/profiles/pullnix-system/' }, checks: { api: { type: 'http', url: 'localhost:8080' } } }));
    assert.equal(committedConfigPath(f), '/nix/var/nix/profiles/pullnix-system/etc/pullnix/config.json');
  });

  it("NixOS's default profile when the file has none, is not JSON, is missing, or names no absolute path", () => {
    const expected = `${DEFAULT_SYSTEM_PROFILE}/etc/pullnix/config.json`;
    assert.equal(expected, '/nix/var/nix/profiles/system/etc/pullnix/config.json');
    assert.equal(committedConfigPath(file('{"repository": {}}')), expected);
    assert.equal(committedConfigPath(file('{ not json')), expected);
    assert.equal(committedConfigPath(file('null')), expected);
    assert.equal(committedConfigPath(file('{"paths": {"systemProfile": "relative/profile"}}')), expected);
    assert.equal(committedConfigPath(file('{"paths": {"systemProfile": 7}}')), expected);
    assert.equal(committedConfigPath('/nonexistent/pullnix/config.json'), expected);
  });
});

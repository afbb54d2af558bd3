/** pullnix-ctl's compile cache: only in a directory that is the user's alone (its code runs as that user). */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { compileCacheDir } from '../../src/ctl/compile-cache.ts';

const root = mkdtempSync(join(tmpdir(), 'pullnix-cc-'));
after(() => rmSync(root, { recursive: true, force: true }));
const uid = process.geteuid!();

function home(name: string, mode = 0o755): string {
  const dir = join(root, name);
  mkdirSync(dir);
  chmodSync(dir, mode);
  return dir;
}

describe('compile cache directory', () => {
  it('made 0700 under the home directory the user owns', () => {
    const h = home('alice');
    assert.equal(compileCacheDir(h, uid), join(h, '.cache', 'pullnix-ctl'));
    assert.equal(statSync(join(h, '.cache', 'pullnix-ctl')).mode & 0o777, 0o700);
    assert.equal(compileCacheDir(h, uid), join(h, '.cache', 'pullnix-ctl'), 'and found again');
  });

  it('none in a home another user owns, one others can write, a cache that is a symlink or open to others', () => {
    assert.equal(compileCacheDir(home('bob'), uid + 1), null, 'not the user\'s home');
    assert.equal(compileCacheDir(home('shared', 0o1777), uid), null, 'a home anyone can write');
    const linked = home('linked');
    mkdirSync(join(linked, '.cache'), { mode: 0o700 });
    symlinkSync(home('elsewhere', 0o700), join(linked, '.cache', 'pullnix-ctl'));
    assert.equal(compileCacheDir(linked, uid), null, 'a symlink');
    const open = home('open');
    mkdirSync(join(open, '.cache', 'pullnix-ctl'), { recursive: true, mode: 0o700 });
    chmodSync(join(open, '.cache', 'pullnix-ctl'), 0o777);
    assert.equal(compileCacheDir(open, uid), null, 'writable by others');
    assert.equal(compileCacheDir(join(root, 'missing'), uid), null);
  });
});

/**
 * The metrics textfile in a directory the watcher's user shares with root (issue 21): each daemon's
 * file readable by node_exporter's user whatever the daemon's umask, a squatter at a daemon's file
 * name removed, and the executor's side making a group-writable directory sticky.
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { createLogger, protectTextfileDirectory, TextfileWriter } from '../src/index.ts';

function capture(): { log: ReturnType<typeof createLogger>; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({ write(chunk: Buffer, _e: string, cb: () => void) { lines.push(chunk.toString()); cb(); } });
  return { log: createLogger({ stream, level: 'debug' }), lines };
}

describe('metrics textfile', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pullnix-metrics-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is 0644 under UMask=0077 (node_exporter runs as its own user)', () => {
    const old = process.umask(0o077);
    try {
      new TextfileWriter(dir, 'pullnix-watcher.prom', capture().log).write('x 1\n');
    } finally {
      process.umask(old);
    }
    assert.equal(statSync(join(dir, 'pullnix-watcher.prom')).mode & 0o777, 0o644);
  });

  it('removes a directory, a link or another user\'s file standing at its name, then writes', () => {
    const { log, lines } = capture();
    const path = join(dir, 'pullnix-executor.prom');
    mkdirSync(join(path, 'inside'), { recursive: true });
    new TextfileWriter(dir, 'pullnix-executor.prom', log).write('a 1\n');
    assert.equal(readFileSync(path, 'utf8'), 'a 1\n');
    assert.match(lines.join(''), /metrics\.squatter_removed .*type=directory/);

    rmSync(path);
    symlinkSync('/etc/hostname', path);
    new TextfileWriter(dir, 'pullnix-executor.prom', log).write('b 1\n');
    assert.equal(readFileSync(path, 'utf8'), 'b 1\n');
    assert.ok(!statSync(path, { throwIfNoEntry: false })?.isSymbolicLink());

    rmSync(path);
    writeFileSync(path, 'pullnix_paused 1\n');
    chownSync(path, 65534, 65534);
    new TextfileWriter(dir, 'pullnix-executor.prom', log).write('c 1\n');
    assert.equal(statSync(path).uid, process.geteuid!());
    assert.equal(readFileSync(path, 'utf8'), 'c 1\n');
  });

  it('the executor makes a group-writable directory sticky, and leaves a private one alone', () => {
    const { log, lines } = capture();
    chmodSync(dir, 0o775);
    assert.equal(protectTextfileDirectory(dir, log), true);
    assert.equal(statSync(dir).mode & 0o7777, 0o1775);
    assert.match(lines.join(''), /metrics\.directory_protected .*mode_was=775 mode=1775/);
    chmodSync(dir, 0o755);
    protectTextfileDirectory(dir, log);
    assert.equal(statSync(dir).mode & 0o7777, 0o755);
  });
});

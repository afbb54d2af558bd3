/**
 * The fetch's time limit is an inactivity limit: real git fetching over a stand-in ssh (a script
 * that runs git-upload-pack locally) that trickles the pack out slowly, or stalls.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { createLogger } from '@pullnix/shared';
import { GitCheckout } from '../src/commands/git.ts';

const root = mkdtempSync(join(tmpdir(), 'pullnix-fetch-'));
after(() => rmSync(root, { recursive: true, force: true }));

const GIT_ENV = { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t', GIT_CONFIG_NOSYSTEM: '1' };
const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, env: GIT_ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

/**
 * A bare remote whose one commit holds `files` incompressible files (1.5 MB in all). 150 files are
 * over git's default fetch.unpackLimit (100 objects: index-pack, which shows progress); 3 files
 * are under it (unpack-objects, which printed nothing while the pack came in).
 */
function bigRemote(name: string, files: number): { path: string; head: string } {
  const work = join(root, `work-${name}`);
  mkdirSync(work);
  git(work, 'init', '-q');
  for (let i = 0; i < files; i++) writeFileSync(join(work, `f${i}`), randomBytes(Math.floor(1_500_000 / files)));
  git(work, 'add', '.');
  git(work, 'commit', '-qm', 'big');
  const path = join(root, `${name}.git`);
  git(root, 'clone', '-q', '--bare', work, path);
  return { path, head: git(work, 'rev-parse', 'HEAD') };
}

/** A stand-in for ssh: runs the remote command locally; `slow` trickles its output (64 KiB per 0.25 s), `stall` prints nothing. */
function fakeSsh(kind: 'slow' | 'stall'): string {
  const file = join(root, `ssh-${kind}`);
  const body =
    kind === 'slow'
      ? `for last; do :; done
sh -c "$last" | while :; do
  n=$(dd bs=65536 count=1 status=none | tee /dev/fd/3 | wc -c)
  [ "$n" -eq 0 ] && break
  sleep 0.25
done 3>&1
`
      : 'exec sleep 3\n';
  writeFileSync(file, `#!/bin/sh\n${body}`, { mode: 0o755 });
  return file;
}

function checkout(name: string, url: string, ssh: string, fetchTimeoutMs: number): { git: GitCheckout; log: string[] } {
  const log: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _e, done) {
      log.push(...chunk.toString().split('\n').filter((l) => l));
      done();
    },
  });
  const gitOps = new GitCheckout({ url, branch: 'master', dir: join(root, name), env: { GIT_SSH_COMMAND: ssh, GIT_CONFIG_NOSYSTEM: '1' }, logger: createLogger({ level: 'debug', stream }), fetchTimeoutMs });
  return { git: gitOps, log };
}

describe('fetch time limit: no output for fetchTimeoutSec, not the whole fetch', () => {
  const remote = bigRemote('many', 150);
  const url = `ssh://git.invalid${remote.path}`;

  it('a fetch that keeps printing progress runs past the limit and completes', async () => {
    // 1.5 MB at 256 KiB/s: about 6 s of fetching under a 3 s inactivity limit.
    const { git: g } = checkout('slow', url, fakeSsh('slow'), 3000);
    await g.fetch();
    assert.equal(await g.hasCommit(remote.head), true);
  });

  it('a slow fetch of fewer than 100 objects prints progress too, and completes', async () => {
    // 5 objects (3 blobs, a tree, a commit), 1.5 MB at 256 KiB/s: about 6 s under a 3 s limit.
    const few = bigRemote('few', 3);
    const { git: g } = checkout('slow-few', `ssh://git.invalid${few.path}`, fakeSsh('slow'), 3000);
    await g.fetch();
    assert.equal(await g.hasCommit(few.head), true);
  });

  it('a fetch that prints nothing is stopped with an error naming the limit', async () => {
    const { git: g, log } = checkout('stall', url, fakeSsh('stall'), 1000);
    await assert.rejects(g.fetch(), { message: 'git fetch printed nothing for 1 s and was stopped (repository.fetchTimeoutSec, reset by every line of progress)' });
    assert.ok(log.some((l) => l.includes('printed nothing for 1 s')), 'command.done says why');
  });
});

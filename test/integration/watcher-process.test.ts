/**
 * pullnix-watcher as a process: its command line, a configuration error, and a graceful SIGTERM
 * in the middle of a build (the build is stopped, nothing half-written is left, exit 0).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { lstatSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { defaultPrivateSocketPath, parseLine } from '@pullnix/shared';
import { GitRemote } from '../lib/git-remote.ts';
import { FakeExecutor } from '../lib/watcher-fake-executor.ts';
import { Fixtures, waitFor } from '../lib/watcher-fixtures.ts';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'watcher', 'dist', 'src', 'main.js');
const fx = new Fixtures();
after(() => fx.cleanup());

function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  // A zombie nobody reaped yet has stopped running too.
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

describe('pullnix-watcher process', () => {
  it('prints its version and usage', () => {
    const version = spawnSync(process.execPath, [MAIN, '--version'], { encoding: 'utf8' });
    assert.equal(version.status, 0);
    assert.match(version.stdout, /^pullnix-watcher \d+\.\d+\.\d+\n$/);
    const help = spawnSync(process.execPath, [MAIN, '--help'], { encoding: 'utf8' });
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--config FILE/);
    const bad = spawnSync(process.execPath, [MAIN, '--frobnicate'], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /frobnicate/);
  });

  it('refuses a configuration with an unknown key, naming it', () => {
    const file = join(fx.root, 'bad.json');
    writeFileSync(file, JSON.stringify({ repository: { url: '/x', brnach: 'main' }, build: { mode: 'flake' } }));
    const run = spawnSync(process.execPath, [MAIN, '--config', file], { encoding: 'utf8' });
    assert.equal(run.status, 1);
    assert.match(run.stderr, /repository\.brnach: unknown key/);
  });

  it('--check-config: 0 for a file it would start with, 78 naming the problem for one it would not', () => {
    const file = join(fx.root, 'check.json');
    const base = { repository: { url: '/x' }, build: { mode: 'flake' } };
    writeFileSync(file, JSON.stringify(base));
    const ok = spawnSync(process.execPath, [MAIN, '--check-config', '--config', file], { encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    writeFileSync(file, JSON.stringify({ ...base, checks: { api: { type: 'http', url: 'localhost:8080/health' } } }));
    const bad = spawnSync(process.execPath, [MAIN, '--check-config', '--config', file], { encoding: 'utf8' });
    assert.equal(bad.status, 78);
    assert.match(bad.stderr, /checks\.api\.url: must be an http:\/\/ or https:\/\/ URL/);
  });

  it('stops a running build on SIGTERM, removes its half-written out-link and exits 0', async () => {
    // main: c1 - *c2      (c1 deployed; the build of c2 hangs)
    const remote = new GitRemote();
    const c1 = remote.commit('c1');
    const c2 = remote.commit('c2');
    remote.push();
    const stateDir = fx.newStateDir();
    // The watcher uses root's own socket (derived from socketPath): the fake executor serves that.
    const socketPath = join(stateDir, 'run', 'executor.sock');
    const executor = new FakeExecutor({ socketPath: defaultPrivateSocketPath(socketPath), stateDir });
    executor.deployed = c1;
    await executor.start();
    const configFile = join(stateDir, 'config.json');
    writeFileSync(
      configFile,
      JSON.stringify({ repository: { url: remote.url }, build: { mode: 'flake', host: 'testhost' }, poll: { intervalSec: 3600, jitterSec: 0 }, stateDir, socketPath, logLevel: 'info' }),
    );
    fx.hangBuilds(true);
    const child = spawn(process.execPath, [MAIN, '--config', configFile], { env: { ...process.env, PATH: fx.path }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await waitFor('the build to start', () => fx.hangingPid() !== null && stdout.includes('build.started'));
      const nixPid = fx.hangingPid()!;
      assert.ok(lstatSync(join(stateDir, 'gcroots', c2)).isSymbolicLink(), 'the stand-in left a half-written link');
      child.kill('SIGTERM');
      assert.equal(await exited, 0, `exit code (stderr: ${stderr})`);
      const events = stdout.split('\n').map(parseLine).filter((l) => l !== null);
      const names = events.map((e) => e.event);
      assert.ok(names.includes('build.stopped'), names.join(' '));
      assert.ok(!names.includes('build.failed'), 'a stopped build is not a failed commit');
      assert.ok(names.includes('watcher.stopping'));
      assert.throws(() => lstatSync(join(stateDir, 'gcroots', c2)), /ENOENT/, 'no half-written out-link left');
      await waitFor('the build process to be gone', () => gone(nixPid));
      assert.equal(executor.deploys.length, 0);
      const memory = JSON.parse(readFileSync(join(stateDir, 'watcher.json'), 'utf8')) as { lastHandled: unknown; failures: unknown[] };
      assert.equal(memory.lastHandled, null, 'the head is built again after a restart');
      assert.deepEqual(memory.failures, []);
    } finally {
      fx.hangBuilds(false);
      child.kill('SIGKILL');
      executor.stop();
    }
  });
});

import assert from 'node:assert/strict';
import { lstatSync, lutimesSync, mkdtempSync, readdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseConfig, type RunOptions, type RunResult, type Runner } from '@pullnix/shared';
import { buildArgv, buildSystem, pruneGcRoots } from '../src/index.ts';

const C1 = '1'.repeat(40);
const C2 = '2'.repeat(40);
const C3 = '3'.repeat(40);
const C4 = '4'.repeat(40);
const STORE = '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-h';

function build(extra: Record<string, unknown> = {}) {
  return parseConfig(JSON.stringify({ repository: { url: '/r' }, build: { mode: 'flake', ...extra } })).build;
}

/** A runner that answers like nix would, optionally creating the out-link. */
function fakeRunner(answer: Partial<RunResult>, link?: string): Runner & { calls: { argv: readonly string[]; options: RunOptions }[] } {
  const calls: { argv: readonly string[]; options: RunOptions }[] = [];
  const runner = async (argv: readonly string[], options: RunOptions): Promise<RunResult> => {
    calls.push({ argv, options });
    const out = argv[argv.indexOf('--out-link') + 1]!;
    if (link) symlinkSync(link, out);
    return { argv, exitCode: 0, signal: null, stdout: '', stderr: '', timedOut: false, aborted: false, durationMs: 1, spawnError: null, ...answer };
  };
  return Object.assign(runner, { calls });
}

describe('build command', () => {
  it('builds a flake from the checkout path (never a git+file reference) with the extra flags', () => {
    assert.deepEqual(buildArgv(build({ host: 'web1', extraFlags: ['--max-jobs', '0'] }), '/s/checkout', '/s/gcroots/c'), [
      'nix',
      'build',
      '/s/checkout#nixosConfigurations."web1".config.system.build.toplevel',
      '--out-link',
      '/s/gcroots/c',
      '--max-jobs',
      '0',
    ]);
  });

  it('defaults the flake host to the given machine name', () => {
    assert.equal(buildArgv(build(), '/c', '/o', 'pi4')[2], '/c#nixosConfigurations."pi4".config.system.build.toplevel');
  });

  it('builds a classic configuration through <nixpkgs/nixos>', () => {
    assert.deepEqual(buildArgv(build({ mode: 'classic', file: 'hosts/pi.nix' }), '/s/checkout', '/o'), [
      'nix-build',
      '<nixpkgs/nixos>',
      '-A',
      'system',
      '-I',
      'nixos-config=/s/checkout/hosts/pi.nix',
      '--out-link',
      '/o',
    ]);
  });
});

describe('buildSystem', () => {
  const gcroots = () => mkdtempSync(join(tmpdir(), 'pullnix-gcroots-'));

  it('returns the toplevel the out-link points at, with the timeout from the config', async () => {
    const dir = gcroots();
    const runner = fakeRunner({}, STORE);
    const result = await buildSystem({ build: build({ timeoutSec: 77 }), runner, checkoutDir: '/c', gcrootsDir: dir, commit: C1, host: 'h' });
    assert.deepEqual(result.ok && result.toplevel, STORE);
    assert.equal(runner.calls[0]?.options.timeoutMs, 77_000);
  });

  it('records a failure with the last 30 lines of stderr and leaves no out-link', async () => {
    const dir = gcroots();
    const stderr = Array.from({ length: 40 }, (_, i) => `line ${i + 1}`).join('\n');
    const result = await buildSystem({ build: build(), runner: fakeRunner({ exitCode: 1, stderr }, STORE), checkoutDir: '/c', gcrootsDir: dir, commit: C1, host: 'h' });
    assert.equal(result.ok, false);
    assert.ok(!result.ok && !result.stopped);
    assert.ok(!result.ok && result.logTail.startsWith('line 11\n') && result.logTail.endsWith('line 40'));
    assert.match(!result.ok ? result.error : '', /nix exited 1: line 38/);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('treats a timeout as a failure and an abort as a stop, removing the link either way', async () => {
    const dir = gcroots();
    const timedOut = await buildSystem({ build: build(), runner: fakeRunner({ exitCode: null, signal: 'SIGTERM', timedOut: true }, STORE), checkoutDir: '/c', gcrootsDir: dir, commit: C1, host: 'h' });
    assert.ok(!timedOut.ok && !timedOut.stopped && /timed out/.test(timedOut.error));
    const aborted = await buildSystem({ build: build(), runner: fakeRunner({ exitCode: null, signal: 'SIGTERM', aborted: true }, STORE), checkoutDir: '/c', gcrootsDir: dir, commit: C2, host: 'h' });
    assert.ok(!aborted.ok && aborted.stopped);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('fails when nix exits 0 without a usable out-link', async () => {
    const dir = gcroots();
    const none = await buildSystem({ build: build(), runner: fakeRunner({}), checkoutDir: '/c', gcrootsDir: dir, commit: C1, host: 'h' });
    assert.match(!none.ok ? none.error : '', /did not create the out-link/);
    const elsewhere = await buildSystem({ build: build(), runner: fakeRunner({}, '/tmp/not-a-store-path'), checkoutDir: '/c', gcrootsDir: dir, commit: C2, host: 'h' });
    assert.match(!elsewhere.ok ? elsewhere.error : '', /not a top-level Nix store path/);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('replaces a stale link left by an interrupted run instead of trusting it', async () => {
    const dir = gcroots();
    symlinkSync('/nix/store/stale', join(dir, C1));
    const result = await buildSystem({ build: build(), runner: fakeRunner({ exitCode: 1, stderr: 'boom' }), checkoutDir: '/c', gcrootsDir: dir, commit: C1, host: 'h' });
    assert.equal(result.ok, false);
    assert.deepEqual(readdirSync(dir), []);
  });
});

describe('pruneGcRoots', () => {
  it('keeps the newest N and every protected commit, ignores other files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pullnix-gcroots-'));
    [C1, C2, C3, C4].forEach((c, i) => {
      const link = join(dir, c);
      symlinkSync(STORE, link);
      lutimesSync(link, 1000 + i, 1000 + i);
    });
    symlinkSync(STORE, join(dir, 'result'));
    const removed = pruneGcRoots(dir, 2, [C1, null]);
    assert.deepEqual(removed.sort(), [C2]);
    assert.deepEqual(readdirSync(dir).sort(), [C1, C3, C4, 'result'].sort());
    assert.ok(lstatSync(join(dir, 'result')).isSymbolicLink());
  });

  it('does nothing when the directory does not exist yet', () => {
    assert.deepEqual(pruneGcRoots('/nonexistent/pullnix/gcroots', 3, []), []);
  });
});

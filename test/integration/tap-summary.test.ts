/**
 * test/run-all.sh's counting (test/lib/tap-summary.ts), on reports node:test itself writes: a
 * skipped suite's tests, a timed-out test and a todo test are not allowed to vanish from the
 * closing line, an empty run fails, and under CI every skip is a failure naming its reason.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { strict, summarize } from '../lib/tap-summary.ts';

const dir = mkdtempSync(join(tmpdir(), 'pullnix-tap-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const CLI = fileURLToPath(new URL('../lib/tap-summary.js', import.meta.url));

/** The TAP report node --test writes for these test files (name -> source). */
function report(files: Record<string, string>): string {
  for (const [name, src] of Object.entries(files)) writeFileSync(join(dir, name), src);
  // Not as a child of this run (NODE_TEST_CONTEXT would make it report to this process instead).
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', ...Object.keys(files).map((f) => join(dir, f))], { encoding: 'utf8', env });
  return r.stdout;
}

const MIXED = `import { describe, it, test } from 'node:test';
describe('needs nix', { skip: 'nix is not installed (apt-get install -y nix-bin)' }, () => { it('one', () => {}); it('two', () => {}); });
test('needs root', (t) => t.skip('needs root to mount a tmpfs'));
test('later', { todo: 'not written' }, () => {});
test('fine', () => {});
test('nested', async (t) => { await t.test('a', () => {}); await t.test('b', () => {}); });
test('hangs', { timeout: 50 }, () => new Promise((resolve) => setTimeout(resolve, 2000)));
describe('group', () => { it('breaks', () => { throw new Error('no'); }); });
`;

describe('tap-summary: the closing line of test/run-all.sh', () => {
  it('counts skipped suites, timed-out and todo tests: nothing vanishes', () => {
    const s = summarize(report({ 'mixed.test.mjs': MIXED }));
    // passed: fine, nested/a, nested/b; failed: later (todo), hangs (cancelled), breaks.
    assert.equal(s.passed, 3, JSON.stringify(s));
    assert.equal(s.failed, 3, JSON.stringify(s));
    assert.equal(s.skipped, 2, 'the skipped suite counts, as does the skipped test');
    assert.ok(s.skips.includes('needs nix: nix is not installed (apt-get install -y nix-bin)'), s.skips.join('; '));
    assert.ok(s.failures.some((f) => f.startsWith('hangs (cancelled')), s.failures.join('; '));
    assert.ok(s.failures.some((f) => f.startsWith('later (todo')), s.failures.join('; '));
  });

  it('a file that fails to load is a failure', () => {
    const s = summarize(report({ 'broken.test.mjs': 'throw new Error("cannot load");\n' }));
    assert.equal(s.failed, 1);
  });

  it('under CI every skip is a failure naming what was missing', () => {
    const s = strict(summarize(report({ 'mixed.test.mjs': MIXED })));
    assert.equal(s.skipped, 0);
    assert.equal(s.failed, 5);
    assert.ok(s.failures.some((f) => /CI=true.*needs nix: nix is not installed/.test(f)), s.failures.join('; '));
  });

  it('the command line: "N passed, N failed, N skipped" alone on its line; an empty run fails', () => {
    const ok = join(dir, 'ok.tap');
    writeFileSync(ok, report({ 'ok.test.mjs': "import { test } from 'node:test';\ntest('x', () => {});\ntest('y', (t) => t.skip('no gpg'));\n" }));
    const r = spawnSync(process.execPath, [CLI, ok], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^1 passed, 0 failed, 1 skipped$/m);
    const ci = spawnSync(process.execPath, [CLI, '--ci', ok], { encoding: 'utf8' });
    assert.equal(ci.status, 1);
    assert.match(ci.stdout, /^1 passed, 1 failed, 0 skipped$/m);
    assert.match(ci.stdout, /FAILED: .*no gpg/);
    const empty = join(dir, 'empty.tap');
    writeFileSync(empty, 'TAP version 13\n1..0\n# tests 0\n# pass 0\n# fail 0\n');
    const e = spawnSync(process.execPath, [CLI, empty], { encoding: 'utf8' });
    assert.equal(e.status, 1, 'an empty report fails');
    assert.match(e.stdout, /no test at all/);
  });
});

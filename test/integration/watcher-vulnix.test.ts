/**
 * The vulnerability gate through the watcher's poll cycle, with real nix builds and the stand-in
 * vulnix (test/fixtures/vulnix: it lists each closure with the real `nix-store -qR` and matches
 * the store names against an advisory file), against a fake executor on a real socket. Each
 * commit's system is a plain derivation that references one small derivation per "package"
 * (`<pname>-<version>`), so adding or removing a package really changes the closure vulnix sees.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { createRunner } from '@pullnix/shared';
import { Watcher } from '@pullnix/watcher';
import { GitRemote } from '../lib/git-remote.ts';
import { FakeExecutor } from '../lib/watcher-fake-executor.ts';
import { CapturedLog, Fixtures, subscribedLink, waitFor, watcherConfig } from '../lib/watcher-fixtures.ts';
import { e2eUnavailable, NIX_CONFIG, ROOT } from '../lib/watcher-machine.ts';

const STAND_IN_VULNIX = join(ROOT, 'test/fixtures/vulnix');
const unavailable = e2eUnavailable();
const fx = new Fixtures();
after(() => fx.cleanup());
const teardowns: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const t of teardowns.splice(0).reverse()) await t();
});

const ADVISORIES = [
  '# pname\tversion\tCVE\tCVSS v3\tdescription',
  'openssl\t1.0.1\tCVE-2014-0160\t7.5\tHeartbleed: the TLS heartbeat extension reads out of bounds',
  'libfoo\t*\tCVE-2099-0001\t9.8\tremote code execution in libfoo',
  'zlib\t*\tCVE-2099-0002\t5.3\ta moderate one, below minSeverity',
].join('\n');

function nixSystem(): string {
  const arch = process.arch === 'arm64' ? 'aarch64' : process.arch === 'x64' ? 'x86_64' : process.arch;
  return `${arch}-linux`;
}

/** A flake whose toplevel references one derivation per package. */
function flake(label: string, packages: Record<string, string>): string {
  const pkgs = Object.entries(packages)
    .map(([name, version]) => `(mk "${name}-${version}")`)
    .join(' ');
  return `{
  outputs = { self }: let
    mk = name: derivation { inherit name; system = "${nixSystem()}"; builder = "/bin/sh"; args = [ "-c" "echo \${name} > $out" ]; };
  in {
    nixosConfigurations.testhost.config.system.build.toplevel = derivation {
      name = "nixos-system-testhost-${label}";
      system = "${nixSystem()}";
      builder = "/bin/sh";
      PATH = "/usr/bin:/bin";
      packages = [ ${pkgs} ];
      args = [ "-c" "mkdir -p $out/sw; echo ${label} > $out/nixos-version; for p in $packages; do ln -s $p $out/sw/; done" ];
    };
  };
}
`;
}

async function rig(remote: GitRemote, gate: Record<string, unknown>, existing?: { stateDir: string; currentSystem: string; executor: FakeExecutor }) {
  const stateDir = existing?.stateDir ?? fx.newStateDir();
  const socketPath = join(stateDir, 'run', 'executor.sock');
  const currentSystem = existing?.currentSystem ?? join(stateDir, 'current-system');
  const config = watcherConfig({
    url: remote.url,
    stateDir,
    socketPath,
    build: { extraFlags: [] },
    extra: { gates: { vulnerabilities: { enable: true, command: STAND_IN_VULNIX, ...gate } }, paths: { currentSystem } },
  });
  let executor = existing?.executor;
  if (!executor) {
    executor = new FakeExecutor({ socketPath, stateDir });
    await executor.start();
    const started = executor;
    teardowns.push(() => started.stop());
    // Deploying makes the system live, as switch-to-configuration does.
    executor.answer = (params) => {
      rmSync(currentSystem, { force: true });
      symlinkSync(params.toplevel, currentSystem);
      return 'succeeded';
    };
  }
  const vulnixDir = join(stateDir, 'vulnix');
  mkdirSync(vulnixDir, { recursive: true });
  writeFileSync(join(vulnixDir, 'advisories.tsv'), `${ADVISORIES}\n`);
  const log = new CapturedLog();
  const link = await subscribedLink({ socketPath, stateDir, logger: log.logger, teardowns });
  const watcher = new Watcher({ config, runner: createRunner(log.logger), logger: log.logger, executor: link, baseBackoffMs: 10 });
  return {
    watcher,
    executor,
    log,
    stateDir,
    currentSystem,
    /** The store paths the stand-in vulnix scanned, in order. */
    scans: () => (existsSync(join(vulnixDir, 'calls')) ? readFileSync(join(vulnixDir, 'calls'), 'utf8').split('\n').filter(Boolean) : []),
    toplevel: (commit: string) => readlinkSync(join(stateDir, 'gcroots', commit)),
    vulnixDir,
  };
}

describe('the vulnerability gate in the poll cycle (real nix, stand-in vulnix)', { skip: unavailable ? `skipped: ${unavailable}` : false }, () => {
  process.env.NIX_CONFIG = NIX_CONFIG;

  it('refuses a commit that brings in a critical CVE, remembers it like a failed build, deploys the one that fixes things; the live scan is cached across deployments and restarts', async () => {
    // main: c1 (openssl 1.0.1) ─ c2 (+ libfoo 2.0: CVE 9.8) ─ c3 (openssl 1.0.1g, no libfoo) ─ c4 (+ zlib: CVE 5.3) ─ c5
    const remote = new GitRemote();
    const c1 = remote.commit('c1', { 'flake.nix': flake('one', { openssl: '1.0.1' }) });
    remote.push();
    const r = await rig(remote, {});

    // c1: no live system yet (no current-system link): the scan of the live side fails, onError = allow.
    assert.equal((await r.watcher.pollOnce()).outcome, 'deployed');
    const t1 = r.toplevel(c1);
    assert.equal(r.log.events('vulnerabilities.scan_failed')[0]?.fields.target, 'live');
    assert.equal(r.log.events('vulnerabilities.scan_failed')[0]?.fields.on_error, 'allow');
    assert.deepEqual(r.scans(), [], 'nothing to compare with: no scan');
    assert.equal(readlinkSync(r.currentSystem), t1);

    // c2 adds libfoo: refused and named, not requested.
    const c2 = remote.commit('c2 adds libfoo', { 'flake.nix': flake('two', { openssl: '1.0.1', libfoo: '2.0' }) });
    remote.push();
    assert.equal((await r.watcher.pollOnce()).outcome, 'vulnerable');
    const t2 = r.toplevel(c2);
    assert.deepEqual(r.executor.deploys.map((d) => d.commit), [c1], 'c2 was never requested');
    const refused = r.log.events('vulnerabilities.refused');
    assert.equal(refused.length, 1);
    assert.equal(refused[0]!.priority, 4, 'a warning');
    assert.equal(refused[0]!.fields.commit, c2);
    assert.equal(refused[0]!.fields.cves, 'CVE-2099-0001 (libfoo 2.0, 9.8)', 'openssl CVE-2014-0160 is in the live system too: not new');
    assert.deepEqual(r.scans(), [t2, t1], 'the new system, then the live one');
    const memory = r.watcher.remembered;
    const failure = memory.failures.find((f) => f.commit === c2);
    assert.equal(failure?.kind, 'vulnerabilities');
    assert.match(failure?.error ?? '', /1 new vulnerability at or above CVSS 7 .*CVE-2099-0001 \(libfoo 2\.0, 9\.8\)/);
    assert.equal(failure?.logTail, 'CVE-2099-0001\tlibfoo\t2.0\t9.8');
    await waitFor('a report with the refusal', () => r.executor.lastReport?.vulnerabilities?.decision === 'refused' && r.executor.lastReport.state === 'idle');
    const report = r.executor.lastReport!;
    assert.ok(report.failedBuilds.includes(c2));
    assert.equal(report.lastError?.kind, 'vulnerabilities');
    assert.deepEqual(report.vulnerabilities?.new, [{ id: 'CVE-2099-0001', package: 'libfoo', version: '2.0', score: 9.8 }]);
    assert.ok(r.executor.reports.some((rep) => rep.state === 'scanning'), 'the state while vulnix runs');

    // Not tried again: the next poll finds the head handled: no build, no scan.
    assert.equal((await r.watcher.pollOnce()).outcome, 'unchanged');
    assert.equal(r.log.count('build.started'), 2);
    assert.equal(r.scans().length, 2);

    // c3 drops libfoo and updates openssl: deployed, and it fixes Heartbleed.
    const c3 = remote.commit('c3 fixes things', { 'flake.nix': flake('three', { openssl: '1.0.1g' }) });
    remote.push();
    assert.equal((await r.watcher.pollOnce()).outcome, 'deployed');
    const t3 = r.toplevel(c3);
    assert.deepEqual(r.scans(), [t2, t1, t3], 'the unchanged live system was a cache hit');
    assert.equal(r.log.events('vulnerabilities.fixed').at(-1)?.fields.cves, 'CVE-2014-0160 (openssl 1.0.1, 7.5)');
    assert.equal(r.log.events('vulnerabilities.passed').at(-1)?.fields.live_cached, 'true');
    await waitFor('a report with the fix', () => r.executor.lastReport?.vulnerabilities?.commit === c3 && r.executor.lastReport.state === 'idle');
    assert.equal(r.executor.lastReport?.vulnerabilities?.decision, 'passed');
    assert.deepEqual(r.executor.lastReport?.vulnerabilities?.fixed.map((f) => f.id), ['CVE-2014-0160']);

    // c4: the live system is now c3's, which the gate scanned as "new": no scan of it. zlib's CVE is below 7.
    const c4 = remote.commit('c4', { 'flake.nix': flake('four', { openssl: '1.0.1g', zlib: '1.3' }) });
    remote.push();
    assert.equal((await r.watcher.pollOnce()).outcome, 'deployed');
    const t4 = r.toplevel(c4);
    assert.deepEqual(r.scans().slice(3), [t4]);

    // A restarted watcher (the executor restarts it after every outcome) still knows c4's scan.
    const again = await rig(remote, {}, r);
    assert.equal(again.watcher.report().vulnerabilities?.commit, c4, 'the last decision survives the restart');
    const c5 = remote.commit('c5', { 'flake.nix': flake('five', { openssl: '1.0.1g', zlib: '1.3', curl: '8.0' }) });
    remote.push();
    assert.equal((await again.watcher.pollOnce()).outcome, 'deployed');
    assert.deepEqual(r.scans().slice(4), [r.toplevel(c5)], 'the live system (c4) came from the persisted cache');

  });

  it('a failing scan follows onError: refuse keeps the commit undeployed and tries again; a scan that hangs is cut at timeoutSec', async () => {
    const remote = new GitRemote();
    const c1 = remote.commit('c1', { 'flake.nix': flake('one', { openssl: '1.0.1g' }) });
    remote.push();
    // The limit must cut the hanging scan, not a real one slowed by a loaded machine (2 s did,
    // under two CPU hogs and load ~20): each scan runs nix-store over the closures.
    const r = await rig(remote, { onError: 'refuse', timeoutSec: 10 });
    writeFileSync(join(r.vulnixDir, 'unreachable'), 'HTTPSConnectionPool(host=nvd.nist.gov, port=443): Max retries exceeded');
    // A live system that is not this one: another store path, with nothing vulnerable in it.
    const other = spawnSync('nix-build', ['--no-out-link', '-E', `derivation { name = "nixos-system-other"; system = "${nixSystem()}"; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; }`], { encoding: 'utf8' });
    assert.equal(other.status, 0, other.stderr);
    symlinkSync(other.stdout.trim(), r.currentSystem);

    const first = await r.watcher.pollOnce();
    assert.equal(first.outcome, 'scan-failed');
    assert.equal(r.executor.deploys.length, 0, 'not deployed');
    const failed = r.log.events('vulnerabilities.scan_failed')[0];
    assert.equal(failed?.fields.on_error, 'refuse');
    assert.match(failed?.fields.error ?? '', /exited 1 without a JSON report: requests\.exceptions\.ConnectionError: HTTPSConnectionPool/);
    assert.equal(r.watcher.remembered.failures.length, 0, 'a failed scan is not remembered as a failure of the commit');
    assert.equal(r.watcher.report().lastError?.kind, 'vulnerabilities');

    // A scan that never ends is stopped at timeoutSec, and counts as a failed scan.
    rmSync(join(r.vulnixDir, 'unreachable'));
    writeFileSync(join(r.vulnixDir, 'hang'), '');
    assert.equal((await r.watcher.pollOnce()).outcome, 'scan-failed');
    assert.match(r.log.events('vulnerabilities.scan_failed').at(-1)?.fields.error ?? '', /did not finish within gates\.vulnerabilities\.timeoutSec \(10 s\)/);

    // The database is back: the same head is deployed at the next poll.
    rmSync(join(r.vulnixDir, 'hang'));
    assert.equal((await r.watcher.pollOnce()).outcome, 'deployed');
    assert.deepEqual(r.executor.deploys.map((d) => d.commit), [c1]);
  });
});

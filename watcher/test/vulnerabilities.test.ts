/**
 * The vulnerability gate, with a fake runner answering in vulnix's JSON and exit codes: reading
 * vulnix's answers, the comparison (new, fixed, allowed, severity), the decision per setting,
 * the cache of scans per store path, the time limit, and the memory it persists.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { createLogger, createRunner, parseConfig, parseLine, type RunOptions, type RunResult, type VulnerabilityFinding, type VulnerabilityGateConfig } from '@pullnix/shared';
import { compareScans, readVulnixResult, SCAN_CACHE_MAX_AGE_MS, VulnerabilityGate, vulnixArgv } from '../src/index.ts';
import { emptyMemory, MemoryStore, parseMemory } from '../src/memory.ts';
import { Writable } from 'node:stream';

const C1 = '1'.repeat(40);
const C2 = '2'.repeat(40);

function result(answer: Partial<RunResult>): RunResult {
  return { argv: ['vulnix'], exitCode: 0, signal: null, stdout: '', stderr: '', timedOut: false, aborted: false, durationMs: 1, spawnError: null, ...answer };
}

/** vulnix's JSON item for one derivation. */
function item(pname: string, version: string, cves: Record<string, number | null>, whitelisted: string[] = []) {
  const scores: Record<string, number> = {};
  for (const [id, score] of Object.entries(cves)) if (score !== null) scores[id] = score;
  return { name: `${pname}-${version}`, pname, version, derivation: `/nix/store/${'a'.repeat(32)}-${pname}-${version}.drv`, affected_by: Object.keys(cves).sort(), whitelisted, cvssv3_basescore: scores, description: {} };
}

/** A vulnix answer: exit 2 when something is affected, as output.py does. */
function vulnixSays(items: ReturnType<typeof item>[]): RunResult {
  return result({ exitCode: items.some((i) => i.affected_by.length > 0) ? 2 : 0, stdout: JSON.stringify(items, null, 1) });
}

const f = (id: string, pkg: string, score: number | null, version: string | null = '1.0'): VulnerabilityFinding => ({ id, package: pkg, version, score });

describe('reading vulnix', () => {
  it('passes the store path after --json --closure and the cache directory', () => {
    assert.deepEqual(vulnixArgv({ command: '/run/vulnix', extraFlags: ['--mirror', 'https://m/'] }, '/var/lib/pullnix/vulnix', '/nix/store/x-sys'), [
      '/run/vulnix',
      '--json',
      '--closure',
      '--cache-dir',
      '/var/lib/pullnix/vulnix',
      '--mirror',
      'https://m/',
      '--',
      '/nix/store/x-sys',
    ]);
  });

  it('exit 0 with [] is a clean system; exit 2 with a list gives one finding per package and CVE', () => {
    assert.deepEqual(readVulnixResult(result({ exitCode: 0, stdout: '[]\n' })), { ok: true, findings: [] });
    const answer = readVulnixResult(vulnixSays([item('openssl', '1.0.1', { 'CVE-2014-0160': 7.5, 'CVE-2014-9999': null }), item('libfoo', '2.0', { 'CVE-2099-0001': 9.8 })]));
    assert.ok(answer.ok);
    assert.deepEqual(
      answer.findings.sort((a, b) => a.id.localeCompare(b.id)),
      [f('CVE-2014-0160', 'openssl', 7.5, '1.0.1'), f('CVE-2014-9999', 'openssl', null, '1.0.1'), f('CVE-2099-0001', 'libfoo', 9.8, '2.0')],
    );
  });

  it('the same package in two versions with the same CVE is one finding, the worse score kept', () => {
    const answer = readVulnixResult(vulnixSays([item('zlib', '1.2', { 'CVE-2022-0001': 5 }), item('zlib', '1.3', { 'CVE-2022-0001': 8.1 })]));
    assert.ok(answer.ok);
    assert.deepEqual(answer.findings, [f('CVE-2022-0001', 'zlib', 8.1, '1.3')]);
  });

  it('whitelisted CVEs (vulnix -w) are not findings; exit 1 with only whitelisted ones is a result', () => {
    const answer = readVulnixResult(result({ exitCode: 1, stdout: JSON.stringify([{ ...item('zlib', '1.2', {}), whitelisted: ['CVE-2022-0001'] }]) }));
    assert.deepEqual(answer, { ok: true, findings: [] });
  });

  it('a failed vulnix is not a result: exit 2 without JSON (RuntimeError), exit 1 traceback, exit 3, inconsistent exit, timeout, not started', () => {
    const cases: [Partial<RunResult>, RegExp][] = [
      [{ exitCode: 2, stderr: 'ERROR:vulnix.main:path `/x` does not exist - cannot load derivations referenced from it\n' }, /exited 2 without a JSON report: .*does not exist/],
      [{ exitCode: 1, stderr: 'Traceback (most recent call last):\nrequests.exceptions.ConnectionError: nvd.nist.gov\n' }, /exited 1 without a JSON report: .*ConnectionError/],
      [{ exitCode: 3, stdout: 'Usage: vulnix {--system | PATH [...]}\n' }, /exited 3/],
      [{ exitCode: 0, stdout: JSON.stringify([item('libfoo', '2.0', { 'CVE-2099-0001': 9.8 })]) }, /exited 0 but its report lists 1 vulnerability/],
      [{ exitCode: 2, stdout: '[]' }, /exited 2 but its report lists 0/],
      [{ exitCode: 2, stdout: '{"not": "a list"}' }, /unexpected JSON report: not a list/],
      [{ exitCode: 2, stdout: JSON.stringify([{ pname: 'x', affected_by: 'CVE-2020-0001' }]) }, /affected_by is not a list of CVE ids/],
      [{ exitCode: null, timedOut: true, durationMs: 5000 }, /timed out/],
      [{ exitCode: null, spawnError: 'ENOENT' }, /could not be started: ENOENT/],
    ];
    for (const [answer, error] of cases) {
      const read = readVulnixResult(result(answer));
      assert.equal(read.ok, false, JSON.stringify(answer));
      assert.match((read as { error: string }).error, error);
    }
  });
});

describe('comparing the new system with the live one', () => {
  const settings = { minSeverity: 7, allow: [] as string[] };

  it('new = in the new system, at or above minSeverity, not in the live one (same package and CVE)', () => {
    const live = [f('CVE-2014-0160', 'openssl', 7.5)];
    const next = [
      f('CVE-2014-0160', 'openssl', 7.5, '1.0.2'), // still there (another version): not new
      f('CVE-2014-0160', 'libressl', 7.5), // the same CVE in another package: new
      f('CVE-2099-0001', 'libfoo', 9.8),
      f('CVE-2099-0002', 'libfoo', 7.0), // exactly at the threshold: counts
      f('CVE-2099-0003', 'libfoo', 6.9), // below: does not
      f('CVE-2099-0004', 'libfoo', null), // no CVSS v3 score: only with minSeverity 0
    ];
    const c = compareScans(live, next, settings);
    assert.deepEqual(c.new.map((x) => `${x.id} ${x.package}`), ['CVE-2099-0001 libfoo', 'CVE-2014-0160 libressl', 'CVE-2099-0002 libfoo']);
    assert.deepEqual(c.fixed, []);
    assert.deepEqual(compareScans(live, next, { minSeverity: 0, allow: [] }).new.length, 5);
  });

  it('fixed = in the live system, gone from the new one, whatever the score; allow moves a new CVE to allowed', () => {
    const live = [f('CVE-2014-0160', 'openssl', 7.5), f('CVE-2001-0001', 'zlib', 2.0)];
    const next = [f('CVE-2099-0001', 'libfoo', 9.8), f('CVE-2099-0002', 'libbar', 8.0)];
    const c = compareScans(live, next, { minSeverity: 7, allow: ['CVE-2099-0001'] });
    assert.deepEqual(c.new.map((x) => x.id), ['CVE-2099-0002']);
    assert.deepEqual(c.allowed.map((x) => x.id), ['CVE-2099-0001']);
    assert.deepEqual(c.fixed.map((x) => x.id), ['CVE-2014-0160', 'CVE-2001-0001']);
  });
});

/** A machine for the gate: a live-system link, systems as directories, a runner answering per store path. */
function rig(t: TestContext, settings: Partial<VulnerabilityGateConfig> = {}) {
  const root = mkdtempSync(join(tmpdir(), 'pullnix-vulns-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const system = (name: string) => {
    const p = join(root, name);
    mkdirSync(p, { recursive: true });
    return p;
  };
  const currentSystem = join(root, 'current-system');
  const setLive = (p: string) => {
    rmSync(currentSystem, { force: true });
    symlinkSync(p, currentSystem);
  };
  const answers = new Map<string, RunResult | (() => Promise<RunResult>)>();
  const calls: { argv: readonly string[]; options: RunOptions }[] = [];
  const runner = async (argv: readonly string[], options: RunOptions): Promise<RunResult> => {
    calls.push({ argv, options });
    const answer = answers.get(argv.at(-1)!);
    if (!answer) throw new Error(`no answer for ${argv.at(-1)}`);
    const got = typeof answer === 'function' ? await answer() : { ...answer, argv };
    // As the real runner does with stdoutFile: the whole stdout in the file, none in the result.
    if (options.stdoutFile === undefined || got.spawnError) return got;
    writeFileSync(options.stdoutFile, got.stdout);
    return { ...got, stdout: '' };
  };
  const lines: string[] = [];
  const logger = createLogger({ level: 'debug', stream: new Writable({ write: (c: Buffer, _e, done) => (lines.push(...c.toString().split('\n').filter(Boolean)), done()) }) });
  const config = parseConfig(JSON.stringify({ repository: { url: '/r' }, build: { mode: 'flake' }, gates: { vulnerabilities: { enable: true, command: 'vulnix', ...settings } } }));
  let now = Date.parse('2026-01-01T00:00:00Z');
  const memory = emptyMemory();
  let saves = 0;
  const live = system('live');
  setLive(live);
  const gate = new VulnerabilityGate({ settings: config.gates.vulnerabilities, runner, logger, cacheDir: join(root, 'vulnix'), currentSystem, memory, save: () => void saves++, now: () => now });
  return {
    root,
    live,
    currentSystem,
    gate,
    memory,
    calls,
    lines,
    system,
    setLive,
    answers,
    scanned: () => calls.map((c) => c.argv.at(-1)),
    advance: (ms: number) => void (now += ms),
    saves: () => saves,
    events: (name: string) => lines.filter((l) => parseLine(l)?.event === name),
  };
}

describe('the gate', () => {
  it('off by default: no command, deploy', async () => {
    const config = parseConfig(JSON.stringify({ repository: { url: '/r' }, build: { mode: 'flake' } }));
    assert.equal(config.gates.vulnerabilities.enable, false);
    const gate = new VulnerabilityGate({ settings: config.gates.vulnerabilities, runner: () => Promise.reject(new Error('no command expected')), logger: createLogger({ stream: new Writable({ write: (_c, _e, d) => d() }) }), cacheDir: '/x', currentSystem: '/nonexistent', memory: emptyMemory(), save: () => undefined, now: Date.now });
    assert.deepEqual(await gate.check(C1, '/nix/store/x', undefined), { verdict: 'deploy', scan: null });
  });

  it('refuses a system that brings in a new vulnerability, names it, and reports what it fixes', async (t) => {
    const r = rig(t);
    const { live } = r;
    const next = r.system('next');
    r.answers.set(live, vulnixSays([item('openssl', '1.0.1', { 'CVE-2014-0160': 7.5 })]));
    r.answers.set(next, vulnixSays([item('libfoo', '2.0', { 'CVE-2099-0001': 9.8, 'CVE-2099-0003': 4.0 })]));
    const v = await r.gate.check(C1, next);
    assert.equal(v.verdict, 'refuse');
    if (v.verdict !== 'refuse') return;
    assert.match(v.message, /1 new vulnerability at or above CVSS 7 .*CVE-2099-0001 \(libfoo 2\.0, 9\.8\)/);
    assert.doesNotMatch(v.message, /CVE-2099-0003/, 'below minSeverity');
    assert.equal(v.detail, 'CVE-2099-0001\tlibfoo\t2.0\t9.8');
    assert.equal(v.scan.decision, 'refused');
    assert.deepEqual(v.scan.new, [f('CVE-2099-0001', 'libfoo', 9.8, '2.0')]);
    assert.deepEqual(v.scan.fixed, [f('CVE-2014-0160', 'openssl', 7.5, '1.0.1')]);
    assert.deepEqual(v.scan.counts, { new: 1, fixed: 1, allowed: 0 });
    assert.equal(v.scan.liveSystem, live);
    assert.deepEqual(r.scanned(), [next, live]);
    assert.equal(r.gate.lastScan, v.scan);
    assert.equal(r.memory.vulnerabilities?.last, v.scan, 'kept in the memory (watcher.json)');
    assert.equal(r.events('vulnerabilities.refused').length, 1);
    assert.match(r.events('vulnerabilities.fixed')[0] ?? '', /cves="CVE-2014-0160 \(openssl 1\.0\.1, 7\.5\)"/);
  });

  it('the live system is scanned once while unchanged; a system it let through is already known when it goes live', async (t) => {
    const r = rig(t);
    const { live } = r;
    const a = r.system('a');
    const b = r.system('b');
    r.answers.set(live, vulnixSays([]));
    r.answers.set(a, vulnixSays([item('zlib', '1.3', { 'CVE-2022-0001': 3.1 })]));
    r.answers.set(b, vulnixSays([]));
    assert.equal((await r.gate.check(C1, a)).verdict, 'deploy');
    assert.deepEqual(r.scanned(), [a, live]);
    assert.equal((await r.gate.check(C2, b)).verdict, 'deploy');
    assert.deepEqual(r.scanned(), [a, live, b], 'the unchanged live system was not scanned again');
    assert.match(r.events('vulnerabilities.passed').at(-1) ?? '', /live_cached=true/);
    // a was deployed: it is the live system now, and the gate scanned it already.
    r.setLive(a);
    assert.equal((await r.gate.check(C2, b)).verdict, 'deploy');
    assert.deepEqual(r.scanned(), [a, live, b, b]);
    assert.match(r.events('vulnerabilities.fixed').at(-1) ?? '', /CVE-2022-0001/);
    // A day later the cached result is too old: scanned again.
    r.advance(SCAN_CACHE_MAX_AGE_MS + 1);
    await r.gate.check(C2, b);
    assert.deepEqual(r.scanned(), [a, live, b, b, b, a]);
  });

  it('never refuses on a cached live result: the live system is scanned again first', async (t) => {
    const r = rig(t);
    const { live } = r;
    const a = r.system('a');
    const b = r.system('b');
    r.answers.set(live, vulnixSays([]));
    r.answers.set(a, vulnixSays([]));
    await r.gate.check(C1, a);
    // The database learnt of a CVE in a package both systems have.
    r.answers.set(live, vulnixSays([item('glibc', '2.38', { 'CVE-2026-0001': 9.1 })]));
    r.answers.set(b, vulnixSays([item('glibc', '2.38', { 'CVE-2026-0001': 9.1 })]));
    const v = await r.gate.check(C2, b);
    assert.equal(v.verdict, 'deploy', 'not new: the live system has it too');
    assert.deepEqual(r.scanned(), [a, live, b, live]);
  });

  it('no command when the built system is the live one', async (t) => {
    const r = rig(t);
    const { live } = r;
    const v = await r.gate.check(C1, live);
    assert.equal(v.verdict, 'deploy');
    assert.equal(r.calls.length, 0);
  });

  it('allow and onNew = warn', async (t) => {
    for (const [settings, verdict, decision] of [
      [{ allow: ['CVE-2099-0001'] as string[] }, 'deploy', 'passed'],
      [{ onNew: 'warn' as const }, 'deploy', 'warned'],
      [{ minSeverity: 9.9 }, 'deploy', 'passed'],
    ] as const) {
      const r = rig(t, settings);
      const { live } = r;
      const next = r.system('next');
      r.answers.set(live, vulnixSays([]));
      r.answers.set(next, vulnixSays([item('libfoo', '2.0', { 'CVE-2099-0001': 9.8 })]));
      const v = await r.gate.check(C1, next);
      assert.equal(v.verdict, verdict, JSON.stringify(settings));
      assert.equal((v as { scan: { decision: string } }).scan.decision, decision, JSON.stringify(settings));
    }
  });

  it('a failed scan follows onError: allow deploys, refuse retries later; both logged with the cause', async (t) => {
    for (const onError of ['allow', 'refuse'] as const) {
      const r = rig(t, { onError });
      const { live } = r;
      const next = r.system('next');
      r.answers.set(next, result({ exitCode: 1, stderr: 'Traceback (most recent call last):\nrequests.exceptions.ConnectionError: nvd.nist.gov unreachable\n' }));
      const v = await r.gate.check(C1, next);
      assert.equal(v.verdict, onError === 'allow' ? 'deploy' : 'retry');
      const scan = (v as { scan: { decision: string; error: string } }).scan;
      assert.equal(scan.decision, `error-${onError === 'allow' ? 'allowed' : 'refused'}`);
      assert.match(scan.error, /ConnectionError: nvd\.nist\.gov unreachable/);
      const line = r.events('vulnerabilities.scan_failed')[0] ?? '';
      assert.match(line, new RegExp(`target=new .*on_error=${onError}`));
      assert.ok(line.startsWith('<3>'), 'an error: the gate did not do its work');
      assert.equal(r.memory.vulnerabilities?.scans.length ?? 0, 0, 'a failed scan is not cached');
    }
  });

  it('a scan that ran but whose report cannot be read is refused, even with onError = allow', async (t) => {
    const r = rig(t, { onError: 'allow' });
    const next = r.system('next');
    const whole = JSON.stringify([item('libfoo', '2.0', { 'CVE-2099-0001': 9.8 })]);
    for (const [exitCode, stdout] of [[2, whole.slice(0, whole.length - 20)], [0, ''], [2, '{"not": "a list"}']] as const) {
      r.answers.set(next, result({ exitCode, stdout }));
      const v = await r.gate.check(C1, next);
      assert.equal(v.verdict, 'refuse', `exit ${exitCode} ${stdout.slice(0, 30)}`);
      if (v.verdict !== 'refuse') return;
      assert.equal(v.scan.decision, 'refused');
      assert.match(v.message, /ran, but its report cannot be read: .*not deployed/);
      assert.match(v.scan.error ?? '', exitCode === 2 && stdout.startsWith('{') ? /unexpected JSON report: not a list/ : /not JSON/);
    }
    assert.equal(r.events('vulnerabilities.unreadable').length, 3);
    assert.equal(r.events('vulnerabilities.scan_failed').length, 0);
  });

  it('a report over 256 KiB is read whole (the real runner, the report through a file): its new CVE is refused', async (t) => {
    const root = mkdtempSync(join(tmpdir(), 'pullnix-vulnix-big-'));
    t.after(() => rmSync(root, { recursive: true, force: true }));
    // A program answering like vulnix (exit 2, the JSON list on stdout), from <the scanned path>/report.json.
    const vulnix = join(root, 'vulnix');
    writeFileSync(vulnix, '#!/bin/sh\nfor last; do :; done\ncat "$last/report.json"\nexit "$(cat "$last/exit")"\n');
    chmodSync(vulnix, 0o755);
    const system = (name: string, items: ReturnType<typeof item>[]) => {
      const p = join(root, name);
      mkdirSync(p);
      writeFileSync(join(p, 'report.json'), JSON.stringify(items, null, 1));
      writeFileSync(join(p, 'exit'), items.length > 0 ? '2' : '0');
      return p;
    };
    // 2,000 old, low-scored findings with vulnix's descriptions, both systems: about 1 MiB of report.
    const old = Array.from({ length: 2000 }, (_, i) => ({ ...item(`pkg${i}`, '1.0', { [`CVE-2001-${String(i).padStart(4, '0')}`]: 3.1 }), description: { [`CVE-2001-${String(i).padStart(4, '0')}`]: 'x'.repeat(400) } }));
    const live = system('live', old);
    const next = system('next', [...old, item('zzz-libfoo', '2.0', { 'CVE-2099-0001': 9.8 })]);
    assert.ok(JSON.stringify(old).length > 512 * 1024);
    const currentSystem = join(root, 'current-system');
    symlinkSync(live, currentSystem);
    const config = parseConfig(JSON.stringify({ repository: { url: '/r' }, build: { mode: 'flake' }, gates: { vulnerabilities: { enable: true, command: vulnix, onError: 'allow' } } }));
    const logger = createLogger({ stream: new Writable({ write: (_c, _e, d) => d() }) });
    mkdirSync(join(root, 'state'));
    const gate = new VulnerabilityGate({ settings: config.gates.vulnerabilities, runner: createRunner(), logger, cacheDir: join(root, 'state', 'vulnix'), currentSystem, memory: emptyMemory(), save: () => undefined, now: Date.now });
    const v = await gate.check(C1, next);
    assert.equal(v.verdict, 'refuse', JSON.stringify(v).slice(0, 600));
    if (v.verdict !== 'refuse') return;
    assert.deepEqual(v.scan.new, [f('CVE-2099-0001', 'zzz-libfoo', 9.8, '2.0')]);
    assert.deepEqual(readdirSync(join(root, 'state')), [], 'the report file is removed');
  });

  it('a live system that cannot be resolved is a scan failure', async (t) => {
    const r = rig(t, { onError: 'refuse' });
    rmSync(r.currentSystem);
    const v = await r.gate.check(C1, r.system('next'));
    assert.equal(v.verdict, 'retry');
    assert.match((v as { message: string }).message, /live system .*current-system cannot be resolved: ENOENT/);
  });

  it('every scan is bounded by what is left of timeoutSec; a timeout is a failure naming the setting', async (t) => {
    const r = rig(t, { timeoutSec: 30 });
    const { live } = r;
    const next = r.system('next');
    r.answers.set(next, vulnixSays([]));
    r.answers.set(live, result({ exitCode: null, timedOut: true, signal: 'SIGTERM' }));
    const v = await r.gate.check(C1, next);
    assert.equal(v.verdict, 'deploy', 'onError = allow');
    assert.match((v as { scan: { error: string } }).scan.error, /did not finish within gates\.vulnerabilities\.timeoutSec \(30 s\)/);
    for (const c of r.calls) assert.ok(c.options.timeoutMs > 0 && c.options.timeoutMs <= 30_000, String(c.options.timeoutMs));
    assert.ok(r.calls[1]!.options.timeoutMs <= r.calls[0]!.options.timeoutMs, 'the second scan gets what is left');
  });

  it('stopped by the shutdown signal: stopped, not a failure', async (t) => {
    const r = rig(t);
    const { live } = r;
    const next = r.system('next');
    const controller = new AbortController();
    r.answers.set(next, async () => {
      controller.abort();
      return result({ exitCode: null, aborted: true, signal: 'SIGTERM' });
    });
    assert.deepEqual(await r.gate.check(C1, next, controller.signal), { verdict: 'stopped' });
    assert.equal(r.events('vulnerabilities.scan_failed').length, 0);
  });

  it('its memory survives watcher.json (written and read back), and an older file without it still loads', async (t) => {
    const r = rig(t);
    const { live } = r;
    const next = r.system('next');
    r.answers.set(live, vulnixSays([]));
    r.answers.set(next, vulnixSays([item('libfoo', '2.0', { 'CVE-2099-0001': 9.8 })]));
    await r.gate.check(C1, next);
    assert.ok(r.saves() > 0);
    const store = new MemoryStore({ path: join(r.root, 'watcher.json'), logger: createLogger({ stream: new Writable({ write: (_c, _e, d) => d() }) }) });
    store.save(r.memory);
    assert.deepEqual(store.load().vulnerabilities, r.memory.vulnerabilities);
    assert.equal(parseMemory(JSON.stringify(emptyMemory())).vulnerabilities, undefined);
    assert.throws(() => parseMemory(JSON.stringify({ ...emptyMemory(), vulnerabilities: { last: null, scans: 'x' } })), /vulnerabilities is not/);
  });
});

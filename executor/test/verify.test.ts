/**
 * Step 4 as a list of checks: the runner's retry and settle rules, each kind of check against
 * real sockets or the fake system, and the pipeline rolling back on a failed check with the check
 * named in the error and the record.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { parseConfig, ConfigError, runAsArgv, type CheckConfig } from '@pullnix/shared';
import { httpCheck } from '../src/verify/http.ts';
import { tcpCheck } from '../src/verify/tcp.ts';
import { judgeUnit } from '../src/verify/unit.ts';
import { movedUnits, settleWindowMs } from '../src/verify/units.ts';
import { parseTimespanMs } from '../src/commands/systemctl.ts';
import { COMMIT_A, COMMIT_B } from './lib/fake-system.ts';
import { harness, type Harness } from './lib/harness.ts';

let h: Harness | undefined;
afterEach(() => h?.sys.cleanup());

const NEVER = new AbortController().signal;
const BASE: CheckConfig = { type: 'http', argv: [], user: null, url: null, expectStatus: null, bodyPattern: null, host: null, port: null, unit: null, timeoutSec: 2 };

async function listen(handler: (path: string) => [number, string]): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const [status, body] = handler(req.url ?? '/');
    res.writeHead(status, { 'content-type': 'text/plain' }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

async function deploy(hh: Harness, commit: string, toplevel: string) {
  const record = await hh.executor.deploy({ commit, toplevel }, 'watcher');
  await hh.executor.idle();
  return record;
}

/** A service with restart logic, as `systemctl show` prints systemd's defaults for the rest (systemd.service(5), systemd.unit(5)). */
const RESTART_ALWAYS = { Restart: 'always', RestartUSec: '100ms', StartLimitIntervalUSec: '10s', StartLimitBurst: '5' };

/** systemctl list-units answers in turn (the last one for good); null: systemctl fails (exit 1). */
function failedUnitsSequence(hh: Harness, answers: (string[] | null)[]): void {
  let n = 0;
  hh.sys.hooks.set('systemctl', (argv) => {
    if (argv[1] !== 'list-units') return {};
    const units = answers[Math.min(n++, answers.length - 1)]!;
    if (units === null) return { exitCode: 1, stderr: 'Failed to connect to bus: Connection refused\n' };
    return { exitCode: 0, stdout: units.map((u) => `${u} loaded failed failed ${u}\n`).join('') };
  });
}

describe('checks: http and tcp against real sockets', () => {
  it('http: 2xx passes; another status, a body that does not match, or no server fails with a plain reason', async () => {
    const { url, server } = await listen((path) => (path === '/ok' ? [200, 'all good'] : path === '/teapot' ? [418, 'short and stout'] : [503, 'down for maintenance']));
    try {
      const attempt = (c: Partial<CheckConfig>) => httpCheck('web', { ...BASE, ...c }).attempt({ timeoutMs: 2000, signal: NEVER });
      assert.deepEqual(await attempt({ url: `${url}/ok` }), { ok: true });
      assert.deepEqual(await attempt({ url: `${url}/down` }), { ok: false, error: 'status 503, expected 2xx: down for maintenance' });
      assert.deepEqual(await attempt({ url: `${url}/teapot`, expectStatus: 418 }), { ok: true });
      assert.deepEqual(await attempt({ url: `${url}/ok`, bodyPattern: '^healthy' }), { ok: false, error: 'status 200, but the body does not match /^healthy/: all good' });
      assert.deepEqual(await attempt({ url: `${url}/ok`, bodyPattern: 'good$' }), { ok: true });
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
    const gone = await listen(() => [200, '']);
    gone.server.close();
    const closed = await httpCheck('web', { ...BASE, url: gone.url }).attempt({ timeoutMs: 2000, signal: NEVER });
    assert.deepEqual(closed, { ok: false, error: 'ECONNREFUSED' });
  });

  it('http: an endless body is read only up to 64 KiB, while it streams, and matched', async () => {
    let sent = 0;
    const server = createServer((_req, res) => {
      let closed = false;
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('healthy\n');
      const chunk = Buffer.alloc(64 * 1024, 'x');
      const more = () => {
        while (!closed && res.write(chunk)) sent += chunk.length;
        if (!closed) res.once('drain', more);
      };
      res.on('close', () => void (closed = true));
      more();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/stream`;
      const check = httpCheck('web', { ...BASE, url, bodyPattern: '^healthy$', timeoutSec: 30 });
      assert.deepEqual(await check.attempt({ timeoutMs: 30_000, signal: NEVER }), { ok: false, error: `status 200, but the body does not match /^healthy$/: healthy ${'x'.repeat(191)}…` });
      const multiline = httpCheck('web', { ...BASE, url, bodyPattern: '^healthy\\nx{100}', timeoutSec: 30 });
      assert.deepEqual(await multiline.attempt({ timeoutMs: 30_000, signal: NEVER }), { ok: true });
      assert.ok(sent < 64 * 1024 * 1024, `the server sent ${sent} bytes before the check let go`);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('http: a catastrophically backtracking body pattern is stopped after its time limit; the event loop keeps turning', async () => {
    const { url, server } = await listen(() => [200, `${'a'.repeat(34)}b`]);
    try {
      let ticks = 0;
      const ticker = setInterval(() => void ticks++, 20);
      const check = httpCheck('web', { ...BASE, url: `${url}/`, bodyPattern: '^(a+)+$', timeoutSec: 30 });
      const answer = await check.attempt({ timeoutMs: 30_000, signal: NEVER });
      clearInterval(ticker);
      assert.equal(answer.ok, false);
      assert.match((answer as { error: string }).error, /^status 200, but the body pattern \/\^\(a\+\)\+\$\/ did not finish within 1000 ms on a 35-byte body/);
      assert.ok(ticks > 0, 'timers ran while the pattern was matched');
    } finally {
      server.close();
    }
  });

  it('tcp: a listening port passes, a closed one fails', async () => {
    const server = createTcpServer((s) => s.end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const check = tcpCheck('db', { ...BASE, type: 'tcp', host: '127.0.0.1', port });
    assert.deepEqual(await check.attempt({ timeoutMs: 2000, signal: NEVER }), { ok: true });
    await new Promise((r) => server.close(r));
    assert.deepEqual(await check.attempt({ timeoutMs: 2000, signal: NEVER }), { ok: false, error: 'ECONNREFUSED' });
  });
});

describe('checks: unit', () => {
  const loaded = { LoadState: 'loaded', Result: 'success', ExecMainExitTimestampMonotonic: '0' };
  it('a service passes when active, fails otherwise; a oneshot must have run and succeeded', () => {
    assert.equal(judgeUnit('a.service', { ...loaded, Type: 'simple', ActiveState: 'active', SubState: 'running' }).ok, true);
    assert.equal(judgeUnit('a.service', { ...loaded, Type: 'simple', ActiveState: 'activating', SubState: 'auto-restart' }).ok, false);
    assert.equal(judgeUnit('a.service', { ...loaded, LoadState: 'not-found', ActiveState: 'inactive' }).ok, false);
    assert.equal(judgeUnit('o.service', { ...loaded, Type: 'oneshot', ActiveState: 'active', SubState: 'exited', RemainAfterExit: 'yes' }).ok, true);
    assert.equal(judgeUnit('o.service', { ...loaded, Type: 'oneshot', ActiveState: 'inactive', SubState: 'dead', ExecMainExitTimestampMonotonic: '123' }).ok, true);
    assert.equal(judgeUnit('o.service', { ...loaded, Type: 'oneshot', ActiveState: 'inactive', SubState: 'dead' }).ok, false, 'never ran');
    assert.equal(judgeUnit('o.service', { ...loaded, Type: 'oneshot', Result: 'exit-code', ActiveState: 'failed', SubState: 'failed' }).ok, false);
  });
});

describe('checks: command runs as an unprivileged user through systemd-run', () => {
  it('DynamicUser by default, User= when named, argv after -- (no shell), environment as --setenv', () => {
    const argv = runAsArgv({ unit: 'u.service', user: null, argv: ['/bin/check', 'a b'], env: { PULLNIX_COMMIT: 'c' }, timeoutSec: 5 });
    assert.deepEqual(argv.slice(0, 7), ['systemd-run', '--unit=u.service', '--service-type=exec', '--wait', '--pipe', '--collect', '--quiet']);
    assert.ok(argv.includes('DynamicUser=yes') && argv.includes('RuntimeMaxSec=5') && argv.includes('--setenv=PULLNIX_COMMIT=c'));
    assert.deepEqual(argv.slice(argv.indexOf('--')), ['--', '/bin/check', 'a b']);
    assert.ok(runAsArgv({ unit: 'u.service', user: 'nobody', argv: ['x'], timeoutSec: 5 }).includes('User=nobody'));
  });
});

describe('verification in the pipeline', () => {
  it('a unit that fails after activation rolls back; the record and the error name it; a unit failed before is not blamed', async () => {
    h = harness();
    const next = h.sys.makeSystem('crashy');
    h.sys.stcStarts.set(`${next} test`, { 'crashy.service': RESTART_ALWAYS });
    failedUnitsSequence(h, [['old-broken.service'], ['old-broken.service'], ['crashy.service', 'old-broken.service']]);
    const record = await deploy(h, COMMIT_A, next);
    assert.equal(record.outcome, 'rolled-back');
    assert.equal(record.error?.code, 'VERIFY_FAILED');
    assert.match(record.error!.message, /check failed-units failed: .*crashy\.service/);
    assert.deepEqual(record.previous.failedUnits, ['old-broken.service']);
    const units = record.checks!.find((c) => c.name === 'failed-units')!;
    assert.equal(units.passed, false);
    assert.deepEqual(units.units, ['crashy.service']);
    assert.deepEqual(units.preexisting, ['old-broken.service']);
    assert.equal(record.checks![0]!.name, 'git');
    assert.equal(record.checks![0]!.passed, true);
    assert.equal(h.sys.live(), h.old);
    assert.deepEqual(h.executor.status().lastFailure?.failedChecks, [{ name: 'failed-units', kind: 'units', error: units.error }]);
  });

  it('a crash-looping unit the activation started, active at the first looks, is caught within its window', async () => {
    h = harness();
    const next = h.sys.makeSystem('loop');
    h.sys.stcStarts.set(`${next} test`, { 'loop.service': RESTART_ALWAYS });
    // clean before, clean at the first two looks after activation, then auto-restarting, for good
    failedUnitsSequence(h, [[], [], [], ['loop.service']]);
    const record = await deploy(h, COMMIT_A, next);
    assert.equal(record.outcome, 'rolled-back');
    assert.deepEqual(record.checks!.find((c) => c.name === 'failed-units')!.units, ['loop.service']);
  });

  it('a unit systemd restarts on its own between two looks (NRestarts grows) fails, though no look saw it failed', async () => {
    h = harness();
    const next = h.sys.makeSystem('loop');
    h.sys.stcStarts.set(`${next} test`, { 'loop.service': RESTART_ALWAYS });
    // every `systemctl show` of the unit after the first look finds it restarted once more (100 ms in auto-restart, never listed)
    let shows = 0;
    h.sys.hooks.set('systemctl', (argv) => {
      if (argv[1] === 'show' && argv.at(-1) === 'loop.service' && h!.sys.live() === next && ++shows > 0) h!.sys.startUnit('loop.service', {}, true);
      return {};
    });
    const record = await deploy(h, COMMIT_A, next);
    assert.equal(record.outcome, 'rolled-back');
    const units = record.checks!.find((c) => c.name === 'failed-units')!;
    assert.deepEqual(units.units, ['loop.service']);
    assert.match(units.error!, /units failed after activation \(not before it\): loop\.service/);
  });

  it('a unit running again at the deadline, but for less than its window since it failed, still fails the check', async () => {
    h = harness();
    const next = h.sys.makeSystem('loop');
    // no start limit (StartLimitBurst=0): the window is verify.failedUnits.settleSec
    h.sys.stcStarts.set(`${next} test`, { 'loop.service': { ...RESTART_ALWAYS, StartLimitBurst: '0' } });
    // failing at the looks at 0, 1, 3 and 7 s (back-off), running again at the deadline (10 s)
    failedUnitsSequence(h, [[], ['loop.service'], ['loop.service'], ['loop.service'], ['loop.service'], []]);
    const record = await deploy(h, COMMIT_A, next);
    assert.equal(record.outcome, 'rolled-back');
    const units = record.checks!.find((c) => c.name === 'failed-units')!;
    assert.deepEqual(units.units, ['loop.service']);
    assert.match(units.error!, /loop\.service; running again for less than its settle window \(loop\.service: 5000 ms; at most verify\.failedUnits\.settleSec=5\) at the deadline/);
  });

  it('a unit that failed once and then stays up for its window passes', async () => {
    h = harness();
    const next = h.sys.makeSystem('flaky');
    h.sys.stcStarts.set(`${next} test`, { 'flaky.service': RESTART_ALWAYS });
    failedUnitsSequence(h, [[], ['flaky.service'], []]);
    const record = await deploy(h, COMMIT_A, next);
    assert.equal(record.outcome, 'succeeded');
  });

  it('a deployment that moves no unit passes the failed-units check at its first look: no wait', async () => {
    h = harness();
    h.sys.startUnit('sshd.service', RESTART_ALWAYS); // running before, untouched by the activation
    const record = await deploy(h, COMMIT_A, h.sys.makeSystem('no-unit-change'));
    assert.equal(record.outcome, 'succeeded');
    assert.deepEqual(h.clock.sleeps, []);
    assert.equal(record.checks!.find((c) => c.name === 'failed-units')!.attempts, 1);
  });

  it('a restarted unit without restart logic (Restart=no) is not waited for', async () => {
    h = harness();
    h.sys.startUnit('web.service', { Restart: 'no', RestartUSec: '100ms', StartLimitIntervalUSec: '10s', StartLimitBurst: '5' });
    const next = h.sys.makeSystem('web-restarted');
    h.sys.stcStarts.set(`${next} test`, { 'web.service': {} });
    const record = await deploy(h, COMMIT_A, next);
    assert.equal(record.outcome, 'succeeded');
    assert.deepEqual(h.clock.sleeps, []);
  });

  it('a restarted unit with Restart= is watched for its own window, RestartUSec + StartLimitIntervalUSec / StartLimitBurst, at most settleSec', async () => {
    h = harness();
    h.sys.startUnit('web.service', RESTART_ALWAYS);
    const next = h.sys.makeSystem('web-restarted');
    h.sys.stcStarts.set(`${next} test`, { 'web.service': {} });
    const record = await deploy(h, COMMIT_A, next);
    assert.equal(record.outcome, 'succeeded');
    // 100 ms + 10 s / 5 = 2100 ms, in looks every 500 ms
    assert.deepEqual(h.clock.sleeps, [500, 500, 500, 500, 100]);
    h = harness({ verify: { failedUnits: { settleSec: 1 } } });
    h.sys.startUnit('web.service', { ...RESTART_ALWAYS, RestartUSec: '1min 30s' });
    const capped = h.sys.makeSystem('web-restarted');
    h.sys.stcStarts.set(`${capped} test`, { 'web.service': {} });
    assert.equal((await deploy(h, COMMIT_A, capped)).outcome, 'succeeded');
    assert.deepEqual(h.clock.sleeps, [500, 500], 'settleSec is the upper bound');
  });

  it('only units already failed before: the deployment succeeds and they are reported', async () => {
    h = harness();
    failedUnitsSequence(h, [['old-broken.service']]);
    const record = await deploy(h, COMMIT_A, h.sys.makeSystem('fine'));
    assert.equal(record.outcome, 'succeeded');
    assert.deepEqual(record.checks!.find((c) => c.name === 'failed-units')!.preexisting, ['old-broken.service']);
  });

  it('systemctl silent before the deployment: asked again; silent every time, a unit failing after activation is blamed', async () => {
    h = harness();
    failedUnitsSequence(h, [null, ['old-broken.service']]);
    const retried = await deploy(h, COMMIT_A, h.sys.makeSystem('fine'));
    assert.deepEqual(retried.previous.failedUnits, ['old-broken.service']);
    assert.equal(retried.outcome, 'succeeded');

    h.sys.cleanup();
    h = harness();
    failedUnitsSequence(h, [null, null, null, ['crashy.service']]);
    const record = await deploy(h, COMMIT_B, h.sys.makeSystem('crashy'));
    assert.equal(record.previous.failedUnits, null);
    assert.equal(record.outcome, 'rolled-back');
    const units = record.checks!.find((c) => c.name === 'failed-units')!;
    assert.deepEqual(units.units, ['crashy.service']);
    assert.match(units.error!, /units failing before it are unknown \(systemctl did not answer then\): crashy\.service/);
  });

  it('a declared check failing until verify.timeoutSec rolls back and is named; git failing means the others do not run', async () => {
    const { url, server } = await listen(() => [500, 'broken']);
    try {
      h = harness({ checks: { api: { type: 'http', url: `${url}/health`, timeoutSec: 2 } } });
      const record = await deploy(h, COMMIT_A, h.sys.makeSystem('broken-api'));
      assert.equal(record.outcome, 'rolled-back');
      assert.match(record.error!.message, /^check api failed: GET http:\/\/127\.0\.0\.1:\d+\/health failed \d+ times within verify\.timeoutSec=10; last: status 500/);
      assert.deepEqual(record.checks!.map((c) => [c.name, c.passed]), [['git', true], ['failed-units', true], ['api', false]]);
      assert.ok(h.log.events.some((e) => e.name === 'check.failed' && e.fields.check === 'api'));

      h.sys.gitDefault = 128;
      const second = await deploy(h, COMMIT_B, h.sys.makeSystem('no-git'));
      assert.deepEqual(second.checks!.map((c) => [c.name, c.passed, c.attempts]), [['git', false, 5], ['failed-units', null, 0], ['api', null, 0]]);
      assert.match(second.error!.message, /^check git failed: git ls-remote file:\/\/\/fake\/remote\.git failed 5 times/);
    } finally {
      server.close();
    }
  });

  it('onSuccess and onFailure run after the outcome with the PULLNIX_ environment; a failing hook changes nothing', async () => {
    h = harness({ hooks: { onSuccess: { argv: ['/bin/notify', 'ok'] }, onFailure: { argv: ['/bin/notify', 'bad'], user: 'nobody' } } });
    h.sys.hooks.set('systemd-run', (argv) => (argv.includes('--') ? { exitCode: 3, stderr: 'mail server down\n' } : {}));
    const record = await deploy(h, COMMIT_A, h.sys.makeSystem('fine'));
    assert.equal(record.outcome, 'succeeded', 'a failing onSuccess hook does not change the outcome');
    const call = h.sys.calls.find((c) => c[0] === 'systemd-run' && c.includes('/bin/notify'))!;
    assert.ok(call.includes('DynamicUser=yes'));
    for (const env of [`PULLNIX_DEPLOYMENT=${record.id}`, `PULLNIX_COMMIT=${COMMIT_A}`, 'PULLNIX_OUTCOME=succeeded', `PULLNIX_TOPLEVEL=${record.toplevel}`, `PULLNIX_PREVIOUS=${h.old}`, 'PULLNIX_ERROR=']) {
      assert.ok(call.includes(`--setenv=${env}`), `${env} in ${call.join(' ')}`);
    }
    assert.ok(h.log.events.some((e) => e.name === 'hook.failed' && e.fields.hook === 'onSuccess'));
    assert.equal(h.executor.status().deployed?.commit, COMMIT_A);
  });
});

describe("the checks are the verified system's own", () => {
  /** A system whose etc/pullnix/config.json declares `checks`. */
  function systemWithChecks(hh: Harness, name: string, checks: Record<string, unknown>): string {
    const top = hh.sys.makeSystem(name);
    mkdirSync(join(top, 'etc/pullnix'), { recursive: true });
    writeFileSync(join(top, 'etc/pullnix/config.json'), JSON.stringify({ repository: { url: 'file:///fake/remote.git' }, build: { mode: 'flake' }, checks }));
    return top;
  }

  it('a commit that adds a service and its check is checked at once; one that removes both is not failed by the old check', async () => {
    const { url, server } = await listen(() => [503, 'not there']);
    try {
      const broken = { api: { type: 'http', url: `${url}/health`, timeoutSec: 2 } };
      // the running configuration has no checks: the new system's own check still runs
      h = harness();
      const added = await deploy(h, COMMIT_A, systemWithChecks(h, 'adds-api', broken));
      assert.equal(added.outcome, 'rolled-back');
      assert.deepEqual(added.checks!.map((c) => c.name), ['git', 'failed-units', 'api']);
      h.sys.cleanup();
      // the running configuration checks api; the new system dropped it: not run, succeeds
      h = harness({ checks: broken });
      const removed = await deploy(h, COMMIT_B, systemWithChecks(h, 'drops-api', {}));
      assert.equal(removed.outcome, 'succeeded', JSON.stringify(removed.error));
      assert.deepEqual(removed.checks!.map((c) => c.name), ['git', 'failed-units']);
      assert.ok(!h.log.names().includes('verify.own_config_unusable'));
      // a system without a readable configuration: the running one's checks, said in the journal
      const fallback = await deploy(h, COMMIT_A, h.sys.makeSystem('no-pullnix-config'));
      assert.equal(fallback.outcome, 'rolled-back');
      assert.ok(h.log.names().includes('verify.own_config_unusable'));
    } finally {
      server.close();
    }
  });
});

describe("a commit whose pullnix configuration the new daemons reject is rolled back (issue 21, part 2)", () => {
  const own = (checks: Record<string, unknown>) => ({ repository: { url: 'file:///fake/remote.git' }, build: { mode: 'flake' }, checks });
  const BRICK = { api: { type: 'http', url: 'localhost:8080/health' } };

  it('an existing configuration that does not load fails verification before anything is committed; only a missing one falls back', async () => {
    h = harness();
    // no pullnix package in sw/bin: the running executor's own loader is the judge
    const top = h.sys.makeSystem('brick');
    mkdirSync(join(top, 'etc/pullnix'), { recursive: true });
    writeFileSync(join(top, 'etc/pullnix/config.json'), JSON.stringify(own(BRICK)));
    const r = await deploy(h, COMMIT_A, top);
    assert.equal(r.outcome, 'rolled-back', JSON.stringify(r.error));
    assert.equal(r.error?.code, 'VERIFY_FAILED');
    assert.match(r.error!.message, /pullnix-config failed: .*checks\.api\.url: must be an http:\/\/ or https:\/\/ URL/);
    assert.equal(h.sys.live(), h.old, 'the previous system is live again');
    assert.equal(h.executor.status().deployed?.commit ?? null, null, 'nothing was committed');
    assert.ok(!h.sys.calls.some((c) => c[0] === 'nix-env' && c.includes('--set') && c.includes(top)), 'the profile never moved');
  });

  it("the new package's own --check-config is asked before committing: its refusal rolls back, naming the daemon", async () => {
    h = harness();
    const top = h.sys.makeSystem('brick-pkg', { pullnix: own(BRICK) });
    const r = await deploy(h, COMMIT_A, top);
    assert.equal(r.outcome, 'rolled-back');
    assert.match(r.error!.message, /pullnix-executor of the new system rejects its own configuration .*checks\.api\.url: must be an http:\/\/ or https:\/\/ URL/);
    assert.deepEqual(r.checks!.map((c) => [c.name, c.passed]), [['pullnix-config', false]]);
    assert.ok(h.sys.calls.some((c) => c[0] === `${top}/sw/bin/pullnix-watcher` && c[1] === '--check-config'));
    assert.ok(h.log.names().includes('verify.own_config_rejected'));
  });

  it('a configuration the running executor cannot read but the new package accepts (a newer pullnix) is deployed with the running checks', async () => {
    h = harness();
    const top = h.sys.makeSystem('newer', { pullnix: { ...own({}), someNewKey: true } });
    // the newer package knows someNewKey
    for (const d of ['pullnix-executor', 'pullnix-watcher']) h.sys.checkConfigAnswers.set(`${top}/sw/bin/${d}`, { exitCode: 0, stderr: '' });
    const r = await deploy(h, COMMIT_A, top);
    assert.equal(r.outcome, 'succeeded', JSON.stringify(r.error));
    assert.deepEqual(r.checks!.map((c) => c.name), ['pullnix-config', 'git', 'failed-units']);
    assert.ok(h.log.names().includes('verify.own_config_unusable'));
    // and the same file when the new watcher refuses it: rolled back
    h.sys.cleanup();
    h = harness();
    const top2 = h.sys.makeSystem('newer-watcher-refuses', { pullnix: { ...own({}), someNewKey: true } });
    h.sys.checkConfigAnswers.set(`${top2}/sw/bin/pullnix-executor`, { exitCode: 0, stderr: '' });
    h.sys.checkConfigAnswers.set(`${top2}/sw/bin/pullnix-watcher`, { exitCode: 78, stderr: 'pullnix-watcher: someNewKey: unknown key\n' });
    const r2 = await deploy(h, COMMIT_B, top2);
    assert.equal(r2.outcome, 'rolled-back');
    assert.match(r2.error!.message, /pullnix-watcher of the new system rejects .*someNewKey: unknown key/);
  });
});

describe('checks in the configuration', () => {
  const base = { repository: { url: 'file:///r' }, build: { mode: 'flake' }, verify: { timeoutSec: 30 } };
  const problems = (extra: Record<string, unknown>) => {
    try {
      parseConfig(JSON.stringify({ ...base, ...extra }));
      return [];
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      return error.problems;
    }
  };
  it('bad definitions are refused with the key named', () => {
    assert.deepEqual(problems({ checks: { ping: { type: 'command', argv: [] } } }), ['checks.ping.argv: required for a command check (must not be empty)']);
    assert.deepEqual(problems({ checks: { web: { type: 'http', url: 'http://[::1' } } }), ['checks.web.url: "http://[::1" does not parse as a URL']);
    assert.deepEqual(problems({ checks: { web: { type: 'http', url: 'http://x/', timeoutSec: 60 } } }), [
      'checks.web.timeoutSec: 60 is longer than verify.timeoutSec (30); the check could never finish an attempt',
    ]);
    assert.deepEqual(problems({ checks: { git: { type: 'tcp', host: 'h', port: 1 } } }), ["checks.git: 'git' is the name of a built-in check; choose another"]);
    assert.deepEqual(problems({ checks: { db: { type: 'tcp', host: 'h', port: 1, url: 'http://x/' } } }), ['checks.db.url: not used by a tcp check (it uses host, port)']);
    const noScheme = ['checks.x.url: must be an http:// or https:// URL (pattern ^[Hh][Tt][Tt][Pp][Ss]?://[^ ]+$)'];
    assert.deepEqual(problems({ checks: { x: { type: 'http', url: 'not a url' } } }), noScheme);
    // issue 21: these passed the schema and the module, and the daemons refused them at start
    assert.deepEqual(problems({ checks: { x: { type: 'http', url: 'localhost:8080/health' } } }), noScheme);
    assert.deepEqual(problems({ checks: { x: { type: 'http', url: 'ftp://example.org/x' } } }), noScheme);
    assert.deepEqual(problems({ checks: { x: { type: 'http', url: 'HTTPS://example.org/x' } } }), []);
    assert.deepEqual(problems({ hooks: { onSuccess: { argv: [] } } }), ['hooks.onSuccess.argv: must NOT have fewer than 1 items']);
    assert.deepEqual(problems({ checks: { ok: { type: 'unit', unit: 'nginx.service' } } }), []);
  });
});

describe('failed-units: which units moved, and how long each is watched', () => {
  it('systemctl show timespans (format_timespan) are read in ms; an unknown form is null', () => {
    assert.equal(parseTimespanMs('100ms'), 100);
    assert.equal(parseTimespanMs('10s'), 10_000);
    assert.equal(parseTimespanMs('1min 30s'), 90_000);
    assert.equal(parseTimespanMs('2.500000s'), 2500);
    assert.equal(parseTimespanMs('0'), 0);
    assert.equal(parseTimespanMs('infinity'), Infinity);
    assert.equal(parseTimespanMs('soon'), null);
    assert.equal(parseTimespanMs(undefined), null);
  });

  it('a unit moved when its invocation, automatic restarts or active-enter time changed; one that never ran did not', () => {
    const u = (InvocationID: string, NRestarts = '0', ActiveEnterTimestampMonotonic = '1') => ({ Id: 'x', InvocationID, NRestarts, ActiveEnterTimestampMonotonic });
    const before = new Map([['same.service', u('a')], ['restarted.service', u('b')], ['crashed.service', u('c')], ['gone.service', u('d')]]);
    const after = new Map([['same.service', u('a')], ['restarted.service', u('b2')], ['crashed.service', u('c', '1')], ['new.service', u('e')], ['never-ran.service', u('')]]);
    assert.deepEqual(movedUnits(before, after), ['crashed.service', 'new.service', 'restarted.service']);
  });

  it('the window: 0 without restart logic, RestartUSec + interval/burst with it, settleSec without a start limit or past it', () => {
    const s = { Restart: 'on-failure', RestartUSec: '100ms', StartLimitIntervalUSec: '10s', StartLimitBurst: '5' };
    assert.equal(settleWindowMs({ ...s, Restart: 'no' }, 5000), 0);
    assert.equal(settleWindowMs({ Id: 'tmp.mount', StartLimitIntervalUSec: '10s', StartLimitBurst: '5' }, 5000), 0, 'not a service: no Restart=');
    assert.equal(settleWindowMs(s, 5000), 2100);
    assert.equal(settleWindowMs({ ...s, RestartUSec: '2s' }, 5000), 4000);
    assert.equal(settleWindowMs({ ...s, RestartUSecNext: '1s' }, 5000), 3000, 'RestartSteps=: the next, longer delay');
    assert.equal(settleWindowMs({ ...s, StartLimitIntervalUSec: '0' }, 5000), 5000);
    assert.equal(settleWindowMs({ ...s, StartLimitBurst: '0' }, 5000), 5000);
    assert.equal(settleWindowMs({ ...s, RestartUSec: '1min' }, 5000), 5000);
    assert.equal(settleWindowMs(undefined, 5000), 5000);
  });
});

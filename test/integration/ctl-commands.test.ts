/**
 * Every pullnix-ctl command as a real process against a real pullnix-executor process over its
 * Unix socket, with `--json` outputs checked against the schemas pullnix-ctl publishes.
 * Deployments are not run (that needs the pipeline's stand-in system); history is seeded as the
 * executor's own history.jsonl before it starts, and a watcher is stood in for by a client signing
 * with the executor's watcher key.
 *
 * Seeded history (ids, oldest first): 1 ok c1 - 2 ok c2 - 3 ok c3 - 4 rolled-back c4
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateSigningKey, loadSigningKey, saveSigningKey, SocketClient, type Push, type StatusResult, type WatcherReport } from '@pullnix/shared';
import { record, runCtl, RunningExecutor, validateOutput, type CtlResult } from './ctl-harness.ts';

const c = (n: number) => String(n).repeat(40).slice(0, 40).replace(/[^0-9a-f]/g, 'a');
const C1 = c(1);
const C2 = c(2);
const C3 = c(3);
const C4 = 'deadbeef'.repeat(5);
const HEAD = 'feedface'.repeat(5);

function json<T>(r: CtlResult): T {
  assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

async function assertValid(name: string, value: unknown): Promise<void> {
  assert.equal(await validateOutput(name, value), null, `${name} output does not match its schema`);
}

async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  // Bounded only so a broken build cannot hang the suite; correctness never depends on the bound.
  for (let i = 0; i < 2000; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`gave up waiting for ${what}`);
}

describe('pullnix-ctl against a running executor (seeded history)', () => {
  const alice = generateSigningKey('alice');
  const keysDir = mkdtempSync(join(tmpdir(), 'pullnix-ctl-keys-'));
  const aliceKey = join(keysDir, 'alice.key');
  saveSigningKey(aliceKey, alice);
  const executor = new RunningExecutor({
    operatorKeys: [{ id: 'alice', publicKey: alice.publicKey }],
    history: [
      record(1, { commit: C1 }),
      record(2, { commit: C2 }),
      record(3, { commit: C3 }),
      record(4, {
        commit: C4,
        outcome: 'rolled-back',
        generation: null,
        activationExit: 0,
        error: { code: 'INTERNAL', message: 'verification failed: git ls-remote origin main: Could not resolve host: git.example.org' },
      }),
    ],
  });
  const ctl = (...args: string[]) => runCtl(['--config', executor.configPath, ...args]);

  before(async () => {
    await executor.start();
  });
  after(async () => {
    await executor.dispose();
    rmSync(keysDir, { recursive: true, force: true });
  });

  it('status --json: the schema, what is deployed, the last failure', async () => {
    const st = json<StatusResult>(await ctl('status', '--json'));
    await assertValid('status', st);
    assert.equal(st.deployed?.commit, C3);
    assert.equal(st.deployed?.deploymentId, 3);
    assert.equal(st.lastFailure?.commit, C4);
    assert.equal(st.lastFailure?.outcome, 'rolled-back');
    assert.equal(st.executor.pid, executor.pid);
    assert.equal(st.watcher.connected, false);
  });

  it('status: a page an operator reads at a glance, without colour when not on a terminal', async () => {
    const r = await ctl('status');
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /\u001b\[/);
    const lines = r.stdout.split('\n');
    const line = (label: string) => lines.find((l) => l.startsWith(`${label} `)) ?? assert.fail(`no "${label}" line in:\n${r.stdout}`);
    assert.match(line('state'), /idle/);
    assert.match(line('paused'), /no/);
    assert.match(line('deployed'), new RegExp(`${C3.slice(0, 8)}`));
    assert.doesNotMatch(line('deployed'), new RegExp(C3), 'commits are shortened to 8 characters');
    assert.match(r.stdout, /deployment #3, deployed \d+ min ago, generation 43/);
    assert.match(line('last failure'), /rolled-back #4 deadbeef \d+ min ago/);
    assert.match(r.stdout, /Could not resolve host: git\.example\.org/);
    assert.match(line('watcher'), /not connected \(systemctl status pullnix-watcher\.service\)/);
    // Values start in one column.
    const starts = lines.filter((l) => /^[a-z]/.test(l)).map((l) => /^\S+(?: \S+)?\s+/.exec(l)![0].length);
    assert.equal(new Set(starts).size, 1, `values not aligned:\n${r.stdout}`);
  });

  it('status on a terminal: colour, unless NO_COLOR is set', async () => {
    // script(1) gives pullnix-ctl a real pseudo-terminal as stdout.
    const onTty = (env: NodeJS.ProcessEnv) =>
      runCtl([], { env, wrap: (argv) => ['script', '--quiet', '--return', '--command', argv.map((a) => `'${a}'`).join(' '), '/dev/null'], args: ['--config', executor.configPath, 'status'] });
    const coloured = await onTty({ TERM: 'xterm' });
    assert.equal(coloured.code, 0, coloured.stderr);
    assert.match(coloured.stdout, /\u001b\[31mrolled-back\u001b\[39m/);
    const plain = await onTty({ TERM: 'xterm', NO_COLOR: '1' });
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /rolled-back #4/);
    assert.doesNotMatch(plain.stdout, /\u001b\[/);
  });

  it('history: a table newest first, and --limit / --before page it', async () => {
    const r = await ctl('history');
    assert.equal(r.code, 0, r.stderr);
    const [header, ...rows] = r.stdout.trimEnd().split('\n');
    assert.match(header!, /^ID\s+WHEN\s+COMMIT\s+KIND\s+OUTCOME\s+GEN\s+BY\s+REASON$/);
    assert.deepEqual(rows.map((l) => l.split(/\s+/)[0]), ['4', '3', '2', '1']);
    assert.match(rows[0]!, /^4\s+\d+ min ago\s+deadbeef\s+deploy\s+rolled-back\s+-\s+watcher\s+verification failed: git ls-remote/);
    assert.match(rows[1]!, /^3\s+\d+ min ago\s+33333333\s+deploy\s+succeeded\s+43\s+watcher$/);
    // Columns line up: COMMIT starts at the same offset on every line.
    const at = header!.indexOf('COMMIT');
    for (const row of rows) assert.match(row.slice(at), /^[0-9a-f]{8} /);

    const limited = await ctl('history', '--limit', '2');
    assert.match(limited.stdout, /2 of 4 shown; --limit N for more/);

    const h = json<{ deployments: { id: number }[]; total: number }>(await ctl('history', '--limit', '2', '--json'));
    await assertValid('history', h);
    assert.deepEqual(h.deployments.map((d) => d.id), [4, 3]);
    assert.equal(h.total, 4);
    const older = json<{ deployments: { id: number }[] }>(await ctl('history', '--before', '3', '--json'));
    assert.deepEqual(older.deployments.map((d) => d.id), [2, 1]);
  });

  it('pause and resume, recorded with the key that asked and shown by status', async () => {
    const paused = json<{ paused: { by: string; reason: string | null } }>(await ctl('--key', aliceKey, 'pause', '--reason', 'kernel upgrade by hand', '--json'));
    await assertValid('pause', paused);
    assert.deepEqual({ by: paused.paused.by, reason: paused.paused.reason }, { by: 'alice', reason: 'kernel upgrade by hand' });
    const text = await ctl('status');
    assert.match(text.stdout, /^paused\s+yes, by alice (just now|\d+ s ago): "kernel upgrade by hand"$/m);
    assert.match(text.stdout, /pullnix-ctl resume/);

    const resumed = json<{ wasPaused: boolean }>(await ctl('resume', '--json'));
    await assertValid('resume', resumed);
    assert.equal(resumed.wasPaused, true);
    const again = await ctl('resume');
    assert.equal(again.code, 0);
    assert.match(again.stdout, /was not paused; nothing changed/);
    assert.equal(json<StatusResult>(await ctl('status', '--json')).paused, null);
  });

  it('sync with no watcher: exit 1 with the executor\'s code and reason, and what to check', async () => {
    const r = await ctl('sync');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /the executor answered NO_WATCHER: .+/);
    assert.match(r.stderr, /systemctl status pullnix-watcher\.service/);
    const j = await ctl('sync', '--json');
    assert.equal(j.code, 1);
    const err = JSON.parse(j.stdout) as { error: { code: string; hint: string | null }; exitCode: number };
    await assertValid('error', err);
    assert.equal(err.error.code, 'NO_WATCHER');
    assert.equal(err.exitCode, 1);
  });

  it('rollback to a deployment that does not exist is refused (exit 1, NOT_FOUND), nothing runs', async () => {
    const r = await ctl('rollback', '--to', '999');
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /the executor answered NOT_FOUND: /);
    assert.match(r.stderr, /pullnix-ctl history/);
    assert.equal(json<{ total: number }>(await ctl('history', '--json')).total, 4, 'no deployment was recorded');
  });

  it('version: its own and the executor\'s', async () => {
    const v = json<{ version: string; protocol: number; executor: { pid: number } | null }>(await ctl('version', '--json'));
    await assertValid('version', v);
    assert.equal(v.protocol, 2);
    assert.equal(v.executor?.pid, executor.pid);
    const text = await ctl('version');
    assert.match(text.stdout, /^pullnix-ctl \d+\.\d+\.\d+ \(protocol v2\)\npullnix-executor \d+\.\d+\.\d+ \(pid \d+\)$/m);
  });

  describe('with a watcher connected', () => {
    let watcher: SocketClient;
    const pushes: Push[] = [];
    // Times relative to when the report is sent (in before()), not to when this file was loaded:
    // on a loaded machine the tests above take minutes.
    let report: WatcherReport;
    const makeReport = (): WatcherReport => ({
      state: 'idle',
      pid: process.pid,
      version: '0.1.0',
      remoteHead: { commit: HEAD, subject: 'Enable the nginx reverse proxy', time: new Date(Date.now() - 5 * 60_000).toISOString() },
      deployedCommit: { commit: C3, subject: 'Pin nixpkgs to 24.11', time: new Date(Date.now() - 3 * 3600_000).toISOString() },
      lastPollAt: new Date(Date.now() - 60_000).toISOString(),
      nextPollAt: new Date(Date.now() + 4 * 60_000).toISOString(),
      lastError: null,
      failedBuilds: ['0badc0de'.repeat(5)],
    });

    before(async () => {
      report = makeReport();
      watcher = new SocketClient({ path: executor.socketPath, key: loadSigningKey(executor.watcherKeyPath) });
      await watcher.connect();
      watcher.onPush((m) => pushes.push(m));
      await watcher.request('subscribe', { pid: process.pid, version: '0.1.0' });
      await watcher.request('report', report);
    });
    after(() => watcher.close());

    it('status shows the watcher, the remote head, the drift and the next poll', async () => {
      const st = json<StatusResult>(await ctl('status', '--json'));
      await assertValid('status', st);
      assert.equal(st.watcher.connected, true);
      assert.equal(st.drift, true);
      const r = await ctl('status');
      assert.match(r.stdout, /^deployed\s+33333333 "Pin nixpkgs to 24.11"$/m);
      assert.match(r.stdout, /committed 3 h ago/);
      assert.match(r.stdout, /^remote\s+feedface "Enable the nginx reverse proxy", committed 5 min ago$/m);
      assert.match(r.stdout, /drift: the head is not deployed yet/);
      assert.match(r.stdout, /^watcher\s+connected, idle \(pid \d+, 0\.1\.0\)$/m);
      assert.match(r.stdout, /last poll 1 min ago, next poll in (3|4) min/);
      assert.match(r.stdout, /failed builds: 0badc0de/);
    });

    it('status: a head the watcher refused as a non-descendant reads as refused, in text and --json', async () => {
      const refusedHead = { commit: HEAD, reason: 'not-descendant' as const, deployed: C3, at: new Date(Date.now() - 60_000).toISOString() };
      await watcher.request('report', { ...report, refusedHead });
      try {
        const st = json<StatusResult>(await ctl('status', '--json'));
        await assertValid('status', st);
        assert.deepEqual(st.watcher.report?.refusedHead, refusedHead);
        const r = await ctl('status');
        assert.match(r.stdout, /^\s+refused: not a descendant of the deployed commit 33333333 \(force-push or history rewrite\)$/m);
        assert.match(r.stdout, /repository\.allowNonDescendant = true/);
        assert.match(r.stdout, /pullnix-ctl retry feedface$/m);
        assert.doesNotMatch(r.stdout, /not deployed yet/);
      } finally {
        await watcher.request('report', report);
      }
    });

    it('sync is forwarded to the watcher', async () => {
      const r = json<{ forwarded: true }>(await ctl('sync', '--json'));
      await assertValid('sync', r);
      await waitFor('the sync push', () => (pushes.some((p) => p.type === 'sync') ? true : undefined));
      const text = await ctl('sync');
      assert.equal(text.code, 0);
      assert.match(text.stdout, /the watcher polls now/);
    });

    it('retry takes a short commit of a failed one, resolves it, and tells the watcher', async () => {
      const r = json<{ forgotten: boolean; forwarded: boolean }>(await ctl('retry', '0badc0de', '--json'));
      await assertValid('retry', r);
      assert.equal(r.forwarded, true);
      const push = await waitFor('the retry push', () => pushes.find((p) => p.type === 'retry'));
      assert.deepEqual(push, { type: 'retry', commit: '0badc0de'.repeat(5) });
      const lastFailure = await ctl('retry', 'DEADBEEF');
      assert.equal(lastFailure.code, 0, lastFailure.stderr);
      assert.match(lastFailure.stdout, new RegExp(C4));
    });

    it('retry refuses a prefix it cannot resolve (exit 2) without sending anything', async () => {
      const r = await ctl('retry', 'abcd1234');
      assert.equal(r.code, 2);
      assert.match(r.stderr, /no failed commit starts with abcd1234/);
      assert.match(r.stderr, /give the full commit/);
    });
  });

  it('logs runs journalctl for both units, passing options through, and keeps its exit code', async () => {
    const bin = mkdtempSync(join(tmpdir(), 'pullnix-ctl-bin-'));
    try {
      const argsFile = join(bin, 'args');
      writeFileSync(join(bin, 'journalctl'), `#!/bin/sh\nprintf '%s\\n' "$@" > ${argsFile}\necho "<6>deploy.accepted deployment=1"\nexit 3\n`);
      chmodSync(join(bin, 'journalctl'), 0o755);
      const r = await runCtl(['--config', executor.configPath, 'logs', '-f', '-n', '5', '-p', 'warning', '--', '-o', 'cat', '--no-pager'], { env: { PATH: `${bin}:${process.env.PATH}` } });
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stdout, /deploy\.accepted deployment=1/);
      assert.deepEqual(readFileSync(argsFile, 'utf8').trimEnd().split('\n'), ['-u', 'pullnix-executor.service', '-u', 'pullnix-watcher.service', '--follow', '--lines', '5', '--priority', 'warning', '-o', 'cat', '--no-pager']);
      const one = await runCtl(['--config', executor.configPath, 'logs', '--unit', 'watcher', '-g', 'deploy\\.'], { env: { PATH: `${bin}:${process.env.PATH}` } });
      assert.equal(one.code, 3);
      assert.deepEqual(readFileSync(argsFile, 'utf8').trimEnd().split('\n'), ['-u', 'pullnix-watcher.service', '--grep', 'deploy\\.']);
      const none = await runCtl(['--config', executor.configPath, 'logs'], { env: { PATH: join(bin, 'empty') } });
      assert.equal(none.code, 1);
      assert.match(none.stderr, /cannot run journalctl: ENOENT/);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });

  it('key create writes a 0600 key, refuses to overwrite it, and key show prints the NixOS snippet', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pullnix-ctl-newkey-'));
    try {
      const file = join(dir, 'sub', 'bob.key');
      const created = json<{ keyId: string; publicKey: string; file: string; nixos: string }>(await ctl('key', 'create', '--id', 'bob', '--out', file, '--json'));
      await assertValid('key', created);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(created.file, file);
      assert.equal(created.nixos, `{ id = "bob"; publicKey = "${created.publicKey}"; }`);
      assert.equal(loadSigningKey(file).publicKey, created.publicKey);

      const again = await ctl('key', 'create', '--id', 'bob', '--out', file);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /already exists; not overwriting a key/);
      assert.equal(loadSigningKey(file).publicKey, created.publicKey, 'the key is unchanged');

      const shown = await ctl('key', 'show', '--key', file);
      assert.equal(shown.code, 0);
      assert.match(shown.stdout, new RegExp(`services\\.pullnix\\.settings\\.operators\\.keys = \\[ \\{ id = "bob"; publicKey = "${created.publicKey}"; \\} \\];`));
      const shownJson = json<{ publicKey: string }>(await ctl('key', 'show', '--key', file, '--json'));
      await assertValid('key', shownJson);
      assert.equal(shownJson.publicKey, created.publicKey);

      // A key the executor does not know: refused, and told how to register it.
      const refused = await ctl('--key', file, 'status');
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /the executor answered UNKNOWN_KEY: /);
      assert.match(refused.stderr, /services\.pullnix\.settings\.operators\.keys/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('key create defaults to $XDG_CONFIG_HOME/pullnix/operator.key, and the commands find it there', async () => {
    const home = mkdtempSync(join(tmpdir(), 'pullnix-ctl-home-'));
    try {
      const env = { XDG_CONFIG_HOME: join(home, 'xdg') };
      const created = await runCtl(['key', 'create', '--id', 'carol', '--json'], { env });
      const out = json<{ file: string }>(created);
      assert.equal(out.file, join(home, 'xdg', 'pullnix', 'operator.key'));
      assert.equal(statSync(join(home, 'xdg', 'pullnix')).mode & 0o777, 0o700);
      // Found before the executor's local key: the executor does not know carol yet.
      const r = await runCtl(['--config', executor.configPath, 'status'], { env });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /UNKNOWN_KEY: key "carol"/);
      // $PULLNIX_KEY comes before it.
      const viaEnv = await runCtl(['--config', executor.configPath, 'status', '--json'], { env: { ...env, PULLNIX_KEY: aliceKey } });
      assert.equal(viaEnv.code, 0, viaEnv.stderr);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  it('help: for every command, exit 0', async () => {
    for (const command of ['status', 'history', 'sync', 'pause', 'resume', 'rollback', 'retry', 'logs', 'version', 'schema']) {
      const r = await runCtl([command, '--help']);
      assert.equal(r.code, 0, `${command} --help: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^usage: pullnix-ctl ${command}\\b`));
    }
    for (const args of [['key', 'create', '--help'], ['help', 'key', 'show'], ['help', 'key']]) {
      const r = await runCtl(args);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /usage: pullnix-ctl key (create|show)/);
    }
    const main = await runCtl(['--help']);
    assert.equal(main.code, 0);
    assert.match(main.stdout, /exit codes: 0 ok, 1 refused or failed, 2 usage error, 3 executor unreachable/);
  });
});

describe('pullnix-ctl against a fresh executor (root, no setup)', () => {
  const executor = new RunningExecutor();
  const ctl = (...args: string[]) => runCtl(['--config', executor.configPath, ...args]);
  before(async () => {
    await executor.start();
  });
  after(() => executor.dispose());

  it("uses the executor's local operator key with no setup, and history is empty", async () => {
    const h = json<{ deployments: unknown[]; total: number }>(await ctl('history', '--json'));
    await assertValid('history', h);
    assert.deepEqual(h, { deployments: [], total: 0 });
    assert.match((await ctl('history')).stdout, /no deployments yet/);
    const paused = json<{ paused: { by: string } }>(await ctl('pause', '--json'));
    assert.equal(paused.paused.by, 'local-root');
    assert.equal((await ctl('resume')).code, 0);
    const st = json<StatusResult>(await ctl('status', '--json'));
    await assertValid('status', st);
    assert.equal(st.deployed, null);
    assert.match((await ctl('status')).stdout, /^deployed\s+nothing deployed by pullnix yet$/m);
  });

  it('rollback with nothing deployed: exit 1, NOT_FOUND and the reason', async () => {
    const r = await ctl('rollback');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /the executor answered NOT_FOUND: .+/);
    const j = await ctl('rollback', '--json');
    assert.equal(j.code, 1);
    await assertValid('error', JSON.parse(j.stdout));
  });

  it('key show explains that the local operator key needs no registration', async () => {
    const r = await ctl('key', 'show');
    assert.equal(r.code, 0);
    assert.match(r.stdout, /key id\s+local-root/);
    assert.match(r.stdout, /trusted without registration/);
  });
});

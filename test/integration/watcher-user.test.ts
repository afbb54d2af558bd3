/**
 * A watcher with a user of its own (`watcher.user`, docs/decisions.md D20), against a real executor
 * process: the executor serves it a socket of its own (0660 root:<its group>, directory 0750),
 * keeps no private watcher key, trusts the public half the watcher creates (read without following
 * links, owned by the watcher's user), and the watcher's user can reach that socket and nothing else
 * of root's. The user is `nobody` here; the real-systemd bed runs the same as `pullnix-watcher`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createRunner, generateSigningKey, lookupUser, PullnixError, runHook, saveSigningKey, SocketClient } from '@pullnix/shared';
import { ensureOwnKey } from '@pullnix/watcher';
import { ExecutorProcess, makeBed, type Bed } from '../lib/executor-fixtures.ts';
import { CapturedLog } from '../lib/watcher-fixtures.ts';
import { CTL_MAIN as CTL } from './ctl-harness.ts';

const NOBODY = lookupUser('nobody');

/** Connect to a Unix socket as `nobody`: 'connected' or the error code. */
function connectAsNobody(path: string): string {
  const script = `const s = require('node:net').createConnection(${JSON.stringify(path)}); s.on('connect', () => { console.log('connected'); s.destroy(); }); s.on('error', (e) => console.log(e.code));`;
  const r = spawnSync('setpriv', [`--reuid=${NOBODY.uid}`, `--regid=${NOBODY.gid}`, '--clear-groups', process.execPath, '-e', script], { encoding: 'utf8', timeout: 20_000 });
  return `${r.stdout}${r.stderr}`.trim();
}

function readAsNobody(path: string): string {
  const r = spawnSync('setpriv', [`--reuid=${NOBODY.uid}`, `--regid=${NOBODY.gid}`, '--clear-groups', 'cat', path], { encoding: 'utf8', timeout: 20_000 });
  return r.status === 0 ? 'read' : r.stderr.trim();
}

async function refusal(path: string, key: ReturnType<typeof generateSigningKey>): Promise<PullnixError> {
  const c = new SocketClient({ path, key });
  try {
    await c.connect();
    await c.request('status', {});
    throw new Error('status was answered');
  } catch (error) {
    if (!(error instanceof PullnixError)) throw error;
    return error;
  } finally {
    c.close();
  }
}

describe('preDeploy of a watcher with a user of its own', () => {
  it('runs as the watcher itself, not through systemd-run (which an unprivileged user may not use), with the PULLNIX_* environment', async () => {
    const log = new CapturedLog();
    const runner = createRunner(log.logger);
    const context = { deployment: null, commit: 'c'.repeat(40), outcome: null, toplevel: '/nix/store/x-system', previous: null, error: null };
    const hook = { argv: ['/bin/sh', '-c', 'echo "uid=$(id -u) commit=$PULLNIX_COMMIT"; test -z "$NOT_PASSED"'], user: null, timeoutSec: 5 };
    process.env.NOT_PASSED = 'x';
    try {
      const direct = await runHook(runner, log.logger, 'preDeploy', hook, context, undefined, { direct: true });
      assert.equal(direct.ok, true, direct.error ?? '');
      assert.match(direct.output, new RegExp(`uid=${process.getuid!()} commit=${'c'.repeat(40)}`));
      const commands = log.lines.filter((l) => l.event === 'command.run').map((l) => l.fields.argv ?? '');
      assert.equal(commands.length, 1);
      assert.match(commands[0]!, /^\/bin\/sh -c /, 'the hook itself, not systemd-run');
      assert.equal(log.lines.find((l) => l.event === 'hook.started')?.fields.user, 'self');
    } finally {
      delete process.env.NOT_PASSED;
    }
  });
});

describe('a watcher with a user of its own', () => {
  let bed: Bed;
  let proc: ExecutorProcess;
  let watcherState: string;
  let watcherSocket: string;

  before(async () => {
    bed = makeBed();
    watcherState = join(bed.dir, 'watcher-state');
    watcherSocket = join(bed.dir, 'run-watcher', 'executor.sock');
    bed.writeConfig({ watcher: { user: 'nobody', stateDir: watcherState } });
    // A machine upgraded from a root watcher: the executor's old watcher key must go.
    saveSigningKey(join(bed.stateDir, 'keys', 'watcher.key'), generateSigningKey('watcher'));
    proc = await ExecutorProcess.start(bed);
  });

  after(async () => {
    await proc?.stop();
    bed?.cleanup();
  });

  it('serves the watcher a socket of its own, 0660 root:<its group> in a 0750 directory, and keeps no watcher private key', () => {
    const started = proc.events('executor.started')[0]!;
    assert.equal(started.watcher_socket, watcherSocket);
    assert.equal(started.watcher_user, 'nobody');
    const sock = statSync(watcherSocket);
    assert.ok(sock.isSocket());
    assert.equal(sock.mode & 0o777, 0o660);
    assert.deepEqual([sock.uid, sock.gid], [0, NOBODY.gid]);
    const dir = statSync(join(bed.dir, 'run-watcher'));
    assert.equal(dir.mode & 0o777, 0o750);
    assert.deepEqual([dir.uid, dir.gid], [0, NOBODY.gid]);
    assert.equal(existsSync(join(bed.stateDir, 'keys', 'watcher.key')), false, "the old private key is gone from the executor's keys");
    assert.equal(proc.events('keys.retired').length, 1);
  });

  it('refuses the watcher key until the watcher created it, then trusts the public half the watcher wrote', async () => {
    const early = await refusal(watcherSocket, generateSigningKey('watcher'));
    assert.equal(early.code, 'UNKNOWN_KEY');
    assert.match(early.message, /does not exist/);

    const log = new CapturedLog();
    const key = ensureOwnKey(watcherState, log.logger);
    chownSync(watcherState, NOBODY.uid, NOBODY.gid);
    for (const f of ['watcher.key', 'watcher.pub']) chownSync(join(watcherState, f), NOBODY.uid, NOBODY.gid);
    assert.equal(log.lines.filter((l) => l.event === 'watcher.key_generated').length, 1);
    assert.equal(statSync(join(watcherState, 'watcher.key')).mode & 0o777, 0o600);

    const client = new SocketClient({ path: watcherSocket, key });
    try {
      await client.connect();
      const status = await client.request('status', {});
      assert.equal(typeof status.executor.pid, 'number');
      // The watcher role and nothing more: an operator method is refused.
      await assert.rejects(client.request('pause', { reason: 'x' }), (e: PullnixError) => e.code === 'FORBIDDEN');
    } finally {
      client.close();
    }
    // A second start keeps the key.
    assert.equal(ensureOwnKey(watcherState, log.logger).publicKey, key.publicKey);
  });

  it('refuses a public key file that is a symbolic link, belongs to another user, or is not a key', async () => {
    const key = ensureOwnKey(watcherState, new CapturedLog().logger);
    const pub = join(watcherState, 'watcher.pub');
    const keep = `${pub}.keep`;
    renameSync(pub, keep);
    try {
      symlinkSync(keep, pub);
      assert.match((await refusal(watcherSocket, key)).message, /symbolic link/);
      renameSync(pub, `${pub}.link`);
      writeFileSync(pub, readFileSync(keep));
      chownSync(pub, 12345, 12345);
      assert.match((await refusal(watcherSocket, key)).message, /belongs to uid 12345/);
      writeFileSync(pub, 'ssh-ed25519 AAAA...\n');
      chownSync(pub, NOBODY.uid, NOBODY.gid);
      assert.match((await refusal(watcherSocket, key)).message, /does not hold a public key/);
    } finally {
      renameSync(keep, pub);
    }
  });

  it("pins the watcher's key at its first use: a key written later into watcher.pub (the watcher's user compromised) is refused until an operator accepts it", async () => {
    const key = ensureOwnKey(watcherState, new CapturedLog().logger);
    const pub = join(watcherState, 'watcher.pub');
    const pin = join(bed.stateDir, 'keys', 'watcher.pub');
    assert.equal(readFileSync(pin, 'utf8').trim(), key.publicKey, "root's record of the key");
    assert.equal(statSync(pin).mode & 0o777, 0o600);
    assert.equal(statSync(pin).uid, 0);
    assert.equal(proc.events('keys.watcher_pinned').length, 1);

    // Code running as the watcher's user mints a key and puts its public half where the executor looks.
    const original = readFileSync(pub);
    const forged = generateSigningKey('watcher');
    writeFileSync(pub, `${forged.publicKey}\n`);
    chownSync(pub, NOBODY.uid, NOBODY.gid);
    try {
      const refused = await refusal(watcherSocket, forged);
      assert.equal(refused.code, 'UNKNOWN_KEY');
      assert.match(refused.message, /not the watcher key root pinned/);
      assert.match(refused.message, /accept-watcher-key/);
      await proc.waitFor('keys.watcher_key_changed');
      const changed = proc.events('keys.watcher_key_changed')[0]!;
      assert.equal(changed.file, pub);
      assert.equal(changed.public_key, forged.publicKey);
      // The pin did not move; the real key is refused too while the file is not the pinned key.
      assert.equal(readFileSync(pin, 'utf8').trim(), key.publicKey);
      await refusal(watcherSocket, forged);
      assert.equal(proc.events('keys.watcher_key_changed').length, 1, 'one event per proposed key, not per request');

      // The operator accepts it (pullnix-ctl accept-watcher-key, as root): now that key is trusted.
      const ctl = spawnSync(process.execPath, [CTL, '--config', bed.configPath, 'accept-watcher-key', '--json'], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(ctl.status, 0, ctl.stderr);
      assert.equal(JSON.parse(ctl.stdout).pinned, forged.publicKey);
      const client = new SocketClient({ path: watcherSocket, key: forged });
      try {
        await client.connect();
        assert.equal(typeof (await client.request('status', {})).executor.pid, 'number');
      } finally {
        client.close();
      }
    } finally {
      writeFileSync(pub, original);
      chownSync(pub, NOBODY.uid, NOBODY.gid);
      writeFileSync(pin, original, { mode: 0o600 });
    }
  });

  it("the watcher's user reaches its own socket, and neither root's socket, the group's, nor the executor's state", () => {
    // Let nobody pass the test's own directories, so that only pullnix's modes decide.
    chmodSync(bed.dir, 0o755);
    chmodSync(join(bed.dir, 'run'), 0o755);
    mkdirSync(bed.stateDir, { recursive: true });
    assert.equal(connectAsNobody(watcherSocket), 'connected');
    assert.equal(connectAsNobody(bed.privateSocketPath), 'EACCES', "root's own socket, in its 0700 directory");
    assert.equal(connectAsNobody(bed.socketPath), 'EACCES', "the operator group's socket (group root here)");
    chmodSync(bed.stateDir, 0o755); // even with the state directory's own mode widened, the files are root's 0600
    assert.match(readAsNobody(join(bed.stateDir, 'keys', 'local-operator.key')), /Permission denied/);
    assert.match(readAsNobody(join(bed.stateDir, 'state.json')), /Permission denied|No such file/);
  });
});

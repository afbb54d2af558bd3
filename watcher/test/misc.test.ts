import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { ConnectError, createLogger, PullnixError } from '@pullnix/shared';
import { backoffDelayMs, pollDelayMs } from '../src/backoff.ts';
import { Alarm, systemClock } from '../src/clock.ts';
import { describeConnectFailure } from '../src/executor-link.ts';
import { describeGitError, parseLsRemote, passThroughEnv, redactUrl } from '../src/commands/git.ts';
import { emptyMemory, forgetCommit, MemoryStore, rememberDescription, rememberFailure, MAX_FAILURES } from '../src/memory.ts';

const C1 = 'a'.repeat(40);
const C2 = 'b'.repeat(40);

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _e, done) {
      lines.push(...chunk.toString().split('\n').filter((l) => l));
      done();
    },
  });
  return { lines, logger: createLogger({ level: 'debug', stream }) };
}

describe('back-off', () => {
  it('doubles from the base and stops at the ceiling', () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5, 60].map((n) => backoffDelayMs(n, 5000, 30_000)), [0, 5000, 10_000, 20_000, 30_000, 30_000, 30_000]);
  });

  it('adds up to jitterSec of random delay to the interval', () => {
    const poll = { intervalSec: 300, jitterSec: 30, maxBackoffSec: 900 };
    assert.equal(pollDelayMs(poll, () => 0), 300_000);
    assert.equal(pollDelayMs(poll, () => 0.5), 315_000);
    assert.ok(pollDelayMs(poll, () => 0.999999) < 330_000);
  });
});

describe('Alarm', () => {
  it('is cut short by wake(), and a wake() during a poll makes the next sleep return at once', async () => {
    const alarm = new Alarm(systemClock);
    const signal = new AbortController().signal;
    const sleeping = alarm.sleep(3_600_000, signal);
    alarm.wake();
    assert.equal(await sleeping, 'woken');
    alarm.wake();
    assert.equal(await alarm.sleep(3_600_000, signal), 'woken');
  });

  it('returns when the signal aborts', async () => {
    const controller = new AbortController();
    const sleeping = new Alarm(systemClock).sleep(3_600_000, controller.signal);
    controller.abort();
    assert.equal(await sleeping, 'elapsed');
  });
});

describe('ls-remote output', () => {
  it('takes exactly the branch ref, not a longer ref that ends the same way', () => {
    const out = `${C1}\trefs/heads/feature/refs/heads/main\n${C2}\trefs/heads/main\n`;
    assert.equal(parseLsRemote(out, 'refs/heads/main'), C2);
    assert.equal(parseLsRemote('', 'refs/heads/main'), null);
  });

  it('shortens git errors to the lines that say why: no progress meters, no boilerplate', () => {
    const boilerplate = 'fatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\nand the repository exists.\n';
    assert.equal(describeGitError(new Error(`ssh: Could not resolve hostname git.example.org: Name or service not known\n${boilerplate}`)), 'ssh: Could not resolve hostname git.example.org: Name or service not known');
    assert.equal(describeGitError(new Error(`fatal: '/x' does not appear to be a git repository\n${boilerplate}`)), "fatal: '/x' does not appear to be a git repository");
    assert.equal(
      describeGitError(new Error('remote: Enumerating objects: 9, done.\rremote: Counting objects: 100% (9/9), done.\nReceiving objects:  11% (1/9)\rReceiving objects:  44% (4/9)\nConnection reset by 192.0.2.1 port 22\nfatal: early EOF\n')),
      'Connection reset by 192.0.2.1 port 22 / fatal: early EOF',
    );
  });
});

describe('git environment', () => {
  it('passes on what git needs and nothing that makes it run other programs', () => {
    const env = passThroughEnv({ PATH: '/bin', HOME: '/root', EDITOR: 'vi', PAGER: 'less', GIT_ASKPASS: '/x', SSL_CERT_FILE: '/etc/ssl/ca.pem', SSH_AUTH_SOCK: '/s' });
    assert.deepEqual(env, { PATH: '/bin', HOME: '/root', SSL_CERT_FILE: '/etc/ssl/ca.pem' });
  });
});

describe('executor connection failures', () => {
  const paths = { keyPath: '/k/watcher.key', socketPath: '/run/pullnix/executor.sock' };
  it('names the cause an operator can act on', () => {
    const noKey = Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' });
    assert.match(describeConnectFailure(noKey, paths).reason, /no key file \/k\/watcher\.key \(the executor creates it/);
    assert.match(describeConnectFailure(new ConnectError(paths.socketPath, 'ENOENT'), paths).reason, /ENOENT \(the executor is not running\)/);
    assert.match(describeConnectFailure(new ConnectError(paths.socketPath, 'EACCES'), paths).reason, /no permission/);
    assert.match(describeConnectFailure(new PullnixError('UNKNOWN_KEY', 'key "watcher" is not known'), paths).reason, /refused subscribe: UNKNOWN_KEY/);
    assert.notEqual(describeConnectFailure(noKey, paths).cause, describeConnectFailure(new ConnectError(paths.socketPath, 'ENOENT'), paths).cause);
  });
});

describe('watcher memory', () => {
  it('round-trips atomically with mode 0600', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pullnix-mem-'));
    const store = new MemoryStore({ path: join(dir, 'watcher.json'), logger: capture().logger });
    const memory = emptyMemory();
    memory.lastHandled = { commit: C1, result: 'deployed', at: 'now', detail: null };
    rememberFailure(memory, { commit: C2, at: 'now', error: 'nix exited 1', logTail: 'x' });
    store.save(memory);
    assert.deepEqual(store.load(), memory);
    assert.deepEqual(readdirSync(dir), ['watcher.json'], 'no temporary files left');
  });

  it('sets a corrupt file aside, logs state.corrupt and starts empty', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pullnix-mem-'));
    const path = join(dir, 'watcher.json');
    writeFileSync(path, '{"v": 1, "lastHandled": ');
    const { lines, logger } = capture();
    const memory = new MemoryStore({ path, logger }).load();
    assert.deepEqual(memory, emptyMemory());
    assert.equal(existsSync(path), false);
    const aside = readdirSync(dir).find((n) => n.startsWith('watcher.json.corrupt-'));
    assert.ok(aside, 'the corrupt file is kept under another name');
    assert.equal(readFileSync(join(dir, aside), 'utf8'), '{"v": 1, "lastHandled": ');
    assert.match(lines[0] ?? '', /^<3>state\.corrupt file=.*watcher\.json moved_to=/);
  });

  it('an unreadable file (a directory in its place) is reported and set aside, not a crash', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pullnix-mem-'));
    const path = join(dir, 'watcher.json');
    mkdirSync(path);
    const { lines, logger } = capture();
    assert.deepEqual(new MemoryStore({ path, logger }).load(), emptyMemory());
    assert.match(lines[0] ?? '', /^<3>state\.corrupt file=.*watcher\.json moved_to=.*corrupt-.* error=.*EISDIR/);
    assert.equal(existsSync(path), false, 'moved out of the way, so the next save works');
  });

  it('rejects a well-formed file of the wrong shape as corrupt too', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pullnix-mem-'));
    const path = join(dir, 'watcher.json');
    writeFileSync(path, JSON.stringify({ v: 1, lastHandled: { commit: 'not-a-commit', result: 'deployed' }, failures: [], commits: {} }));
    const { lines, logger } = capture();
    new MemoryStore({ path, logger }).load();
    assert.match(lines[0] ?? '', /state\.corrupt .*lastHandled/);
  });

  it('forgets a commit on retry, whether it failed or was the handled head', () => {
    const memory = emptyMemory();
    rememberFailure(memory, { commit: C1, at: 'now', error: 'e', logTail: '' });
    memory.lastHandled = { commit: C1, result: 'build-failed', at: 'now', detail: null };
    assert.equal(forgetCommit(memory, C1), true);
    assert.deepEqual(memory.failures, []);
    assert.equal(memory.lastHandled, null);
    assert.equal(forgetCommit(memory, C2), false);
  });

  it('bounds the failures and descriptions it keeps', () => {
    const memory = emptyMemory();
    for (let i = 0; i < MAX_FAILURES + 10; i += 1) rememberFailure(memory, { commit: i.toString(16).padStart(40, '0'), at: 'now', error: 'e', logTail: '' });
    assert.equal(memory.failures.length, MAX_FAILURES);
    for (let i = 0; i < 30; i += 1) rememberDescription(memory, i.toString(16).padStart(40, '0'), { subject: `s${i}`, time: null });
    assert.equal(Object.keys(memory.commits).length, 20);
    assert.equal(memory.commits[(29).toString(16).padStart(40, '0')]?.subject, 's29');
  });
});

describe('redactUrl', () => {
  it('hides a password in an https URL and leaves ssh URLs alone', () => {
    assert.equal(redactUrl('https://bot:ghp_secret@github.com/o/r.git'), 'https://bot:***@github.com/o/r.git');
    assert.equal(redactUrl('git@github.com:o/r.git'), 'git@github.com:o/r.git');
    assert.equal(redactUrl('ssh://git@host/r.git'), 'ssh://git@host/r.git');
  });
});

/**
 * pullnix-ctl's failures, each with its exit code and a message that says what to do:
 * 2 usage (nothing sent), 3 executor unreachable (socket missing, nobody listening),
 * 4 permission denied (socket group) or no operator key, 1 refused (covered with the commands).
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateSigningKey, saveSigningKey } from '@pullnix/shared';
import { runCtl, RunningExecutor, validateOutput } from './ctl-harness.ts';

const NOBODY = { user: 'nobody', group: 'nogroup' };

describe('pullnix-ctl error paths', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pullnix-ctl-err-'));
  chmodSync(dir, 0o755);
  const keyFile = join(dir, 'op.key');
  saveSigningKey(keyFile, generateSigningKey('op'));
  // nobody must be able to read its key, so the socket is what stops it.
  chownSync(keyFile, 65534, 65534);
  const missingSocket = join(dir, 'run', 'executor.sock');

  after(() => rmSync(dir, { recursive: true, force: true }));

  describe('usage errors: exit 2, nothing sent (the socket does not even exist)', () => {
    const cases: [string, string[], RegExp][] = [
      ['no command', [], /usage: pullnix-ctl COMMAND/],
      ['unknown command', ['deploy'], /unknown command "deploy"/],
      ['unknown option', ['status', '--verbose'], /status: Unknown option '--verbose'/],
      ['missing argument', ['retry'], /retry: missing argument/],
      ['extra argument', ['status', 'now'], /status: unexpected argument "now"/],
      ['bad number', ['history', '--limit', '0'], /--limit wants a whole number from 1 to 1000, got "0"/],
      ['bad id', ['rollback', '--to', 'last'], /--to wants a whole number/],
      ['not a commit', ['retry', 'main'], /retry wants a commit \(hex, at least 4 digits\), got "main"/],
      ['key without subcommand', ['key'], /key wants a subcommand: create, show/],
      ['empty reason', ['pause', '--reason', ''], /--reason wants 1 to 500 characters/],
      ['arguments after -- for a command that takes none', ['status', '--', '-x'], /status takes no arguments after --/],
      ['journalctl option without --', ['logs', '--output', 'json'], /journalctl options go after --, e.g. pullnix-ctl logs -- --output \.\.\./],
      ['unknown log unit', ['logs', '--unit', 'nginx'], /--unit wants executor, watcher or both/],
      ['unknown schema', ['schema', 'deploy'], /no schema named "deploy"/],
      ['help for an unknown command', ['help', 'frobnicate'], /no command "frobnicate"/],
    ];
    for (const [name, args, message] of cases) {
      it(name, async () => {
        const r = await runCtl(['--socket', missingSocket, '--key', keyFile, ...args]);
        assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
        assert.match(r.stderr, message);
        assert.equal(r.stdout, '');
      });
    }

    it('with --json, the error is also printed as JSON on stdout', async () => {
      const r = await runCtl(['--socket', missingSocket, '--key', keyFile, 'history', '--limit', 'lots', '--json']);
      assert.equal(r.code, 2);
      const out = JSON.parse(r.stdout) as { error: { code: string }; exitCode: number };
      assert.equal(await validateOutput('error', out), null);
      assert.deepEqual([out.error.code, out.exitCode], ['USAGE', 2]);
    });
  });

  describe('executor unreachable: exit 3 and the unit to check', () => {
    it('socket missing', async () => {
      const r = await runCtl(['--socket', missingSocket, '--key', keyFile, 'status']);
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, new RegExp(`the executor's socket ${missingSocket} does not exist`));
      assert.match(r.stderr, /is pullnix-executor\.service running\? systemctl status pullnix-executor\.service/);
      const j = await runCtl(['--socket', missingSocket, '--key', keyFile, 'status', '--json']);
      assert.equal(j.code, 3);
      const out = JSON.parse(j.stdout) as { error: { code: string }; exitCode: number };
      assert.equal(await validateOutput('error', out), null);
      assert.deepEqual([out.error.code, out.exitCode], ['UNREACHABLE', 3]);
    });

    it('every socket command says so, and version still answers for itself (exit 0)', async () => {
      for (const args of [['history'], ['sync'], ['pause'], ['resume'], ['rollback'], ['retry', 'a'.repeat(40)]]) {
        const r = await runCtl(['--socket', missingSocket, '--key', keyFile, ...args]);
        assert.equal(r.code, 3, `${args[0]}: ${r.stderr}`);
      }
      const v = await runCtl(['--socket', missingSocket, '--key', keyFile, 'version', '--json']);
      assert.equal(v.code, 0);
      const out = JSON.parse(v.stdout) as { executor: unknown; executorError: { code: string } | null };
      assert.equal(await validateOutput('version', out), null);
      assert.equal(out.executor, null);
      assert.equal(out.executorError?.code, 'UNREACHABLE');
    });

    it('a socket left behind by a killed executor: nothing listening', async () => {
      const executor = await new RunningExecutor().start();
      try {
        await executor.stop('SIGKILL');
        const r = await runCtl(['--socket', executor.socketPath, '--key', executor.localKeyPath, 'status']);
        assert.equal(r.code, 3, r.stderr);
        assert.match(r.stderr, /nothing is listening on .*executor\.sock/);
        assert.match(r.stderr, /systemctl status pullnix-executor\.service/);
      } finally {
        await executor.dispose();
      }
    });
  });

  describe('a user outside the operator group', () => {
    const executor = new RunningExecutor({ group: 'root' });
    before(async () => {
      await executor.start();
    });
    after(() => executor.dispose());

    it('is denied by the socket: exit 4 and the group to join', async () => {
      const r = await runCtl(['--config', executor.configPath, '--key', keyFile, 'status'], { asUser: NOBODY });
      assert.equal(r.code, 4, r.stderr);
      assert.match(r.stderr, /permission denied opening .*executor\.sock: only root and members of the operator group root may use the executor/);
      assert.match(r.stderr, /sudo usermod -aG root nobody, then log out and in again/);
      const j = await runCtl(['--config', executor.configPath, '--key', keyFile, 'status', '--json'], { asUser: NOBODY });
      assert.equal(j.code, 4);
      assert.equal((JSON.parse(j.stdout) as { error: { code: string } }).error.code, 'PERMISSION_DENIED');
    });

    it('with no key of its own, is told how to create and register one (exit 4)', async () => {
      const r = await runCtl(['--config', executor.configPath, 'status'], { asUser: NOBODY });
      assert.equal(r.code, 4, r.stderr);
      assert.match(r.stderr, /no operator key: looked for \/nonexistent\/\.config\/pullnix\/operator\.key and .*local-operator\.key/);
      assert.match(r.stderr, /pullnix-ctl key create/);
      assert.match(r.stderr, /services\.pullnix\.settings\.operators\.keys/);
    });

    it('an unreadable --key is named, not skipped', async () => {
      const r = await runCtl(['--config', executor.configPath, '--key', executor.localKeyPath, 'status'], { asUser: NOBODY });
      assert.equal(r.code, 4);
      assert.match(r.stderr, /cannot read the key file .*local-operator\.key \(from --key\): EACCES/);
    });

    it('without read access to the config, falls back to defaults with a note (and --socket still works)', async () => {
      const r = await runCtl(['--config', join(dir, 'no-such-config.json'), '--socket', executor.socketPath, '--key', executor.localKeyPath, 'status', '--json']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`note: config .*no-such-config\\.json not used \\(cannot read: ENOENT\\); using the defaults, socket ${executor.socketPath}`));
      assert.equal(await validateOutput('status', JSON.parse(r.stdout)), null);
    });
  });
});

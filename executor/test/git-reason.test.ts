/**
 * The connectivity check names its cause: real git and ssh against endpoints that fail in
 * different ways, and the reason line ssh prints must survive into the verify failure message.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { createRunner, describeFailure, parseConfig, reasonLines } from '@pullnix/shared';
import { lsRemote } from '../src/commands/git.ts';

/** A TCP port on 127.0.0.1 that nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function verifyFailure(url: string, repository: Record<string, unknown> = {}): Promise<string> {
  const config = parseConfig(JSON.stringify({ repository: { url, ...repository }, build: { mode: 'flake' } }));
  const r = await lsRemote(createRunner(), config, 20_000);
  assert.notEqual(r.exitCode, 0, `git ls-remote ${url} should fail`);
  return describeFailure(r);
}

describe('a failed git ls-remote names its cause (real git and ssh)', () => {
  it('refused connection', async () => {
    const port = await closedPort();
    const why = await verifyFailure(`ssh://git@127.0.0.1:${port}/srv/repo.git`);
    assert.match(why, new RegExp(`ssh: connect to host 127\\.0\\.0\\.1 port ${port}: Connection refused`));
    assert.doesNotMatch(why, /Please make sure you have the correct access rights/);
  });

  it('a host name that does not resolve', async () => {
    const why = await verifyFailure('git@nonexistent.invalid:machines.git');
    assert.match(why, /ssh: Could not resolve hostname nonexistent\.invalid/);
  });

  it('a local path that is not a repository keeps its own fatal line', async () => {
    const why = await verifyFailure('/nonexistent/machines.git');
    assert.match(why, /fatal: '\/nonexistent\/machines\.git' does not appear to be a git repository/);
  });
});

/**
 * A real sshd on 127.0.0.1 with one authorized key (root only: sshd needs its privilege separation
 * user and directory). Returns its port and the files a client needs.
 */
async function startSshd(t: TestContext): Promise<{ port: number; dir: string } | null> {
  if (process.getuid?.() !== 0 || !existsSync('/usr/sbin/sshd')) {
    t.skip('needs root and /usr/sbin/sshd (apt-get install openssh-server); CI has both');
    return null;
  }
  const dir = mkdtempSync(join(tmpdir(), 'pullnix-sshd-'));
  for (const name of ['hostkey', 'otherhost', 'client', 'stranger']) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', join(dir, name)]);
  const port = await closedPort();
  const hostKey = (name: string) => `[127.0.0.1]:${port} ${readFileSync(join(dir, `${name}.pub`), 'utf8').split(' ').slice(0, 2).join(' ')}\n`;
  writeFileSync(join(dir, 'known_hosts'), hostKey('hostkey'));
  writeFileSync(join(dir, 'wrong_known_hosts'), hostKey('otherhost'));
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client.pub')));
  const config = [`ListenAddress 127.0.0.1:${port}`, `HostKey ${dir}/hostkey`, 'PidFile none', `AuthorizedKeysFile ${dir}/authorized_keys`, 'StrictModes no', 'UsePAM no', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'PermitRootLogin prohibit-password'];
  writeFileSync(join(dir, 'sshd_config'), `${config.join('\n')}\n`);
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.after(() => {
    sshd.kill();
    rmSync(dir, { recursive: true, force: true });
  });
  await new Promise<void>((resolve, reject) => {
    let err = '';
    sshd.stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString();
      if (err.includes('Server listening')) resolve();
    });
    sshd.on('exit', (code) => reject(new Error(`sshd exited ${code}: ${err}`)));
  });
  return { port, dir };
}

describe('a failed git ls-remote names its cause: a real sshd', () => {
  it('a key the server does not accept: Permission denied (publickey)', async (t) => {
    const sshd = await startSshd(t);
    if (!sshd) return;
    const why = await verifyFailure(`ssh://root@127.0.0.1:${sshd.port}/srv/machines.git`, { sshKeyFile: join(sshd.dir, 'stranger'), knownHostsFile: join(sshd.dir, 'known_hosts') });
    assert.match(why, /root@127\.0\.0\.1: Permission denied \(publickey\)/);
  });

  it('a host key that does not match the pinned one: Host key verification failed', async (t) => {
    const sshd = await startSshd(t);
    if (!sshd) return;
    const why = await verifyFailure(`ssh://root@127.0.0.1:${sshd.port}/srv/machines.git`, { sshKeyFile: join(sshd.dir, 'client'), knownHostsFile: join(sshd.dir, 'wrong_known_hosts') });
    assert.match(why, /Host key verification failed/);
  });
});

describe('reasonLines', () => {
  it('drops progress meters and boilerplate, keeps the reason; the boilerplate alone is kept', () => {
    const fetch =
      'remote: Enumerating objects: 5, done.\rremote: Counting objects:  40% (2/5)\rremote: Counting objects: 100% (5/5), done.\n' +
      'Receiving objects:  20% (1/5)\rReceiving objects: 100% (5/5), done.\n' +
      'Connection to git.example.org closed by remote host.\nfatal: early EOF\nfatal: fetch-pack: invalid index-pack output\n';
    assert.equal(reasonLines(fetch), 'Connection to git.example.org closed by remote host.\nfatal: early EOF\nfatal: fetch-pack: invalid index-pack output');
    const key = 'git@git.example.org: Permission denied (publickey).\r\nfatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\nand the repository exists.\n';
    assert.equal(reasonLines(key), 'git@git.example.org: Permission denied (publickey).');
    assert.equal(reasonLines('fatal: Could not read from remote repository.\n'), 'fatal: Could not read from remote repository.');
  });
});

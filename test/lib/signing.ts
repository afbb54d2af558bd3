/**
 * Real signing keys for the trust tests: SSH keys (`ssh-keygen`, commits signed with
 * `gpg.format=ssh`, i.e. `ssh-keygen -Y sign`) and OpenPGP keys (GnuPG, Debian's `gnupg`), each
 * in its own temp directory. A Signer gives the `git -c …` arguments and environment that make
 * `git commit -S` sign with it, and the configuration entry that trusts it.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AllowedSigner } from '@pullnix/shared';

export interface Signer {
  readonly name: string;
  /** `git <args> commit -S` signs with this key. */
  readonly gitArgs: string[];
  readonly env: Record<string, string>;
  /** Stop what the key started (gpg-agent) and remove its files. */
  cleanup(): void;
}

export class SshSigner implements Signer {
  readonly name: string;
  readonly dir: string;
  readonly publicKey: string;
  readonly env: Record<string, string> = {};

  constructor(name: string, root?: string) {
    this.name = name;
    this.dir = mkdtempSync(join(root ?? tmpdir(), `pullnix-ssh-${name}-`));
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', join(this.dir, 'key')]);
    this.publicKey = readFileSync(join(this.dir, 'key.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
  }

  get gitArgs(): string[] {
    return ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${join(this.dir, 'key')}`];
  }

  /** The allowedSigners entry trusting this key. */
  allowed(principal = `${this.name}@example.org`, window: { validAfter?: string; validBefore?: string } = {}, role: AllowedSigner['role'] = 'human'): AllowedSigner {
    return { principal, key: this.publicKey, validAfter: window.validAfter ?? null, validBefore: window.validBefore ?? null, role };
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export class GpgSigner implements Signer {
  readonly name: string;
  readonly home: string;
  readonly fingerprint: string;
  readonly armored: string;
  private readonly fakeTime: string | null;

  /** `fakeTime` (gpg's --faked-system-time, e.g. 20200101T000000): a key made and used then, e.g. one that has expired since. */
  constructor(name: string, options: { root?: string; expire?: string; fakeTime?: string } = {}) {
    this.name = name;
    this.fakeTime = options.fakeTime ?? null;
    this.home = mkdtempSync(join(options.root ?? tmpdir(), `pullnix-gpg-${name}-`));
    chmodSync(this.home, 0o700);
    mkdirSync(join(this.home, 'bin'));
    // The gpg git runs: the real one, at the faked time if asked.
    const wrapper = join(this.home, 'bin', 'gpg');
    writeFileSync(wrapper, `#!/bin/sh\nexec gpg ${this.fakeTime ? `--faked-system-time ${this.fakeTime} ` : ''}"$@"\n`, { mode: 0o755 });
    this.gpg(['--pinentry-mode', 'loopback', '--passphrase', '', '--quick-gen-key', `${name} <${name}@example.org>`, 'ed25519', 'sign', options.expire ?? '0']);
    const colons = this.gpg(['--with-colons', '--list-keys']);
    const fpr = /^fpr:+([0-9A-F]{40}):/m.exec(colons);
    if (!fpr) throw new Error(`gpg made no key: ${colons}`);
    this.fingerprint = fpr[1]!;
    this.armored = this.gpg(['--armor', '--export', this.fingerprint]);
  }

  get env(): Record<string, string> {
    return { GNUPGHOME: this.home };
  }

  /**
   * Revoke the key with the revocation certificate gpg wrote when it made it
   * (openpgp-revocs.d/FPR.rev, its BEGIN line escaped with ':' until used), and return the
   * public key as exported afterwards: with the revocation signature, as a keyserver has it.
   */
  revoke(): string {
    const cert = readFileSync(join(this.home, 'openpgp-revocs.d', `${this.fingerprint}.rev`), 'utf8').replace(/^:-----BEGIN/m, '-----BEGIN');
    writeFileSync(join(this.home, 'revoke.asc'), cert);
    this.gpg(['--import', join(this.home, 'revoke.asc')]);
    return this.gpg(['--armor', '--export', this.fingerprint]);
  }

  get gitArgs(): string[] {
    return ['-c', `gpg.program=${join(this.home, 'bin', 'gpg')}`, '-c', `user.signingkey=${this.fingerprint}`];
  }

  cleanup(): void {
    try {
      execFileSync('gpgconf', ['--kill', 'gpg-agent'], { env: { ...process.env, GNUPGHOME: this.home }, stdio: 'ignore' });
    } catch {
      // no agent was started
    }
    rmSync(this.home, { recursive: true, force: true });
  }

  private gpg(args: string[]): string {
    const time = this.fakeTime ? ['--faked-system-time', this.fakeTime] : [];
    return execFileSync('gpg', ['--batch', '--no-tty', ...time, ...args], { env: { ...process.env, GNUPGHOME: this.home }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }
}

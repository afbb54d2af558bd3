/**
 * Commit trust: may this range be evaluated, or activated? One set of rules for both daemons: the
 * watcher answers it after its fetch (git objects only), before anything is checked out, evaluated
 * or built; the executor answers it again, as root, in a mirror of its own (git objects only),
 * before it activates anything (executor/src/pipeline/trust.ts, docs/security.md).
 *
 *   off   nothing is checked
 *   head  the new head must carry a good signature from a trusted key
 *   all   every commit reachable from the new head and from neither the deployed commit nor
 *         trust.since, merges included, must (and the head itself, always)
 *
 * Signatures are checked by git itself (`git log --format=%G?`, which runs gpg or ssh-keygen
 * according to the signature in each object), in an environment that reads no user or system
 * git config: GIT_CONFIG_NOSYSTEM=1, GIT_CONFIG_GLOBAL=/dev/null, an empty HOME, nothing of the
 * watcher's own environment but PATH, the trust configuration passed with `-c`. The trusted keys
 * come from the machine's configuration only, never from the repository being checked:
 *   - SSH keys: `<stateDir>/trust/allowed_signers` (git's gpg.ssh.allowedSignersFile format,
 *     every line restricted to namespaces="git");
 *   - OpenPGP keys: imported into `<stateDir>/trust/gnupg`, a keyring pullnix owns, each primary
 *     key given full ("ultimate") owner trust there: being in the configuration is the trust.
 * Both are rebuilt from the configuration once per process (the watcher is restarted after every
 * deployment, so a configuration change takes effect with the deployment that brings it).
 *
 * A validity window (validAfter/validBefore) must hold both at the commit's date (git's own
 * check) and at the time of the check (a key outside its window now is left out of the file), so
 * a retired key cannot sign a back-dated commit. gpg judges an OpenPGP key's expiry itself.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AllowedSigner, SignerRole, TrustConfig } from './config/config.ts';
import { describeFailure, type Runner } from './run.ts';

export type TrustReason =
  | 'unsigned' // no signature at all
  | 'unknown-key' // signed, by a key that is not trusted (or cannot be found)
  | 'bad-signature' // the signature does not match the commit
  | 'expired-key' // a trusted key, outside its validity window (or an expired OpenPGP key/signature)
  | 'revoked-key' // an OpenPGP key that was revoked
  | 'anchor-missing' // trust.since is not in the fetched repository
  | 'wrong-role' // signed by a trusted key of the other role (a builder key on a source commit, a human key on a manifest commit)
  | 'trust-setup'; // the configured keys could not be prepared (a malformed key)

export type TrustResult =
  | { ok: true; mode: TrustConfig['mode']; checked: number; signers: string[] }
  | {
      ok: false;
      mode: TrustConfig['mode'];
      /** The first commit (oldest, in topological order) that failed. */
      commit: string | null;
      reason: TrustReason;
      /** One line for humans: which commit, why. */
      message: string;
      checked: number;
      /** How many commits of the range failed. */
      bad: number;
    };

export interface TrustGateOptions {
  trust: TrustConfig;
  runner: Runner;
  /** The git directory holding the objects: the watcher's `<checkout>/.git`, the executor's bare mirror. */
  gitDir: string;
  /** Where the keyring, the allowed-signers file and the empty HOME live (the watcher's `<stateDir>/trust`). */
  dir: string;
  now?: () => number;
  /** One git log over the range (it runs gpg or ssh-keygen per signed commit). */
  timeoutMs?: number;
  /**
   * Whose signatures count (default human): only the SSH keys of this role are written to the
   * allowed-signers file. OpenPGP keys are human keys. A builder key signs manifest commits only
   * (source.mode prebuilt, docs/prebuilt.md); a human key, source commits only. `any`: both (the
   * range of a prebuilt branch, where CI's manifest commits follow the humans' source commits).
   */
  role?: SignerRole | 'any';
}

/** One commit as git judged it. */
interface CommitCheck {
  commit: string;
  /** %G?: G good, B bad, U good but untrusted/unknown, X/Y expired, R revoked, E cannot check, N none. */
  status: string;
  fingerprint: string;
  signer: string;
  subject: string;
}

const FORMAT = ['%H', '%G?', '%GF', '%GS', '%s'].join('%x1f');

export class TrustGate {
  private readonly options: TrustGateOptions;
  private readonly now: () => number;
  private prepared: Promise<string | null> | null = null;

  constructor(options: TrustGateOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  get mode(): TrustConfig['mode'] {
    return this.options.trust.mode;
  }

  get role(): SignerRole | 'any' {
    return this.options.role ?? 'human';
  }

  /** The configured SSH signers of this gate's role. */
  private get signers(): AllowedSigner[] {
    return this.options.trust.allowedSigners.filter((s) => this.role === 'any' || (s.role ?? 'human') === this.role);
  }

  /** Identifies the trust configuration: a refusal made under another one is checked again. */
  get fingerprint(): string {
    return createHash('sha256').update(JSON.stringify({ trust: this.options.trust, role: this.role })).digest('hex').slice(0, 16);
  }

  /** May `head` be evaluated, given the commits already trusted (`exclude`: the deployed commit)? */
  async check(head: string, exclude: readonly (string | null | undefined)[], signal?: AbortSignal): Promise<TrustResult> {
    const { mode, since } = this.options.trust;
    if (mode === 'off') return { ok: true, mode, checked: 0, signers: [] };
    const setupError = await this.prepare();
    if (setupError) return refusal(mode, null, 'trust-setup', `the trusted keys could not be prepared: ${setupError}`, 0, 0);

    let checks: CommitCheck[];
    if (mode === 'head') {
      checks = await this.log(['-1', head], signal);
    } else {
      const exclusions: string[] = [];
      for (const c of exclude) if (c && (await this.present(c, signal))) exclusions.push(c);
      if (since) {
        if (!(await this.present(since, signal))) {
          return refusal(mode, null, 'anchor-missing', `trust.since ${since} is not in the fetched repository; the chain cannot start from it`, 0, 0);
        }
        exclusions.push(since);
      }
      checks = await this.log([head, ...exclusions.map((c) => `^${c}`)], signal);
      // The head itself is always checked, also when it is in the excluded history (a rollback
      // with allowNonDescendant).
      if (!checks.some((c) => c.commit === head)) checks.push(...(await this.log(['-1', head], signal)));
    }

    const failed = checks.map((c) => ({ check: c, reason: this.reasonOf(c) })).filter((f): f is { check: CommitCheck; reason: TrustReason } => f.reason !== null);
    const first = failed[0];
    if (!first) return { ok: true, mode, checked: checks.length, signers: [...new Set(checks.map((c) => c.signer))] };
    const more = failed.length > 1 ? ` (${failed.length} of ${checks.length} commits in the range fail)` : '';
    return refusal(mode, first.check.commit, first.reason, `${describeCommit(first.check)}: ${explain(first.reason, first.check)}${more}`, checks.length, failed.length);
  }

  /** null when the keyring and the allowed-signers file are ready, else why not. Once per process. */
  private prepare(): Promise<string | null> {
    this.prepared ??= this.build().then(
      () => null,
      (error: unknown) => {
        this.prepared = null; // tried again at the next check
        return error instanceof Error ? error.message : String(error);
      },
    );
    return this.prepared;
  }

  private async build(): Promise<void> {
    const { dir, trust } = this.options;
    rmSync(dir, { recursive: true, force: true });
    for (const d of [dir, this.home, this.gnupg]) mkdirSync(d, { recursive: true, mode: 0o700 });
    writeFileSync(join(this.gnupg, 'gpg.conf'), 'no-autostart\nno-auto-key-retrieve\nauto-key-locate local\n', { mode: 0o600 });
    const now = this.now();
    const lines = this.signers.filter((s) => validAt(s, now)).map(allowedSignersLine);
    writeFileSync(this.allowedSigners, lines.join(''), { mode: 0o600 });

    const trusted: string[] = [];
    for (const [i, armored] of (this.role === 'builder' ? [] : trust.openpgpKeys).entries()) {
      const file = join(dir, `openpgp-${i}.asc`);
      writeFileSync(file, armored.endsWith('\n') ? armored : `${armored}\n`, { mode: 0o600 });
      try {
        const primaries = primaryFingerprints(await this.gpg(['--with-colons', '--import-options', 'show-only', '--import', file]));
        if (primaries.length === 0) throw new Error('no OpenPGP public key in it');
        await this.gpg(['--import', file]);
        trusted.push(...primaries);
      } catch (error) {
        throw new Error(`trust.openpgpKeys[${i}]: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    if (trusted.length > 0) {
      const file = join(dir, 'ownertrust.txt');
      writeFileSync(file, trusted.map((f) => `${f}:6:\n`).join(''), { mode: 0o600 });
      await this.gpg(['--import-ownertrust', file]);
    }
  }

  private async gpg(args: string[]): Promise<string> {
    const r = await this.options.runner(['gpg', '--batch', '--no-tty', '--no-autostart', ...args], { timeoutMs: 60_000, env: this.env(), extendEnv: false });
    if (r.exitCode !== 0) throw new Error(describeFailure(r));
    return r.stdout;
  }

  private async present(commit: string, signal?: AbortSignal): Promise<boolean> {
    const r = await this.git(['rev-parse', '--quiet', '--verify', `${commit}^{commit}`], signal);
    return r.exitCode === 0;
  }

  private async log(revs: string[], signal?: AbortSignal): Promise<CommitCheck[]> {
    const r = await this.git(['log', '-z', '--no-show-signature', '--topo-order', '--reverse', `--format=${FORMAT}`, ...revs, '--'], signal, 64 * 1024 * 1024);
    if (r.exitCode !== 0) throw new Error(`the signature check could not run: ${describeFailure(r)}`);
    if (r.stdout.startsWith('…')) throw new Error('the signature check could not run: the range is too large (git log output was cut)');
    return r.stdout
      .split('\0')
      .map((record) => record.replace(/^\n/, ''))
      .filter((record) => record !== '')
      .map((record) => {
        const [commit = '', status = '', fingerprint = '', signer = '', ...subject] = record.split('\x1f');
        return { commit, status, fingerprint, signer, subject: subject.join(' ') };
      });
  }

  private git(args: string[], signal?: AbortSignal, maxOutputBytes?: number) {
    const config = ['-c', `gpg.ssh.allowedSignersFile=${this.allowedSigners}`, '-c', 'gpg.program=gpg', '-c', 'gpg.ssh.program=ssh-keygen', '-c', 'log.showSignature=false'];
    return this.options.runner(['git', '--git-dir', this.options.gitDir, ...config, ...args], {
      timeoutMs: this.options.timeoutMs ?? 600_000,
      env: { ...this.env(), GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_TERMINAL_PROMPT: '0' },
      extendEnv: false,
      ...(signal ? { signal } : {}),
      ...(maxOutputBytes ? { maxOutputBytes } : {}),
    });
  }

  /** Nothing of the daemon's environment but PATH: no user config, no agent, no GIT_* variable. */
  private env(): Record<string, string> {
    return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: this.home, GNUPGHOME: this.gnupg, LANG: 'C', LC_ALL: 'C', TZ: 'UTC' };
  }

  private reasonOf(c: CommitCheck): TrustReason | null {
    switch (c.status) {
      case 'G':
        return null;
      case 'N':
        return 'unsigned';
      case 'B':
        return 'bad-signature';
      case 'X':
      case 'Y':
        return 'expired-key';
      case 'R':
        return 'revoked-key';
      case 'U':
        // SSH: git could not match the key to a principal valid at the commit's date. A key of
        // the configuration means it was used outside its validity window.
        if (this.signers.some((s) => sshFingerprint(s.key) === c.fingerprint)) return 'expired-key';
        return this.options.trust.allowedSigners.some((s) => sshFingerprint(s.key) === c.fingerprint) ? 'wrong-role' : 'unknown-key';
      default: // E: the key is not in the keyring (or the signature cannot be checked)
        return 'unknown-key';
    }
  }

  private get home(): string {
    return join(this.options.dir, 'home');
  }

  private get gnupg(): string {
    return join(this.options.dir, 'gnupg');
  }

  private get allowedSigners(): string {
    return join(this.options.dir, 'allowed_signers');
  }
}

function refusal(mode: TrustConfig['mode'], commit: string | null, reason: TrustReason, message: string, checked: number, bad: number): TrustResult {
  return { ok: false, mode, commit, reason, message, checked, bad };
}

function describeCommit(c: CommitCheck): string {
  const subject = c.subject.length > 80 ? `${c.subject.slice(0, 79)}…` : c.subject;
  return `commit ${c.commit}${subject ? ` ("${subject}")` : ''}`;
}

function explain(reason: TrustReason, c: CommitCheck): string {
  const key = c.fingerprint ? ` ${c.fingerprint}` : '';
  const by = c.signer ? ` (${c.signer})` : '';
  switch (reason) {
    case 'unsigned':
      return 'not signed';
    case 'unknown-key':
      return `signed by a key that is not trusted${key}${by}`;
    case 'bad-signature':
      return `bad signature${key}${by}: the commit does not match it`;
    case 'expired-key':
      return `signed by a trusted key outside its validity window, or an expired key${key}${by}`;
    case 'revoked-key':
      return `signed by a revoked key${key}${by}`;
    case 'wrong-role':
      return `signed by a trusted key of the other role${key}${by}: builder keys sign manifest commits only, human keys source commits only`;
    default:
      return reason;
  }
}

/** `principal namespaces="git"[,valid-after=..][,valid-before=..] key` */
export function allowedSignersLine(s: AllowedSigner): string {
  const options = ['namespaces="git"'];
  if (s.validAfter) options.push(`valid-after="${s.validAfter}"`);
  if (s.validBefore) options.push(`valid-before="${s.validBefore}"`);
  return `${s.principal} ${options.join(',')} ${s.key}\n`;
}

/** Whether an allowed signer's window holds at `now` (ssh-keygen's time format; without Z: local time). */
export function validAt(s: AllowedSigner, now: number): boolean {
  return (s.validAfter === null || sshTime(s.validAfter) <= now) && (s.validBefore === null || now < sshTime(s.validBefore));
}

export function sshTime(text: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?)?(Z)?$/.exec(text);
  if (!m) throw new Error(`not an ssh-keygen time: ${JSON.stringify(text)}`);
  const [y, mo, d, h, mi, se] = [m[1], m[2], m[3], m[4] ?? '0', m[5] ?? '0', m[6] ?? '0'].map(Number) as [number, number, number, number, number, number];
  return m[7] ? Date.UTC(y, mo - 1, d, h, mi, se) : new Date(y, mo - 1, d, h, mi, se).getTime();
}

/** `SHA256:<base64, unpadded>` of an SSH public key, as git's %GF prints it. */
export function sshFingerprint(key: string): string {
  const blob = Buffer.from(key.split(' ')[1] ?? '', 'base64');
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The fingerprints of the primary keys in `gpg --with-colons` output. */
export function primaryFingerprints(colons: string): string[] {
  const out: string[] = [];
  let afterPub = false;
  for (const line of colons.split('\n')) {
    const fields = line.split(':');
    if (fields[0] === 'pub') afterPub = true;
    else if (fields[0] === 'fpr' && afterPub) {
      if (fields[9]) out.push(fields[9]);
      afterPub = false;
    } else if (fields[0] !== 'fpr') afterPub = false;
  }
  return out;
}

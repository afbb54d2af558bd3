/**
 * A fake machine for fast pipeline tests: a temp directory with a "store" of system toplevels,
 * a current-system symlink and a system profile, plus a fake Runner that plays systemd-run,
 * switch-to-configuration, nix-env, git and systemctl against them. Each behaviour is set per
 * test; every call is recorded as its argv.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type Config, type Logger, type RunResult, type Runner } from '@pullnix/shared';
import type { Clock } from '../../src/pipeline/context.ts';

export interface Call {
  argv: readonly string[];
}

type Behaviour = (argv: readonly string[]) => Partial<RunResult> | Promise<Partial<RunResult>>;

export class FakeSystem {
  readonly dir = mkdtempSync(join(tmpdir(), 'pullnix-fake-'));
  readonly storeDir = join(this.dir, 'store');
  readonly currentSystem = join(this.dir, 'run', 'current-system');
  readonly profile = join(this.dir, 'profiles', 'system');
  readonly stateDir = join(this.dir, 'state');
  readonly calls: string[][] = [];
  /** Exit code of `<toplevel>/bin/switch-to-configuration <action>`; default 0. */
  readonly stcExit = new Map<string, number>();
  /** Exit codes of successive git ls-remote calls; when empty, `gitDefault`. */
  gitResults: number[] = [];
  gitDefault = 0;
  nixEnvExit = 0;
  unitText: string | null = '[Service]\nExecStart=/nix/store/old/bin/pullnix-executor\n';
  /** Transient units still running: how many more `systemctl show` polls each answers "active". */
  readonly unitPolls = new Map<string, number>();
  /** Extra behaviour per program, run before the default (e.g. block until released). */
  readonly hooks = new Map<string, Behaviour>();
  private serial = 0;

  constructor() {
    mkdirSync(this.storeDir, { recursive: true });
    mkdirSync(join(this.dir, 'run'), { recursive: true });
    mkdirSync(join(this.dir, 'profiles'), { recursive: true });
  }

  /** A system toplevel directory; `systemAt` makes it live and generation 1 of the profile. */
  makeSystem(name: string): string {
    const hash = (String(++this.serial).padStart(2, '0') + 'abcdfghijklmnpqrsvwxyz0123456789').slice(0, 32);
    const path = join(this.storeDir, `${hash}-${name}`);
    mkdirSync(join(path, 'bin'), { recursive: true });
    writeFileSync(join(path, 'bin', 'switch-to-configuration'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    writeFileSync(join(path, 'nixos-version'), `${name}\n`);
    return path;
  }

  /** Make `toplevel` the running system and the profile's newest generation. */
  boot(toplevel: string): void {
    this.repoint(toplevel);
    this.setProfile(toplevel);
  }

  live(): string | null {
    try {
      return readlinkSync(this.currentSystem);
    } catch {
      return null;
    }
  }

  profileTarget(): string | null {
    try {
      return readlinkSync(join(this.dir, 'profiles', readlinkSync(this.profile)));
    } catch {
      return null;
    }
  }

  config(overrides: Record<string, unknown> = {}): Config {
    const base = {
      repository: { url: 'file:///fake/remote.git', branch: 'main' },
      build: { mode: 'flake' },
      verify: { timeoutSec: 10, initialBackoffMs: 1000, attemptTimeoutSec: 5 },
      socketPath: join(this.dir, 'run', 'pullnix', 'executor.sock'),
      stateDir: this.stateDir,
      operators: { group: 'root' },
      paths: { systemProfile: this.profile, currentSystem: this.currentSystem, storeDir: this.storeDir },
      ...overrides,
    };
    return parseConfig(JSON.stringify(base), 'test-config');
  }

  programCalls(name: string): string[][] {
    return this.calls.filter((c) => c[0] === name || (c[0] === 'systemd-run' && name === 'switch-to-configuration'));
  }

  /** The switch-to-configuration invocations, as `<toplevel> <action>` with `via` systemd-run or direct. */
  activations(): string[] {
    const out: string[] = [];
    for (const c of this.calls) {
      const inner = c[0] === 'systemd-run' ? stripSystemdRun(c) : c;
      if (inner[0]?.endsWith('/bin/switch-to-configuration')) out.push(`${inner[0].slice(0, -'/bin/switch-to-configuration'.length)} ${inner[1]}${c[0] === 'systemd-run' ? '' : ' (direct)'}`);
    }
    return out;
  }

  /** No /run/current-system (a machine where it cannot be resolved). */
  cleanupLive(): void {
    rmSync(this.currentSystem, { force: true });
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  readonly runner: Runner = async (argv) => {
    this.calls.push([...argv]);
    const hook = this.hooks.get(argv[0]!);
    const extra = hook ? await hook(argv) : {};
    const base = this.dispatch(argv);
    return { ...result(argv, base), ...extra };
  };

  private dispatch(argv: readonly string[]): Partial<RunResult> {
    switch (argv[0]) {
      case 'systemd-run': {
        // An operator's command (check, hook: `-- argv`) exits 0 unless a hook says otherwise.
        if (argv.includes('--')) return { exitCode: 0 };
        return this.stc(stripSystemdRun(argv));
      }
      case 'nix-env': {
        if (this.nixEnvExit !== 0) return { exitCode: this.nixEnvExit, stderr: 'error: nix-env failed (fake)\n' };
        const sw = argv.indexOf('--switch-generation');
        if (sw !== -1) return this.switchGeneration(Number(argv[sw + 1]));
        const i = argv.indexOf('--set');
        this.setProfile(argv[i + 1]!);
        return { exitCode: 0 };
      }
      case 'git': {
        const code = this.gitResults.length > 0 ? this.gitResults.shift()! : this.gitDefault;
        return code === 0 ? { exitCode: 0, stdout: `${'a'.repeat(40)}\trefs/heads/main\n` } : { exitCode: code, stderr: "fatal: unable to access remote: Could not resolve host\n" };
      }
      case 'systemctl':
        if (argv[1] === 'cat') return this.unitText === null ? { exitCode: 1, stderr: 'No files found\n' } : { exitCode: 0, stdout: this.unitText };
        if (argv[1] === 'show') {
          // A transient unit runs for as many polls as the test says, then is gone (inactive).
          const unit = argv.at(-1)!;
          const left = this.unitPolls.get(unit) ?? 0;
          this.unitPolls.set(unit, Math.max(0, left - 1));
          return { exitCode: 0, stdout: left > 0 ? 'active\n' : 'inactive\n' };
        }
        return { exitCode: 0 };
      default:
        if (argv[0]?.endsWith('/bin/switch-to-configuration')) return this.stc(argv);
        return { exitCode: null, spawnError: 'ENOENT' };
    }
  }

  private stc(argv: readonly string[]): Partial<RunResult> {
    const toplevel = argv[0]!.slice(0, -'/bin/switch-to-configuration'.length);
    const action = argv[1]!;
    const code = this.stcExit.get(`${toplevel} ${action}`) ?? 0;
    // Like NixOS: the activation script repoints current-system at its end whatever its status, so
    // after 2 (activation script failed) and 4 (units failed) the new system is "live" too. Only
    // 100 (refused before activating) and 1 (usage, lock) leave it alone.
    if ((action === 'test' || action === 'switch') && ACTIVATED_EXITS.has(code)) this.repoint(toplevel);
    return { exitCode: code, stderr: code === 0 ? '' : `switch-to-configuration: exit ${code} (fake)\n` };
  }

  /** What a finished activation does: /run/current-system points at the toplevel. */
  repoint(toplevel: string): void {
    const tmp = `${this.currentSystem}.tmp`;
    rmSync(tmp, { force: true });
    symlinkSync(toplevel, tmp);
    renameSync(tmp, this.currentSystem);
  }

  /** nix-env --switch-generation N: the profile points at system-N-link again. */
  private switchGeneration(n: number): Partial<RunResult> {
    const link = `system-${n}-link`;
    if (!existsSync(join(this.dir, 'profiles', link))) return { exitCode: 1, stderr: `error: generation ${n} does not exist (fake)\n` };
    const tmp = `${this.profile}.tmp`;
    rmSync(tmp, { force: true });
    symlinkSync(link, tmp);
    renameSync(tmp, this.profile);
    return { exitCode: 0 };
  }

  /** nix-env --set: a new system-N-link unless the profile already points there. */
  private setProfile(toplevel: string): void {
    if (this.profileTarget() === toplevel) return;
    const dir = join(this.dir, 'profiles');
    const gens = readdirSync(dir).map((f) => /^system-(\d+)-link$/.exec(f)?.[1]).filter((n) => n !== undefined).map(Number);
    const n = Math.max(0, ...gens) + 1;
    symlinkSync(toplevel, join(dir, `system-${n}-link`));
    const tmp = `${this.profile}.tmp`;
    rmSync(tmp, { force: true });
    symlinkSync(`system-${n}-link`, tmp);
    renameSync(tmp, this.profile);
  }
}

/** switch-to-configuration exits after which the activation script ran (and repointed the link). */
const ACTIVATED_EXITS: ReadonlySet<number> = new Set([0, 2, 4]);

export function stripSystemdRun(argv: readonly string[]): readonly string[] {
  let i = 1;
  while (i < argv.length && argv[i]!.startsWith('-')) i += argv[i] === '-E' ? 2 : 1;
  return argv.slice(i);
}

function result(argv: readonly string[], partial: Partial<RunResult>): RunResult {
  return { argv, exitCode: 0, signal: null, stdout: '', stderr: '', timedOut: false, aborted: false, durationMs: 1, spawnError: null, ...partial };
}

/** A clock whose sleep returns at once and moves time forward; `sleeps` lists every pause. */
export class FakeClock implements Clock {
  t = Date.parse('2026-01-01T00:00:00Z');
  readonly sleeps: number[] = [];
  now = (): number => this.t;
  sleep = async (ms: number): Promise<void> => {
    this.sleeps.push(ms);
    this.t += ms;
  };
}

/** A logger that keeps events for assertions. */
export function memoryLogger(): Logger & { events: { name: string; fields: Record<string, unknown> }[]; names(): string[] } {
  const events: { name: string; fields: Record<string, unknown> }[] = [];
  const make = (base: Record<string, unknown>): Logger => ({
    level: 'debug',
    event(name, fields = {}) {
      events.push({ name, fields: { ...base, ...fields } });
    },
    child(fields) {
      return make({ ...base, ...fields });
    },
  });
  return Object.assign(make({}), { events, names: () => events.map((e) => e.name) });
}

export const COMMIT_A = 'a'.repeat(40);
export const COMMIT_B = 'b'.repeat(40);
export const COMMIT_C = 'c'.repeat(40);

/**
 * A fake machine for fast pipeline tests: a temp directory with a "store" of system toplevels,
 * a current-system symlink and a system profile, plus a fake Runner that plays systemd-run,
 * switch-to-configuration, nix-env, git and systemctl against them. Each behaviour is set per
 * test; every call is recorded as its argv.
 */
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseConfig, type Config, type Logger, type RunResult, type Runner } from '@pullnix/shared';
import type { Clock } from '../../src/pipeline/context.ts';
import { FakeBootloaders } from './fake-bootloader.ts';

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
  /** Systems that break the network: git fails while one of them is live (a rollback mends it). */
  readonly networkBreakers = new Set<string>();
  nixEnvExit = 0;
  /** Answers of the next nix-env calls, one each, before nixEnvExit applies (e.g. the nix-daemon restarting). */
  nixEnvFailures: Partial<RunResult>[] = [];
  unitText: string | null = '[Service]\nExecStart=/nix/store/old/bin/pullnix-executor\n';
  /** `systemctl cat` of one unit, by name, where it differs from unitText (every other unit's). */
  readonly unitTexts = new Map<string, string | null>();
  /** Transient units still running: how many more `systemctl show` polls each answers "active". */
  readonly unitPolls = new Map<string, number>();
  /** Extra behaviour per program, run before the default (e.g. block until released). */
  readonly hooks = new Map<string, Behaviour>();
  /** Units failed (or auto-restarting) as `systemctl list-units --state=failed,auto-restart` reports them. */
  failed: string[] = [];
  /**
   * The loaded units as `systemctl show --property=... -- <unit or '*'>` reports them, by Id
   * (only the properties set here are printed). systemd's defaults for a service:
   * Restart=no, RestartUSec=100ms, StartLimitIntervalUSec=10s, StartLimitBurst=5 (systemd.service(5)
   * "RestartSec=", systemd.unit(5) "StartLimitIntervalSec=": DefaultStartLimitIntervalSec=10s,
   * DefaultStartLimitBurst=5 in systemd-system.conf(5)).
   */
  readonly units = new Map<string, Record<string, string>>();
  /** Units that switch-to-configuration `<toplevel> <action>` starts or restarts: each gets a new invocation, with these properties. */
  readonly stcStarts = new Map<string, Record<string, Record<string, string>>>();
  /** Units that switch-to-configuration `<toplevel> <action>` leaves failed (exit 4 with these failing). */
  readonly stcFails = new Map<string, string[]>();
  /**
   * What happens to the activation's recorder, per `<toplevel> <action>`: by default it records the
   * exit; 'killed' leaves only the "started" record (killed with its unit); 'never' no record at all.
   */
  readonly recorderFate = new Map<string, 'killed' | 'never'>();
  /**
   * `<toplevel>/sw/bin/pullnix-* --check-config` answers, by program path; by default the new
   * package is this code: its configuration loader judges the file (0, or 78 naming the problems).
   */
  readonly checkConfigAnswers = new Map<string, { exitCode: number; stderr: string }>();
  /** Paths `nix-store --check-validity` calls invalid although they exist. */
  readonly invalidPaths = new Set<string>();
  readonly bootIdFile = join(this.dir, 'boot_id');
  /** /run/booted-system: what the machine booted (bootMachine, boot). */
  readonly bootedSystem = join(this.dir, 'run', 'booted-system');
  /** The emulated bootloaders (fake-bootloader.ts): entries, default, one-shot entry. */
  readonly loader = new FakeBootloaders(join(this.dir, 'profiles'), join(this.dir, 'boot'));
  /** The boot default (`switch-to-configuration boot` makes it the profile's current system). */
  get bootDefault(): string | null {
    return this.loader.defaultSystem;
  }
  set bootDefault(system: string | null) {
    this.loader.defaultSystem = system;
  }
  /** The one-shot entry (bootctl set-oneshot / grub-reboot). */
  get oneShot(): string | null {
    return this.loader.oneShot;
  }
  /** `systemctl reboot` requests. */
  rebootRequests = 0;
  readonly gcRootsDir = join(this.dir, 'gcroots');
  private serial = 0;

  constructor() {
    mkdirSync(this.storeDir, { recursive: true });
    mkdirSync(join(this.dir, 'run'), { recursive: true });
    mkdirSync(join(this.dir, 'profiles'), { recursive: true });
    writeFileSync(this.bootIdFile, 'boot-1\n');
  }

  /** A power cut and a boot: a new boot id. */
  reboot(bootId = `boot-${Date.now()}`): void {
    writeFileSync(this.bootIdFile, `${bootId}\n`);
  }

  /**
   * The machine boots (after `systemctl reboot` or a power cut): a new boot id, the one-shot entry
   * if one is set (used once: forgotten) else the default, and that system live and booted.
   */
  bootMachine(bootId = `boot-${++this.serial}-${Date.now()}`): string {
    this.reboot(bootId);
    const system = this.loader.boot();
    if (system === null) throw new Error('fake machine: nothing to boot');
    this.repoint(system);
    this.setBooted(system);
    return system;
  }

  setBooted(toplevel: string): void {
    rmSync(this.bootedSystem, { force: true });
    symlinkSync(toplevel, this.bootedSystem);
  }

  /** A system toplevel directory; `systemAt` makes it live and generation 1 of the profile. `kernel` links its kernel/initrd/kernel-modules to that "kernel package". */
  makeSystem(name: string, options: { kernel?: string; pullnix?: Record<string, unknown> } = {}): string {
    const hash = (String(++this.serial).padStart(2, '0') + 'abcdfghijklmnpqrsvwxyz0123456789').slice(0, 32);
    const path = join(this.storeDir, `${hash}-${name}`);
    mkdirSync(join(path, 'bin'), { recursive: true });
    writeFileSync(join(path, 'bin', 'switch-to-configuration'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    writeFileSync(join(path, 'nixos-version'), `${name}\n`);
    if (options.pullnix) {
      // As the module makes it: the package in sw/bin, the configuration in etc/pullnix/config.json.
      mkdirSync(join(path, 'sw', 'bin'), { recursive: true });
      for (const daemon of ['pullnix-executor', 'pullnix-watcher']) writeFileSync(join(path, 'sw', 'bin', daemon), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
      mkdirSync(join(path, 'etc', 'pullnix'), { recursive: true });
      writeFileSync(join(path, 'etc', 'pullnix', 'config.json'), JSON.stringify(options.pullnix));
    }
    const kernel = join(this.storeDir, `kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk-linux-${options.kernel ?? '6.6'}`);
    mkdirSync(kernel, { recursive: true });
    for (const part of ['kernel', 'initrd', 'kernel-modules']) symlinkSync(join(kernel, part), join(path, part));
    writeFileSync(join(kernel, 'kernel'), '');
    writeFileSync(join(kernel, 'initrd'), '');
    mkdirSync(join(kernel, 'kernel-modules'), { recursive: true });
    return path;
  }

  /** Make `toplevel` the running system and the profile's newest generation. */
  boot(toplevel: string): void {
    this.repoint(toplevel);
    this.setProfile(toplevel);
    this.setBooted(toplevel);
    this.loader.install(toplevel);
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
      paths: { systemProfile: this.profile, currentSystem: this.currentSystem, storeDir: this.storeDir, gcRootsDir: this.gcRootsDir, bootId: this.bootIdFile, bootedSystem: this.bootedSystem, grubConfig: this.loader.grubCfg, grubEnv: this.loader.grubEnv, mountInfo: join(this.dir, 'mountinfo') },
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
      const inner = c[0] === 'systemd-run' ? recordedCommand(stripSystemdRun(c)).command : c;
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

  /**
   * An activation (systemd-run) happens in its own unit whatever becomes of the caller: its side
   * effects and its record come first, then the hook decides what the caller sees (a hook that
   * never resolves is an executor that died while it waited). A hook answering "timed out" or
   * "stopped" means the unit was stopped: the record then says killed; "could not start": no record.
   */
  readonly runner: Runner = async (argv) => {
    this.calls.push([...argv]);
    const hook = this.hooks.get(argv[0]!);
    if (argv[0] === 'systemd-run') {
      const base = this.dispatch(argv);
      const extra = hook ? await hook(argv) : {};
      const out = { ...result(argv, base), ...extra };
      const { recordPath } = recordedCommand(stripSystemdRun(argv));
      if (recordPath && (out.spawnError !== null)) rmSync(recordPath, { force: true });
      else if (recordPath && (out.timedOut || out.aborted)) writeRecord(recordPath, { exit: null, signal: 'SIGTERM', lines: [] });
      return out;
    }
    const extra = hook ? await hook(argv) : {};
    const base = this.dispatch(argv);
    return { ...result(argv, base), ...extra };
  };

  private dispatch(argv: readonly string[]): Partial<RunResult> {
    switch (argv[0]) {
      case 'systemd-run': {
        const { recordPath, command } = recordedCommand(stripSystemdRun(argv));
        // An operator's command (check, hook: `-- argv`, no activation record) exits 0 unless a hook says otherwise.
        if (recordPath === null) return { exitCode: 0 };
        const key = `${command[0]!.slice(0, -'/bin/switch-to-configuration'.length)} ${command[1]}`;
        const fate = this.recorderFate.get(key);
        if (fate === 'never') return { exitCode: 1, stderr: 'pullnix-executor record-activation: could not start (fake)\n' };
        if (recordPath && fate === 'killed') writeRecord(recordPath, { exit: null, signal: null, lines: [], unfinished: true });
        const r = this.stc(command);
        if (recordPath && fate === undefined) writeRecord(recordPath, { exit: r.exitCode ?? null, signal: null, lines: (r.stderr ?? '').split('\n').filter((l) => l !== '') });
        return fate === 'killed' ? { exitCode: null, signal: 'SIGKILL' } : r;
      }
      case 'nix-store': {
        const path = argv.at(-1)!;
        let ok = false;
        try {
          ok = lstatSync(path).isDirectory() && path.startsWith(`${this.storeDir}/`) && !this.invalidPaths.has(path);
        } catch {
          ok = false;
        }
        return ok ? { exitCode: 0 } : { exitCode: 1, stderr: `error: path '${path}' is not valid (fake)\n` };
      }
      case 'nix-env': {
        const once = this.nixEnvFailures.shift();
        if (once) return once;
        if (this.nixEnvExit !== 0) return { exitCode: this.nixEnvExit, stderr: 'error: nix-env failed (fake)\n' };
        const sw = argv.indexOf('--switch-generation');
        if (sw !== -1) return this.switchGeneration(Number(argv[sw + 1]));
        const i = argv.indexOf('--set');
        this.setProfile(argv[i + 1]!);
        return { exitCode: 0 };
      }
      case 'git': {
        const live = this.live();
        const code = live !== null && this.networkBreakers.has(live) ? 128 : this.gitResults.length > 0 ? this.gitResults.shift()! : this.gitDefault;
        return code === 0 ? { exitCode: 0, stdout: `${'a'.repeat(40)}\trefs/heads/main\n` } : { exitCode: code, stderr: "fatal: unable to access remote: Could not resolve host\n" };
      }
      case 'grub-reboot':
        return this.loader.grubReboot(argv);
      case 'grub-editenv':
        return this.loader.grubEditenv(argv);
      case 'bootctl':
        return this.loader.bootctl(argv);
      case 'systemctl':
        if (argv[1] === 'reboot') {
          this.rebootRequests++;
          return { exitCode: 0 };
        }
        if (argv[1] === 'is-system-running') return { exitCode: 0, stdout: 'running\n' };
        if (argv[1] === 'cat') {
          const text = this.unitTexts.has(argv.at(-1)!) ? this.unitTexts.get(argv.at(-1)!)! : this.unitText;
          return text === null ? { exitCode: 1, stderr: 'No files found\n' } : { exitCode: 0, stdout: text };
        }
        if (argv[1] === 'list-units') return { exitCode: 0, stdout: this.failed.map((u) => `${u} loaded failed failed ${u}\n`).join('') };
        if (argv[1] === 'show' && argv.includes('--property=LoadState')) return { exitCode: 0, stdout: 'loaded\n' };
        if (argv[1] === 'show' && !argv.includes('--value')) return { exitCode: 0, stdout: this.showUnits(argv) };
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
        if (/\/sw\/bin\/pullnix-(executor|watcher)$/.test(argv[0] ?? '') && argv[1] === '--check-config') return this.checkConfig(argv[0]!, argv[3]!);
        return { exitCode: null, spawnError: 'ENOENT' };
    }
  }

  /** A start or restart of a unit: a new InvocationID and ActiveEnterTimestamp (`automatic`: by systemd's Restart= logic, NRestarts + 1). */
  startUnit(id: string, props: Record<string, string> = {}, automatic = false): void {
    const u = { ...(this.units.get(id) ?? { Id: id, NRestarts: '0' }), ...props };
    u.InvocationID = `${++this.serial}`.padStart(32, '0');
    u.ActiveEnterTimestampMonotonic = String(this.serial * 1000);
    u.ActiveState = 'active';
    u.NRestarts = automatic ? String(Number(u.NRestarts ?? '0') + 1) : '0';
    this.units.set(id, u);
  }

  /** `systemctl show --property=A,B -- unit|*...`: Name=value lines, a blank line between units. */
  private showUnits(argv: readonly string[]): string {
    const props = (argv.find((a) => a.startsWith('--property='))?.slice('--property='.length) ?? '').split(',');
    const names = argv.slice(argv.indexOf('--') + 1);
    const ids = names.includes('*') ? [...this.units.keys()] : names;
    return ids
      .map((id) => {
        const u = this.units.get(id) ?? { Id: id, LoadState: 'not-found', ActiveState: 'inactive', InvocationID: '', NRestarts: '0' };
        return props.filter((p) => u[p] !== undefined).map((p) => `${p}=${u[p]}\n`).join('');
      })
      .join('\n');
  }

  private checkConfig(program: string, file: string): Partial<RunResult> {
    const answer = this.checkConfigAnswers.get(program);
    if (answer) return answer;
    try {
      parseConfig(readFileSync(file, 'utf8'), file);
      return { exitCode: 0, stdout: `${file} is a valid configuration\n` };
    } catch (error) {
      return { exitCode: 78, stderr: `${program.split('/').at(-1)}: ${(error as Error).message}\n` };
    }
  }

  private stc(argv: readonly string[]): Partial<RunResult> {
    const toplevel = argv[0]!.slice(0, -'/bin/switch-to-configuration'.length);
    const action = argv[1]!;
    const code = this.stcExit.get(`${toplevel} ${action}`) ?? 0;
    if ((action === 'boot' || action === 'switch') && code === 0) this.loader.install(this.profileTarget()!);
    if (action === 'test' || action === 'switch') {
      // switch-to-configuration resets failed units, then the ones this system fails are failed.
      const failing = this.stcFails.get(`${toplevel} ${action}`);
      if (failing) this.failed = [...new Set([...this.failed, ...failing])].sort();
      for (const [id, props] of Object.entries(this.stcStarts.get(`${toplevel} ${action}`) ?? {})) this.startUnit(id, props);
    }
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
  while (i < argv.length && argv[i]!.startsWith('-')) {
    if (argv[i] === '--') return argv.slice(i + 1);
    i += argv[i] === '-E' ? 2 : 1;
  }
  return argv.slice(i);
}

/** `<recorder...> --record FILE -- COMMAND...` → FILE and COMMAND (a bare command: no record). */
export function recordedCommand(inner: readonly string[]): { recordPath: string | null; command: readonly string[] } {
  const r = inner.indexOf('--record');
  if (r === -1) return { recordPath: null, command: inner };
  const sep = inner.indexOf('--', r);
  return { recordPath: inner[r + 1]!, command: inner.slice(sep + 1) };
}

function writeRecord(path: string, r: { exit: number | null; signal: string | null; lines: string[]; unfinished?: boolean }): void {
  mkdirSync(dirname(path), { recursive: true });
  const at = new Date().toISOString();
  writeFileSync(path, JSON.stringify({ v: 1, argv: [], exit: r.exit, signal: r.signal, spawnError: null, lines: r.lines, startedAt: at, finishedAt: r.unfinished ? null : at }));
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

/**
 * A test bed for a real pullnix-executor process: a temp directory with
 * - stand-in `systemd-run` (runs the rest of its argv after its options), `systemctl` (`cat`
 *   prints a unit file the test controls, `restart` succeeds) and a recording wrapper around the
 *   REAL `nix-env`, first on PATH, each appending its argv to calls.log;
 * - system toplevels that are REAL store paths (`nix-store --add`), each with a stand-in
 *   `bin/switch-to-configuration` whose exit code, hold and unit change the test sets per
 *   system and action in control files, and which repoints the temp current-system link;
 * - a REAL bare git remote (file://) for the connectivity check; "the network breaks" = the
 *   test moves it away.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadSigningKey, parseLine, SocketClient, type SigningKey } from '@pullnix/shared';

export const NIX_CONFIG = 'build-users-group =\nsubstituters =\nexperimental-features = nix-command flakes\nsandbox = false';
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const EXECUTOR_MAIN = join(REPO_ROOT, 'executor', 'dist', 'src', 'main.js');

const SYSTEMD_RUN = `#!/bin/sh
# stand-in systemd-run: record, skip our options, run the command in the foreground (like --wait --pipe);
# without --wait (the self-upgrade's guard) in the background, its output to detached.log
{ printf 'systemd-run'; for a in "$@"; do printf '\\t%s' "$a"; done; echo; } >> "$PULLNIX_TEST_DIR/calls.log"
wait=no
for a in "$@"; do [ "$a" = --wait ] && wait=yes; [ "$a" = -- ] && break; done
while [ $# -gt 0 ]; do
  case "$1" in
    -E|-p|--setenv|--property) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
if [ "$wait" = no ]; then "$@" >> "$PULLNIX_TEST_DIR/detached.log" 2>&1 & exit 0; fi
exec "$@"
`;

const SYSTEMCTL = `#!/bin/sh
# stand-in systemctl: cat prints $PULLNIX_TEST_DIR/units/<unit>; restart succeeds
{ printf 'systemctl'; for a in "$@"; do printf '\\t%s' "$a"; done; echo; } >> "$PULLNIX_TEST_DIR/calls.log"
verb=$1; shift
[ "$1" = "--" ] && shift
case "$verb" in
  cat)
    f="$PULLNIX_TEST_DIR/units/$1"
    if [ -f "$f" ]; then echo "# $f"; cat "$f"; exit 0; fi
    echo "No files found for $1." >&2; exit 1 ;;
  restart) exit 0 ;;
  show)
    case "$*" in
      *NRestarts*) echo NRestarts=0; echo ActiveState=active ;;  # a pullnix unit: running, never restarted
      *) echo inactive ;;  # a transient activation unit: finished and collected
    esac ;;
  *) exit 0 ;;
esac
`;

const NIX_ENV = `#!/bin/sh
# recording wrapper around the real nix-env
{ printf 'nix-env'; for a in "$@"; do printf '\\t%s' "$a"; done; echo; } >> "$PULLNIX_TEST_DIR/calls.log"
exec /usr/bin/nix-env "$@"
`;

/** The stand-in inside every test system; its behaviour comes from control files named after the system. */
const SWITCH_TO_CONFIGURATION = `#!/bin/sh
set -u
top=$(cd "$(dirname "$0")/.." && pwd -P)
name=$(cat "$top/nixos-version")
action=$1
dir=$PULLNIX_TEST_DIR
{ printf 'switch-to-configuration\\t%s\\t%s\\n' "$top" "$action"; } >> "$dir/calls.log"
# A test holds an activation by creating this file and releases it by removing it.
while [ -f "$dir/stc/$name-$action.hold" ]; do sleep 0.05; done
code=0
if [ -f "$dir/stc/$name-$action.exit" ]; then code=$(cat "$dir/stc/$name-$action.exit"); fi
if [ "$action" = test ] || [ "$action" = switch ]; then
  # NixOS's activation script repoints current-system at its end whatever its status: after 2
  # (activation script failed) and 4 (units failed) too. Only 100 and 1 leave it alone.
  if [ "$code" = 0 ] || [ "$code" = 2 ] || [ "$code" = 4 ]; then
    ln -sfn "$top" "$dir/current-system.new" && mv -T "$dir/current-system.new" "$dir/current-system"
    # A system that breaks the network takes the remote away while it is live; any other brings it back.
    if [ -f "$dir/stc/$name.breaks-network" ]; then
      if [ -d "$dir/remote.git" ]; then mv "$dir/remote.git" "$dir/remote.git.away"; fi
    elif [ -d "$dir/remote.git.away" ]; then
      mv "$dir/remote.git.away" "$dir/remote.git"
    fi
    # Like daemon-reload after the new generation's units are in place.
    if [ -f "$dir/stc/$name.unit" ]; then cp "$dir/stc/$name.unit" "$dir/units/pullnix-executor.service"; fi
  fi
fi
echo "switch-to-configuration $action of $name: exit $code"
exit "$code"
`;

export interface Bed {
  dir: string;
  remote: string;
  configPath: string;
  stateDir: string;
  socketPath: string;
  /** Root's own socket (the default derived from socketPath). */
  privateSocketPath: string;
  profile: string;
  currentSystem: string;
  /** Store path of the system live when the bed starts (profile generation 1). */
  initial: string;
  makeSystem(name: string): string;
  /** Exit code of `<system>/bin/switch-to-configuration <action>`. */
  setExit(name: string, action: string, code: number): void;
  hold(name: string, action: string): void;
  release(name: string, action: string): void;
  /** The new system's activation changes pullnix-executor.service to this text. */
  setUnitChange(name: string, text: string): void;
  breakNetwork(): void;
  /** The system `name` breaks the network while it is live (its activation takes the remote away; another's brings it back). */
  breaksNetwork(name: string): void;
  healNetwork(): void;
  calls(): string[][];
  live(): string | null;
  profileTarget(): string | null;
  writeConfig(overrides?: Record<string, unknown>): void;
  files(): string;
  gcRootsDir: string;
  cleanup(): void;
}

export function makeBed(configOverrides: Record<string, unknown> = {}): Bed {
  const dir = mkdtempSync(join(tmpdir(), 'pnx-exec-'));
  const bin = join(dir, 'bin');
  for (const d of [bin, join(dir, 'stc'), join(dir, 'units'), join(dir, 'profiles'), join(dir, 'src')]) mkdirSync(d, { recursive: true });
  writeFileSync(join(bin, 'systemd-run'), SYSTEMD_RUN, { mode: 0o755 });
  writeFileSync(join(bin, 'systemctl'), SYSTEMCTL, { mode: 0o755 });
  writeFileSync(join(bin, 'nix-env'), NIX_ENV, { mode: 0o755 });
  writeFileSync(join(dir, 'calls.log'), '');
  writeFileSync(join(dir, 'units', 'pullnix-executor.service'), '[Service]\nExecStart=/nix/store/v1/bin/pullnix-executor\nRestart=always\n');

  const remote = join(dir, 'remote.git');
  const work = join(dir, 'work');
  const git = (args: string[], cwd?: string) => execFileSync('git', args, { cwd, stdio: 'pipe', env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' } });
  git(['init', '-q', '-b', 'main', work]);
  writeFileSync(join(work, 'configuration.nix'), '{ }\n');
  git(['add', '.'], work);
  git(['commit', '-q', '-m', 'c1'], work);
  git(['clone', '-q', '--bare', work, remote]);

  const profile = join(dir, 'profiles', 'system');
  const currentSystem = join(dir, 'current-system');
  const env = { ...process.env, NIX_CONFIG, PULLNIX_TEST_DIR: dir };
  const makeSystem = (name: string): string => {
    const src = join(dir, 'src', name);
    mkdirSync(join(src, 'bin'), { recursive: true });
    writeFileSync(join(src, 'bin', 'switch-to-configuration'), SWITCH_TO_CONFIGURATION, { mode: 0o755 });
    writeFileSync(join(src, 'nixos-version'), `${name}\n`);
    // The unique name keeps test runs (and parallel test files) from sharing a store path.
    const storeName = `${name}-${dir.slice(-6).replace(/[^A-Za-z0-9]/g, 'x')}`;
    const named = join(dir, 'src', storeName);
    renameSync(src, named);
    return execFileSync('nix-store', ['--add', named], { env, encoding: 'utf8' }).trim();
  };
  const initial = makeSystem('v0');
  execFileSync('/usr/bin/nix-env', ['-p', profile, '--set', initial], { env, stdio: 'pipe' });
  symlinkSync(initial, currentSystem);

  const stateDir = join(dir, 'state');
  const gcRootsDir = join('/nix/var/nix/gcroots', `pullnix-test-${basename(dir)}`);
  const socketPath = join(dir, 'run', 'executor.sock');
  const privateSocketPath = join(dir, 'run', 'root', 'executor.sock');
  const configPath = join(dir, 'config.json');
  const bed: Bed = {
    dir,
    remote,
    configPath,
    stateDir,
    socketPath,
    privateSocketPath,
    profile,
    currentSystem,
    initial,
    makeSystem,
    setExit: (name, action, code) => writeFileSync(join(dir, 'stc', `${name}-${action}.exit`), String(code)),
    hold: (name, action) => writeFileSync(join(dir, 'stc', `${name}-${action}.hold`), ''),
    release: (name, action) => rmSync(join(dir, 'stc', `${name}-${action}.hold`), { force: true }),
    setUnitChange: (name, text) => writeFileSync(join(dir, 'stc', `${name}.unit`), text),
    breakNetwork: () => renameSync(remote, `${remote}.away`),
    breaksNetwork: (name) => writeFileSync(join(dir, 'stc', `${name}.breaks-network`), ''),
    healNetwork: () => renameSync(`${remote}.away`, remote),
    calls: () =>
      readFileSync(join(dir, 'calls.log'), 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => l.split('\t')),
    live: () => resolveLink(currentSystem),
    profileTarget: () => resolveLink(profile),
    writeConfig: (overrides = {}) => {
      const config = {
        repository: { url: `file://${remote}`, branch: 'main' },
        build: { mode: 'flake' },
        verify: { timeoutSec: 2, initialBackoffMs: 100, attemptTimeoutSec: 1 },
        activationTimeoutSec: 60,
        socketPath,
        stateDir,
        logLevel: 'debug',
        operators: { group: 'root' },
        // Real GC roots (under the store's gcroots), one directory per bed: `nix-store --delete` must see them.
        paths: { systemProfile: profile, currentSystem, gcRootsDir },
        ...configOverrides,
        ...overrides,
      };
      writeFileSync(configPath, JSON.stringify(config, null, 2));
    },
    files: () => ['state.json', 'history.jsonl'].map((f) => (existsSync(join(stateDir, f)) ? readFileSync(join(stateDir, f), 'utf8') : '<absent>')).join('\n---\n'),
    gcRootsDir,
    cleanup: () => {
      rmSync(gcRootsDir, { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
    },
  };
  bed.writeConfig();
  return bed;
}

function resolveLink(path: string): string | null {
  try {
    return execFileSync('readlink', ['-f', path], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

/** A running pullnix-executor process, its log lines parsed as they come. */
export class ExecutorProcess {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly waiters = new Set<() => void>();
  private readonly bed: Bed;

  constructor(bed: Bed, args: string[] = ['--config', bed.configPath]) {
    this.bed = bed;
    this.child = spawn(process.execPath, [EXECUTOR_MAIN, ...args], {
      env: { ...process.env, PATH: `${join(bed.dir, 'bin')}:${process.env.PATH ?? '/usr/bin:/bin'}`, NIX_CONFIG, PULLNIX_TEST_DIR: bed.dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buffered = '';
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      this.lines.push(...parts);
      for (const w of this.waiters) w();
    };
    this.child.stdout!.on('data', onData);
    this.child.stderr!.on('data', onData);
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => {
      for (const w of this.waiters) w();
      resolve({ code, signal });
    }));
  }

  static async start(bed: Bed): Promise<ExecutorProcess> {
    const p = new ExecutorProcess(bed);
    await p.waitFor('executor.started');
    return p;
  }

  events(name: string): Record<string, string>[] {
    return this.lines.map((l) => parseLine(l)).filter((e) => e?.event === name).map((e) => e!.fields);
  }

  /** Resolves with the fields of the nth (1-based) `event` line once it was logged. */
  waitFor(event: string, nth = 1, timeoutMs = 30_000): Promise<Record<string, string>> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.events(event);
        if (found.length >= nth) {
          cleanup();
          resolve(found[nth - 1]!);
        } else if (this.child.exitCode !== null || this.child.signalCode !== null) {
          cleanup();
          reject(new Error(`executor exited before logging ${event}; output:\n${this.lines.join('\n')}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`no ${event} within ${timeoutMs} ms; output:\n${this.lines.join('\n')}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** A connected client: the watcher on root's own socket, an operator on the group's (or as asked). */
  async client(which: 'operator' | 'watcher' = 'operator', via: 'private' | 'group' = which === 'watcher' ? 'private' : 'group'): Promise<SocketClient> {
    const c = new SocketClient({ path: via === 'private' ? this.bed.privateSocketPath : this.bed.socketPath, key: this.key(which) });
    await c.connect();
    // A connection must authenticate within 2 s of connecting (the executor closes it otherwise);
    // tests hold clients idle for longer before their first request of interest.
    await c.request('status', {});
    return c;
  }

  key(which: 'operator' | 'watcher'): SigningKey {
    return loadSigningKey(join(this.bed.stateDir, 'keys', which === 'operator' ? 'local-operator.key' : 'watcher.key'));
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}

export const COMMIT_1 = '1'.repeat(40);
export const COMMIT_2 = '2'.repeat(40);
export const COMMIT_3 = '3'.repeat(40);
export const COMMIT_4 = '4'.repeat(40);

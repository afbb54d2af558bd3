/**
 * A pretend machine for the end-to-end test: the real pullnix-executor and pullnix-watcher
 * processes, the real nix (building a flake whose toplevel is a plain derivation, see
 * TESTBED.md), the real nix-env on a profile in a temp directory, real git; only systemd-run
 * and systemctl are stand-ins (there is no systemd here), first on PATH.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const EXECUTOR_MAIN = join(ROOT, 'executor/dist/src/main.js');
export const WATCHER_MAIN = join(ROOT, 'watcher/dist/src/main.js');
export const CTL_MAIN = join(ROOT, 'executor/dist/src/ctl/main.js');

/** Single-user nix as root with no daemon, no build users and no binary cache (TESTBED.md). */
export const NIX_CONFIG = 'build-users-group =\nsubstituters =\nexperimental-features = nix-command flakes\nsandbox = false';

/** Why the end-to-end test cannot run here, or null. */
export function e2eUnavailable(): string | null {
  if (!existsSync(EXECUTOR_MAIN)) return `the executor is not built (${EXECUTOR_MAIN} is missing)`;
  if (!existsSync(CTL_MAIN)) return `pullnix-ctl is not built (${CTL_MAIN} is missing)`;
  if (!existsSync(WATCHER_MAIN)) return `the watcher is not built (${WATCHER_MAIN} is missing)`;
  const nix = spawnSync('nix', ['--version'], { encoding: 'utf8' });
  if (nix.status !== 0) return 'nix is not installed (apt-get install -y nix-bin)';
  if (spawnSync('nix-env', ['--version']).status !== 0) return 'nix-env is not installed';
  if (process.getuid?.() !== 0) return 'single-user nix needs root here';
  return null;
}

/** systemd-run: drop its options and run the command in the foreground, as --wait --pipe would. */
const SYSTEMD_RUN = `#!/bin/sh
here=$(dirname "$0")
{ for a in "$@"; do printf '%s\\037' "$a"; done; printf '\\n'; } >> "$here/systemd-run.calls"
while [ $# -gt 0 ]; do
  case "$1" in
    -E|-p|--setenv|--property|--uid|--gid) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
exec "$@"
`;

/** systemctl: record the call; `cat` prints a unit that never changes (no self-upgrade). */
const SYSTEMCTL = `#!/bin/sh
here=$(dirname "$0")
{ for a in "$@"; do printf '%s\\037' "$a"; done; printf '\\n'; } >> "$here/systemctl.calls"
if [ "$1" = cat ]; then printf '[Service]\\nExecStart=/nix/store/00000000000000000000000000000000-pullnix/bin/pullnix-executor\\n'; fi
exit 0
`;

function nixSystem(): string {
  const arch = process.arch === 'arm64' ? 'aarch64' : process.arch === 'x64' ? 'x86_64' : process.arch;
  return `${arch}-linux`;
}

export class Machine {
  readonly dir: string;
  readonly bin: string;
  readonly stateDir: string;
  readonly socketPath: string;
  readonly configPath: string;
  readonly currentSystem: string;
  readonly profile: string;

  constructor(remoteUrl: string) {
    this.dir = mkdtempSync(join(tmpdir(), 'pullnix-e2e-'));
    this.bin = join(this.dir, 'bin');
    this.stateDir = join(this.dir, 'state');
    this.socketPath = join(this.dir, 'run', 'executor.sock');
    this.configPath = join(this.dir, 'config.json');
    this.currentSystem = join(this.dir, 'current-system');
    this.profile = join(this.dir, 'profiles', 'system');
    mkdirSync(this.bin);
    mkdirSync(join(this.dir, 'profiles'));
    for (const [name, text] of [['systemd-run', SYSTEMD_RUN], ['systemctl', SYSTEMCTL]] as const) {
      writeFileSync(join(this.bin, name), text);
      chmodSync(join(this.bin, name), 0o755);
    }
    const config = {
      repository: { url: remoteUrl, branch: 'main' },
      build: { mode: 'flake', host: 'testhost', timeoutSec: 300 },
      poll: { intervalSec: 3600, jitterSec: 0, maxBackoffSec: 5 },
      verify: { timeoutSec: 20, initialBackoffMs: 100, attemptTimeoutSec: 10 },
      stateDir: this.stateDir,
      socketPath: this.socketPath,
      operators: { group: 'root' },
      logLevel: 'debug',
      paths: { systemProfile: this.profile, currentSystem: this.currentSystem, storeDir: '/nix/store', gcRootsDir: join(this.dir, 'gcroots') },
    };
    writeFileSync(this.configPath, JSON.stringify(config, null, 2));
  }

  /**
   * The repository's flake.nix: nixosConfigurations.testhost's toplevel is a plain derivation
   * holding `nixos-version` and a `switch-to-configuration` that, like the real one, makes the
   * system live (here: points current-system at itself).
   */
  flake(label: string): string {
    return `{
  outputs = { self }: {
    nixosConfigurations.testhost.config.system.build.toplevel = derivation {
      name = "nixos-system-testhost-${label}";
      system = "${nixSystem()}";
      builder = "/bin/sh";
      PATH = "/usr/bin:/bin";
      args = [ "-c" ''
        mkdir -p $out/bin
        echo ${label} > $out/nixos-version
        printf '#!/bin/sh\\ncase "$1" in test|switch) ln -sfn %s %s ;; esac\\nexit 0\\n' "$out" "${this.currentSystem}" > $out/bin/switch-to-configuration
        chmod +x $out/bin/switch-to-configuration
      '' ];
    };
  };
}
`;
  }

  env(): NodeJS.ProcessEnv {
    return { ...process.env, PATH: `${this.bin}:${process.env.PATH ?? ''}`, NIX_CONFIG };
  }

  calls(program: 'systemd-run' | 'systemctl'): string[][] {
    const file = join(this.bin, `${program}.calls`);
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => l.split('\x1f').slice(0, -1));
  }

  start(main: string): Daemon {
    return new Daemon(main, this.configPath, this.env());
  }
}

/** A daemon process whose output the test reads line by line. */
export class Daemon {
  readonly child: ChildProcess;
  output = '';
  readonly exited: Promise<number | null>;

  constructor(main: string, configPath: string, env: NodeJS.ProcessEnv) {
    this.child = spawn(process.execPath, [main, '--config', configPath], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
    const onData = (chunk: Buffer) => {
      this.output += chunk.toString();
      if (process.env.PULLNIX_TEST_ECHO === '1') process.stderr.write(chunk);
    };
    this.child.stdout!.on('data', onData);
    this.child.stderr!.on('data', onData);
  }

  /** Lines `<N>event ...` of this event. */
  lines(event: string): string[] {
    return this.output.split('\n').filter((l) => new RegExp(`^<\\d>${event.replace('.', '\\.')}( |$)`).test(l));
  }

  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }
}

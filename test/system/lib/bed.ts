/**
 * The pullnix system test bed: one machine (a systemd container, see container.ts) with
 *   - a real Nix (Debian's nix-bin from the host /usr) and its own persistent /nix, so builds,
 *     GC roots and /nix/var/nix/profiles/system generations are real and survive a power cut;
 *   - persistent /var/lib/pullnix (state, history, keys), /boot (the emulated bootloader's
 *     default), /var/log/journal (the journal of every boot) and /srv (the git server);
 *   - a git server inside: sshd on 127.0.0.1 (a unit of the *generation*), a bare repository, a
 *     `git` user with git-shell, a read-only deploy key (forced git-upload-pack) and a pinned
 *     known_hosts for pullnix;
 *   - the configuration repository, written by the test (config-repo/ plus the project's own
 *     nixos/render-units.nix and nixos/units.nix, copied in as pullnix-nixos/ at test time so
 *     that the flake can read them in pure mode).
 * The machine is "installed" like nixos-install does (build, nix-env --set, bootloader), and on
 * every boot the bed does what NixOS stage 2 does: activate the boot default.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseLine, type DeploymentRecord, type StatusResult } from '@pullnix/shared';
import { bless, DEFAULT_SETTINGS, nextBoot, pickBoot, type LoaderSettings } from './bed-bootloader.ts';
import { Container } from './container.ts';
import { run, runOk, waitFor, type RunResult } from './proc.ts';

/** The repository the tests run from (CI runs a fresh clone anywhere): test/dist/system/lib/ -> root. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
const CONFIG_REPO_SOURCES = join(REPO_ROOT, 'test/system/config-repo');

export const HOST = 'bed';
export const GIT_URL = 'ssh://git@127.0.0.1/srv/git/config.git';
export const BOOT_DEFAULT = '/boot/pullnix-bed/default';
export const UIDS = { git: 990, mallory: 1001, opal: 1002 } as const;
export const PULLNIX_GID = 900;
/** The watcher's own user and group (the module's users.users.pullnix-watcher), fixed so its state survives boots. */
export const WATCHER_UID = 901;
/** Nix's build users: group nixbld, users nixbld1..N (what nix-setup-systemd or NixOS create). */
export const NIXBLD_GID = 30000;
export const NIXBLD_USERS = 4;

export interface GenerationSpec {
  /** Short name, part of the toplevel's store name (letters, digits, dashes). */
  label: string;
  /** The pullnix package version: a new one is a new package path, i.e. changed pullnix units. */
  pullnixVersion?: string;
  /** A pullnix package whose daemon (pullnix-executor or pullnix-watcher) exits 1 at every start but answers --check-config. */
  brokenStart?: 'pullnix-executor' | 'pullnix-watcher' | null;
  /** Whether the generation runs the git server (sshd). false "breaks the network". */
  gitServer?: boolean;
  /** Make the build fail with this message. */
  broken?: string | null;
  /** Make a snippet of the activation script fail with this message: switch-to-configuration exits 2 (after repointing /run/current-system, as NixOS does). */
  activationFails?: string | null;
  /** The generation's "kernel" version: its kernel, initrd and kernel-modules links point into a package of that version (default 6.6). */
  kernel?: string;
  /** The generation's init interface; a change makes switch-to-configuration refuse with 100 (reboot needed). */
  initInterface?: string;
  /** false: a configuration without pullnix (services.pullnix.enable = false): no pullnix units, no config. */
  pullnix?: boolean;
  /** The machine's bootloader and how NixOS configures it (bed-bootloader.ts); default systemd-boot, classic names. */
  bootloader?: Partial<LoaderSettings>;
  /** Seconds its bootloader installation (`switch-to-configuration boot`) takes, like a slow grub-install. */
  bootInstallDelaySec?: number;
  extraUnits?: Record<string, string>;
  extraEtc?: Record<string, string>;
  /** Packages in the system's closure, name → version: one derivation `<name>-<version>` each (the vulnerability gate's scenario). */
  packages?: Record<string, string>;
  /** Overrides merged into the pullnix config (one level deep per section). */
  config?: Record<string, unknown>;
}

/** Optional extras of TestBed.commit. */
export interface CommitOptions {
  /** Sign the commit (`git <gitArgs> commit -S`, with `env`): test/lib/signing.ts's signers. */
  sign?: { gitArgs: string[]; env: Record<string, string> };
  /** Commit on top of this commit instead of the current one, and force-push. */
  parent?: string;
  /** false: commit only; push(sha) later (default true). */
  push?: boolean;
}

export interface BedOptions {
  /** Scenario name: machine name and directory prefix. */
  name: string;
  verifyTimeoutSec?: number;
  pollIntervalSec?: number;
  /** Called with progress lines (tests: t.diagnostic; demo: the narrator). */
  log?: (line: string) => void;
}

export interface JournalEntry {
  unit: string;
  message: string;
  priority: number;
  pid: number;
  bootId: string;
  at: Date;
  event: string | null;
  fields: Record<string, string>;
}

export class TestBed {
  readonly name: string;
  readonly base: string;
  readonly dirs: { nix: string; state: string; watcherState: string; boot: string; journal: string; srv: string; bed: string; work: string; logs: string; scratch: string };
  readonly container: Container;
  readonly machineId: string;
  private readonly options: BedOptions;
  private commits = 0;
  private nodeBin: string;
  /** Reboots the machine did by itself (systemctl reboot inside), and the boot in progress after one. */
  reboots = 0;
  private rebooting: Promise<void> = Promise.resolve();
  private autoReboot = true;
  /** The next reboot the machine does by itself is cut short: the one-shot entry is used, the power goes before userspace. */
  cutNextReboot = false;
  /** The system each boot started (the bootloader's pick), in order. */
  readonly bootedEntries: (string | null)[] = [];

  private constructor(options: BedOptions) {
    this.options = options;
    // Unique per process: machine name, cgroup and nspawn's propagate directory are global names.
    this.name = `pnx-${options.name.slice(0, 40)}-${process.pid}`;
    // PULLNIX_SYSTEM_TMPDIR: where machines live when the default temp dir is unsuitable (noexec, small).
    this.base = mkdtempSync(join(process.env.PULLNIX_SYSTEM_TMPDIR ?? tmpdir(), `pullnix-system-${options.name}-`));
    const d = (n: string) => {
      const p = join(this.base, n);
      mkdirSync(p, { recursive: true, mode: 0o755 });
      chmodSync(p, 0o755);
      return p;
    };
    this.dirs = {
      nix: d('nix'),
      state: d('state'),
      watcherState: d('watcher-state'),
      boot: d('boot'),
      journal: d('journal'),
      srv: d('srv'),
      bed: d('bed'),
      work: d('work'),
      logs: d('logs'),
      scratch: d('scratch'),
    };
    chmodSync(this.base, 0o755);
    chmodSync(this.dirs.state, 0o700);
    chmodSync(this.dirs.watcherState, 0o700);
    chownSync(this.dirs.watcherState, WATCHER_UID, WATCHER_UID);
    LIVE_BEDS.add(this);
    this.machineId = randomBytes(16).toString('hex');
    this.nodeBin = realpathSync(join(REPO_ROOT, 'node_modules/.bin/node'));
    this.container = new Container({
      name: this.name,
      machineId: this.machineId,
      logDir: this.dirs.logs,
      scratchDir: this.dirs.scratch,
      binds: [
        { host: this.dirs.nix, container: '/nix' },
        { host: this.dirs.state, container: '/var/lib/pullnix' },
        { host: this.dirs.watcherState, container: '/var/lib/pullnix-watcher' },
        { host: this.dirs.boot, container: '/boot' },
        { host: this.dirs.journal, container: '/var/log/journal' },
        { host: this.dirs.srv, container: '/srv' },
        { host: this.dirs.bed, container: '/bed', readOnly: true },
        { host: join(this.dirs.bed, 'nix.conf'), container: '/etc/nix/nix.conf', readOnly: true },
        { host: join(this.dirs.bed, 'bed.preset'), container: '/etc/systemd/system-preset/00-pullnix-bed.preset', readOnly: true },
        { host: '/etc/alternatives', container: '/etc/alternatives', readOnly: true },
        { host: '/etc/ld.so.cache', container: '/etc/ld.so.cache', readOnly: true },
        { host: this.nodeBin, container: '/opt/node/bin/node', readOnly: true },
        { host: REPO_ROOT, container: '/opt/pullnix', readOnly: true },
      ],
    });
  }

  log(line: string): void {
    this.options.log?.(line);
  }

  /** Prepare the host side (keys, git server files, bare repository, config repository). */
  static async create(options: BedOptions): Promise<TestBed> {
    checkPrerequisites();
    const bed = new TestBed(options);
    try {
      await bed.prepare();
    } catch (error) {
      await bed.destroy();
      throw error;
    }
    return bed;
  }

  private async prepare(): Promise<void> {
    const { bed, srv, work } = this.dirs;
    for (const n of ['render-units.nix', 'units.nix']) {
      if (!existsSync(join(REPO_ROOT, 'nixos', n))) {
        throw new Error(`nixos/${n} is missing: the bed renders the pullnix units with the project's own nixos/render-units.nix (issue 6)`);
      }
    }
    // Multi-user Nix: builds run as the nixbld users, in the nix-daemon (a unit the setup starts);
    // the watcher builds through it as pullnix-watcher. No sandbox inside the container.
    writeFileSync(join(bed, 'nix.conf'), 'build-users-group = nixbld\nsubstituters =\nexperimental-features = nix-command flakes\nsandbox = false\nwarn-dirty = false\n');
    writeFileSync(join(bed, 'nix-daemon.socket'), NIX_DAEMON_SOCKET);
    writeFileSync(join(bed, 'nix-daemon.service'), NIX_DAEMON_SERVICE);
    // No unit of the host's /usr is enabled on the container's first boot: only what the
    // generation installs runs (plus systemd's own static units).
    writeFileSync(join(bed, 'bed.preset'), 'disable *\n');
    writeFileSync(join(bed, 'setup.sh'), SETUP_SCRIPT, { mode: 0o755 });
    // The emulated bootloader's bootctl, first in the pullnix units' PATH (generation.nix).
    mkdirSync(join(bed, 'boot-tools/bin'), { recursive: true, mode: 0o755 });
    for (const tool of ['bootctl', 'grub-reboot', 'grub-editenv', 'install']) {
      writeFileSync(join(bed, 'boot-tools/bin', tool === 'install' ? 'pullnix-bed-install-bootloader' : tool), `#!/bin/sh\nexec /opt/node/bin/node /opt/pullnix/test/dist/system/lib/bed-bootloader.js ${tool} "$@"\n`, { mode: 0o755 });
    }

    // SSH: the git server's host key, the deploy key (client side, pullnix) and the pinned known_hosts.
    // 0711: the watcher's user may open the deploy key (its own, 0400) but not list the directory.
    mkdirSync(join(bed, 'secrets'), { mode: 0o711 });
    chmodSync(join(bed, 'secrets'), 0o711);
    mkdirSync(join(srv, 'gitserver'), { mode: 0o755 });
    await runOk(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'bed-git-host', '-f', join(srv, 'gitserver/ssh_host_ed25519_key')]);
    await runOk(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'pullnix-deploy-key', '-f', join(bed, 'secrets/deploy_key')]);
    const hostPub = readFileSync(join(srv, 'gitserver/ssh_host_ed25519_key.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
    writeFileSync(join(bed, 'secrets/known_hosts'), `127.0.0.1 ${hostPub}\n`, { mode: 0o644 });
    // The deploy key is the watcher's alone (root, the executor's verification, reads it anyway).
    chownSync(join(bed, 'secrets/deploy_key'), WATCHER_UID, WATCHER_UID);
    chmodSync(join(bed, 'secrets/deploy_key'), 0o400);
    const deployPub = readFileSync(join(bed, 'secrets/deploy_key.pub'), 'utf8').trim();
    // Read-only deploy key: whatever the client asks for, it gets git-upload-pack of this repository.
    writeFileSync(join(srv, 'gitserver/authorized_keys'), `restrict,command="git-upload-pack '/srv/git/config.git'" ${deployPub}\n`, { mode: 0o644 });

    // The bare repository ("GitHub") and the work tree the test commits from.
    mkdirSync(join(srv, 'git'), { mode: 0o755 });
    await runOk(['git', 'init', '-q', '--bare', '-b', 'main', join(srv, 'git/config.git')]);
    await runOk(['git', 'init', '-q', '-b', 'main', work]);
  }

  /** The pullnix config a generation carries (/etc/pullnix/config.json). */
  pullnixConfig(overrides: Record<string, unknown> = {}): Record<string, unknown> {
    const base: Record<string, Record<string, unknown> | string | number> = {
      repository: { url: GIT_URL, branch: 'main', sshKeyFile: '/bed/secrets/deploy_key', knownHostsFile: '/bed/secrets/known_hosts' },
      build: { mode: 'flake', host: HOST, timeoutSec: 300 },
      poll: { intervalSec: this.options.pollIntervalSec ?? 2, jitterSec: 0, maxBackoffSec: 4 },
      verify: { timeoutSec: this.options.verifyTimeoutSec ?? 8, initialBackoffMs: 250, attemptTimeoutSec: 3 },
      activationTimeoutSec: 120,
      operators: { group: 'pullnix' },
      // As the NixOS module writes it: the watcher runs as its own user (units.nix).
      watcher: { user: 'pullnix-watcher' },
      logLevel: 'debug',
    };
    for (const [k, v] of Object.entries(overrides)) {
      const cur = base[k];
      base[k] = typeof cur === 'object' && typeof v === 'object' && v !== null ? { ...cur, ...(v as Record<string, unknown>) } : (v as string);
    }
    return base;
  }

  /**
   * Write a generation into the config repository, commit it and push it to the git server.
   * With `push: false` the commit stays local until push(sha) (several pushes within one poll).
   */
  async commit(spec: GenerationSpec, message?: string, options: CommitOptions = {}): Promise<string> {
    const { work } = this.dirs;
    if (options.parent) await runOk(['git', '-C', work, 'reset', '-q', '--hard', options.parent]);
    for (const f of ['flake.nix', 'generation.nix', 'switch-to-configuration.sh', 'activate.sh']) copyFileSync(join(CONFIG_REPO_SOURCES, f), join(work, f));
    writeFileSync(join(work, 'flake.lock'), '{\n  "nodes": {\n    "root": {}\n  },\n  "root": "root",\n  "version": 7\n}\n');
    mkdirSync(join(work, 'pullnix-nixos'), { recursive: true });
    for (const f of ['render-units.nix', 'units.nix', 'node-flags.json']) copyFileSync(join(REPO_ROOT, 'nixos', f), join(work, 'pullnix-nixos', f));
    const generation = {
      system: nixSystem(),
      label: spec.label,
      pullnixVersion: spec.pullnixVersion ?? '1',
      brokenStart: spec.brokenStart ?? null,
      gitServer: spec.gitServer ?? true,
      broken: spec.broken ?? null,
      activationFails: spec.activationFails ?? null,
      initInterface: spec.initInterface ?? 'systemd 2',
      kernel: spec.kernel ?? '6.6',
      pullnix: spec.pullnix ?? true,
      bootInstallDelaySec: spec.bootInstallDelaySec ?? 0,
      bootloader: { ...DEFAULT_SETTINGS, ...spec.bootloader },
      extraUnits: spec.extraUnits ?? {},
      extraEtc: spec.extraEtc ?? {},
      packages: spec.packages ?? {},
      config: this.pullnixConfig(spec.config),
    };
    writeFileSync(join(work, 'generation.json'), `${JSON.stringify(generation, null, 2)}\n`);
    // A config file, not `-c`: git drops GIT_CONFIG_PARAMETERS for the local receive-pack, and the
    // bare repository belongs to the git user (safe.directory).
    const gitconfig = join(this.base, 'host-gitconfig');
    if (!existsSync(gitconfig)) writeFileSync(gitconfig, '[user]\n\tname = bed\n\temail = bed@localhost\n[safe]\n\tdirectory = *\n[init]\n\tdefaultBranch = main\n');
    const git = (...args: string[]) =>
      runOk(['git', '-C', work, ...args], {
        env: { ...process.env, ...options.sign?.env, GIT_CONFIG_GLOBAL: gitconfig, GIT_CONFIG_NOSYSTEM: '1', GIT_COMMITTER_DATE: commitDate(this.commits), GIT_AUTHOR_DATE: commitDate(this.commits) },
      });
    this.commits++;
    await git('add', '-A');
    await git(...(options.sign ? [...options.sign.gitArgs, 'commit', '-S'] : ['commit']), '-q', '--allow-empty', '-m', message ?? `generation ${spec.label}`);
    const sha = (await git('rev-parse', 'HEAD')).trim();
    if (options.push ?? true) await this.push(sha, message ?? `generation ${spec.label}`, { force: options.parent !== undefined });
    return sha;
  }

  /** Push a commit of the work tree (and its ancestors) as the branch head. */
  async push(sha: string, what = '', options: { force?: boolean } = {}): Promise<void> {
    await runOk(['git', '-C', this.dirs.work, 'push', '-q', join(this.dirs.srv, 'git/config.git'), `${options.force ? '+' : ''}${sha}:refs/heads/main`], {
      env: { ...process.env, GIT_CONFIG_GLOBAL: join(this.base, 'host-gitconfig'), GIT_CONFIG_NOSYSTEM: '1' },
    });
    // The git user owns its repositories (git refuses repositories owned by someone else).
    await runOk(['chown', '-R', `${UIDS.git}:${UIDS.git}`, join(this.dirs.srv, 'git')]);
    this.log(`pushed ${sha.slice(0, 8)}${what ? ` "${what}"` : ''}`);
  }

  /**
   * Boot the machine: the emulated bootloader picks the one-shot entry if one is set (and forgets
   * it: used once, whether this boot then comes up or not) else the default; systemd up, the bed's
   * stage 1/2 setup, then the picked system activated.
   */
  async boot(): Promise<void> {
    const t0 = Date.now();
    this.autoReboot = true;
    // The firmware step: the emulated bootloader picks (and uses up a one-shot, counts a try).
    const pick = pickBoot(this.dirs.boot);
    const def = pick.system;
    this.log(`bootloader: ${pick.note} (${shortPath(def ?? '-')})`);
    this.bootedEntries.push(def);
    await this.container.boot();
    this.container.onUnexpectedExit = (code) => this.exitedByItself(code);
    await this.container.execOk(['/bed/setup.sh'], { timeoutMs: 60_000 });
    if (def) {
      // NixOS stage 2: the boot default is what runs after a (re)boot.
      // A failing snippet or unit does not stop a NixOS boot: 2 and 4 are noted, anything else is a bed fault.
      const r = await this.container.exec(['sh', '-c', 'ln -sfn "$1" /run/booted-system && exec "$1/bin/switch-to-configuration" test', 'sh', def], { timeoutMs: 180_000 });
      if (r.code === 2 || r.code === 4) this.log(`stage 2 activation of ${shortPath(def)} exited ${r.code} (the boot goes on, as on NixOS)`);
      else if (r.code !== 0) throw new Error(`stage 2 activation of ${def} exited ${r.code}\n${r.stderr}${r.stdout}`);
      // systemd-bless-boot: the boot came up, a counted entry is good now.
      bless(this.dirs.boot, pick.entry);
    }
    this.log(`machine booted in ${Date.now() - t0} ms${def ? ` on ${shortPath(def)}` : ''}`);
  }

  /**
   * nixos-install: build the first commit's system from a clone of the repository, make it the
   * first system profile generation and the boot default, then activate it (first boot).
   */
  async install(commit: string): Promise<string> {
    const t0 = Date.now();
    const out = await this.container.shOk(
      `rm -rf /tmp/bed-install && mkdir -p /tmp/bed-install
       # a local clone of a repository owned by the git user (GIT_CONFIG_PARAMETERS does not reach
       # the local upload-pack, a global config file does)
       printf '[safe]\\n\\tdirectory = /srv/git/config.git\\n' > /tmp/bed-install/gitconfig
       GIT_CONFIG_GLOBAL=/tmp/bed-install/gitconfig git clone -q /srv/git/config.git /tmp/bed-install/checkout
       git -C /tmp/bed-install/checkout -c advice.detachedHead=false checkout -q ${commit}
       nix build --out-link /tmp/bed-install/result /tmp/bed-install/checkout#nixosConfigurations.${HOST}.config.system.build.toplevel
       top=$(readlink -f /tmp/bed-install/result)
       nix-env -p /nix/var/nix/profiles/system --set "$top"
       "$top/bin/switch-to-configuration" boot >&2
       ln -sfn "$top" /run/booted-system
       "$top/bin/switch-to-configuration" test >&2
       echo "$top"`,
      { timeoutMs: 300_000 },
    );
    const top = out.trim().split('\n').pop()!;
    this.log(`installed ${commit.slice(0, 8)} as ${shortPath(top)} in ${Date.now() - t0} ms`);
    return top;
  }

  /** Wait until the executor answers `pullnix-ctl status` and the watcher has connected. */
  async waitForPullnix(timeoutMs = 60_000): Promise<StatusResult> {
    return waitFor(
      'pullnix-executor answering status with a watcher connected',
      async () => {
        const s = await this.status();
        return s.watcher.connected ? s : undefined;
      },
      { timeoutMs, intervalMs: 300, describe: () => this.describe() },
    );
  }

  async poweroff(): Promise<void> {
    this.autoReboot = false;
    await this.rebooting;
    await this.container.poweroff();
  }

  /** A power cut: the machine is off until boot() (the one-shot entry, if set, is used by that boot). */
  async powerCut(): Promise<void> {
    this.autoReboot = false;
    await this.container.powerCut();
    this.log('power cut: the container was killed (SIGKILL to its PID 1)');
  }

  /**
   * A power cut whatever the machine is doing, a reboot of its own in progress included (the chaos
   * campaign strikes at random instants): the boot in progress, if any, is cut short too (it used
   * the bootloader's pick: a one-shot entry stays used). Off until boot().
   */
  async powerCutAnyTime(): Promise<void> {
    this.autoReboot = false;
    this.cutNextReboot = false;
    const cut = async () => {
      if (!this.container.running) return;
      // Mid-boot there is no PID 1 to signal yet: kill() stops nspawn and its cgroups as a power cut would.
      await this.container.powerCut().catch(() => this.container.kill());
    };
    await cut();
    // A boot of its own cut short fails (and logs it); one that came up meanwhile goes down now.
    await this.rebooting;
    await cut();
    this.log('power cut: the container was killed (SIGKILL to its PID 1)');
  }

  /** The machine rebooted itself (`systemctl reboot` inside: nspawn exits 133): it boots again, as hardware does. */
  private exitedByItself(code: number | null): void {
    if (code !== 133 || !this.autoReboot) {
      this.log(`the machine stopped by itself (systemd-nspawn exit ${code})`);
      return;
    }
    this.reboots++;
    if (this.cutNextReboot) {
      // The firmware picks (and so uses up) the one-shot entry, then the power goes: the machine stays off until boot().
      this.cutNextReboot = false;
      const pick = pickBoot(this.dirs.boot);
      this.bootedEntries.push(pick.system);
      this.log(`the machine rebooted itself (reboot ${this.reboots}); power cut while it boots: ${pick.note}`);
      return;
    }
    this.log(`the machine rebooted itself (reboot ${this.reboots}); booting again`);
    this.rebooting = this.boot().catch((error: unknown) => this.log(`boot after the reboot failed: ${(error as Error).message}`));
  }

  /** Wait until the machine has rebooted itself `count` times in all and is up again. */
  async waitForReboots(count: number, timeoutMs = 120_000): Promise<void> {
    await waitFor(`${count} reboot(s) of the machine, up again`, async () => {
      if (this.reboots < count) return undefined;
      await this.rebooting;
      return this.container.running && this.reboots >= count ? true : undefined;
    }, { timeoutMs, intervalMs: 250, describe: () => this.describe() });
  }

  /** The one-shot entry set (LoaderEntryOneShot, GRUB's next_entry); null: none. */
  oneShotEntry(): string | null {
    return nextBoot(this.dirs.boot).oneShot;
  }

  /** The entry that boots next (the one-shot first, else the default). */
  nextEntry(): string | null {
    return nextBoot(this.dirs.boot).entry;
  }

  // ---------------------------------------------------------------- reading the machine

  /** pullnix-ctl as root inside the machine (finds the local operator key by itself). */
  ctl(args: readonly string[], user?: { uid: number; gid: number; groups?: number[] }): Promise<RunResult> {
    return this.container.exec(['/run/current-system/sw/bin/pullnix-ctl', ...args], user ? { user, timeoutMs: 30_000 } : { timeoutMs: 30_000 });
  }

  async status(): Promise<StatusResult> {
    const r = await this.ctl(['status', '--json']);
    if (r.code !== 0) throw new Error(`pullnix-ctl status --json exited ${r.code}: ${r.stderr.trim()}`);
    return JSON.parse(r.stdout) as StatusResult;
  }

  /** The raw lines of /var/lib/pullnix/history.jsonl (read on the host side of the bind). */
  historyLines(): string[] {
    const p = join(this.dirs.state, 'history.jsonl');
    if (!existsSync(p)) return [];
    return readFileSync(p, 'utf8').split('\n').filter((l) => l !== '');
  }

  /** The history folded to the newest snapshot per deployment id, ascending by id. */
  history(): DeploymentRecord[] {
    const byId = new Map<number, DeploymentRecord>();
    for (const line of this.historyLines()) {
      const r = JSON.parse(line) as DeploymentRecord;
      byId.set(r.id, r);
    }
    return [...byId.values()].sort((a, b) => a.id - b.id);
  }

  deploymentsOf(commit: string): DeploymentRecord[] {
    return this.history().filter((r) => r.commit === commit);
  }

  /** The system the emulated bootloader boots by default (a one-shot aside; null before installation). */
  bootDefault(): string | null {
    return nextBoot(this.dirs.boot).defaultSystem;
  }

  /** The emulated bootloader's log: one line per `switch-to-configuration boot`. */
  bootLog(): string[] {
    const p = join(this.dirs.boot, 'pullnix-bed/log');
    return existsSync(p) ? readFileSync(p, 'utf8').split('\n').filter((l) => l !== '') : [];
  }

  async liveSystem(): Promise<string> {
    return (await this.container.execOk(['readlink', '-f', '/run/current-system'])).trim();
  }

  async profileGenerations(): Promise<{ number: number; current: boolean }[]> {
    const out = await this.container.execOk(['nix-env', '-p', '/nix/var/nix/profiles/system', '--list-generations']);
    return out
      .split('\n')
      .map((l) => /^\s*(\d+)\s+\S+\s+\S+\s*(\(current\))?/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ number: Number(m[1]), current: m[2] !== undefined }));
  }

  async unitProperty(unit: string, property: string): Promise<string> {
    return (await this.container.execOk(['systemctl', 'show', '-P', property, unit])).trim();
  }

  async mainPid(unit: string): Promise<number> {
    return Number(await this.unitProperty(unit, 'MainPID'));
  }

  /** The bed's switch-to-configuration evidence log (this boot): one parsed line per step. */
  async activationLog(): Promise<{ at: string; action: string; pid: string; cgroup: string; text: string }[]> {
    const r = await this.container.exec(['cat', '/run/nixos/bed-activation.log']);
    return r.stdout
      .split('\n')
      .map((l) => /^(\S+) (\S+) pid=(\d+) cgroup=(\S*) (.*)$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ at: m[1]!, action: m[2]!, pid: m[3]!, cgroup: m[4]!, text: m[5]! }));
  }

  /** Which pullnix package (store path) a running process was started from (the wrapper exports it). */
  async packageOf(pid: number): Promise<string | null> {
    // A MainPID is systemd's as soon as it forks: until the child has exec'd the unit's command it
    // is still systemd (its /proc/PID/exe, and PID 1's environment, without PULLNIX_BED_PACKAGE).
    // Wait for the exec rather than read systemd's environment.
    const r = await waitFor(
      `pid ${pid} has exec'd its unit's command`,
      async () => {
        const e = await this.container.exec(['sh', '-c', 'exe=$(readlink "/proc/$1/exe") || exit 3; case "$exe" in */systemd|*/systemd-executor) exit 2;; esac; cat "/proc/$1/environ"', 'sh', String(pid)]);
        return e.code === 2 ? undefined : e;
      },
      { timeoutMs: 30_000 },
    );
    const m = /(?:^|\0)PULLNIX_BED_PACKAGE=([^\0]*)/.exec(r.stdout);
    return m ? m[1]! : null;
  }

  /** git ls-remote with the deploy key, as pullnix does it: is the git server reachable? */
  async gitReachable(): Promise<boolean> {
    const r = await this.container.exec(['git', 'ls-remote', GIT_URL, 'main'], {
      env: { GIT_SSH_COMMAND: 'ssh -i /bed/secrets/deploy_key -o IdentitiesOnly=yes -o UserKnownHostsFile=/bed/secrets/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=3' },
      timeoutMs: 15_000,
    });
    return r.code === 0;
  }

  /** Journal entries of the given units (all boots), oldest first, with pullnix event lines parsed. */
  async journal(units: readonly string[] = ['pullnix-executor.service', 'pullnix-watcher.service']): Promise<JournalEntry[]> {
    const args = ['journalctl', '--no-pager', '-o', 'json', '--output-fields=MESSAGE,PRIORITY,_PID,_SYSTEMD_UNIT,_BOOT_ID,__REALTIME_TIMESTAMP'];
    for (const u of units) args.push('-u', u);
    const r = this.container.running
      ? await this.container.exec(args, { timeoutMs: 30_000 })
      : await run([...args.slice(0, 1), '-D', join(this.dirs.journal, this.machineId), ...args.slice(1)]);
    const entries: JournalEntry[] = [];
    for (const line of r.stdout.split('\n')) {
      if (!line.startsWith('{')) continue;
      const j = JSON.parse(line) as Record<string, unknown>;
      const message = typeof j.MESSAGE === 'string' ? j.MESSAGE : Array.isArray(j.MESSAGE) ? Buffer.from(j.MESSAGE as number[]).toString('utf8') : '';
      const parsed = parseLine(message);
      entries.push({
        unit: String(j._SYSTEMD_UNIT ?? ''),
        message,
        priority: Number(j.PRIORITY ?? 6),
        pid: Number(j._PID ?? 0),
        bootId: String(j._BOOT_ID ?? ''),
        at: new Date(Number(j.__REALTIME_TIMESTAMP ?? 0) / 1000),
        event: parsed?.event ?? null,
        fields: parsed?.fields ?? {},
      });
    }
    return entries;
  }

  /** Pullnix events (parsed journal lines) matching a name and optional fields. */
  async events(event: string, fields: Record<string, string> = {}, units?: readonly string[]): Promise<JournalEntry[]> {
    return (await this.journal(units)).filter((e) => e.event === event && Object.entries(fields).every(([k, v]) => e.fields[k] === v));
  }

  async waitForEvent(event: string, fields: Record<string, string> = {}, options: { timeoutMs?: number; after?: Date; units?: readonly string[] } = {}): Promise<JournalEntry> {
    return waitFor(
      `journal event ${event}${Object.keys(fields).length ? ` ${JSON.stringify(fields)}` : ''}`,
      async () => (await this.events(event, fields, options.units)).find((e) => !options.after || e.at >= options.after),
      { timeoutMs: options.timeoutMs ?? 60_000, intervalMs: 250, describe: () => this.describe() },
    );
  }

  /**
   * Step 7 happens after the outcome is recorded: wait until the executor restarted the watcher
   * for this deployment, the new watcher process logged watcher.started and is connected again.
   * Returns the new watcher's pid.
   */
  async waitForWatcherRestart(deploymentId: number, timeoutMs = 60_000): Promise<number> {
    const restarting = await this.waitForEvent('watcher.restarting', { deployment: String(deploymentId) }, { timeoutMs, units: ['pullnix-executor.service'] });
    const pid = await waitFor(
      `the watcher restarted after deployment ${deploymentId} (watcher.started from the new MainPID)`,
      async () => {
        const main = await this.mainPid('pullnix-watcher.service');
        const started = (await this.journal(['pullnix-watcher.service'])).some((e) => e.event === 'watcher.started' && e.pid === main && e.at >= restarting.at);
        return started ? main : undefined;
      },
      { timeoutMs, intervalMs: 250, describe: () => this.describe() },
    );
    await this.waitForPullnix(timeoutMs);
    return pid;
  }

  /** Wait until the history has a finished deployment of `commit` (the newest one is returned). */
  async waitForOutcome(commit: string, options: { timeoutMs?: number; count?: number } = {}): Promise<DeploymentRecord> {
    return waitFor(
      `a finished deployment of ${commit.slice(0, 8)} in history.jsonl`,
      () => {
        const done = this.deploymentsOf(commit).filter((r) => r.outcome !== null);
        return done.length >= (options.count ?? 1) ? done[done.length - 1] : undefined;
      },
      { timeoutMs: options.timeoutMs ?? 90_000, intervalMs: 250, describe: () => this.describe() },
    );
  }

  /** A one-paragraph picture of the machine for timeout messages. */
  async describe(): Promise<string> {
    const parts: string[] = [];
    const h = this.history().slice(-3);
    parts.push(`history(last 3)=${JSON.stringify(h.map((r) => ({ id: r.id, commit: r.commit.slice(0, 8), phase: r.phase, outcome: r.outcome, error: r.error })))}`);
    parts.push(`bootDefault=${shortPath(this.bootDefault() ?? '-')}`);
    if (this.container.running) {
      const r = await this.container.exec(['sh', '-c', 'readlink -f /run/current-system; systemctl is-active pullnix-executor pullnix-watcher bed-git-sshd | tr "\\n" " "'], { timeoutMs: 10_000 }).catch(() => null);
      if (r) parts.push(`live+units=${r.stdout.trim().replace(/\n/g, ' ')}`);
      // How the nix-daemon last ended, if it did (code 1 exited / 2 killed, and the status or signal).
      const d = await this.container.exec(['systemctl', 'show', '--value', '-p', 'ActiveState,ExecMainPID,ExecMainCode,ExecMainStatus', 'nix-daemon.service', 'nix-daemon.socket'], { timeoutMs: 10_000 }).catch(() => null);
      if (d) parts.push(`nix-daemon(state pid code status; socket)=${d.stdout.trim().replace(/\n/g, ' ')}`);
      const j = await this.container.exec(['journalctl', '--no-pager', '-o', 'cat', '-n', '6', '-u', 'pullnix-executor', '-u', 'pullnix-watcher'], { timeoutMs: 10_000 }).catch(() => null);
      if (j) parts.push(`journal tail:\n    ${j.stdout.trim().split('\n').join('\n    ')}`);
    }
    return parts.join('; ');
  }

  /**
   * Write the whole journal (every boot) to a file; returns its path and the tail of the pullnix
   * part, for a failing test's message.
   */
  async dumpJournal(label: string): Promise<{ path: string; tail: string }> {
    const path = join(this.dirs.logs, `${label.replace(/[^A-Za-z0-9._-]+/g, '-')}-journal.txt`);
    const dir = join(this.dirs.journal, this.machineId);
    const all = await run(['journalctl', '-D', dir, '--no-pager', '-o', 'short-precise']).catch((e: Error) => ({ stdout: '', stderr: e.message }) as RunResult);
    writeFileSync(path, all.stdout + (all.stderr ? `\n[journalctl stderr] ${all.stderr}` : ''));
    const lines = all.stdout.split('\n').filter((l) => /pullnix|bed-git|switch-to-configuration|systemd\[1\]/.test(l));
    return { path, tail: lines.slice(-60).join('\n') };
  }

  /** Stop the machine and remove everything (cgroups, propagate dirs, temp dirs). */
  async destroy(options: { keepLogs?: boolean } = {}): Promise<void> {
    this.autoReboot = false;
    await this.rebooting;
    try {
      if (this.container.running) await this.container.poweroff().catch(() => this.container.kill());
    } finally {
      await this.container.kill();
      this.removeFiles(options.keepLogs ?? false);
    }
  }

  /** Synchronous: also used by the exit hook when a run is cut short. */
  removeFiles(keepLogs: boolean): void {
    LIVE_BEDS.delete(this);
    if (keepLogs) {
      // Only the logs stay (journal dump, console logs); the /nix of the machine goes.
      for (const d of ['nix', 'state', 'watcher-state', 'boot', 'journal', 'srv', 'bed', 'work', 'scratch']) rmSync(join(this.base, d), { recursive: true, force: true });
    } else {
      rmSync(this.base, { recursive: true, force: true });
    }
  }
}

/**
 * Beds not destroyed when the process exits (a timeout or a signal cut the run short): their
 * containers are killed by container.ts's exit hook (registered first, so it runs first); this
 * removes their files, keeping the logs.
 */
const LIVE_BEDS = new Set<TestBed>();
process.on('exit', () => {
  for (const bed of LIVE_BEDS) {
    bed.container.killNow();
    bed.removeFiles(true);
    process.stderr.write(`[bed] ${bed.name} was still running at exit: killed; logs kept in ${bed.dirs.logs}\n`);
  }
});

/** Inside the container, on every boot, before the boot default is activated (users, dirs). */
const SETUP_SCRIPT = `#!/bin/bash
# pullnix system test bed: what the NixOS users/groups module and stage 1 would provide.
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
getent group pullnix >/dev/null || groupadd -g ${PULLNIX_GID} pullnix
getent group git >/dev/null || groupadd -g ${UIDS.git} git
# '*' (not '!'): sshd without PAM refuses accounts whose password field marks them locked.
getent passwd git >/dev/null || useradd -u ${UIDS.git} -g git -M -d /srv/git -s /usr/bin/git-shell -p '*' git
getent passwd sshd >/dev/null || useradd -r -M -d /run/sshd -s /usr/sbin/nologin sshd
getent group mallory >/dev/null || groupadd -g ${UIDS.mallory} mallory
getent passwd mallory >/dev/null || useradd -u ${UIDS.mallory} -g mallory -M -d /nonexistent -s /bin/sh mallory
getent group opal >/dev/null || groupadd -g ${UIDS.opal} opal
getent passwd opal >/dev/null || useradd -u ${UIDS.opal} -g opal -G pullnix -M -d /nonexistent -s /bin/sh opal
# The watcher's own user (nixos/module.nix: users.users.pullnix-watcher).
getent group pullnix-watcher >/dev/null || groupadd -g ${WATCHER_UID} pullnix-watcher
getent passwd pullnix-watcher >/dev/null || useradd -r -u ${WATCHER_UID} -g pullnix-watcher -M -d /var/empty -s /usr/sbin/nologin pullnix-watcher
# Multi-user Nix: the build users and the daemon (Debian's nix-bin has /usr/bin/nix-daemon).
getent group nixbld >/dev/null || groupadd -g ${NIXBLD_GID} nixbld
for i in $(seq 1 ${NIXBLD_USERS}); do
  getent passwd nixbld$i >/dev/null || useradd -r -u $((${NIXBLD_GID} + i)) -g nixbld -G nixbld -M -d /var/empty -s /usr/sbin/nologin nixbld$i
done
mkdir -p /root /nix/var/nix/gcroots /nix/var/nix/profiles /nix/var/nix/daemon-socket
chmod 0700 /root
mkdir -p /run/systemd/system
cp /bed/nix-daemon.socket /bed/nix-daemon.service /run/systemd/system/
systemctl daemon-reload
# Socket-activated, as on NixOS (sockets.target wants nix-daemon.socket): systemd holds the socket,
# the first connection starts nix-daemon.service, and a daemon that exits is started again by the
# next connection instead of leaving clients "Connection refused".
systemctl start nix-daemon.socket
[ -S /nix/var/nix/daemon-socket/socket ] || { echo "nix-daemon.socket is not listening" >&2; exit 1; }
# NixOS roots the running and the booted system (nixos/modules/system/boot/stage-2-init.sh and
# activation): nothing else keeps them alive.
ln -sfn /run/current-system /nix/var/nix/gcroots/current-system
ln -sfn /run/booted-system /nix/var/nix/gcroots/booted-system
`;


/**
 * The nix-daemon as NixOS runs it: socket-activated. Written from Nix's own units
 * (NixOS/nix misc/systemd/nix-daemon.socket.in @021753f, nix-daemon.service.in @0966532) as
 * nixpkgs installs them (nixos/modules/services/system/nix-daemon.nix @025640d:
 * `systemd.packages = [ nixPackage ]`, `systemd.sockets.nix-daemon.wantedBy = [ "sockets.target" ]`,
 * `unitConfig.RequiresMountsFor = "/nix/store"`, `LimitNOFILE = 1048576`). Neither sets Restart=:
 * systemd keeps listening on the socket while the daemon is down, and the next connection starts
 * it again. Not modelled: the socket's ConditionPathExists=!…/daemon-socket/socket (it exists for
 * containers that bind in a host's socket; the bed's /nix persists across its boots, so the
 * previous boot's socket file would wrongly skip the unit) and the service's
 * ConditionPathIsReadWrite (setup.sh creates the directory).
 */
const NIX_DAEMON_SOCKET = `[Unit]
Description=Nix Daemon Socket (the bed's multi-user Nix)
Before=multi-user.target
RequiresMountsFor=/nix/store

[Socket]
ListenStream=/nix/var/nix/daemon-socket/socket

[Install]
WantedBy=sockets.target
`;

const NIX_DAEMON_SERVICE = `[Unit]
Description=Nix Daemon (the bed's multi-user Nix, Debian's /usr/bin/nix-daemon)
RequiresMountsFor=/nix/store
RequiresMountsFor=/nix/var

[Service]
ExecStart=@/usr/bin/nix-daemon nix-daemon --daemon
KillMode=process
LimitNOFILE=1048576
`;

function checkPrerequisites(): void {
  if (process.getuid?.() !== 0) throw new Error('the pullnix system test bed needs root (systemd-nspawn, nsenter, cgroups)');
  const missing = ['systemd-nspawn', 'nsenter', 'nix', 'nix-env', 'nix-daemon', 'git', 'ssh-keygen', '/usr/sbin/sshd', 'git-shell', 'setpriv', 'flock'].filter(
    (c) => !(c.startsWith('/') ? existsSync(c) : whichSync(c)),
  );
  if (missing.length > 0) {
    throw new Error(`the system test bed needs ${missing.join(', ')}: apt-get install -y systemd-container nix-bin openssh-server git`);
  }
  const compiled = ['executor/dist/src/main.js', 'watcher/dist/src/main.js', 'executor/dist/src/ctl/main.js'].filter((p) => !existsSync(join(REPO_ROOT, p)));
  if (compiled.length > 0) throw new Error(`not built: ${compiled.join(', ')} (run npx tsc -b in ${REPO_ROOT})`);
}

function whichSync(cmd: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/bin', '/sbin', '/bin'])) {
    if (dir && existsSync(join(dir, cmd))) return true;
  }
  return false;
}

function nixSystem(): string {
  const arch = process.arch === 'x64' ? 'x86_64' : process.arch === 'arm64' ? 'aarch64' : process.arch;
  return `${arch}-linux`;
}

/** Deterministic, increasing commit dates (readable history, stable hashes within a run). */
function commitDate(n: number): string {
  return new Date(Date.now() + n * 1000).toISOString();
}

export function shortPath(p: string): string {
  const m = /^\/nix\/store\/([a-z0-9]{32})-(.*)$/.exec(p);
  return m ? `/nix/store/${m[1]!.slice(0, 7)}…-${m[2]}` : p;
}

export function short(commit: string): string {
  return commit.slice(0, 8);
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

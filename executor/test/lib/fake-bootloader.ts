/**
 * The fake machine's bootloaders (fake-system.ts), small stand-ins of what the trial boot relies on;
 * the system test bed's are the full ones (test/system/lib/bootloaders.ts), with the upstream
 * citations. Here:
 * - systemd-boot: one entry per profile generation as of the last `switch-to-configuration boot`,
 *   its options `init=<system>/init`, its id nixos-generation-N.conf (classic, nixpkgs 25.11) or
 *   nixos-<sha256>.conf (content-hash, 26.05); `bootctl list --json=short` with isDefault = the
 *   one-shot if it names an entry, else LoaderEntryDefault if it names one, else loader.conf's;
 *   `bootctl set-oneshot` takes any id and exits 0; a boot forgets the one-shot, an unknown one
 *   is ignored (systemd src/boot/boot.c config_select_default_entry).
 * - GRUB: grub.cfg as install-grub.pl writes it ("<distro> - Default", then the submenu
 *   "<distro> - All configurations" with "<distro> - Configuration N (date - version)"), grubenv's
 *   next_entry (grub-reboot), used once at boot and cleared unless save_env fails there.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { RunResult } from '@pullnix/shared';

export interface FakeEntry {
  generation: number;
  id: string;
  system: string;
}

export class FakeBootloaders {
  loader: 'systemd-boot' | 'grub' = 'systemd-boot';
  naming: 'classic' | 'content-hash' = 'classic';
  /** The EFI variable LoaderEntryDefault (bootctl set-default); null: unset. */
  loaderEntryDefault: string | null = null;
  /** LoaderEntryOneShot (systemd-boot) or next_entry (GRUB). */
  oneShot: string | null = null;
  distroName = 'NixOS';
  /** GRUB's save_env fails where grubenv lives (ZFS, btrfs, LVM, mdraid): next_entry is never cleared at boot. */
  saveEnvFails = false;
  /** The entries and the default as the last `switch-to-configuration boot` wrote them. */
  entries: FakeEntry[] = [];
  defaultSystem: string | null = null;
  readonly grubCfg: string;
  readonly grubEnv: string;

  private readonly profilesDir: string;

  constructor(profilesDir: string, bootDir: string) {
    this.profilesDir = profilesDir;
    this.grubCfg = join(bootDir, 'grub', 'grub.cfg');
    this.grubEnv = join(bootDir, 'grub', 'grubenv');
  }

  /** `switch-to-configuration boot`: entries for every generation, the profile's current one the default. */
  install(defaultSystem: string): void {
    this.defaultSystem = defaultSystem;
    const gens = readdirSync(this.profilesDir)
      .map((f) => /^system-(\d+)-link$/.exec(f)?.[1])
      .filter((n) => n !== undefined)
      .map(Number)
      .sort((a, b) => b - a);
    this.entries = gens.map((n) => {
      const system = readlinkSync(join(this.profilesDir, `system-${n}-link`));
      const id = this.naming === 'classic' ? `nixos-generation-${n}.conf` : `nixos-${createHash('sha256').update(`init=${system}/init\nGeneration ${n}`).digest('hex')}.conf`;
      return { generation: n, id, system };
    });
    mkdirSync(dirname(this.grubCfg), { recursive: true });
    const entry = (title: string, system: string) => `menuentry "${title}" {\n  linux /nix/store/kernel systemConfig=${system} init=${system}/init\n  initrd /nix/store/initrd\n}\n`;
    let cfg = 'if [ -s $prefix/grubenv ]; then\n  load_env\nfi\nif [ "${next_entry}" ]; then\n  set default="${next_entry}"\n  set next_entry=\n  save_env next_entry\nelse\n  set default=0\nfi\n';
    cfg += entry(`${this.distroName} - Default`, defaultSystem);
    cfg += `submenu "${this.distroName} - All configurations" {\n`;
    for (const e of this.entries) cfg += entry(`${this.distroName} - Configuration ${e.generation} (2026-01-01 - 26.05)`, e.system);
    cfg += '}\n';
    writeFileSync(this.grubCfg, cfg);
    if (!existsSync(this.grubEnv)) this.writeEnv();
  }

  private find(id: string | null): FakeEntry | undefined {
    return id === null ? undefined : this.entries.find((e) => e.id === id);
  }

  /** What systemd-boot boots next (boot.c's order: one-shot, LoaderEntryDefault, loader.conf). */
  private systemdNext(): FakeEntry | undefined {
    return this.find(this.oneShot) ?? this.find(this.loaderEntryDefault) ?? this.entries.find((e) => e.system === this.defaultSystem);
  }

  private grubTitle(e: FakeEntry): string {
    // A '>' inside a title is written '>>' in a title path (GRUB's default/next_entry).
    const d = this.distroName.replaceAll('>', '>>');
    return `${d} - All configurations>${d} - Configuration ${e.generation} (2026-01-01 - 26.05)`;
  }

  /** The machine boots: the system the bootloader picks; the one-shot is used up. */
  boot(): string | null {
    if (this.loader === 'systemd-boot') {
      const next = this.systemdNext();
      this.oneShot = null;
      return next?.system ?? this.defaultSystem;
    }
    const next = this.oneShot === null ? undefined : this.entries.find((e) => this.grubTitle(e) === this.oneShot);
    if (!this.saveEnvFails) {
      this.oneShot = null;
      this.writeEnv();
    }
    return next?.system ?? this.defaultSystem;
  }

  private writeEnv(): void {
    mkdirSync(dirname(this.grubEnv), { recursive: true });
    writeFileSync(this.grubEnv, this.oneShot === null ? '' : `next_entry=${this.oneShot}\n`);
  }

  bootctl(argv: readonly string[]): Partial<RunResult> {
    if (argv[1] === 'set-oneshot') {
      this.oneShot = argv[2] === '' ? null : argv[2]!;
      return { exitCode: 0 };
    }
    if (argv[1] === 'list') {
      const next = this.systemdNext();
      return { exitCode: 0, stdout: JSON.stringify(this.entries.map((e) => ({ type: 'type1', id: e.id, title: this.distroName, options: `init=${e.system}/init loglevel=4`, isDefault: e === next }))) };
    }
    return { exitCode: 1, stderr: `bootctl ${argv[1]}: not faked\n` };
  }

  grubReboot(argv: readonly string[]): Partial<RunResult> {
    this.oneShot = argv.at(-1)!;
    this.writeEnv();
    return { exitCode: 0 };
  }

  grubEditenv(argv: readonly string[]): Partial<RunResult> {
    if (argv[2] === 'list') return { exitCode: 0, stdout: existsSync(this.grubEnv) ? readFileSync(this.grubEnv, 'utf8') : '' };
    if (argv[2] === 'unset' && argv[3] === 'next_entry') {
      this.oneShot = null;
      this.writeEnv();
      return { exitCode: 0 };
    }
    return { exitCode: 1, stderr: `grub-editenv ${argv.slice(2).join(' ')}: not faked\n` };
  }
}

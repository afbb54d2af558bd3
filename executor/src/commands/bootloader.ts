/**
 * A bootloader as the trial boot uses it: one table per bootloader (systemd-boot.ts, grub.ts),
 * each {find entry, next boot, set once, clear}. The trial entry is always found by what it boots
 * (systemd-boot: `init=<toplevel>/init` in its options; GRUB: `systemConfig=<toplevel>` on its
 * linux line), never by a name computed from a generation number: NixOS names entries
 * differently across releases and settings (docs/nixos.md "Reboots").
 */
import type { Config, Runner, RunResult } from '@pullnix/shared';

/** An entry, and the system it boots (null: it boots no NixOS system pullnix can name). */
export interface BootEntryRef {
  entry: string;
  system: string | null;
}

export type Found<T> = T | { problem: string };

export function isProblem<T extends object>(v: Found<T>): v is { problem: string } {
  return 'problem' in v;
}

export interface BootloaderTable {
  readonly name: 'systemd-boot' | 'grub';
  /** Why a trial boot cannot work on this machine at all (checked before anything changes); null: it can. */
  refuse(config: Config): string | null;
  /** The entry that boots `toplevel`, not a specialisation of it. */
  findEntry(runner: Runner, config: Config, toplevel: string): Promise<Found<BootEntryRef>>;
  /** What boots next (a one-shot entry first, else the default), as the bootloader will pick it. */
  nextBoot(runner: Runner, config: Config): Promise<Found<BootEntryRef>>;
  /** Boot `entry` once. */
  setOnce(runner: Runner, config: Config, entry: string): Promise<RunResult>;
  /** Forget a one-shot entry. */
  clear(runner: Runner, config: Config): Promise<RunResult>;
  /** The command a message names for setOnce. */
  readonly setOnceCommand: string;
}

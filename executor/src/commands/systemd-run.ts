/**
 * `systemd-run`: runs a command as a transient service, outside every pullnix cgroup, so that
 * switch-to-configuration restarting pullnix units cannot kill the activation (the first
 * pullnix's fatal flaw). Same flags nixos-rebuild uses, with --wait, and without --pipe: the
 * unit's output goes to the journal (under the unit's name), never into pipes of the executor,
 * whose death would make switch-to-configuration-ng die half-way on EPIPE (nixpkgs #462179).
 * --collect unloads the unit when it ends; its exit status survives in the activation record
 * (pipeline/activation-record.ts), not in systemd.
 */
import { randomBytes } from 'node:crypto';

export interface TransientUnitOptions {
  /** The unit's full name (transientUnitName): recorded in the history before it starts. */
  unit: string;
  command: readonly string[];
}

/** A short random suffix keeps a re-run from colliding with a unit that is still being collected. */
export function transientUnitName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString('hex')}.service`;
}

export function systemdRunArgv(options: TransientUnitOptions): string[] {
  return [
    'systemd-run',
    `--unit=${options.unit}`,
    '--service-type=exec',
    '--collect',
    '--wait',
    '--quiet',
    '-E',
    'LOCALE_ARCHIVE',
    '-E',
    'NIXOS_INSTALL_BOOTLOADER',
    '--',
    ...options.command,
  ];
}

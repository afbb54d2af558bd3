/**
 * `systemd-run`: runs a command as a transient service, outside every pullnix cgroup, so that
 * switch-to-configuration restarting pullnix units cannot kill the activation (the first
 * pullnix's fatal flaw). Same flags nixos-rebuild uses, plus --wait so the exit code comes back.
 */
import { randomBytes } from 'node:crypto';

export interface TransientUnitOptions {
  /** Unit name prefix; a short random suffix keeps a re-run from colliding with a unit still collected. */
  unitPrefix: string;
  command: readonly string[];
}

export function transientUnitName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}

export function systemdRunArgv(options: TransientUnitOptions): string[] {
  return [
    'systemd-run',
    `--unit=${transientUnitName(options.unitPrefix)}`,
    '--service-type=exec',
    '--collect',
    '--pipe',
    '--wait',
    '--quiet',
    '-E',
    'LOCALE_ARCHIVE',
    '-E',
    'NIXOS_INSTALL_BOOTLOADER',
    ...options.command,
  ];
}

/**
 * `systemd-run`: runs a command as a transient service, outside every pullnix cgroup, so that
 * switch-to-configuration restarting pullnix units cannot kill the activation (the first
 * pullnix's fatal flaw). Same flags nixos-rebuild uses, plus --wait so the exit code comes back.
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

/** Operators' commands (command checks, hooks) run through shared's run-as module (the watcher runs preDeploy hooks too). */
export { runAs, runAsArgv } from '@pullnix/shared';

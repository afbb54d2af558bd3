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
import type { Runner, RunResult } from '@pullnix/shared';

export interface TransientUnitOptions {
  /** The unit's full name (transientUnitName): recorded in the history before it starts. */
  unit: string;
  command: readonly string[];
}

/** A short random suffix keeps a re-run from colliding with a unit that is still being collected. */
export function transientUnitName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString('hex')}.service`;
}

/** The head every transient unit shares: its name, started as a service of type exec, unloaded when it ends. */
function transientHead(unit: string): string[] {
  return ['systemd-run', `--unit=${unit}`, '--service-type=exec', '--collect'];
}

export function systemdRunArgv(options: TransientUnitOptions): string[] {
  return [...transientHead(options.unit), '--wait', '--quiet', '-E', 'LOCALE_ARCHIVE', '-E', 'NIXOS_INSTALL_BOOTLOADER', '--', ...options.command];
}

/**
 * A transient unit that outlives the executor (no --wait: systemd-run returns once it started):
 * the self-upgrade's guard (pipeline/handover.ts), which must go on after the executor exits. It
 * runs the commands the executor runs (nix-env, systemctl, git, switch-to-configuration), so it
 * gets the executor's PATH (the unit's `path`: systemd's default PATH has no NixOS profile).
 */
export function detachedRunArgv(options: TransientUnitOptions): string[] {
  return [...transientHead(options.unit), '--quiet', '-E', 'PATH', '-E', 'LOCALE_ARCHIVE', '--', ...options.command];
}

export function runDetached(runner: Runner, options: TransientUnitOptions, timeoutMs = 60_000): Promise<RunResult> {
  return runner(detachedRunArgv(options), { timeoutMs });
}

/** Operators' commands (command checks, hooks) run through shared's run-as module (the watcher runs preDeploy hooks too). */
export { runAs, runAsArgv } from '@pullnix/shared';

export interface SandboxedRunOptions extends TransientUnitOptions {
  /** Host path → path in the unit, bound read-only. */
  readOnly: readonly (readonly [string, string])[];
  /** Environment of the unit: NAME (the executor's value) or NAME=value. */
  env: readonly string[];
  runtimeMaxSec: number;
}

/**
 * A command as nobody: a transient unit with a dynamic user (no file of root's is writable by it,
 * nothing it leaves outlives it), no network (PrivateNetwork: only the loopback of a namespace of
 * its own; Unix sockets on the file system, like the nix-daemon's, still connect), no devices,
 * the whole file system read-only (ProtectSystem=strict) but its private /tmp, no home, no
 * capability. Its only output is its stdout, piped back (--pipe: unlike an activation, it changes
 * nothing, so the executor dying mid-way costs nothing but the answer).
 */
export function sandboxedRunArgv(options: SandboxedRunOptions): string[] {
  const properties = [
    'DynamicUser=yes',
    'PrivateNetwork=yes',
    'PrivateDevices=yes',
    'PrivateTmp=yes',
    'ProtectSystem=strict',
    'ProtectHome=yes',
    'NoNewPrivileges=yes',
    'CapabilityBoundingSet=',
    'RestrictAddressFamilies=AF_UNIX',
    'RestrictSUIDSGID=yes',
    'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes',
    'ProtectControlGroups=yes',
    `RuntimeMaxSec=${options.runtimeMaxSec}`,
    ...options.readOnly.map(([from, to]) => `BindReadOnlyPaths=${from}:${to}`),
  ];
  return [...transientHead(options.unit), '--wait', '--pipe', '--quiet', ...properties.flatMap((p) => ['-p', p]), ...options.env.flatMap((e) => ['-E', e]), '--', ...options.command];
}

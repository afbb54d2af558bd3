/**
 * `<toplevel>/bin/switch-to-configuration <action>`. Activation (`test`, `switch`) goes through
 * systemd-run; `boot` only installs the boot entry and restarts nothing, so it runs directly.
 */
import type { Runner, RunResult } from '@pullnix/shared';
import { systemdRunArgv } from './systemd-run.ts';

export type ActivationAction = 'test' | 'switch';

/** switch-to-configuration's documented exit codes (NIXOS.md). */
export const STC_EXIT = { ok: 0, activationFailed: 2, unitsFailed: 4, rebootRequired: 100 } as const;

export function switchToConfigurationPath(toplevel: string): string {
  return `${toplevel}/bin/switch-to-configuration`;
}

/**
 * Activation in a transient unit, through the recorder (`recorder`, the executor's own
 * `record-activation` command line) which writes the exit status to `recordPath`.
 */
export function activate(runner: Runner, options: { toplevel: string; action: ActivationAction; unit: string; recorder: readonly string[]; recordPath: string; timeoutMs: number }): Promise<RunResult> {
  const command = [...options.recorder, '--record', options.recordPath, '--', switchToConfigurationPath(options.toplevel), options.action];
  return runner(systemdRunArgv({ unit: options.unit, command }), { timeoutMs: options.timeoutMs, killAfterMs: 30_000 });
}

export function installBootEntry(runner: Runner, toplevel: string, timeoutMs: number): Promise<RunResult> {
  return runner([switchToConfigurationPath(toplevel), 'boot'], { timeoutMs });
}

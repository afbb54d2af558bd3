/**
 * The new system's own pullnix daemons, asked about their configuration before the system is
 * committed: `<toplevel>/sw/bin/pullnix-executor --check-config --config <toplevel>/etc/pullnix/config.json`
 * (and pullnix-watcher's). The module puts the package into environment.systemPackages, so both
 * programs are in the toplevel's sw/bin.
 */
import type { Runner, RunResult } from '@pullnix/shared';

export const PULLNIX_DAEMONS = ['pullnix-executor', 'pullnix-watcher'] as const;
export type PullnixDaemon = (typeof PULLNIX_DAEMONS)[number];

export function daemonProgram(toplevel: string, daemon: PullnixDaemon): string {
  return `${toplevel}/sw/bin/${daemon}`;
}

/** Exit 0: the daemon would start with this file; 78 (EX_CONFIG): it would not, stderr says why. */
export function checkConfig(runner: Runner, program: string, configFile: string, timeoutMs = 60_000): Promise<RunResult> {
  return runner([program, '--check-config', '--config', configFile], { timeoutMs });
}

/**
 * `bootctl set-oneshot ENTRY`: systemd-boot boots ENTRY once (the LoaderEntryOneShot EFI variable),
 * then the default again; an empty ENTRY removes the one-shot. Entries of NixOS generations are
 * `nixos-generation-N.conf`.
 */
import type { Runner, RunResult } from '@pullnix/shared';

export function setOneShot(runner: Runner, entry: string, timeoutMs = 60_000): Promise<RunResult> {
  return runner(['bootctl', 'set-oneshot', entry], { timeoutMs });
}

/** The systemd-boot entry of a system profile generation, as NixOS's installer names it. */
export function generationEntry(generation: number): string {
  return `nixos-generation-${generation}.conf`;
}

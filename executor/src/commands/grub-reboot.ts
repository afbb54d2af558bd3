/**
 * `grub-reboot ENTRY`: GRUB boots ENTRY once (next_entry in grubenv), then the saved default.
 * It only works with GRUB_DEFAULT=saved (docs/nixos.md).
 */
import type { Runner, RunResult } from '@pullnix/shared';

export function grubRebootOnce(runner: Runner, entry: string, timeoutMs = 60_000): Promise<RunResult> {
  return runner(['grub-reboot', '--', entry], { timeoutMs });
}

/** NixOS's GRUB menu: the generations are in the submenu "NixOS - All configurations", newest first; its entry for generation N. */
export function grubGenerationEntry(generation: number): string {
  return `NixOS - All configurations>NixOS - Configuration ${generation}`;
}

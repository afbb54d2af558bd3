/** `grub-editenv /boot/grub/grubenv unset next_entry`: forget a grub-reboot one-shot entry. */
import type { Runner, RunResult } from '@pullnix/shared';

export function clearGrubNextEntry(runner: Runner, grubenv = '/boot/grub/grubenv', timeoutMs = 60_000): Promise<RunResult> {
  return runner(['grub-editenv', grubenv, 'unset', 'next_entry'], { timeoutMs });
}

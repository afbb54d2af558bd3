/**
 * `grub-reboot --boot-directory=DIR ENTRY`: GRUB boots ENTRY once. grub-reboot writes next_entry
 * into DIR/grub/grubenv (GRUB's util/grub-reboot.in: `grub-reboot [--boot-directory=DIR]
 * MENU_ENTRY`, ENTRY a number, a title or an id; a nested entry is "submenu title>entry title").
 * NixOS's grub.cfg (install-grub.pl) reads next_entry on every boot whatever
 * boot.loader.grub.default is, uses it as the default once and clears it with save_env.
 * grub-reboot takes no `--`: an argument starting with '-' is an option to it, so such an entry is
 * refused before it is run.
 */
import type { Runner, RunResult } from '@pullnix/shared';

export function grubRebootOnce(runner: Runner, bootDirectory: string, entry: string, timeoutMs = 60_000): Promise<RunResult> {
  if (entry.startsWith('-')) throw new Error(`a GRUB entry starting with '-' cannot be passed to grub-reboot: ${JSON.stringify(entry)}`);
  return runner(['grub-reboot', `--boot-directory=${bootDirectory}`, entry], { timeoutMs });
}

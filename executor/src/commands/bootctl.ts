/**
 * `bootctl` (systemd-boot): what the entries are and which one boots next, and the one-shot entry.
 *
 * - `bootctl list --json=short`: one JSON object per entry (systemd src/shared/bootspec.c,
 *   boot_entry_to_json): `id` (the file name with any boot-counting suffix `+LEFT[-DONE]`
 *   removed, boot_filename_extract_tries), `options` (the kernel command line, joined),
 *   `isDefault` (the entry that boots next: boot_config_select_special_entries →
 *   boot_entries_select_default, which reads LoaderEntryOneShot and LoaderEntryDefault).
 * - `bootctl set-oneshot ID`: writes the EFI variable LoaderEntryOneShot whatever ID is and exits 0
 *   (src/bootctl/bootctl-set-efivar.c, verb_set_efivar / parse_loader_entry_target_arg: no lookup
 *   of the entry); an empty ID removes the variable. systemd-boot ignores a one-shot that names no
 *   entry (src/boot/boot.c, config_select_default_entry → config_find_entry returns IDX_INVALID),
 *   which is why the entry is found by content and read back after it is set.
 */
import type { Runner, RunResult } from '@pullnix/shared';

export interface BootctlEntry {
  id: string;
  options: string;
  isDefault: boolean;
  title: string | null;
}

export function setOneShot(runner: Runner, entry: string, timeoutMs = 60_000): Promise<RunResult> {
  return runner(['bootctl', 'set-oneshot', entry], { timeoutMs });
}

/** The entries bootctl sees (ESP and XBOOTLDR), or why they could not be listed. */
export async function listEntries(runner: Runner, timeoutMs = 60_000): Promise<{ entries: BootctlEntry[] } | { problem: string; result?: RunResult }> {
  const r = await runner(['bootctl', 'list', '--json=short', '--no-pager'], { timeoutMs });
  if (r.exitCode !== 0) return { problem: 'bootctl list failed', result: r };
  let parsed: unknown;
  try {
    parsed = JSON.parse(r.stdout);
  } catch (error) {
    return { problem: `bootctl list --json=short printed no JSON (${(error as Error).message})` };
  }
  if (!Array.isArray(parsed)) return { problem: 'bootctl list --json=short printed no JSON array' };
  const entries: BootctlEntry[] = [];
  for (const e of parsed) {
    if (typeof e !== 'object' || e === null) continue;
    const o = e as Record<string, unknown>;
    if (typeof o.id !== 'string') continue;
    entries.push({ id: o.id, options: typeof o.options === 'string' ? o.options : '', isDefault: o.isDefault === true, title: typeof o.title === 'string' ? o.title : null });
  }
  return { entries };
}

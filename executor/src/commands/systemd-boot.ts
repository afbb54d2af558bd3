/**
 * systemd-boot's table (bootloader.ts), on `bootctl list --json=short` and `bootctl set-oneshot`
 * (bootctl.ts). NixOS writes one Boot Loader Specification entry per generation under
 * <ESP or XBOOTLDR>/loader/entries, its kernel command line `init=<toplevel>/init ...`
 * (nixpkgs nixos/modules/system/boot/loader/systemd-boot/systemd-boot-builder.py: write_entry
 * in 25.11 and before, boot_file since PR #447173 in 26.05), named nixos-generation-N.conf
 * (generation_conf_filename, 25.11 and before) or nixos-<sha256 of the content>[+TRIES].conf
 * (BootFile.from_entry, 26.05 with boot counting). bootctl's id drops the `+TRIES` counter.
 * A specialisation's entry boots <toplevel>/specialisation/<name>, whose init is its own.
 */
import type { Config, Runner } from '@pullnix/shared';
import { describeFailure } from '@pullnix/shared';
import { listEntries, setOneShot, type BootctlEntry } from './bootctl.ts';
import type { BootEntryRef, BootloaderTable, Found } from './bootloader.ts';

/** The system an entry boots: <toplevel> of its `init=<toplevel>/init` option; null when none. */
export function entrySystem(options: string): string | null {
  for (const word of options.split(/\s+/)) {
    const m = /^init=(\/.+)\/init$/.exec(word);
    if (m) return m[1]!;
  }
  return null;
}

function ref(e: BootctlEntry): BootEntryRef {
  return { entry: e.id, system: entrySystem(e.options) };
}

async function entries(runner: Runner): Promise<Found<{ entries: BootctlEntry[] }>> {
  const listed = await listEntries(runner);
  if ('problem' in listed) return { problem: listed.result ? `${listed.problem}: ${describeFailure(listed.result)}` : listed.problem };
  return listed;
}

export const systemdBoot: BootloaderTable = {
  name: 'systemd-boot',
  setOnceCommand: 'bootctl set-oneshot',
  refuse: () => null,
  async findEntry(runner, _config, toplevel) {
    const listed = await entries(runner);
    if ('problem' in listed) return listed;
    const match = listed.entries.find((e) => entrySystem(e.options) === toplevel && !/specialisation/.test(e.id));
    if (!match) return { problem: `no systemd-boot entry boots ${toplevel} (none of the ${listed.entries.length} entries bootctl lists has init=${toplevel}/init in its options)` };
    return ref(match);
  },
  async nextBoot(runner) {
    const listed = await entries(runner);
    if ('problem' in listed) return listed;
    const next = listed.entries.find((e) => e.isDefault);
    if (!next) return { problem: 'bootctl lists no entry as the one that boots next' };
    return ref(next);
  },
  setOnce: (runner, _config: Config, entry) => setOneShot(runner, entry),
  clear: (runner) => setOneShot(runner, ''),
};

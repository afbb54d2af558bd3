/**
 * GRUB's table (bootloader.ts), on the grub.cfg NixOS writes, `grub-reboot` and `grub-editenv`.
 *
 * nixpkgs nixos/modules/system/boot/loader/grub/install-grub.pl writes: a header that loads the
 * environment block and, when next_entry is set, boots it once (`set default="${next_entry}"`,
 * `set next_entry=`, `save_env next_entry`), else `set default=<boot.loader.grub.default>`; then
 * the entry "<distroName> - Default" for the default system, then the submenu
 * "<distroName> - All configurations" with one entry per generation, newest first, titled
 * "<distroName> - Configuration N (YYYY-MM-DD - <nixos-version>)"; every entry's linux line
 * carries `systemConfig=<toplevel> init=<toplevel>/init` (addEntry). No entry has an --id. So
 * the trial entry is the entry inside a submenu whose linux line has systemConfig=<toplevel>,
 * named by its title path "<submenu title>><entry title>", a '>' inside a title written '>>'.
 *
 * GRUB saves its environment (save_env) only on a plain disk with a filesystem that is not
 * checksummed (the GRUB manual, "Environment block": no LVM, no RAID, no ZFS; btrfs neither):
 * there next_entry would stay set after the trial boot and every later boot, the fallback one
 * included, would start the trial system again. refuse() says so from the mount table.
 */
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Config } from '@pullnix/shared';
import { describeFailure } from '@pullnix/shared';
import { clearGrubNextEntry, grubEnv } from './grub-editenv.ts';
import { grubRebootOnce } from './grub-reboot.ts';
import type { BootEntryRef, BootloaderTable, Found } from './bootloader.ts';

export interface GrubMenuEntry {
  /** Titles from the top level down: submenus, then the entry's own. */
  titles: string[];
  /** systemConfig= of its linux line; null when it has none. */
  system: string | null;
}

/** The title path grub-reboot and `default` take: titles joined by '>', a '>' in a title doubled. */
export function titlePath(titles: readonly string[]): string {
  return titles.map((t) => t.replaceAll('>', '>>')).join('>');
}

/** Every menuentry of a grub.cfg with its submenu titles and the system its linux line boots. */
export function parseGrubCfg(text: string): GrubMenuEntry[] {
  const out: GrubMenuEntry[] = [];
  // The open blocks: a submenu's or menuentry's title, or null for any other `{` (if, function).
  const stack: ({ kind: 'submenu' | 'menuentry'; title: string; entry?: GrubMenuEntry } | null)[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const m = /^(menuentry|submenu)\s+("((?:[^"\\]|\\.)*)"|'([^']*)')(.*)\{\s*$/.exec(line);
    if (m) {
      const title = m[3] !== undefined ? m[3].replace(/\\(.)/g, '$1') : m[4]!;
      const kind = m[1] as 'submenu' | 'menuentry';
      const frame: { kind: 'submenu' | 'menuentry'; title: string; entry?: GrubMenuEntry } = { kind, title };
      if (kind === 'menuentry') {
        frame.entry = { titles: [...stack.filter((f) => f?.kind === 'submenu').map((f) => f!.title), title], system: null };
        out.push(frame.entry);
      }
      stack.push(frame);
      continue;
    }
    if (/\{\s*$/.test(line)) {
      stack.push(null);
      continue;
    }
    if (line === '}' || /^\}\s*$/.test(line)) {
      stack.pop();
      continue;
    }
    if (line === 'fi') continue;
    const current = stack.at(-1);
    if (current?.entry && /^(linux|linux16|linuxefi)\s/.test(line)) {
      const sc = /(?:^|\s)systemConfig=(\S+)/.exec(line);
      if (sc) current.entry.system = sc[1]!;
    }
  }
  return out;
}

function readMenu(config: Config): Found<{ entries: GrubMenuEntry[] }> {
  let text: string;
  try {
    text = readFileSync(config.paths.grubConfig, 'utf8');
  } catch (error) {
    return { problem: `cannot read GRUB's menu ${config.paths.grubConfig}: ${(error as Error).message}` };
  }
  return { entries: parseGrubCfg(text) };
}

/** The mount (from a mountinfo text) that holds `path`: its filesystem type and source. */
export function mountOf(mountinfo: string, path: string): { mountPoint: string; fsType: string; source: string } | null {
  let best: { mountPoint: string; fsType: string; source: string } | null = null;
  for (const line of mountinfo.split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (fields.length < 10 || dash < 6) continue;
    const mountPoint = fields[4]!.replace(/\\040/g, ' ');
    const inside = mountPoint === '/' || path === mountPoint || path.startsWith(`${mountPoint}/`);
    if (!inside) continue;
    if (!best || mountPoint.length >= best.mountPoint.length) best = { mountPoint, fsType: fields[dash + 1]!, source: fields[dash + 2]! };
  }
  return best;
}

/** Why GRUB cannot save its environment where grubEnv lives; null when it can (as far as the mount table tells). */
export function envBlockProblem(mountinfo: string, grubenv: string): string | null {
  const m = mountOf(mountinfo, grubenv);
  if (!m) return null;
  if (m.fsType === 'zfs' || m.fsType === 'btrfs') return `${grubenv} is on ${m.fsType} (${m.mountPoint})`;
  if (/^\/dev\/(md[0-9_]|md\/|mapper\/|dm-)/.test(m.source)) return `${grubenv} is on ${m.source} (LVM, mdraid or device-mapper, ${m.mountPoint})`;
  return null;
}

function bootDirectory(config: Config): string {
  // grubEnv is <boot directory>/grub/grubenv.
  return dirname(dirname(config.paths.grubEnv));
}

export const grub: BootloaderTable = {
  name: 'grub',
  setOnceCommand: 'grub-reboot',
  refuse(config) {
    let mountinfo: string;
    try {
      mountinfo = readFileSync(config.paths.mountInfo, 'utf8');
    } catch {
      return null;
    }
    const problem = envBlockProblem(mountinfo, config.paths.grubEnv);
    return problem === null ? null : `GRUB cannot save its environment block there (save_env): ${problem}, so the one-shot entry would never be cleared and every boot would start the trial system; boot on trial by hand, or keep reboot.mode = "never"`;
  },
  async findEntry(_runner, config, toplevel) {
    const menu = readMenu(config);
    if ('problem' in menu) return menu;
    // A generation's own entry (inside a submenu) first: the top-level "Default" entry is whatever the default is now.
    const matches = menu.entries.filter((e) => e.system === toplevel);
    const match = matches.find((e) => e.titles.length > 1) ?? matches[0];
    if (!match) return { problem: `no GRUB menu entry in ${config.paths.grubConfig} boots ${toplevel} (no linux line with systemConfig=${toplevel})` };
    return { entry: titlePath(match.titles), system: toplevel };
  },
  async nextBoot(runner, config) {
    const env = await grubEnv(runner, config.paths.grubEnv);
    if ('problem' in env) return { problem: `${env.problem}: ${describeFailure(env.result)}` };
    const next = env.env.get('next_entry') ?? '';
    const menu = readMenu(config);
    if ('problem' in menu) return menu;
    if (next !== '') {
      const e = menu.entries.find((m) => titlePath(m.titles) === next);
      return { entry: next, system: e?.system ?? null };
    }
    // No one-shot: NixOS's grub.cfg sets default to boot.loader.grub.default (0: the first entry).
    const first = menu.entries[0];
    if (!first) return { problem: `${config.paths.grubConfig} has no menu entry` };
    return { entry: titlePath(first.titles), system: first.system };
  },
  setOnce: (runner, config, entry) => grubRebootOnce(runner, bootDirectory(config), entry),
  clear: (runner, config) => clearGrubNextEntry(runner, config.paths.grubEnv),
};

/**
 * STAND-IN: the test bed's bootloaders, systemd-boot and GRUB, as far as the trial boot relies on
 * them. Run inside the machine as its `bootctl`, `grub-reboot`, `grub-editenv` and bootloader
 * installer (`switch-to-configuration boot`), and on the host by the bed's firmware step
 * (pickBoot: which system a boot starts). State lives under the machine's /boot (persisted like a
 * disk; the EFI variables under /boot/pullnix-bed/efivars, persisted like NVRAM).
 *
 * Written from (repository, path, the function that holds the behaviour):
 *
 * systemd-boot builder, nixpkgs nixos/modules/system/boot/loader/systemd-boot/systemd-boot-builder.py
 *  - classic names, NixOS 25.11 and before: BOOT_ENTRY ("title", "sort-key", "version Generation N
 *    <label>, built on <date>", "linux", "initrd", "options init=<toplevel>/init ..."), file
 *    generation_conf_filename → nixos-generation-N.conf; write_loader_conf → "timeout", "default
 *    nixos-generation-N.conf"; remove_old_entries drops entries of generations not listed;
 *    get_generations keeps the newest configurationLimit.
 *  - content-hash names, 26.05 (PR #447173): boot_file (title, version, linux, initrd, options,
 *    sort-key joined by newlines), BootFile.from_entry → nixos-<sha256 of the content>.conf, with
 *    "+<tries>" when boot counting is on, an existing file of the same hash (any counter) kept;
 *    the bootctl id is "nixos-<hash>.conf"; write_loader_conf → "default <id>", or with boot
 *    counting "preferred <id>" + "default nixos-*"; garbage_collect removes other nixos-*.conf.
 *  - is_default: Path(bootspec.init).parent == default_config (the toplevel being installed).
 * systemd-boot, systemd src/boot/boot.c
 *  - config_load_defaults: LoaderEntryOneShot is read and unset at every boot ("after all it's
 *    one shot"), LoaderEntryDefault read;
 *  - config_select_default_entry: the one-shot if config_find_entry finds it, else
 *    LoaderEntryDefault, else loader.conf's default (a glob, efi_fnmatch on the entry ids); an
 *    unknown one-shot names no entry and is ignored;
 *  - boot_entry_parse_tries: "+LEFT[-DONE]" before .conf, removed from the id; a boot of a
 *    counted entry counts one try (LEFT-1, DONE+1); LEFT 0 is a bad entry, sorted last.
 *  - `preferred` (systemd-boot 260, named in the builder's write_loader_conf comment): an entry
 *    picked before `default` unless it is bad. Modelled from that comment only.
 *  - systemd-bless-boot (docs AUTOMATIC_BOOT_ASSESSMENT): a boot that reaches boot-complete.target
 *    drops the counter ("good"); the bed does it once the system came up (bless()).
 * bootctl, systemd src/bootctl/bootctl-set-efivar.c verb_set_efivar (which refuses inside a
 *  container: the bed is one, so that check is not modelled): set-oneshot / set-default
 *  write LoaderEntryOneShot / LoaderEntryDefault whatever the id, "" removes; src/shared/bootspec.c
 *  boot_entry_to_json: `list --json` objects with id, title, options, isDefault (the entry
 *  boot_entries_select_default picks: one-shot, LoaderEntryDefault, loader.conf, as above).
 * GRUB menu, nixpkgs nixos/modules/system/boot/loader/grub/install-grub.pl and grub.nix
 *  - header: load_env; `if [ "${next_entry}" ]` → `set default="${next_entry}"`, `set next_entry=`,
 *    `save_env next_entry`, else `set default=<boot.loader.grub.default>`;
 *  - addEntry("<distroName> - Default", default system) first, then addProfile's
 *    `submenu "<distroName> - All configurations"` with "<distroName> - Configuration N
 *    (YYYY-MM-DD - <nixos-version>)" for the newest configurationLimit generations, newest first;
 *    every linux line "systemConfig=<toplevel> init=<toplevel>/init"; no --id; entryOptions
 *    "--class nixos --unrestricted", subEntryOptions "--class nixos" (grub.nix defaults);
 *    distroName from config.system.nixos.distroName (grub.nix replaceVars).
 *  - default = "saved": savedefault (nixpkgs PR #109302, as issue 22 reads it; those
 *    install-grub.pl lines were not in the search index): `set default="${saved_entry}"` and every
 *    entry saves itself as saved_entry when booted, unless the boot was a one-shot (boot_once).
 * GRUB tools: util/grub-reboot.in (`grub-reboot [--boot-directory=DIR] MENU_ENTRY`: next_entry
 *  in DIR/grub/grubenv; any other option is refused), util/grub-editenv.c (`FILE list|set|unset`,
 *  a 1024-byte block "# GRUB Environment Block" padded with '#'); save_env fails on ZFS, btrfs,
 *  LVM, RAID (the GRUB manual, "Environment block"): saveEnvFails keeps next_entry set.
 *  A title path is "submenu>entry", a '>' inside a title written '>>'.
 */
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface LoaderSettings {
  loader: 'systemd-boot' | 'grub';
  naming: 'classic' | 'content-hash';
  bootCounting: boolean;
  tries: number;
  distroName: string;
  configurationLimit: number | null;
  grubDefault: string;
  saveEnvFails: boolean;
}

export const DEFAULT_SETTINGS: LoaderSettings = { loader: 'systemd-boot', naming: 'classic', bootCounting: false, tries: 3, distroName: 'NixOS', configurationLimit: null, grubDefault: '0', saveEnvFails: false };

const STATE = 'pullnix-bed';

function settingsOf(toplevel: string): LoaderSettings {
  const p = join(toplevel, 'bed-bootloader.json');
  return { ...DEFAULT_SETTINGS, ...(existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as Partial<LoaderSettings>) : {}) };
}

export function loaderSettings(bootDir: string): LoaderSettings {
  const p = join(bootDir, STATE, 'loader.json');
  return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as LoaderSettings) : DEFAULT_SETTINGS;
}

function writeWhole(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

// ---------------------------------------------------------------- EFI variables (NVRAM)

function efivar(bootDir: string, name: string): string | null {
  const p = join(bootDir, STATE, 'efivars', name);
  return existsSync(p) ? readFileSync(p, 'utf8') : null;
}

function setEfivar(bootDir: string, name: string, value: string | null): void {
  const p = join(bootDir, STATE, 'efivars', name);
  if (value === null || value === '') rmSync(p, { force: true });
  else writeWhole(p, value);
}

// ---------------------------------------------------------------- the installer (switch-to-configuration boot)

interface Generation {
  n: number;
  system: string;
  link: string;
}

function generations(profilesDir: string): Generation[] {
  return readdirSync(profilesDir)
    .map((f) => /^system-(\d+)-link$/.exec(f))
    .filter((m) => m !== null)
    .map((m) => ({ n: Number(m[1]), link: join(profilesDir, m[0]), system: realpathSync(join(profilesDir, m[0])) }))
    .sort((a, b) => a.n - b.n);
}

function dateOf(path: string): string {
  return lstatSync(path).mtime.toISOString().slice(0, 10);
}

function nixosVersion(system: string): string {
  const p = join(system, 'nixos-version');
  return existsSync(p) ? readFileSync(p, 'utf8').trim() : 'unknown';
}

/** `switch-to-configuration boot` of `toplevel`: the menu for every kept generation, `toplevel` the default. */
export function install(bootDir: string, profilesDir: string, toplevel: string): string {
  const s = settingsOf(toplevel);
  writeWhole(join(bootDir, STATE, 'loader.json'), `${JSON.stringify(s)}\n`);
  let gens = generations(profilesDir);
  if (s.configurationLimit !== null) gens = gens.slice(-s.configurationLimit);
  return s.loader === 'grub' ? installGrub(bootDir, s, gens, toplevel) : installSystemdBoot(bootDir, s, gens, toplevel);
}

function installSystemdBoot(bootDir: string, s: LoaderSettings, gens: Generation[], toplevel: string): string {
  const dir = join(bootDir, 'loader', 'entries');
  mkdirSync(dir, { recursive: true });
  const keep = new Set<string>();
  let defaultId: string | null = null;
  for (const g of gens) {
    const kernel = `/EFI/nixos/${createHash('sha256').update(realpathSync(join(g.system, 'kernel'))).digest('hex').slice(0, 32)}-bzImage.efi`;
    const initrd = `/EFI/nixos/${createHash('sha256').update(realpathSync(join(g.system, 'initrd'))).digest('hex').slice(0, 32)}-initrd.efi`;
    const version = `Generation ${g.n} ${nixosVersion(g.system)}, built on ${dateOf(g.link)}`;
    let file: string;
    let id: string;
    if (s.naming === 'classic') {
      id = `nixos-generation-${g.n}.conf`;
      file = id;
      writeWhole(join(dir, file), `title ${s.distroName}\nsort-key nixos\nversion ${version}\nlinux ${kernel}\ninitrd ${initrd}\noptions init=${g.system}/init loglevel=4\n`);
    } else {
      const contents = [`title ${s.distroName}`, `version ${version}`, `linux ${kernel}`, `initrd ${initrd}`, `options init=${g.system}/init loglevel=4`, 'sort-key nixos'].join('\n');
      const hash = createHash('sha256').update(contents).digest('hex');
      id = `nixos-${hash}.conf`;
      const existing = readdirSync(dir).find((f) => new RegExp(`^nixos-${hash}(\\+[0-9]+(-[0-9]+)?)?\\.conf$`).test(f) && createHash('sha256').update(readFileSync(join(dir, f))).digest('hex') === hash);
      file = existing ?? `nixos-${hash}${s.bootCounting ? `+${s.tries}` : ''}.conf`;
      if (!existing) writeWhole(join(dir, file), contents);
    }
    keep.add(file);
    if (g.system === toplevel) defaultId = id;
  }
  const loaderConf =
    defaultId === null ? 'timeout 5\ndefault nixos-*\n' : s.naming === 'content-hash' && s.bootCounting ? `timeout 5\npreferred ${defaultId}\ndefault nixos-*\n` : `timeout 5\ndefault ${defaultId}\n`;
  writeWhole(join(bootDir, 'loader', 'loader.conf'), loaderConf);
  for (const f of readdirSync(dir)) if (/^nixos-.+\.conf$/.test(f) && !keep.has(f)) rmSync(join(dir, f));
  return `systemd-boot: ${keep.size} entries, default ${defaultId ?? 'nixos-*'}`;
}

function menuentry(title: string, options: string, system: string, saved: boolean): string {
  return `menuentry "${title}" ${options} {\n${saved ? '  savedefault\n' : ''}  linux ${system}/kernel systemConfig=${system} init=${system}/init loglevel=4\n  initrd ${system}/initrd\n}\n`;
}

function installGrub(bootDir: string, s: LoaderSettings, gens: Generation[], toplevel: string): string {
  const saved = s.grubDefault === 'saved';
  let cfg = '# Automatically generated.  DO NOT EDIT THIS FILE!\n';
  cfg += 'if [ -s $prefix/grubenv ]; then\n  load_env\nfi\n';
  cfg += 'if [ "${next_entry}" ]; then\n  set default="${next_entry}"\n  set next_entry=\n  save_env next_entry\n  set timeout=1\n  set boot_once=true\nelse\n';
  cfg += saved ? '  set default="${saved_entry}"\n' : `  set default=${s.grubDefault}\n`;
  cfg += '  set timeout=5\nfi\n';
  if (saved) cfg += 'function savedefault {\n  if [ -z "${boot_once}" ]; then\n    saved_entry="${chosen}"\n    save_env saved_entry\n  fi\n}\n';
  cfg += menuentry(`${s.distroName} - Default`, '--class nixos --unrestricted', toplevel, saved);
  cfg += `submenu "${s.distroName} - All configurations" --class submenu {\n`;
  for (const g of [...gens].reverse()) cfg += menuentry(`${s.distroName} - Configuration ${g.n} (${dateOf(g.link)} - ${nixosVersion(g.system)})`, '--class nixos', g.system, saved);
  cfg += '}\n';
  writeWhole(join(bootDir, 'grub', 'grub.cfg'), cfg);
  if (!existsSync(join(bootDir, 'grub', 'grubenv'))) writeEnv(join(bootDir, 'grub', 'grubenv'), new Map());
  return `grub: ${gens.length} configurations, default ${s.grubDefault}`;
}

// ---------------------------------------------------------------- GRUB's environment block

export function readEnv(file: string): Map<string, string> {
  const env = new Map<string, string>();
  if (!existsSync(file)) return env;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.startsWith('#')) continue;
    const i = line.indexOf('=');
    if (i > 0) env.set(line.slice(0, i), line.slice(i + 1));
  }
  return env;
}

function writeEnv(file: string, env: Map<string, string>): void {
  let text = '# GRUB Environment Block\n';
  for (const [k, v] of env) text += `${k}=${v}\n`;
  writeWhole(file, text + '#'.repeat(Math.max(0, 1024 - Buffer.byteLength(text))));
}

// ---------------------------------------------------------------- systemd-boot's view

interface SdEntry {
  file: string;
  id: string;
  options: string;
  title: string;
  system: string | null;
  triesLeft: number | null;
  generation: number;
}

function sdEntries(bootDir: string): SdEntry[] {
  const dir = join(bootDir, 'loader', 'entries');
  if (!existsSync(dir)) return [];
  const out: SdEntry[] = [];
  for (const file of readdirSync(dir)) {
    const m = /^(.*?)(?:\+(\d+)(?:-(\d+))?)?\.conf$/.exec(file);
    if (!m) continue;
    const text = readFileSync(join(dir, file), 'utf8');
    const key = (k: string) => new RegExp(`^${k} (.*)$`, 'm').exec(text)?.[1] ?? '';
    const options = key('options');
    out.push({ file, id: `${m[1]}.conf`, options, title: key('title'), system: /init=(\S+)\/init/.exec(options)?.[1] ?? null, triesLeft: m[2] === undefined ? null : Number(m[2]), generation: Number(/Generation (\d+)/.exec(key('version'))?.[1] ?? 0) });
  }
  // Bad entries (no tries left) last, then newest first (boot_entry_compare, reduced to what the bed needs).
  return out.sort((a, b) => Number(a.triesLeft === 0) - Number(b.triesLeft === 0) || b.generation - a.generation);
}

function fnmatch(pattern: string, id: string): boolean {
  const re = new RegExp(`^${pattern.toLowerCase().replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  return re.test(id.toLowerCase());
}

function sdFind(entries: SdEntry[], pattern: string | null): SdEntry | undefined {
  return pattern === null ? undefined : entries.find((e) => fnmatch(pattern, e.id));
}

/** config_select_default_entry: one-shot, LoaderEntryDefault, loader.conf (preferred unless bad, then default). */
function sdSelect(bootDir: string, entries: SdEntry[], oneShot: string | null): SdEntry | undefined {
  const conf = existsSync(join(bootDir, 'loader', 'loader.conf')) ? readFileSync(join(bootDir, 'loader', 'loader.conf'), 'utf8') : '';
  const value = (k: string) => new RegExp(`^${k} (.*)$`, 'm').exec(conf)?.[1]?.trim() ?? null;
  const preferred = sdFind(entries, value('preferred'));
  return sdFind(entries, oneShot) ?? sdFind(entries, efivar(bootDir, 'LoaderEntryDefault')) ?? (preferred && preferred.triesLeft !== 0 ? preferred : undefined) ?? sdFind(entries, value('default')) ?? entries[0];
}

// ---------------------------------------------------------------- GRUB's view

interface GrubItem {
  title: string;
  system: string | null;
  children: GrubItem[] | null;
}

function grubMenu(bootDir: string): GrubItem[] {
  const file = join(bootDir, 'grub', 'grub.cfg');
  const top: GrubItem[] = [];
  if (!existsSync(file)) return top;
  const stack: GrubItem[][] = [top];
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim();
    const m = /^(menuentry|submenu) "([^"]*)".*\{$/.exec(line);
    if (m) {
      const item: GrubItem = { title: m[2]!, system: null, children: m[1] === 'submenu' ? [] : null };
      stack.at(-1)!.push(item);
      stack.push(item.children ?? [item]);
      continue;
    }
    if (line === '}') {
      if (stack.length > 1) stack.pop();
      continue;
    }
    const sc = /^linux \S+ .*systemConfig=(\S+)/.exec(line);
    const cur = stack.at(-1)!;
    if (sc && cur.length === 1 && cur[0]!.children === null) cur[0]!.system = sc[1]!;
  }
  return top;
}

/** A `default`/next_entry value resolved as GRUB does: a number (top-level index) or a title path ('>' levels, '>>' a literal '>'). */
function grubResolve(menu: GrubItem[], value: string): GrubItem | undefined {
  if (/^\d+$/.test(value)) return menu[Number(value)];
  const parts = value.split(/(?<!>)>(?!>)/).map((p) => p.replaceAll('>>', '>'));
  let level: GrubItem[] | null = menu;
  let found: GrubItem | undefined;
  for (const part of parts) {
    found = level?.find((i) => i.title === part);
    if (!found) return undefined;
    level = found.children;
  }
  return found && found.children === null ? found : undefined;
}

// ---------------------------------------------------------------- the firmware step (host side)

export interface BootPick {
  system: string | null;
  entry: string | null;
  note: string;
}

/** A boot: the bootloader picks what it boots, and does what it does to its state on the way. */
export function pickBoot(bootDir: string): BootPick {
  const s = loaderSettings(bootDir);
  if (s.loader === 'systemd-boot') {
    const entries = sdEntries(bootDir);
    const oneShot = efivar(bootDir, 'LoaderEntryOneShot');
    setEfivar(bootDir, 'LoaderEntryOneShot', null);
    const e = sdSelect(bootDir, entries, oneShot);
    if (!e) return { system: null, entry: null, note: 'systemd-boot: no entry' };
    if (e.triesLeft !== null && e.triesLeft > 0) {
      // One try counted: +LEFT-DONE → +(LEFT-1)-(DONE+1).
      const m = /^(.*)\+(\d+)(?:-(\d+))?\.conf$/.exec(e.file)!;
      renameSync(join(bootDir, 'loader', 'entries', e.file), join(bootDir, 'loader', 'entries', `${m[1]}+${Number(m[2]) - 1}-${Number(m[3] ?? 0) + 1}.conf`));
    }
    const unknown = oneShot !== null && !sdFind(entries, oneShot) ? ` (one-shot ${oneShot} names no entry: ignored)` : '';
    return { system: e.system, entry: e.id, note: `systemd-boot: ${e.id}${oneShot !== null && sdFind(entries, oneShot) === e ? ' (one-shot, used once)' : ''}${unknown}` };
  }
  const envFile = join(bootDir, 'grub', 'grubenv');
  const env = readEnv(envFile);
  const menu = grubMenu(bootDir);
  const next = env.get('next_entry') ?? '';
  let chosen: string;
  let note = '';
  if (next !== '') {
    chosen = next;
    if (s.saveEnvFails) note = ' (save_env failed: next_entry stays set)';
    else {
      env.delete('next_entry');
      writeEnv(envFile, env);
    }
  } else chosen = s.grubDefault === 'saved' ? (env.get('saved_entry') ?? '0') : s.grubDefault;
  const item = grubResolve(menu, chosen) ?? menu[0];
  if (item && s.grubDefault === 'saved' && next === '' && !s.saveEnvFails) {
    // savedefault in the booted entry: the chosen entry becomes saved_entry (not on a one-shot boot).
    env.set('saved_entry', chosen);
    writeEnv(envFile, env);
  }
  return { system: item?.system ?? null, entry: chosen, note: `grub: ${chosen}${next !== '' ? ' (next_entry)' : ''}${note}` };
}

/** systemd-bless-boot: the booted entry came up, its counter is dropped ("good"). */
export function bless(bootDir: string, id: string | null): void {
  if (id === null || loaderSettings(bootDir).loader !== 'systemd-boot') return;
  const e = sdEntries(bootDir).find((x) => x.id === id && x.triesLeft !== null);
  if (e) renameSync(join(bootDir, 'loader', 'entries', e.file), join(bootDir, 'loader', 'entries', e.id));
}

/** What boots next without booting (the host's view for assertions): system and entry. */
export function nextBoot(bootDir: string): { system: string | null; entry: string | null; oneShot: string | null; defaultSystem: string | null } {
  const s = loaderSettings(bootDir);
  if (s.loader === 'systemd-boot') {
    const entries = sdEntries(bootDir);
    const oneShot = efivar(bootDir, 'LoaderEntryOneShot');
    const e = sdSelect(bootDir, entries, oneShot);
    const d = sdSelect(bootDir, entries, null);
    return { system: e?.system ?? null, entry: e?.id ?? null, oneShot, defaultSystem: d?.system ?? null };
  }
  const env = readEnv(join(bootDir, 'grub', 'grubenv'));
  const menu = grubMenu(bootDir);
  const next = env.get('next_entry') || null;
  const def = s.grubDefault === 'saved' ? (env.get('saved_entry') ?? '0') : s.grubDefault;
  const item = grubResolve(menu, next ?? def) ?? menu[0];
  const d = grubResolve(menu, def) ?? menu[0];
  return { system: item?.system ?? null, entry: next ?? def, oneShot: next, defaultSystem: d?.system ?? null };
}

// ---------------------------------------------------------------- the tools inside the machine

function bootctl(bootDir: string, args: string[]): number {
  const [verb, arg] = args;
  if (verb === 'set-oneshot' || verb === 'set-default') {
    if (arg === undefined) {
      process.stderr.write(`bootctl (bed): ${verb} needs an argument\n`);
      return 1;
    }
    setEfivar(bootDir, verb === 'set-oneshot' ? 'LoaderEntryOneShot' : 'LoaderEntryDefault', arg);
    return 0;
  }
  if (verb === 'list') {
    const entries = sdEntries(bootDir);
    const next = sdSelect(bootDir, entries, efivar(bootDir, 'LoaderEntryOneShot'));
    const json = entries.map((e) => ({ type: 'type1', source: 'esp', id: e.id, path: `/boot/loader/entries/${e.file}`, title: e.title, showTitle: e.title, options: e.options, isReported: false, ...(e.triesLeft !== null ? { triesLeft: e.triesLeft } : {}), isDefault: e === next }));
    process.stdout.write(`${JSON.stringify(json)}\n`);
    return 0;
  }
  process.stderr.write(`bootctl (bed): ${verb ?? '(none)'} is not emulated\n`);
  return 1;
}

function grubReboot(args: string[]): number {
  let bootDirectory = '/boot';
  let entry: string | null = null;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a.startsWith('--boot-directory=')) bootDirectory = a.slice('--boot-directory='.length);
    else if (a === '--boot-directory') bootDirectory = args[++i] ?? '';
    else if (a.startsWith('-')) {
      process.stderr.write(`grub-reboot: Unrecognized option '${a}'\n`);
      return 1;
    } else if (entry !== null) {
      process.stderr.write('grub-reboot: More than one menu entry?\n');
      return 1;
    } else entry = a;
  }
  if (entry === null) {
    process.stderr.write('grub-reboot: menu entry not specified.\n');
    return 1;
  }
  const file = join(bootDirectory, 'grub', 'grubenv');
  const env = readEnv(file);
  env.set('next_entry', entry);
  writeEnv(file, env);
  return 0;
}

function grubEditenv(args: string[]): number {
  const [file, verb, ...rest] = args;
  if (!file || !verb) return 1;
  const env = readEnv(file);
  if (verb === 'list') {
    for (const [k, v] of env) process.stdout.write(`${k}=${v}\n`);
    return 0;
  }
  if (verb === 'set') for (const kv of rest) env.set(kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1));
  else if (verb === 'unset') for (const k of rest) env.delete(k);
  else return 1;
  writeEnv(file, env);
  return 0;
}

/** `node bed-bootloader.js <tool> args…` inside the machine. */
export function main(argv: string[]): number {
  const [tool, ...args] = argv;
  if (tool === 'bootctl') return bootctl('/boot', args);
  if (tool === 'grub-reboot') return grubReboot(args);
  if (tool === 'grub-editenv') return grubEditenv(args);
  if (tool === 'install') {
    process.stderr.write(`${install('/boot', '/nix/var/nix/profiles', args[0]!)}\n`);
    return 0;
  }
  process.stderr.write(`bed-bootloader: unknown tool ${tool ?? '(none)'}\n`);
  return 2;
}

if (process.argv[1] && realpathSync(process.argv[1]) === realpathSync(new URL(import.meta.url).pathname)) process.exitCode = main(process.argv.slice(2));

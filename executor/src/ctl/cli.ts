/**
 * pullnix-ctl's command line: the command table (usage, options, help text), argument parsing
 * with node:util parseArgs, and the one place errors become exit codes and messages.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { isErrorCode } from '@pullnix/shared/client';
import * as cmd from './commands.ts';
import { CtlError, EXIT, usageError } from './exit.ts';
import type { ErrorOutput } from './schemas.ts';

type OptionsConfig = NonNullable<ParseArgsConfig['options']>;

interface Command {
  usage: string;
  summary: string;
  help: string;
  options: OptionsConfig;
  /** [min, max] positionals. */
  args: [number, number];
  json: boolean;
  /** Takes journalctl options after `--`. */
  passthrough?: boolean;
  run(inv: cmd.Invocation): Promise<number>;
}

const GLOBAL_OPTIONS: OptionsConfig = {
  config: { type: 'string' },
  socket: { type: 'string' },
  key: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};
const JSON_OPTION: OptionsConfig = { json: { type: 'boolean' } };

const COMMANDS: Record<string, Command> = {
  status: {
    usage: 'status [--json]',
    summary: 'what is deployed, what runs, what failed, whether the watcher is connected',
    help: `Shows, at a glance: the executor's state (idle, or deploying and in which phase), whether
deployments are paused (since when, by whom, why), the deployed commit with its subject and
times, the live system path, the remote branch head and whether it differs from the deployed
commit (drift), the last failure and its reason, commits remembered as failed, whether the
watcher is connected and when it polls next.`,
    options: {},
    args: [0, 0],
    json: true,
    run: cmd.status,
  },
  history: {
    usage: 'history [--limit N] [--before ID] [--json]',
    summary: 'deployments, newest first',
    help: `Lists deployments, newest first: id, when it started, commit, kind (deploy or rollback),
outcome (or the running phase), the system profile generation it created, the key that asked
for it, and the reason it failed.

  --limit N     show at most N deployments (1-1000, default 20)
  --before ID   only deployments older than ID (to page backwards)`,
    options: { limit: { type: 'string' }, before: { type: 'string' } },
    args: [0, 0],
    json: true,
    run: cmd.history,
  },
  sync: {
    usage: 'sync [--json]',
    summary: 'ask the watcher to poll the repository now',
    help: `Asks the connected watcher to poll the branch head now instead of at its next interval.
Refused with NO_WATCHER when no watcher is connected.`,
    options: {},
    args: [0, 0],
    json: true,
    run: cmd.sync,
  },
  'reboot-now': {
    usage: 'reboot-now [--json]',
    summary: 'boot the deployment waiting for the reboot window on trial now',
    help: `With reboot.mode = window, a deployment that needs a reboot (new kernel, initrd or kernel
modules, or an activation that answered 100) waits outside reboot.window ("reboot pending until
01:00" in status). This boots it on trial now: the new system becomes the next boot once, the
machine reboots, and after the boot the executor verifies it; it becomes the boot default only if
it passes, else the machine reboots once more into the previous system. Operators and root only.
NOT_FOUND when nothing is waiting.`,
    options: {},
    args: [0, 0],
    json: true,
    run: cmd.rebootNow,
  },
  pause: {
    usage: 'pause [--reason TEXT] [--json]',
    summary: 'refuse deployments until resume',
    help: `Refuses new deployments (a running one finishes) until \`pullnix-ctl resume\`. The pause,
its reason and who asked are recorded and shown by status; it survives executor restarts.

  --reason TEXT   why (shown by status; up to 500 characters)`,
    options: { reason: { type: 'string' } },
    args: [0, 0],
    json: true,
    run: cmd.pause,
  },
  resume: {
    usage: 'resume [--json]',
    summary: 'accept deployments again',
    help: 'Accepts deployments again after pause (also after the executor paused itself because a rollback failed).',
    options: {},
    args: [0, 0],
    json: true,
    run: cmd.resume,
  },
  rollback: {
    usage: 'rollback [--to ID] [--json]',
    summary: 'deploy an earlier successful deployment again',
    help: `Deploys the system of an earlier successful deployment again, through the whole pipeline
(activate, verify, commit; rolled back again if it fails). Waits for the outcome.
Exit 0 when it succeeded, 1 when it was refused or did not succeed.

  --to ID   the deployment to return to (see history); default: the successful deployment
            before the current one`,
    options: { to: { type: 'string' } },
    args: [0, 0],
    json: true,
    run: cmd.rollback,
  },
  retry: {
    usage: 'retry COMMIT [--json]',
    summary: 'forget that a commit failed, so it is built and deployed again',
    help: `Forgets that COMMIT failed (a build failure or a rolled-back deployment), so the watcher
builds and deploys it again when it is the branch head. COMMIT is the full hash, or an
unambiguous prefix of a commit that status lists as failed.`,
    options: {},
    args: [1, 1],
    json: true,
    run: cmd.retry,
  },
  logs: {
    usage: 'logs [-f] [-n N] [-p PRIORITY] [--since TIME] [-g PATTERN] [--unit executor|watcher|both] [-- JOURNALCTL-OPTIONS...]',
    summary: "the journal of pullnix's units (journalctl)",
    help: `Runs journalctl for pullnix-executor.service and pullnix-watcher.service (names from the
config's units). Anything after -- is passed to journalctl unchanged.

  -f, --follow          keep printing new lines
  -n, --lines N         the last N lines
  -p, --priority P      only this priority or worse: -p warning is the list of problems
  --since TIME          e.g. "1 hour ago", today, "2026-01-31 10:00"
  -g, --grep PATTERN    e.g. -g 'deploy\\.' for the deployment events
  --unit WHICH          executor, watcher or both (default)

The events and their priorities are listed in docs/events.md.`,
    options: {
      follow: { type: 'boolean', short: 'f' },
      lines: { type: 'string', short: 'n' },
      priority: { type: 'string', short: 'p' },
      since: { type: 'string' },
      grep: { type: 'string', short: 'g' },
      unit: { type: 'string' },
    },
    args: [0, 0],
    json: false,
    passthrough: true,
    run: cmd.logs,
  },
  'key create': {
    usage: 'key create [--id ID] [--out FILE] [--json]',
    summary: 'create an operator key',
    help: `Creates an Ed25519 operator key and prints its public key with the NixOS snippet that
registers it. Refuses to overwrite an existing file.

  --id ID      key id, shown in history as who asked (default: user@host)
  --out FILE   where to write the private key, mode 0600
               (default: $XDG_CONFIG_HOME/pullnix/operator.key or ~/.config/pullnix/operator.key)`,
    options: { id: { type: 'string' }, out: { type: 'string' } },
    args: [0, 0],
    json: true,
    run: cmd.keyCreate,
  },
  'key show': {
    usage: 'key show [--key FILE] [--json]',
    summary: 'print the public key and the NixOS snippet for it',
    help: `Prints the public key of the key pullnix-ctl would use (or of --key FILE) and a ready
snippet for services.pullnix.settings.operators.keys.`,
    options: {},
    args: [0, 0],
    json: true,
    run: cmd.keyShow,
  },
  'accept-watcher-key': {
    usage: 'accept-watcher-key [--json]',
    summary: "trust the key now in the watcher's watcher.pub (root, on the machine)",
    help: `The executor trusts the watcher key it pinned at the watcher's first request (in its own
keys directory), not the file the watcher's user can write: a different key in
<watcher stateDir>/watcher.pub is refused (event keys.watcher_key_changed) until this command
pins it. Run it as root when the watcher made a new key on purpose (its state directory was
wiped); if nobody did, the watcher's user is compromised: do not accept, investigate.`,
    options: {},
    args: [0, 0],
    json: true,
    run: cmd.acceptWatcherKey,
  },
  version: {
    usage: 'version [--json]',
    summary: "pullnix-ctl's version and the executor's",
    help: "Prints pullnix-ctl's version and protocol, and the running executor's version when it can be asked (exit 0 either way).",
    options: {},
    args: [0, 0],
    json: true,
    run: cmd.version,
  },
  schema: {
    usage: 'schema [NAME]',
    summary: 'the JSON Schema of a --json output',
    help: `Prints the JSON Schema of a --json output: status, history, version, key, sync, pause,
resume, retry, rollback, reboot-now, error. Without NAME, all of them. (Always JSON; --json is accepted.)`,
    options: {},
    args: [0, 1],
    json: true,
    run: cmd.schema,
  },
};

const GROUPS: Record<string, string[]> = { key: ['key create', 'key show'] };

function mainHelp(): string {
  const names = Object.keys(COMMANDS);
  const w = 'help [COMMAND]'.length;
  return `pullnix-ctl: operate pullnix, the pull-based NixOS deployment agent, over the executor's socket

usage: pullnix-ctl COMMAND [OPTIONS]

commands:
${names.map((n) => `  ${n.padEnd(w)}  ${COMMANDS[n]!.summary}`).join('\n')}
  ${'help [COMMAND]'.padEnd(w)}  this text, or a command's

options for every command:
  --config FILE   configuration (default /etc/pullnix/config.json; defaults are used if unreadable)
  --socket PATH   the executor's socket (default from the configuration: /run/pullnix/executor.sock)
  --key FILE      operator key (default: $PULLNIX_KEY, then ~/.config/pullnix/operator.key, then
                  the executor's local operator key when readable, i.e. as root)
  --json          machine-readable output (pullnix-ctl schema NAME prints its JSON Schema)
  -h, --help      help
  --version       the same as: pullnix-ctl version

exit codes: 0 ok, 1 refused or failed, 2 usage error, 3 executor unreachable,
            4 permission denied or no operator key

The events in the journal: docs/events.md; pullnix-ctl logs -p warning lists the problems.`;
}

function commandHelp(name: string): string {
  const c = COMMANDS[name]!;
  return `usage: pullnix-ctl ${c.usage}\n\n${c.summary}.\n\n${c.help}\n\nAlso: --config FILE, --socket PATH, --key FILE (see pullnix-ctl help).`;
}

/** Resolve `key create` / `key show` and single-word commands; returns the command name and the remaining argv. */
function pickCommand(argv: string[]): { name: string | null; rest: string[]; helpRequested: boolean } {
  // Leading options before the command (`pullnix-ctl --json status`) are allowed; a value-taking
  // global before the command would be mistaken for the command, so skip their values.
  let i = 0;
  const before: string[] = [];
  while (i < argv.length && argv[i]!.startsWith('-')) {
    const a = argv[i]!;
    before.push(a);
    if (['--config', '--socket', '--key'].includes(a) && i + 1 < argv.length) before.push(argv[++i]!);
    i++;
  }
  const word = argv[i];
  if (word === undefined && before.includes('--version')) return { name: 'version', rest: before.filter((a) => a !== '--version'), helpRequested: false };
  if (word === undefined) return { name: null, rest: before, helpRequested: before.includes('--help') || before.includes('-h') };
  let name = word;
  let after = argv.slice(i + 1);
  if (GROUPS[word]) {
    const sub = after[0];
    if (sub === '--help' || sub === '-h') return { name: 'help', rest: [word], helpRequested: true };
    if (sub === undefined || sub.startsWith('-')) {
      throw usageError(`${word} wants a subcommand: ${GROUPS[word].map((n) => n.split(' ')[1]).join(', ')}`, `pullnix-ctl help ${GROUPS[word][0]}`);
    }
    name = `${word} ${sub}`;
    after = after.slice(1);
  }
  return { name, rest: [...before, ...after], helpRequested: false };
}

export async function run(argv: string[], io: cmd.Io): Promise<number> {
  let json = argv.includes('--json');
  try {
    const { name, rest, helpRequested } = pickCommand(argv);
    if (name === null) {
      if (helpRequested) {
        io.out(mainHelp());
        return EXIT.ok;
      }
      io.err(mainHelp());
      return EXIT.usage;
    }
    if (name === 'help') {
      const words: string[] = [];
      for (let i = 0; i < rest.length; i++) {
        if (['--config', '--socket', '--key'].includes(rest[i]!)) i++;
        else if (!rest[i]!.startsWith('-')) words.push(rest[i]!);
      }
      const topic = words.join(' ');
      if (topic === '') io.out(mainHelp());
      else if (COMMANDS[topic]) io.out(commandHelp(topic));
      else if (GROUPS[topic]) io.out(GROUPS[topic].map(commandHelp).join('\n\n'));
      else throw usageError(`no command ${JSON.stringify(topic)}`, `commands: ${Object.keys(COMMANDS).join(', ')}`);
      return EXIT.ok;
    }
    const command = COMMANDS[name];
    if (!command) throw usageError(`unknown command ${JSON.stringify(name)}`, `commands: ${Object.keys(COMMANDS).join(', ')}; pullnix-ctl help`);
    const dashdash = rest.indexOf('--');
    const own = dashdash === -1 ? rest : rest.slice(0, dashdash);
    const passthrough = dashdash === -1 ? [] : rest.slice(dashdash + 1);
    if (passthrough.length > 0 && !command.passthrough) throw usageError(`${name} takes no arguments after --`, `usage: pullnix-ctl ${command.usage}`);
    let parsed: { values: cmd.Values; positionals: string[] };
    try {
      parsed = parseArgs({
        args: own,
        options: { ...GLOBAL_OPTIONS, ...(command.json ? JSON_OPTION : {}), ...command.options },
        allowPositionals: true,
        strict: true,
      }) as { values: cmd.Values; positionals: string[] };
    } catch (error) {
      const option = /option '([^']+)'/.exec((error as Error).message)?.[1] ?? 'OPTION';
      const hint = command.passthrough ? `journalctl options go after --, e.g. pullnix-ctl logs -- ${option} ...` : `usage: pullnix-ctl ${command.usage}`;
      throw usageError(`${name}: ${(error as Error).message.split('\n')[0]!.split('. To specify')[0]}`, hint);
    }
    if (parsed.values.help) {
      io.out(commandHelp(name));
      return EXIT.ok;
    }
    json = parsed.values.json === true;
    const [min, max] = command.args;
    if (parsed.positionals.length < min || parsed.positionals.length > max) {
      throw usageError(
        parsed.positionals.length < min ? `${name}: missing argument` : `${name}: unexpected argument ${JSON.stringify(parsed.positionals[max])}`,
        `usage: pullnix-ctl ${command.usage}`,
      );
    }
    const globals: cmd.Globals = {
      config: parsed.values.config as string | undefined,
      socket: parsed.values.socket as string | undefined,
      key: parsed.values.key as string | undefined,
      json,
    };
    return await command.run({ io, globals, values: parsed.values, positionals: parsed.positionals, rest: passthrough });
  } catch (error) {
    return reportError(error, io, json);
  }
}

function reportError(error: unknown, io: cmd.Io, json: boolean): number {
  const e =
    error instanceof CtlError
      ? error
      : new CtlError('LOCAL', EXIT.failed, `unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`, {
          hint: 'this is a bug in pullnix-ctl; please report it with the command you ran',
        });
  if (json) {
    const out: ErrorOutput = { error: { code: e.code, message: e.message, hint: e.hint }, exitCode: e.exitCode };
    io.out(JSON.stringify(out, null, 2));
  }
  // The executor's refusals carry its code; local problems speak for themselves.
  const head = isErrorCode(e.code) ? `the executor answered ${e.code}: ${e.message}` : e.message;
  const lines = [`pullnix-ctl: ${head}`];
  if (e.hint) lines.push(...e.hint.split('\n').map((l) => `  ${l}`));
  io.err(lines.join('\n'));
  return e.exitCode;
}

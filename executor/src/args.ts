/** pullnix-executor's command line. */
import { DEFAULT_CONFIG_PATH, VERSION } from '@pullnix/shared';

const USAGE = `usage: pullnix-executor [--config FILE] [--check-config]
       pullnix-executor record-activation --record FILE -- COMMAND [ARG...]
       pullnix-executor guard-handover --config FILE --deployment ID --restarts N

The pullnix executor: listens on the configured socket for signed deploy requests and
switches, verifies, commits or rolls back the system.

record-activation runs COMMAND (switch-to-configuration, inside the activation's transient
unit), passes its output through and writes its exit status to FILE (used by the executor).
guard-handover watches a self-upgrade the executor handed over to its new version, and rolls
it back if the new executor does not finish it (started by the executor, in a unit of its own).

  --config FILE   configuration file (default ${DEFAULT_CONFIG_PATH})
  --check-config  load the configuration as a start would, then exit: 0 if it loads,
                  78 (EX_CONFIG) with the problems on stderr if not
  --version       print the version and exit
  --help          print this help and exit`;

export type Args =
  | { config: string; checkOnly: boolean }
  | { record: string; command: string[] }
  | { guard: { config: string; deployment: number; restarts: number } }
  | { exit: number; out?: string; err?: string };

export function parseArgs(argv: readonly string[]): Args {
  if (argv[0] === 'record-activation') {
    const [, flag, record, sep, ...command] = argv;
    if (flag !== '--record' || !record?.startsWith('/') || sep !== '--' || command.length === 0) {
      return { exit: 2, err: `pullnix-executor: record-activation needs --record /ABSOLUTE/FILE -- COMMAND [ARG...]\n${USAGE}` };
    }
    return { record, command };
  }
  if (argv[0] === 'guard-handover') {
    const [, c, config, d, deployment, r, restarts, ...rest] = argv;
    const int = (v: string | undefined) => (v !== undefined && /^\d+$/.test(v) ? Number(v) : null);
    if (c !== '--config' || !config?.startsWith('/') || d !== '--deployment' || int(deployment) === null || r !== '--restarts' || int(restarts) === null || rest.length > 0) {
      return { exit: 2, err: `pullnix-executor: guard-handover needs --config /ABSOLUTE/FILE --deployment ID --restarts N\n${USAGE}` };
    }
    return { guard: { config, deployment: int(deployment)!, restarts: int(restarts)! } };
  }
  let config = DEFAULT_CONFIG_PATH;
  let checkOnly = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return { exit: 0, out: USAGE };
    if (arg === '--version') return { exit: 0, out: `pullnix-executor ${VERSION}` };
    if (arg === '--check-config') {
      checkOnly = true;
      continue;
    }
    if (arg === '--config') {
      const value = argv[++i];
      if (value === undefined || value === '') return { exit: 2, err: 'pullnix-executor: --config needs a file name' };
      config = value;
    } else if (arg.startsWith('--config=')) {
      config = arg.slice('--config='.length);
    } else {
      return { exit: 2, err: `pullnix-executor: unknown argument ${JSON.stringify(arg)}\n${USAGE}` };
    }
  }
  return { config, checkOnly };
}

/**
 * What every socket command needs: the settings (from the config file, or defaults when this
 * user cannot read it), an operator key (found the documented way), and a connected client
 * whose failures are already turned into messages that say what to do.
 */
import { constants, accessSync, readFileSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import {
  ConfigError,
  ConnectError,
  DEFAULT_CONFIG_PATH,
  defaultPrivateSocketPath,
  loadConfig,
  parseConfig,
  PullnixError,
  SocketClient,
  loadSigningKey,
  type Config,
  type MethodName,
  type Methods,
  type ParamsOf,
  type ResultFor,
  type SigningKey,
} from '@pullnix/shared/client';
import { CtlError, EXIT } from './exit.ts';

/** The part of the configuration pullnix-ctl uses. */
export interface CtlSettings {
  /** The socket this pullnix-ctl uses: root's own (privateSocketPath) as root, the group's otherwise; --socket overrides. */
  socketPath: string;
  stateDir: string;
  group: string;
  units: { executor: string; watcher: string };
  /** Set when the config file could not be used and defaults (or a partial read) stand in. */
  note: string | null;
}

/** The schema's defaults, taken from the schema itself so they cannot drift from it. */
function defaults(): Config {
  return parseConfig(JSON.stringify({ repository: { url: 'unused' }, build: { mode: 'flake' } }), '<defaults>');
}

function settingsOf(config: Config, note: string | null, asRoot: boolean): CtlSettings {
  return { socketPath: pickSocket(config.socketPath, config.privateSocketPath, asRoot), stateDir: config.stateDir, group: config.operators.group, units: { ...config.units }, note };
}

/**
 * Root uses its own socket, which no group member can crowd (docs/decisions.md D12); everyone
 * else the operator group's.
 */
export function pickSocket(groupPath: string, privatePath: string, asRoot: boolean): string {
  return asRoot ? privatePath : groupPath;
}

function isRoot(): boolean {
  return process.geteuid?.() === 0;
}

/**
 * An operator without read access to the config (or with a broken one) should still be able to
 * ask the executor what is going on: fall back to the defaults, keeping any of the few settings
 * pullnix-ctl needs that can still be read from the file, and say so.
 */
export function loadSettings(file: string | undefined, asRoot: boolean = isRoot()): CtlSettings {
  const path = file ?? DEFAULT_CONFIG_PATH;
  try {
    return settingsOf(loadConfig(path), null, asRoot);
  } catch (error) {
    const base = defaults();
    const problem = error instanceof ConfigError ? error.problems.join('; ') : (error as Error).message;
    let raw: Record<string, unknown> | null = null;
    try {
      const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
      if (typeof parsed === 'object' && parsed !== null) raw = parsed as Record<string, unknown>;
    } catch {
      // unreadable or not JSON: defaults only
    }
    const str = (v: unknown, re: RegExp) => (typeof v === 'string' && re.test(v) ? v : undefined);
    const obj = (v: unknown) => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {});
    const unit = /^[A-Za-z0-9@._-]+\.service$/;
    const groupPath = str(raw?.socketPath, /^\//) ?? base.socketPath;
    const privatePath = str(raw?.privateSocketPath, /^\//) ?? defaultPrivateSocketPath(groupPath);
    const settings: CtlSettings = {
      socketPath: pickSocket(groupPath, privatePath, asRoot),
      stateDir: str(raw?.stateDir, /^\//) ?? base.stateDir,
      group: str(obj(raw?.operators).group, /^[a-z_][a-z0-9_-]*$/) ?? base.operators.group,
      units: { executor: str(obj(raw?.units).executor, unit) ?? base.units.executor, watcher: str(obj(raw?.units).watcher, unit) ?? base.units.watcher },
      note: null,
    };
    settings.note = `note: config ${path} not used (${problem}); using the defaults`;
    return settings;
  }
}

export interface KeyCandidate {
  path: string;
  /** Why this path: "--key", "$PULLNIX_KEY", "user key", "local operator key". */
  source: string;
  /** A missing file here is an error (explicitly asked for), not a reason to look further. */
  explicit: boolean;
}

export function userKeyPath(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.startsWith('/') ? env.XDG_CONFIG_HOME : join(env.HOME || homedir(), '.config');
  return join(base, 'pullnix', 'operator.key');
}

export function keyCandidates(option: string | undefined, env: NodeJS.ProcessEnv, stateDir: string): KeyCandidate[] {
  if (option !== undefined) return [{ path: resolve(option), source: '--key', explicit: true }];
  if (env.PULLNIX_KEY) return [{ path: resolve(env.PULLNIX_KEY), source: '$PULLNIX_KEY', explicit: true }];
  return [
    { path: userKeyPath(env), source: 'user key', explicit: false },
    { path: join(stateDir, 'keys', 'local-operator.key'), source: 'local operator key', explicit: false },
  ];
}

export function noKeyHint(env: NodeJS.ProcessEnv): string {
  return [
    `create one: pullnix-ctl key create   (writes ${userKeyPath(env)}, mode 0600)`,
    'register it: add the snippet `pullnix-ctl key show` prints to services.pullnix.settings.operators.keys in the',
    'machine\'s configuration and deploy it; or run pullnix-ctl as root, which uses the executor\'s local operator key',
  ].join('\n');
}

export function findKey(option: string | undefined, env: NodeJS.ProcessEnv, stateDir: string): { key: SigningKey; path: string } {
  const candidates = keyCandidates(option, env, stateDir);
  for (const c of candidates) {
    try {
      accessSync(c.path, constants.R_OK);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (c.explicit) {
        throw new CtlError('NO_KEY', EXIT.denied, `cannot read the key file ${c.path} (from ${c.source}): ${code ?? String(error)}`, {
          hint: code === 'ENOENT' ? noKeyHint(env) : 'check the file\'s owner and mode (a key file is 0600, owned by its user)',
          cause: error,
        });
      }
      // The user key that exists but cannot be read is a problem to report, not to skip past.
      if (code !== 'ENOENT' && c.source === 'user key') {
        throw new CtlError('NO_KEY', EXIT.denied, `cannot read your key file ${c.path}: ${code ?? String(error)}`, { hint: 'check its owner and mode (0600, owned by you)', cause: error });
      }
      continue;
    }
    try {
      return { key: loadSigningKey(c.path), path: c.path };
    } catch (error) {
      throw new CtlError('NO_KEY', EXIT.denied, `the key file ${c.path} (${c.source}) is not usable: ${(error as Error).message}`, {
        hint: 'create a new one: pullnix-ctl key create --out FILE',
        cause: error,
      });
    }
  }
  throw new CtlError('NO_KEY', EXIT.denied, `no operator key: looked for ${candidates.map((c) => c.path).join(' and ')}`, { hint: noKeyHint(env) });
}

export interface Connection {
  request<M extends MethodName>(method: M, params: ParamsOf<Methods[M]>, options?: { timeoutMs?: number }): Promise<ResultFor<M>>;
  close(): void;
}

/** Map a failure to reach the executor to an exit code and the action that fixes it. */
export function connectFailure(error: ConnectError | Error, settings: CtlSettings): CtlError {
  const unit = settings.units.executor;
  const check = `is ${unit} running? systemctl status ${unit}; journalctl -u ${unit} -n 50`;
  if (!(error instanceof ConnectError)) {
    return new CtlError('UNREACHABLE', EXIT.unreachable, error.message, { hint: `the executor may be stuck or restarting: ${check}`, cause: error });
  }
  const path = error.path;
  switch (error.errno) {
    case 'ENOENT':
      return new CtlError('UNREACHABLE', EXIT.unreachable, `the executor's socket ${path} does not exist`, { hint: check, cause: error });
    case 'ECONNREFUSED':
      return new CtlError('UNREACHABLE', EXIT.unreachable, `nothing is listening on ${path} (a socket left behind by a stopped executor)`, { hint: check, cause: error });
    case 'EACCES':
    case 'EPERM': {
      const user = safeUserName();
      return new CtlError('PERMISSION_DENIED', EXIT.denied, `permission denied opening ${path}: only root and members of the operator group ${settings.group} may use the executor`, {
        hint: `join the group: sudo usermod -aG ${settings.group} ${user}, then log out and in again (or start a shell with: newgrp ${settings.group})`,
        cause: error,
      });
    }
    case 'ETIMEDOUT':
      return new CtlError('UNREACHABLE', EXIT.unreachable, `the executor did not accept a connection on ${path} in time`, { hint: check, cause: error });
    case 'ECONNRESET':
      return new CtlError('UNREACHABLE', EXIT.unreachable, `the executor closed the connection before answering (it may have restarted)`, {
        hint: `ask again, or: pullnix-ctl status; ${check}`,
        cause: error,
      });
    default:
      return new CtlError('UNREACHABLE', EXIT.unreachable, `cannot connect to ${path}: ${error.errno}`, { hint: check, cause: error });
  }
}

function safeUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return '$USER';
  }
}

/** What to do about each refusal the executor can give, where there is something to do. */
export function refusalHint(error: PullnixError, settings: CtlSettings): string | null {
  switch (error.code) {
    case 'UNKNOWN_KEY':
      return 'register this key: `pullnix-ctl key show` prints the snippet for services.pullnix.settings.operators.keys; deploy that configuration';
    case 'BAD_SIGNATURE':
      return 'the executor knows this key id with a different public key: compare `pullnix-ctl key show` with services.pullnix.settings.operators.keys';
    case 'FORBIDDEN':
      return 'this key is not an operator key; use an operator key (--key FILE)';
    case 'STALE':
      return "the executor restarted since this command connected (ask again), or this machine's clock and the executor's differ by more than 30 s (check timedatectl)";
    case 'PAUSED':
      return 'deployments are paused: see pullnix-ctl status, then pullnix-ctl resume';
    case 'BUSY':
      return 'a deployment is in progress: pullnix-ctl status shows it; ask again when it has finished';
    case 'KNOWN_BAD':
      return 'to try that commit again: pullnix-ctl retry COMMIT';
    case 'NO_WATCHER':
      return `is ${settings.units.watcher} running? systemctl status ${settings.units.watcher}`;
    case 'NOT_FOUND':
      return 'pullnix-ctl history lists the deployments';
    case 'UNSUPPORTED_VERSION':
    case 'UNKNOWN_METHOD':
      return 'pullnix-ctl and the executor are different versions: compare pullnix-ctl version';
    case 'INTERNAL':
      return `the executor hit an unexpected error: journalctl -u ${settings.units.executor} -p warning -n 50`;
    default:
      return null;
  }
}

export async function connect(settings: CtlSettings, key: SigningKey, connectTimeoutMs = 5000): Promise<Connection> {
  const client = new SocketClient({ path: settings.socketPath, key, connectTimeoutMs });
  try {
    await client.connect();
  } catch (error) {
    throw connectFailure(error as Error, settings);
  }
  return {
    async request(method, params, options = {}) {
      try {
        return await client.request(method, params, options);
      } catch (error) {
        if (error instanceof PullnixError) {
          throw new CtlError(error.code, EXIT.failed, error.message, { hint: refusalHint(error, settings), cause: error });
        }
        throw connectFailure(error as Error, settings);
      }
    },
    close: () => client.close(),
  };
}

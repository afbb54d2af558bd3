/**
 * The configuration file. Shape and defaults live in shared/schema/config.schema.json (the one
 * source of truth, also read by the NixOS module's generator); this file only loads it.
 */
import { Ajv, type ErrorObject } from 'ajv';
import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import schema from '../../schema/config.schema.json' with { type: 'json' };

export const DEFAULT_CONFIG_PATH = '/etc/pullnix/config.json';

export interface Config {
  repository: {
    url: string;
    branch: string;
    sshKeyFile: string | null;
    knownHostsFile: string | null;
    allowNonDescendant: boolean;
    fetchTimeoutSec: number;
  };
  build: {
    mode: 'flake' | 'classic';
    host: string | null;
    file: string;
    extraFlags: string[];
    timeoutSec: number;
    keepGcRoots: number;
  };
  poll: { intervalSec: number; jitterSec: number; maxBackoffSec: number };
  trust: TrustConfig;
  activation: 'test' | 'switch';
  verify: { timeoutSec: number; initialBackoffMs: number; attemptTimeoutSec: number };
  activationTimeoutSec: number;
  operators: { group: string; keys: { id: string; publicKey: string }[] };
  /** The operator group's socket. */
  socketPath: string;
  /** Root's own socket (resolved: never null in a loaded Config). */
  privateSocketPath: string;
  stateDir: string;
  logLevel: 'error' | 'warning' | 'info' | 'debug';
  units: { executor: string; watcher: string };
  paths: { systemProfile: string; currentSystem: string; storeDir: string; gcRootsDir: string; bootId: string };
  gates: { vulnerabilities: VulnerabilityGateConfig };
}

/** Commit signatures (docs/security.md); checked by the watcher before anything is evaluated. */
export interface TrustConfig {
  mode: 'off' | 'head' | 'all';
  since: string | null;
  allowedSigners: AllowedSigner[];
  openpgpKeys: string[];
}

/** One line of git's allowed-signers file (gpg.ssh.allowedSignersFile). */
export interface AllowedSigner {
  principal: string;
  key: string;
  validAfter: string | null;
  validBefore: string | null;
}

/** `gates.vulnerabilities` (docs/vulnerabilities.md). */
export interface VulnerabilityGateConfig {
  enable: boolean;
  command: string;
  extraFlags: string[];
  minSeverity: number;
  allow: string[];
  onNew: 'refuse' | 'warn';
  onError: 'allow' | 'refuse';
  timeoutSec: number;
}

export class ConfigError extends Error {
  readonly file: string;
  readonly problems: string[];

  constructor(file: string, problems: string[], options?: { cause?: unknown }) {
    super(`invalid configuration ${file}:\n  - ${problems.join('\n  - ')}`, options);
    this.name = 'ConfigError';
    this.file = file;
    this.problems = problems;
  }
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, allowUnionTypes: true, strict: true });
const validate = ajv.compile(schema);

/** Sections that are optional in the file but always present (with defaults) in a Config. */
const SECTIONS = ['poll', 'verify', 'operators', 'units', 'paths', 'trust', 'gates'] as const;

export function parseConfig(text: string, file = '<config>'): Config {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (cause) {
    throw new ConfigError(file, [`not valid JSON: ${(cause as Error).message}`], { cause });
  }
  if (typeof data === 'object' && data !== null && !Array.isArray(data)) {
    const obj = data as Record<string, unknown>;
    for (const section of SECTIONS) if (obj[section] === undefined) obj[section] = {};
  }
  if (!validate(data)) throw new ConfigError(file, (validate.errors ?? []).map(describeConfigError));
  const config = data as unknown as Omit<Config, 'privateSocketPath'> & { privateSocketPath: string | null };
  const privateSocketPath = config.privateSocketPath ?? defaultPrivateSocketPath(config.socketPath);
  if (privateSocketPath.length > 100) throw new ConfigError(file, [`privateSocketPath ${privateSocketPath} (derived from socketPath) is longer than 100 bytes; set privateSocketPath`]);
  if (dirname(privateSocketPath) === dirname(config.socketPath)) {
    throw new ConfigError(file, [`privateSocketPath must be in a directory of its own (0700, root only), not in ${dirname(config.socketPath)} with socketPath`]);
  }
  return { ...config, privateSocketPath };
}

/** `/run/pullnix/executor.sock` → `/run/pullnix/root/executor.sock`. */
export function defaultPrivateSocketPath(socketPath: string): string {
  return join(dirname(socketPath), 'root', basename(socketPath));
}

export function loadConfig(file: string = DEFAULT_CONFIG_PATH): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new ConfigError(file, [`cannot read: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`], { cause });
  }
  return parseConfig(text, file);
}

/** "repository.branch: must match pattern ..." — the key, then what was expected. */
export function describeConfigError(e: ErrorObject): string {
  const key = e.instancePath.replace(/^\//, '').replaceAll('/', '.') || '(top level)';
  switch (e.keyword) {
    case 'additionalProperties': {
      const extra = (e.params as { additionalProperty: string }).additionalProperty;
      return `${key === '(top level)' ? '' : `${key}.`}${extra}: unknown key (not in the schema)`;
    }
    case 'required':
      return `${key === '(top level)' ? '' : `${key}.`}${(e.params as { missingProperty: string }).missingProperty}: required key is missing`;
    case 'enum':
      return `${key}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'type':
      return `${key}: must be ${(e.params as { type: string | string[] }).type.toString().replace(',', ' or ')}`;
    default:
      return `${key}: ${e.message ?? 'is invalid'}`;
  }
}

/** Environment for every git command pullnix runs (watcher fetches, executor verification): same credentials. */
export function gitEnvironment(config: Config): Record<string, string> {
  const env: Record<string, string> = { GIT_TERMINAL_PROMPT: '0' };
  const ssh = ['ssh', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10'];
  if (config.repository.sshKeyFile) ssh.push('-i', config.repository.sshKeyFile, '-o', 'IdentitiesOnly=yes');
  if (config.repository.knownHostsFile) ssh.push('-o', `UserKnownHostsFile=${config.repository.knownHostsFile}`, '-o', 'StrictHostKeyChecking=yes');
  // GIT_SSH_COMMAND is parsed by git with shell-like splitting; quote each word so paths with spaces survive.
  env.GIT_SSH_COMMAND = ssh.map(shellQuote).join(' ');
  return env;
}

function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./=:@-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * The configuration file. Shape and defaults live in shared/schema/config.schema.json (the one
 * source of truth, also read by the NixOS module's generator); this file only loads it.
 */
import type { ErrorObject } from 'ajv';
import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { checkKinds, reservedCheckNames, validateConfig } from '../generated/config-validator.ts';
import type { Validator } from '../protocol/validators.ts';
import type { DeclaredCheckKind } from '../protocol/vocabulary.ts';

export const DEFAULT_CONFIG_PATH = '/etc/pullnix/config.json';
/** The schema's default of repository.branch. */
const DEFAULT_BRANCH = 'main';

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
  /** Rings (docs/rings.md); with a name, `branch` is resolved and repository.branch is that branch. */
  ring: RingConfig;
  trust: TrustConfig;
  source: SourceConfig;
  activation: 'test' | 'switch';
  verify: { timeoutSec: number; initialBackoffMs: number; attemptTimeoutSec: number; failedUnits: { enable: boolean; settleSec: number } };
  checks: Record<string, CheckConfig>;
  hooks: { preDeploy: HookConfig | null; onSuccess: HookConfig | null; onFailure: HookConfig | null };
  metrics: { textfileDirectory: string | null };
  activationTimeoutSec: number;
  reboot: RebootConfig;
  operators: { group: string; keys: { id: string; publicKey: string }[] };
  /** The operator group's socket. */
  socketPath: string;
  /** Root's own socket (resolved: never null in a loaded Config). */
  privateSocketPath: string;
  /** The watcher's identity, resolved (docs/decisions.md D20). */
  watcher: WatcherIdentity;
  stateDir: string;
  logLevel: 'error' | 'warning' | 'info' | 'debug';
  units: { executor: string; watcher: string };
  paths: { systemProfile: string; currentSystem: string; storeDir: string; gcRootsDir: string; bootId: string; bootedSystem: string; grubConfig: string; grubEnv: string; mountInfo: string };
  gates: { vulnerabilities: VulnerabilityGateConfig };
  report: ReportConfig;
}

/** Commit statuses at the forge (docs/report.md); the watcher posts them, the executor never reads this. */
export interface ReportConfig {
  enable: boolean;
  forge: 'github' | 'gitea';
  apiUrl: string;
  /** owner/name; required with enable. */
  repository: string | null;
  /** Read by the watcher at each post, never kept in memory longer than the request. */
  tokenFile: string | null;
  targetUrl: string | null;
  /** Refuse a commit with at least this many failure statuses from this machine's ring; null: never. */
  haltAfter: number | null;
  outboxLimit: number;
  timeoutSec: number;
}

/** `ring` (docs/rings.md). */
export interface RingConfig {
  name: string | null;
  /** Resolved: `rings/<name>` when unset; null without a ring. */
  branch: string | null;
  phases: RingPhase[];
}

/** From `afterSec` seconds after the host first saw the commit on its branch, `share` % of the ring may deploy it. */
export interface RingPhase {
  afterSec: number;
  share: number;
}

/** Deployments that need a reboot (docs/executor.md "Reboots"). */
export interface RebootConfig {
  mode: 'never' | 'window';
  /** Local HH:MM; end before start crosses midnight. */
  window: { start: string; end: string };
  bootloader: 'systemd-boot' | 'grub' | 'none';
}

/**
 * `watcher` resolved: with a user, the watcher's own state directory and socket; without one (null),
 * the executor's state directory and root's own socket, as when both ran as root.
 */
export interface WatcherIdentity {
  user: string | null;
  stateDir: string;
  socketPath: string;
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
  /** human (the default): signs source commits; builder: signs prebuilt manifest commits only. */
  role?: SignerRole;
}

export type SignerRole = 'human' | 'builder';

/** `source` (docs/prebuilt.md): where the systems come from. */
export interface SourceConfig {
  mode: 'build' | 'prebuilt';
  /** Relative to the repository root; `<host>` stands for the host name. */
  manifest: string;
  caches: string[];
  publicKeys: string[];
  requireSignedSource: boolean;
  freeSpaceMarginMiB: number;
}

/** The manifest's path for `host` (`hosts/<host>.json` → `hosts/edge-01.json`). */
export function manifestPath(source: SourceConfig, host: string): string {
  return source.manifest.replaceAll('<host>', host);
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

/** A declared check (`checks.<name>`); which fields apply depends on `type` (checked at load). */
export interface CheckConfig {
  type: DeclaredCheckKind;
  argv: string[];
  user: string | null;
  url: string | null;
  expectStatus: number | null;
  bodyPattern: string | null;
  host: string | null;
  port: number | null;
  unit: string | null;
  timeoutSec: number;
}

export interface HookConfig {
  argv: string[];
  user: string | null;
  timeoutSec: number;
}

export type HookName = keyof Config['hooks'];

/** Names the built-in checks have; a declared check may not take them (the schema's x-pullnix-reserved). */
export const BUILTIN_CHECK_NAMES: readonly string[] = reservedCheckNames;
const CHECK_NAME = /^[A-Za-z0-9_-]{1,64}$/;

type CheckField = Exclude<keyof CheckConfig, 'type' | 'timeoutSec'>;
/**
 * The fields each kind of check uses and needs, from the schema's x-pullnix-kinds (the NixOS
 * module reads the same annotation); any other field set (not at its default) is a mistake worth naming.
 */
const KINDS = checkKinds as Record<CheckConfig['type'], { uses: CheckField[]; requires: CheckField[] }>;
const CHECK_FIELDS = [...new Set(Object.values(KINDS).flatMap((k) => k.uses))];

/** What the schema cannot say: per-kind fields, URLs and patterns that parse, timeouts within verify.timeoutSec. */
export function checkProblems(config: Config): string[] {
  const problems: string[] = [];
  const { timeoutSec } = config.verify;
  for (const [name, check] of Object.entries(config.checks)) {
    const key = `checks.${name}`;
    if (!CHECK_NAME.test(name)) problems.push(`${key}: a check name is 1 to 64 letters, digits, '_' or '-'`);
    if (BUILTIN_CHECK_NAMES.includes(name)) problems.push(`${key}: '${name}' is the name of a built-in check; choose another`);
    for (const field of KINDS[check.type].requires) {
      const v = check[field];
      if (v === null || (Array.isArray(v) && v.length === 0)) problems.push(`${key}.${field}: required for a ${check.type} check${Array.isArray(v) ? ' (must not be empty)' : ''}`);
    }
    for (const field of CHECK_FIELDS) {
      const v = check[field];
      const set = Array.isArray(v) ? v.length > 0 : v !== null;
      if (set && !KINDS[check.type].uses.includes(field)) problems.push(`${key}.${field}: not used by a ${check.type} check (it uses ${KINDS[check.type].uses.join(', ')})`);
    }
    if (check.type === 'http' && check.url !== null) {
      let url: URL | null = null;
      try {
        url = new URL(check.url);
      } catch {
        problems.push(`${key}.url: ${JSON.stringify(check.url)} does not parse as a URL`);
      }
      if (url && !['http:', 'https:'].includes(url.protocol)) problems.push(`${key}.url: scheme ${url.protocol} is not fetched (http: or https:)`);
    }
    if (check.bodyPattern !== null) {
      try {
        new RegExp(check.bodyPattern);
      } catch (error) {
        problems.push(`${key}.bodyPattern: not a valid regular expression (${(error as Error).message})`);
      }
    }
    if (check.timeoutSec > timeoutSec) problems.push(`${key}.timeoutSec: ${check.timeoutSec} is longer than verify.timeoutSec (${timeoutSec}); the check could never finish an attempt`);
  }
  const source = (config as { source?: SourceConfig }).source;
  if (source?.mode === 'prebuilt') {
    if (source.caches.length === 0) problems.push('source.caches: source.mode is "prebuilt" but no binary cache is configured; the closure could be fetched from nowhere');
    if (source.publicKeys.length === 0) problems.push('source.publicKeys: source.mode is "prebuilt" but no cache key is trusted; Nix would refuse every path');
    if (source.manifest.split('/').includes('..')) problems.push(`source.manifest: ${JSON.stringify(source.manifest)} leaves the repository ('..')`);
  }
  const report = config.report as ReportConfig | undefined;
  if (report?.enable) {
    if (report.repository === null) problems.push('report.repository: required with report.enable (owner/name at the forge)');
    if (report.tokenFile === null) problems.push('report.tokenFile: required with report.enable (a file holding the forge token, readable by the watcher)');
  }
  if (report) {
    for (const key of ['apiUrl', 'targetUrl'] as const) {
      const v = report[key];
      if (v === null) continue;
      try {
        new URL(v);
      } catch {
        problems.push(`report.${key}: ${JSON.stringify(v)} does not parse as a URL`);
      }
    }
  }
  // A watcher with a user of its own runs preDeploy as that user (it cannot start units as another).
  const watcherUser = (config.watcher as { user?: string | null } | undefined)?.user ?? null;
  const preDeployUser = config.hooks?.preDeploy?.user ?? null;
  if (watcherUser !== null && preDeployUser !== null && preDeployUser !== watcherUser) {
    problems.push(`hooks.preDeploy.user: ${JSON.stringify(preDeployUser)} cannot be used: the watcher runs as ${JSON.stringify(watcherUser)} and runs preDeploy as itself (leave user unset)`);
  }
  return problems;
}

/** What the schema cannot say about `ring`: phases in order, ending at 100 %; one branch setting. */
export function ringProblems(ring: RingConfig, repositoryBranch: string): string[] {
  const problems: string[] = [];
  if (ring.name === null) {
    if (ring.branch !== null) problems.push('ring.branch: set without ring.name (a host follows a ring branch only as a member of the ring)');
    if (ring.phases.length > 0) problems.push('ring.phases: set without ring.name (a phased start is a share of a ring)');
    return problems;
  }
  // The module writes every default into the file, so the schema's default "main" means unset.
  const ringBranch = ring.branch ?? `rings/${ring.name}`;
  if (repositoryBranch !== DEFAULT_BRANCH && repositoryBranch !== ringBranch) {
    problems.push(`repository.branch: ${JSON.stringify(repositoryBranch)} with ring.name ${JSON.stringify(ring.name)}: a ring's host follows ring.branch (${ringBranch}); leave repository.branch unset, or set ring.branch`);
  }
  ring.phases.forEach((p, i) => {
    const before = ring.phases[i - 1];
    if (before && p.afterSec <= before.afterSec) problems.push(`ring.phases[${i}].afterSec: ${p.afterSec} must be later than the phase before it (${before.afterSec})`);
    if (before && p.share < before.share) problems.push(`ring.phases[${i}].share: ${p.share} is less than the phase before it (${before.share}); a share never shrinks`);
  });
  const last = ring.phases.at(-1);
  if (last && last.share !== 100) problems.push(`ring.phases: the last phase allows ${last.share} %; it must allow 100, or some hosts would never deploy`);
  return problems;
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

/**
 * The schema's validator, generated ahead of time (shared/scripts/generate-validators.ts) with
 * the options it was compiled with at run time: allErrors, useDefaults (fills in the defaults),
 * allowUnionTypes, strict. Loading ajv's compiler at every start cost each daemon several MiB.
 */
const validate = validateConfig as unknown as Validator;

/** Sections that are optional in the file but always present (with defaults) in a Config. */
const SECTIONS = ['poll', 'ring', 'verify', 'operators', 'units', 'paths', 'trust', 'source', 'gates', 'checks', 'hooks', 'metrics', 'reboot', 'watcher'] as const;

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
  const config = data as unknown as Omit<Config, 'privateSocketPath' | 'watcher'> & { privateSocketPath: string | null; watcher: { user: string | null; stateDir: string | null; socketPath: string | null } };
  // A $ref'd property gets no schema default: an absent hook is null.
  config.hooks = { preDeploy: config.hooks.preDeploy ?? null, onSuccess: config.hooks.onSuccess ?? null, onFailure: config.hooks.onFailure ?? null };
  const problems = [...checkProblems(config as unknown as Config), ...ringProblems(config.ring, config.repository.branch)];
  if (problems.length > 0) throw new ConfigError(file, problems);
  if (config.ring.name !== null) {
    config.ring.branch ??= `rings/${config.ring.name}`;
    config.repository.branch = config.ring.branch;
  }
  const privateSocketPath = config.privateSocketPath ?? defaultPrivateSocketPath(config.socketPath);
  if (privateSocketPath.length > 100) throw new ConfigError(file, [`privateSocketPath ${privateSocketPath} (derived from socketPath) is longer than 100 bytes; set privateSocketPath`]);
  if (dirname(privateSocketPath) === dirname(config.socketPath)) {
    throw new ConfigError(file, [`privateSocketPath must be in a directory of its own (0700, root only), not in ${dirname(config.socketPath)} with socketPath`]);
  }
  const watcher = resolveWatcher(config.watcher, config.stateDir, config.socketPath, privateSocketPath);
  if (watcher.user !== null) {
    const dirs = [config.stateDir, privateSocketPath, config.socketPath].map((p) => dirname(p));
    if (watcher.stateDir === config.stateDir || isWithin(watcher.stateDir, config.stateDir) || isWithin(config.stateDir, watcher.stateDir)) {
      throw new ConfigError(file, [`watcher.stateDir ${watcher.stateDir} must be apart from stateDir ${config.stateDir}: the watcher's user must not reach the executor's state`]);
    }
    if (watcher.socketPath.length > 100) throw new ConfigError(file, [`watcher.socketPath ${watcher.socketPath} (derived from socketPath) is longer than 100 bytes; set watcher.socketPath`]);
    if (dirs.slice(1).includes(dirname(watcher.socketPath))) {
      throw new ConfigError(file, [`watcher.socketPath must be in a directory of its own (0750 root:<the watcher's group>), not in ${dirname(watcher.socketPath)} with another socket`]);
    }
  }
  return { ...config, privateSocketPath, watcher };
}

function resolveWatcher(raw: { user: string | null; stateDir: string | null; socketPath: string | null }, stateDir: string, socketPath: string, privateSocketPath: string): WatcherIdentity {
  if (raw.user === null) return { user: null, stateDir: raw.stateDir ?? stateDir, socketPath: privateSocketPath };
  return {
    user: raw.user,
    stateDir: raw.stateDir ?? `/var/lib/${raw.user}`,
    socketPath: raw.socketPath ?? defaultWatcherSocketPath(socketPath),
  };
}

/**
 * `/run/pullnix/executor.sock` → `/run/pullnix-watcher/executor.sock`: beside the group's directory,
 * not in it (the watcher's user is not in the operator group, so it could not pass /run/pullnix).
 */
export function defaultWatcherSocketPath(socketPath: string): string {
  const dir = dirname(socketPath);
  return join(dirname(dir), `${basename(dir)}-watcher`, basename(socketPath));
}

function isWithin(path: string, dir: string): boolean {
  return path.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
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
    case 'pattern':
      // A check's url: the scheme is what goes wrong ("localhost:8080/health" fetches nothing).
      if (/^checks\.[^.]+\.url$/.test(key)) return `${key}: must be an http:// or https:// URL (pattern ${(e.params as { pattern: string }).pattern})`;
      return `${key}: ${e.message ?? 'is invalid'}`;
    default:
      return `${key}: ${e.message ?? 'is invalid'}`;
  }
}

/** Environment for every git command pullnix runs (watcher fetches, executor verification): same credentials. */
export function gitEnvironment(config: { repository: Pick<Config['repository'], 'sshKeyFile' | 'knownHostsFile'> }): Record<string, string> {
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

/**
 * The commands: what each one asks the executor (or does locally) and how it prints the answer.
 * The command table (name, usage, options, help) lives in cli.ts; this file only runs them.
 */
import { linkSync, mkdirSync, rmSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { DEFAULT_CONFIG_PATH, fsyncDir, generateSigningKey, isCommit, KEY_ID_PATTERN, loadConfig, lookupUser, PROTOCOL_VERSION, saveSigningKey, VERSION, type SigningKey } from '@pullnix/shared/client';
import { connect, findKey, loadSettings, userKeyPath, type Connection, type CtlSettings } from './context.ts';
import { CtlError, EXIT, usageError } from './exit.ts';
import { colourWanted, makeStyle, printable } from './format.ts';
import { renderDeployment, renderHistory, renderKey, renderStatus, renderVersion, type RenderContext } from './render.ts';
import type { KeyOutput, VersionOutput } from './schemas.ts';

/** Where a command writes and what it knows about its surroundings; process.* in main.ts, fakes in tests. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
  isTTY: boolean;
  columns: number | undefined;
  now(): number;
}

export interface Globals {
  config: string | undefined;
  socket: string | undefined;
  key: string | undefined;
  json: boolean;
}

export type Values = Record<string, string | boolean | string[] | undefined>;

export interface Invocation {
  io: Io;
  globals: Globals;
  values: Values;
  positionals: string[];
  /** Arguments after `--` (logs only). */
  rest: string[];
}

export function settingsFor(inv: Invocation): CtlSettings {
  const settings = loadSettings(inv.globals.config);
  if (inv.globals.socket !== undefined) settings.socketPath = resolve(inv.globals.socket);
  if (settings.note) inv.io.err(`${settings.note}, socket ${settings.socketPath}`);
  return settings;
}

function renderContext(inv: Invocation, settings: CtlSettings): RenderContext {
  const ctx: RenderContext = { style: makeStyle(colourWanted(inv.io.isTTY, inv.io.env)), now: inv.io.now(), settings };
  if (inv.io.isTTY && inv.io.columns !== undefined) ctx.width = inv.io.columns;
  return ctx;
}

function printJson(inv: Invocation, value: unknown): void {
  inv.io.out(JSON.stringify(value, null, 2));
}

async function withExecutor<T>(inv: Invocation, use: (conn: Connection, settings: CtlSettings) => Promise<T>): Promise<T> {
  const settings = settingsFor(inv);
  const { key } = findKey(inv.globals.key, inv.io.env, settings.stateDir);
  const conn = await connect(settings, key);
  try {
    return await use(conn, settings);
  } finally {
    conn.close();
  }
}

function intOption(value: unknown, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const text = String(value);
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) throw usageError(`${name} wants a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`);
  return Number(text);
}

export async function status(inv: Invocation): Promise<number> {
  return withExecutor(inv, async (conn, settings) => {
    const st = await conn.request('status', {});
    if (inv.globals.json) printJson(inv, st);
    else inv.io.out(renderStatus(st, renderContext(inv, settings)));
    return EXIT.ok;
  });
}

export async function history(inv: Invocation): Promise<number> {
  const limit = intOption(inv.values.limit, '--limit', 1, 1000) ?? 20;
  const before = intOption(inv.values.before, '--before', 1, Number.MAX_SAFE_INTEGER);
  return withExecutor(inv, async (conn, settings) => {
    const h = await conn.request('history', before === undefined ? { limit } : { limit, before });
    if (inv.globals.json) printJson(inv, h);
    else inv.io.out(renderHistory(h, renderContext(inv, settings)));
    return EXIT.ok;
  });
}

export async function sync(inv: Invocation): Promise<number> {
  return withExecutor(inv, async (conn) => {
    const r = await conn.request('sync', {});
    if (inv.globals.json) printJson(inv, r);
    else inv.io.out('the watcher polls now; pullnix-ctl status shows what it finds');
    return EXIT.ok;
  });
}

export async function rebootNow(inv: Invocation): Promise<number> {
  return withExecutor(inv, async (conn, settings) => {
    const r = await conn.request('reboot-now', {}, { timeoutMs: 0 });
    if (inv.globals.json) printJson(inv, r);
    else {
      inv.io.out(renderDeployment(r.deployment, renderContext(inv, settings)));
      inv.io.out(r.deployment.outcome === null ? 'the machine reboots into the new system once; it is verified after the boot (pullnix-ctl status)' : 'the trial boot could not be prepared; nothing rebooted');
    }
    return r.deployment.outcome === null ? EXIT.ok : EXIT.failed;
  });
}

export async function pause(inv: Invocation): Promise<number> {
  const reason = inv.values.reason as string | undefined;
  if (reason !== undefined && (reason.length === 0 || reason.length > 500)) throw usageError('--reason wants 1 to 500 characters');
  return withExecutor(inv, async (conn, settings) => {
    const r = await conn.request('pause', reason === undefined ? {} : { reason });
    if (inv.globals.json) printJson(inv, r);
    else {
      const ctx = renderContext(inv, settings);
      inv.io.out(printable(`paused (by ${r.paused.by})${r.paused.reason ? `: ${r.paused.reason}` : ''}`));
      inv.io.out(ctx.style.dim('deployments are refused (a running one finishes) until: pullnix-ctl resume'));
    }
    return EXIT.ok;
  });
}

export async function resume(inv: Invocation): Promise<number> {
  return withExecutor(inv, async (conn) => {
    const r = await conn.request('resume', {});
    if (inv.globals.json) printJson(inv, r);
    else inv.io.out(r.wasPaused ? 'resumed: deployments are accepted again' : 'was not paused; nothing changed');
    return EXIT.ok;
  });
}

export async function rollback(inv: Invocation): Promise<number> {
  const to = intOption(inv.values.to, '--to', 1, Number.MAX_SAFE_INTEGER);
  return withExecutor(inv, async (conn, settings) => {
    if (!inv.globals.json) {
      inv.io.err(`rolling back to ${to === undefined ? 'the previous successful deployment' : `deployment #${to}`}: the executor runs the whole pipeline (activate, verify, commit); this can take minutes`);
    }
    // No request timeout: the answer comes when the outcome is recorded, bounded by the executor's own timeouts.
    const r = await conn.request('rollback', to === undefined ? {} : { to }, { timeoutMs: 0 });
    if (inv.globals.json) printJson(inv, r);
    else inv.io.out(renderDeployment(r.deployment, renderContext(inv, settings)));
    if (r.deployment.outcome === 'succeeded') return EXIT.ok;
    // The record was printed; the exit code and a short line on stderr say it did not work.
    const reason = r.deployment.error ? `${r.deployment.error.code}: ${r.deployment.error.message}` : `outcome ${r.deployment.outcome ?? 'unknown'}`;
    inv.io.err(`pullnix-ctl: the rollback did not succeed (${reason})`);
    return EXIT.failed;
  });
}

/** Full commit from a full one, or from an unambiguous prefix of a commit the executor or watcher remembers as failed. */
export async function retry(inv: Invocation): Promise<number> {
  const given = (inv.positionals[0] ?? '').toLowerCase();
  if (!/^[0-9a-f]{4,64}$/.test(given)) throw usageError(`retry wants a commit (hex, at least 4 digits), got ${JSON.stringify(inv.positionals[0] ?? '')}`);
  return withExecutor(inv, async (conn) => {
    let commit = given;
    if (!isCommit(given)) {
      const st = await conn.request('status', {});
      const report = st.watcher.report;
      const untrusted = report?.untrusted;
      const refused = untrusted ? [untrusted.head, ...(untrusted.commit ? [untrusted.commit] : [])] : [];
      const known = new Set([...st.knownBad, ...(report?.failedBuilds ?? []), ...refused, ...(st.lastFailure ? [st.lastFailure.commit] : []), ...(report?.refusedHead ? [report.refusedHead.commit] : [])]);
      const matches = [...known].filter((c) => c.startsWith(given));
      if (matches.length !== 1) {
        throw usageError(
          matches.length === 0 ? `no failed commit starts with ${given}` : `${given} is ambiguous: ${matches.join(', ')}`,
          'give the full commit (40 or 64 hex digits); pullnix-ctl status --json lists knownBad',
        );
      }
      commit = matches[0]!;
    }
    const r = await conn.request('retry', { commit });
    if (inv.globals.json) printJson(inv, r);
    else {
      const what = r.forgotten ? `forgot that ${commit} failed` : `${commit} was not remembered as failed`;
      inv.io.out(`${what}; ${r.forwarded ? 'the watcher was told and will build it again when it is the branch head' : 'no watcher is connected: it is told when it connects, and builds it again when it is the branch head'}`);
    }
    return EXIT.ok;
  });
}

export async function version(inv: Invocation): Promise<number> {
  const out: VersionOutput = { version: VERSION, protocol: PROTOCOL_VERSION, executor: null, executorError: null };
  try {
    await withExecutor(inv, async (conn) => {
      const st = await conn.request('status', {});
      out.executor = { version: st.version, pid: st.executor.pid, startedAt: st.executor.startedAt };
    });
  } catch (error) {
    if (!(error instanceof CtlError)) throw error;
    // The client's own version is worth printing whatever the executor's state.
    out.executorError = { code: error.code, message: error.message };
  }
  if (inv.globals.json) printJson(inv, out);
  else inv.io.out(renderVersion(out));
  return EXIT.ok;
}

function keyOutput(key: SigningKey, file: string): KeyOutput {
  return { keyId: key.keyId, publicKey: key.publicKey, file, nixos: `{ id = ${JSON.stringify(key.keyId)}; publicKey = ${JSON.stringify(key.publicKey)}; }` };
}

function defaultKeyId(): string {
  let user = 'operator';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (containers): a neutral id
  }
  const id = `${user}@${hostname().split('.')[0] ?? 'host'}`.replace(/[^A-Za-z0-9._@-]/g, '-').slice(0, 64);
  return new RegExp(KEY_ID_PATTERN).test(id) ? id : 'operator';
}

export async function keyCreate(inv: Invocation): Promise<number> {
  const id = (inv.values.id as string | undefined) ?? defaultKeyId();
  if (!new RegExp(KEY_ID_PATTERN).test(id)) throw usageError(`--id ${JSON.stringify(id)}: a key id is 1-64 of A-Z a-z 0-9 . _ @ -`);
  const file = resolve((inv.values.out as string | undefined) ?? userKeyPath(inv.io.env));
  const key = generateSigningKey(id);
  const dir = dirname(file);
  const tmp = join(dir, `.${randomBytes(6).toString('hex')}.key.tmp`);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    saveSigningKey(tmp, key); // 0600, fsynced
    // link() fails if the target exists: the refusal to overwrite has no window for a race.
    linkSync(tmp, file);
    fsyncDir(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      throw new CtlError('KEY_EXISTS', EXIT.failed, `${file} already exists; not overwriting a key`, {
        hint: `show it: pullnix-ctl key show --key ${file}; or choose another file: pullnix-ctl key create --out FILE`,
      });
    }
    throw new CtlError('LOCAL', EXIT.failed, `cannot write ${file}: ${code ?? (error as Error).message}`, { hint: 'choose a writable place: --out FILE', cause: error });
  } finally {
    rmSync(tmp, { force: true });
  }
  const out = keyOutput(key, file);
  if (inv.globals.json) printJson(inv, out);
  else inv.io.out(renderKey(out, true));
  return EXIT.ok;
}

export async function keyShow(inv: Invocation): Promise<number> {
  const settings = settingsFor(inv);
  const { key, path } = findKey(inv.globals.key, inv.io.env, settings.stateDir);
  const out = keyOutput(key, path);
  if (inv.globals.json) printJson(inv, out);
  else if (path === join(settings.stateDir, 'keys', 'local-operator.key')) {
    // The executor made this key and trusts it already; its id is reserved, so registering it would be refused.
    inv.io.out(`${renderKey(out, false).split('\n').slice(0, 3).join('\n')}\n\nThis is the executor's own local operator key (root only); it is trusted without registration.\nFor a personal key: pullnix-ctl key create`);
  } else inv.io.out(renderKey(out, false));
  return EXIT.ok;
}

/**
 * accept-watcher-key (root, local): pin the key now in the watcher's `watcher.pub` as the one root
 * trusts (keys.ts). The executor reads the pin on every watcher request, so no restart is needed.
 */
export async function acceptWatcherKey(inv: Invocation): Promise<number> {
  const path = inv.globals.config ?? DEFAULT_CONFIG_PATH;
  let result: { publicKey: string; replaced: string | null; file: string };
  try {
    const config = loadConfig(path);
    if (config.watcher.user === null) throw new Error('watcher.user is not set: the watcher runs as root with a key the executor made, nothing to accept');
    const uid = lookupUser(config.watcher.user).uid;
    // The executor's key code and the logger, only for this command (start-up time: docs/benchmarks.md §5).
    const [{ createLogger }, { acceptWatcherKey: pinWatcherKey, keysDir }] = await Promise.all([import('@pullnix/shared'), import('../keys.ts')]);
    const log = createLogger({ stream: process.stderr, level: 'info' });
    const r = pinWatcherKey({ stateDir: config.watcher.stateDir, uid, keysDir: keysDir(config.stateDir), log });
    result = { ...r, file: join(config.watcher.stateDir, 'watcher.pub') };
  } catch (error) {
    throw new CtlError('LOCAL', EXIT.failed, `cannot accept the watcher's key: ${(error as Error).message}`, { hint: 'run it as root, on the machine, with the config the executor uses (--config FILE)', cause: error });
  }
  if (inv.globals.json) printJson(inv, { pinned: result.publicKey, replaced: result.replaced, file: result.file });
  else inv.io.out(`pinned the watcher key ${result.publicKey} from ${result.file}${result.replaced && result.replaced !== result.publicKey ? ` (replacing ${result.replaced})` : result.replaced ? ' (it was pinned already)' : ''}`);
  return EXIT.ok;
}

export async function schema(inv: Invocation): Promise<number> {
  // Built only for this command: ~10 ms of every other command's start-up (docs/benchmarks.md §5).
  const { OUTPUT_SCHEMAS } = await import('./schemas.ts');
  const name = inv.positionals[0];
  if (name === undefined) {
    printJson(inv, OUTPUT_SCHEMAS);
    return EXIT.ok;
  }
  if (!Object.hasOwn(OUTPUT_SCHEMAS, name)) throw usageError(`no schema named ${JSON.stringify(name)}; known: ${Object.keys(OUTPUT_SCHEMAS).join(', ')}`);
  printJson(inv, OUTPUT_SCHEMAS[name as keyof typeof OUTPUT_SCHEMAS]);
  return EXIT.ok;
}

/** journalctl for both units (or one), with the operator's extra options passed through untouched. */
export function journalctlArgv(settings: CtlSettings, inv: Pick<Invocation, 'values' | 'rest'>): string[] {
  const unit = (inv.values.unit as string | undefined) ?? 'both';
  if (!['both', 'executor', 'watcher'].includes(unit)) throw usageError(`--unit wants executor, watcher or both, got ${JSON.stringify(unit)}`);
  const argv = ['journalctl'];
  if (unit !== 'watcher') argv.push('-u', settings.units.executor);
  if (unit !== 'executor') argv.push('-u', settings.units.watcher);
  if (inv.values.follow) argv.push('--follow');
  const lines = intOption(inv.values.lines, '--lines', 0, 1_000_000);
  if (lines !== undefined) argv.push('--lines', String(lines));
  if (typeof inv.values.priority === 'string') argv.push('--priority', inv.values.priority);
  if (typeof inv.values.since === 'string') argv.push('--since', inv.values.since);
  if (typeof inv.values.grep === 'string') argv.push('--grep', inv.values.grep);
  argv.push(...inv.rest);
  return argv;
}

export async function logs(inv: Invocation): Promise<number> {
  const settings = settingsFor(inv);
  const [file, ...args] = journalctlArgv(settings, inv);
  // node:child_process (with dgram, worker_threads, ...) only for this command: start-up time (docs/benchmarks.md §5).
  const { spawn } = await import('node:child_process');
  // Ctrl-C belongs to journalctl (-f); this process only waits for it and passes its exit code on.
  const ignore = () => {};
  process.on('SIGINT', ignore);
  try {
    return await new Promise<number>((resolvePromise, reject) => {
      const child = spawn(file!, args, { stdio: 'inherit' });
      child.on('error', (error: NodeJS.ErrnoException) =>
        reject(
          new CtlError('LOCAL', EXIT.failed, `cannot run journalctl: ${error.code ?? error.message}`, {
            hint: 'pullnix logs to the systemd journal; read it with journalctl on the machine',
            cause: error,
          }),
        ),
      );
      child.on('exit', (code, signal) => resolvePromise(code ?? (signal === 'SIGINT' ? 0 : EXIT.failed)));
    });
  } finally {
    process.off('SIGINT', ignore);
  }
}

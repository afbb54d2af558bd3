/**
 * Fixtures for the watcher's tests: a stand-in `nix` (and `nix-build`) and a spy `git`, both
 * tiny executables put first on PATH; a configuration; a logger whose lines the test can read;
 * waiting for a condition instead of sleeping.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, parseConfig, parseLine, type Config, type Logger } from '@pullnix/shared';
import { ExecutorLink, watcherKeyPath } from '@pullnix/watcher';
import { REAL_GIT } from './git-remote.ts';

/**
 * The stand-in nix: records its argv (one line per call, arguments separated by \x1f), then
 * - with a file `hang` next to it: creates a half-written out-link, writes its pid to `hang.pid`
 *   and sleeps (a build to stop);
 * - with `fail` or `fail.<commit>` next to it: prints that file to stderr and exits 1;
 * - otherwise points the --out-link at a store-path-shaped name derived from the commit and
 *   exits 0. The target does not exist: the watcher only reads the link, the executor (faked in
 *   these tests) is the one that checks the closure.
 */
const STAND_IN_NIX = `#!/bin/sh
here=$(dirname "$0")
{ printf '%s' "$(basename "$0")"; for a in "$@"; do printf '\\037%s' "$a"; done; printf '\\n'; } >> "$here/nix.calls"
out=""; prev=""
for a in "$@"; do [ "$prev" = "--out-link" ] && out=$a; prev=$a; done
commit=$(basename "$out")
hash=$(printf '%s' "$commit" | tr 'eotu' 'gpvw' | cut -c1-32)
if [ -f "$here/hang" ]; then ln -sfn "/nix/store/$hash-partial" "$out"; echo $$ > "$here/hang.pid"; exec sleep 600; fi
for f in "$here/fail" "$here/fail.$commit"; do
  if [ -f "$f" ]; then cat "$f" >&2; exit 1; fi
done
echo "building '/nix/store/$hash-nixos-system.drv'..." >&2
ln -sfn "/nix/store/$hash-nixos-system-test" "$out"
`;

const SPY_GIT = (realGit: string) => `#!/bin/sh
here=$(dirname "$0")
{ for a in "$@"; do printf '%s\\037' "$a"; done; printf '\\n'; } >> "$here/git.calls"
printf '%s\\n' "\${GIT_SSH_COMMAND:-}" >> "$here/git.ssh"
exec ${realGit} "$@"
`;

export class Fixtures {
  readonly root: string;
  readonly bin: string;

  constructor() {
    this.root = mkdtempSync(join(tmpdir(), 'pullnix-watcher-'));
    this.bin = join(this.root, 'bin');
    mkdirSync(this.bin);
    for (const name of ['nix', 'nix-build']) {
      writeFileSync(join(this.bin, name), STAND_IN_NIX);
      chmodSync(join(this.bin, name), 0o755);
    }
    writeFileSync(join(this.bin, 'git'), SPY_GIT(REAL_GIT));
    chmodSync(join(this.bin, 'git'), 0o755);
  }

  /** PATH with the stand-ins first. */
  get path(): string {
    return `${this.bin}:${process.env.PATH ?? ''}`;
  }

  /** Put the stand-ins first on this process's PATH (each test file is its own process). */
  installOnPath(): void {
    process.env.PATH = this.path;
  }

  /** Each nix call: [program, ...args]. */
  nixCalls(): string[][] {
    return readCalls(join(this.bin, 'nix.calls')).map((line) => line.split('\x1f'));
  }

  /** Each git process started: its argv without "git". */
  gitCalls(): string[][] {
    return readCalls(join(this.bin, 'git.calls')).map((line) => line.split('\x1f').slice(0, -1));
  }

  /** GIT_SSH_COMMAND as each git process saw it, in the order of gitCalls(). */
  gitSshCommands(): string[] {
    return readCalls(join(this.bin, 'git.ssh'), true);
  }

  resetCalls(): void {
    rmSync(join(this.bin, 'git.ssh'), { force: true });
    rmSync(join(this.bin, 'nix.calls'), { force: true });
    rmSync(join(this.bin, 'git.calls'), { force: true });
  }

  /** Make the build of `commit` (or every build) fail with this stderr. */
  failBuild(commit: string | 'all', stderr: string): void {
    writeFileSync(join(this.bin, commit === 'all' ? 'fail' : `fail.${commit}`), stderr);
  }

  healBuild(commit: string | 'all'): void {
    rmSync(join(this.bin, commit === 'all' ? 'fail' : `fail.${commit}`), { force: true });
  }

  hangBuilds(on: boolean): void {
    if (on) writeFileSync(join(this.bin, 'hang'), '');
    else rmSync(join(this.bin, 'hang'), { force: true });
  }

  /** The pid of the hanging build, once it started. */
  hangingPid(): number | null {
    const file = join(this.bin, 'hang.pid');
    return existsSync(file) ? Number(readFileSync(file, 'utf8').trim()) : null;
  }

  newStateDir(): string {
    return mkdtempSync(join(this.root, 'state-'));
  }

  cleanup(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}

function readCalls(file: string, keepEmpty = false): string[] {
  if (!existsSync(file)) return [];
  const lines = readFileSync(file, 'utf8').split('\n');
  lines.pop();
  return keepEmpty ? lines : lines.filter((l) => l !== '');
}

/** The store-path-shaped toplevel the stand-in nix links for a commit. */
export function standInToplevel(commit: string): string {
  const hash = commit.replace(/[eotu]/g, (c) => ({ e: 'g', o: 'p', t: 'v', u: 'w' })[c]!).slice(0, 32);
  return `/nix/store/${hash}-nixos-system-test`;
}

export function watcherConfig(options: { url: string; stateDir: string; socketPath: string; extra?: Record<string, unknown>; repository?: Record<string, unknown>; build?: Record<string, unknown>; poll?: Record<string, unknown> }): Config {
  const text = JSON.stringify({
    repository: { url: options.url, branch: 'main', ...options.repository },
    build: { mode: 'flake', host: 'testhost', extraFlags: ['--max-jobs', '0'], timeoutSec: 60, keepGcRoots: 2, ...options.build },
    poll: { intervalSec: 3600, jitterSec: 0, maxBackoffSec: 2, ...options.poll },
    stateDir: options.stateDir,
    // The watcher uses root's own socket (privateSocketPath): the one the fake executor serves.
    socketPath: join(dirname(options.socketPath), 'group', basename(options.socketPath)),
    privateSocketPath: options.socketPath,
    logLevel: 'debug',
    ...options.extra,
  });
  return parseConfig(text, 'test config');
}

export interface LogLine {
  priority: number | null;
  event: string;
  fields: Record<string, string>;
}

/** A logger that keeps its lines, parsed, for assertions. */
export class CapturedLog {
  readonly lines: LogLine[] = [];
  readonly raw: string[] = [];
  readonly logger: Logger;

  constructor(options: { echo?: boolean } = {}) {
    const stream = new Writable({
      write: (chunk: Buffer, _enc, done) => {
        for (const line of chunk.toString('utf8').split('\n')) {
          if (line === '') continue;
          this.raw.push(line);
          if (options.echo || process.env.PULLNIX_TEST_ECHO === '1') process.stderr.write(`${line}\n`);
          const parsed = parseLine(line);
          if (parsed) this.lines.push(parsed);
        }
        done();
      },
    });
    this.logger = createLogger({ level: 'debug', stream });
  }

  events(name: string): LogLine[] {
    return this.lines.filter((l) => l.event === name);
  }

  count(name: string): number {
    return this.events(name).length;
  }
}

/** The watcher's end of the socket, started and subscribed; `teardowns` gets what stops it. */
export async function subscribedLink(options: { socketPath: string; stateDir: string; logger: Logger; teardowns: (() => Promise<void> | void)[] }): Promise<ExecutorLink> {
  const controller = new AbortController();
  const link = new ExecutorLink({ socketPath: options.socketPath, keyPath: watcherKeyPath(options.stateDir), logger: options.logger, pid: process.pid, version: 'test', maxBackoffMs: 1000, baseBackoffMs: 20 });
  const running = link.start(controller.signal);
  options.teardowns.push(async () => {
    controller.abort();
    await running;
  });
  await waitFor('the watcher to subscribe', () => link.connected);
  return link;
}

/**
 * Wait until `condition` holds, checking every few milliseconds. The limit is only a safety net
 * for a broken test (it fails naming what was awaited), never an assertion about speed.
 */
export async function waitFor(what: string, condition: () => boolean | Promise<boolean>, limitMs = 20_000): Promise<void> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > limitMs) throw new Error(`gave up waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

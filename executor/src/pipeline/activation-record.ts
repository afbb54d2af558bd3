/**
 * The activation's exit status, made durable by the activation itself.
 *
 * An activation runs in a transient unit that outlives the executor (systemd-run, no --pipe: its
 * output goes to the journal, never into a pipe whose reader may die). Inside that unit the
 * executor's own binary runs as a small recorder (`pullnix-executor record-activation`): it starts
 * switch-to-configuration, passes its output through to the journal, keeps the last lines, and when
 * it exits writes `{exit, signal, lines}` to a record file (write, fsync, rename; a first version
 * without `finishedAt` is written before the command starts). A restarted
 * executor reads that file: the exit status survives the executor, whatever killed it. No record
 * means the result is unknown, and an unknown result is never committed (NIXOS.md: after exit 2 and
 * 4 /run/current-system points at the new system too, so only the exit status tells).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '@pullnix/shared';

export interface ActivationRecord {
  v: 1;
  argv: string[];
  /** The exit code, or null when it was killed by a signal (or could not start). */
  exit: number | null;
  signal: string | null;
  /** Could not be started at all (ENOENT, EACCES). */
  spawnError: string | null;
  /** Its last output lines (stdout and stderr interleaved as they came). */
  lines: string[];
  startedAt: string;
  /** null: written when the command started; it never finished as far as anyone recorded. */
  finishedAt: string | null;
}

/** Lines of output kept in a record: enough for an error message and the unit summary. */
export const RECORD_LINES = 60;

export function activationRecordDir(stateDir: string): string {
  return join(stateDir, 'activations');
}

export function activationRecordPath(stateDir: string, unit: string): string {
  return join(activationRecordDir(stateDir), `${unit}.json`);
}

/** The record, or null when there is none (never written, or not a record: both mean "unknown"). */
export function readActivationRecord(path: string): ActivationRecord | null {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return null;
  }
  const r = data as Partial<ActivationRecord> | null;
  if (r === null || typeof r !== 'object' || r.v !== 1 || !(typeof r.exit === 'number' || r.exit === null) || !Array.isArray(r.lines)) return null;
  return r as ActivationRecord;
}

export function removeActivationRecord(path: string): void {
  rmSync(path, { force: true });
}

export function prepareRecordDir(stateDir: string): void {
  mkdirSync(activationRecordDir(stateDir), { recursive: true, mode: 0o700 });
}

/**
 * The recorder (runs inside the transient unit): run argv with its output passed through, write
 * the record, exit with the command's status. Every signal systemd sends to the unit reaches the
 * command too (same cgroup); the recorder itself waits for the command so the record is written.
 */
export function runRecorded(recordPath: string, argv: readonly string[]): Promise<number> {
  const startedAt = new Date().toISOString();
  const lines: string[] = [];
  const partial = { out: '', err: '' };
  const keep = (stream: 'out' | 'err', chunk: Buffer) => {
    const text = partial[stream] + chunk.toString('utf8');
    const parts = text.split('\n');
    partial[stream] = parts.pop() ?? '';
    for (const line of parts) lines.push(line);
    if (lines.length > RECORD_LINES) lines.splice(0, lines.length - RECORD_LINES);
  };
  // The journal stream may go away (journald restarted): the command must not die of that.
  process.stdout.on('error', () => {});
  process.stderr.on('error', () => {});
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => {});
  // "Started" goes on disk before the command runs: a record without finishedAt means it ran
  // and its end is unknown; no record at all means it never ran.
  const started: ActivationRecord = { v: 1, argv: [...argv], exit: null, signal: null, spawnError: null, lines: [], startedAt, finishedAt: null };
  writeFileAtomic(recordPath, `${JSON.stringify(started)}\n`);
  return new Promise((resolve) => {
    const [file, ...args] = argv;
    const child = spawn(file!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (c: Buffer) => {
      process.stdout.write(c);
      keep('out', c);
    });
    child.stderr.on('data', (c: Buffer) => {
      process.stderr.write(c);
      keep('err', c);
    });
    let spawnError: string | null = null;
    child.on('error', (error: NodeJS.ErrnoException) => {
      spawnError = error.code ?? error.message;
      // A command that never started emits no 'close' on every Node version: close it here.
      if (child.pid === undefined) child.emit('close', null, null);
    });
    let done = false;
    child.on('close', (code, signal) => {
      if (done) return;
      done = true;
      for (const rest of [partial.out, partial.err]) if (rest !== '') lines.push(rest);
      const record: ActivationRecord = {
        v: 1,
        argv: [...argv],
        exit: spawnError !== null ? null : code,
        signal: signal ?? null,
        spawnError,
        lines: lines.slice(-RECORD_LINES),
        startedAt,
        finishedAt: new Date().toISOString(),
      };
      let status = code ?? (signal ? 128 + 15 : 1);
      try {
        writeFileAtomic(recordPath, `${JSON.stringify(record)}\n`);
      } catch (error) {
        // No record is "unknown" for the executor, which then rolls back: say why in the journal.
        process.stderr.write(`pullnix-executor record-activation: cannot write ${recordPath}: ${(error as Error).message}\n`);
        if (status === 0) status = 1;
      }
      resolve(status);
    });
  });
}

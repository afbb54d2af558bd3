/**
 * Durable file writes: write a temporary file in the same directory, fsync it, rename it over
 * the target, fsync the directory. A crash leaves either the old or the new file, never half.
 *
 * `write(2)` may write fewer bytes than asked (a full disk, a quota): every byte is written or
 * the write fails with an error that names the file, and what was there before stays as it was
 * (the temporary file is removed; an append is truncated back to where it started).
 */
import { closeSync, fchmodSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync, type PathLike } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** A durable write that did not happen; `code` is the system error's (ENOSPC, EDQUOT, EIO, ...). */
export class DurableWriteError extends Error {
  readonly path: string;
  readonly code: string;

  constructor(path: string, what: string, cause: unknown) {
    const code = (cause as NodeJS.ErrnoException | undefined)?.code ?? 'EIO';
    super(`cannot write ${path}: ${(cause as Error | undefined)?.message ?? String(cause)}; ${what}`, { cause });
    this.name = 'DurableWriteError';
    this.path = path;
    this.code = code;
  }
}

export function writeFileAtomic(path: string, data: string, options: { mode?: number } = {}): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let fd: number;
  try {
    fd = openSync(tmp, 'wx', options.mode ?? 0o600);
  } catch (error) {
    throw new DurableWriteError(path, 'the file was not changed', error);
  }
  try {
    // The mode asked for, whatever the process's umask (UMask=0077 would make 0644 a 0600).
    if (options.mode !== undefined) fchmodSync(fd, options.mode);
    writeAll(fd, Buffer.from(data, 'utf8'));
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw new DurableWriteError(path, 'the file was not changed', error);
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (error) {
    rmSync(tmp, { force: true });
    throw new DurableWriteError(path, 'the file was not changed', error);
  }
  fsyncDir(dir);
}

export function fsyncDir(dir: PathLike): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Append one line and fsync: the append-only journal primitive (history.jsonl). A failed append
 * is cut off again, so a later line is never glued to half of this one. A file that does not end
 * in a newline (a crash in the middle of an earlier append) gets one first, for the same reason.
 */
export function appendLineDurable(path: string, line: string, mode = 0o600): void {
  if (line.includes('\n')) throw new Error('appendLineDurable: a line must not contain a newline');
  let fd: number;
  try {
    fd = openSync(path, 'a+', mode);
  } catch (error) {
    throw new DurableWriteError(path, 'nothing was appended', error);
  }
  let size = 0;
  try {
    size = fstatSync(fd).size;
    const lead = size > 0 && !endsWithNewline(fd, size) ? '\n' : '';
    writeAll(fd, Buffer.from(`${lead}${line}\n`, 'utf8'));
    fsyncSync(fd);
  } catch (error) {
    let what = `the append was cut off again (back to ${size} bytes)`;
    try {
      ftruncateSync(fd, size);
      fsyncSync(fd);
    } catch (truncateError) {
      what = `cutting the partial line off again failed too (${(truncateError as Error).message}); the next start sets the damaged file aside`;
    }
    throw new DurableWriteError(path, what, error);
  } finally {
    closeSync(fd);
  }
}

/** write(2) until every byte is written; a short write is retried, so the error that stopped it surfaces. */
function writeAll(fd: number, buffer: Buffer): void {
  let offset = 0;
  while (offset < buffer.length) {
    const n = writeSync(fd, buffer, offset, buffer.length - offset);
    if (n <= 0) throw Object.assign(new Error(`write returned ${n} after ${offset} of ${buffer.length} bytes`), { code: 'EIO' });
    offset += n;
  }
}

function endsWithNewline(fd: number, size: number): boolean {
  const last = Buffer.alloc(1);
  return readSync(fd, last, 0, 1, size - 1) === 1 && last[0] === 0x0a;
}

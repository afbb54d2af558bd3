#!/usr/bin/env node
/** pullnix-ctl: the operator's client of the executor socket. See `pullnix-ctl help` and docs/cli.md. */
import { enableCompileCache } from 'node:module';
import { compileCacheDir } from './compile-cache.ts';

// Before anything else is loaded: V8's code for pullnix-ctl's modules, kept between runs, so a
// command does not compile them again (docs/benchmarks.md §5). Only in a directory that is this
// user's alone; without one, no cache.
const cacheDir = compileCacheDir();
if (cacheDir !== null) enableCompileCache(cacheDir);
const { run } = await import('./cli.ts');

function write(stream: NodeJS.WriteStream, text: string): void {
  stream.write(`${text}\n`);
}

// `pullnix-ctl history | head -1`: the reader left; stop quietly instead of dying on EPIPE.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

const code = await run(process.argv.slice(2), {
  out: (text) => write(process.stdout, text),
  err: (text) => write(process.stderr, text),
  env: process.env,
  isTTY: process.stdout.isTTY === true,
  columns: process.stdout.columns,
  now: () => Date.now(),
});
// node-ipc can leave timers behind; exit explicitly, but only once the output is flushed.
process.exitCode = code;
let pending = 2;
const done = () => {
  if (--pending === 0) process.exit(code);
};
process.stdout.write('', done);
process.stderr.write('', done);

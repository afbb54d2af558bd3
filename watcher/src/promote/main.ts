#!/usr/bin/env node
/** pullnix-promote: moves ring branches forward when the ring before is healthy (docs/rings.md). */
import { createLogger } from '@pullnix/shared';
import { run } from './cli.ts';

// Events go to stderr (a CI log keeps them); stdout is the status or the round's result.
const code = await run(process.argv.slice(2), {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  logger: createLogger({ stream: process.stderr }),
  now: () => Date.now(),
});
process.exitCode = code;

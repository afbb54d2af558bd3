/**
 * Preload (`node --import`) for the tests that check what a daemon loads: with
 * PULLNIX_MODULE_LOG set, it records every module Node resolves, by import and by require()
 * alike, and writes their URLs, one a line, to that file when the process exits.
 */
import { writeFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

const out = process.env.PULLNIX_MODULE_LOG;
if (out) {
  const urls = new Set<string>();
  registerHooks({
    resolve(specifier, context, next) {
      const resolved = next(specifier, context);
      urls.add(resolved.url);
      return resolved;
    },
  });
  process.on('exit', () => writeFileSync(out, [...urls].join('\n') + '\n'));
}

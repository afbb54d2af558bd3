/** The version pullnix reports (shared/src/version.ts) is the one its packages carry. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { VERSION } from '../src/version.ts';

test('VERSION equals the version of package.json and of each workspace package', () => {
  const root = new URL('../../../', import.meta.url);
  for (const p of ['package.json', 'shared/package.json', 'executor/package.json', 'watcher/package.json']) {
    const version = (JSON.parse(readFileSync(new URL(p, root), 'utf8')) as { version: string }).version;
    assert.equal(VERSION, version, `${p} says ${version}, shared/src/version.ts ${VERSION}`);
  }
});

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger, formatLine, parseLine } from '../src/index.ts';

describe('logger', () => {
  it('prefixes the syslog priority of the event and writes key=value fields', () => {
    assert.equal(formatLine('deploy.rolled_back', { deployment: 7, commit: 'abc', reason: 'git unreachable' }), '<4>deploy.rolled_back deployment=7 commit=abc reason="git unreachable"');
    assert.equal(formatLine('build.failed', { error: 'line1\nline2' }), '<3>build.failed error="line1\\nline2"');
    assert.equal(formatLine('deploy.accepted', { previous: null }), '<6>deploy.accepted previous=-');
  });

  it('parses its own lines back', () => {
    const line = formatLine('request.refused', { code: 'BAD_SIGNATURE', reason: 'sig "x" = bad', key: 'alice' });
    assert.deepEqual(parseLine(line), { priority: 4, event: 'request.refused', fields: { code: 'BAD_SIGNATURE', reason: 'sig "x" = bad', key: 'alice' } });
  });

  it('filters by level through winston', async () => {
    const stream = new PassThrough();
    const chunks: string[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c.toString()));
    const log = createLogger({ level: 'info', stream }).child({ deployment: 3 });
    log.event('command.run', { argv: 'nix build' }); // debug: filtered
    log.event('deploy.accepted', { commit: 'abc' });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(chunks.join('').trim().split('\n'), ['<6>deploy.accepted deployment=3 commit=abc']);
  });
});

describe('what loading the package costs', () => {
  it('winston is loaded with the first logger, not with the package (pullnix-ctl makes none)', () => {
    const script = `
      const { createRequire } = await import('node:module');
      const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((f) => f.includes('/node_modules/winston/'));
      const shared = await import('@pullnix/shared');
      const before = loaded();
      shared.createLogger({ stream: new (await import('node:stream')).PassThrough() });
      console.log(JSON.stringify([before, loaded()]));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: fileURLToPath(new URL('../../..', import.meta.url)), encoding: 'utf8' });
    assert.deepEqual(JSON.parse(out), [false, true]);
  });
});

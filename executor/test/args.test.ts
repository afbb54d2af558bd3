import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseArgs } from '../src/args.ts';

describe('pullnix-executor arguments', () => {
  it('defaults to /etc/pullnix/config.json; --config FILE and --config=FILE override', () => {
    assert.deepEqual(parseArgs([]), { config: '/etc/pullnix/config.json', checkOnly: false });
    assert.deepEqual(parseArgs(['--config', '/tmp/c.json']), { config: '/tmp/c.json', checkOnly: false });
    assert.deepEqual(parseArgs(['--config=/tmp/d.json']), { config: '/tmp/d.json', checkOnly: false });
  });

  it('--check-config only loads the configuration', () => {
    assert.deepEqual(parseArgs(['--check-config', '--config', '/tmp/c.json']), { config: '/tmp/c.json', checkOnly: true });
  });

  it('names what is wrong', () => {
    assert.deepEqual(parseArgs(['--config']), { exit: 2, err: 'pullnix-executor: --config needs a file name' });
    const unknown = parseArgs(['--frobnicate']);
    assert.ok('exit' in unknown && unknown.exit === 2 && /unknown argument "--frobnicate"/.test(unknown.err ?? ''));
  });
});

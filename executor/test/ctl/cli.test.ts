import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { run } from '../../src/ctl/cli.ts';
import type { Io } from '../../src/ctl/commands.ts';

async function ctl(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (t) => out.push(t), err: (t) => err.push(t), env: {}, isTTY: false, columns: undefined, now: () => 0 };
  const code = await run(argv, io);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('ctl command line', () => {
  it('prints help on stdout with --help, and on stderr with exit 2 when no command is given', async () => {
    const help = await ctl('--help');
    assert.equal(help.code, 0);
    assert.match(help.out, /^commands:$/m);
    const none = await ctl();
    assert.equal(none.code, 2);
    assert.equal(none.out, '');
    assert.match(none.err, /usage: pullnix-ctl COMMAND/);
  });

  it('takes global options before or after the command', async () => {
    const before = await ctl('--socket', '/nonexistent/s.sock', '--json', 'schema', 'sync');
    assert.equal(before.code, 0);
    assert.equal(JSON.parse(before.out).$id, 'https://pullnix.dev/schema/ctl/sync.json');
    const afterIt = await ctl('history', '--limit', '9999', '--socket', '/x');
    assert.equal(afterIt.code, 2);
    assert.match(afterIt.err, /--limit wants a whole number from 1 to 1000, got "9999"/);
  });

  it('answers --version like the version command', async () => {
    const r = await ctl('--version', '--socket', '/nonexistent/s.sock', '--key', '/nonexistent/k.key', '--json');
    assert.equal(r.code, 0);
    const v = JSON.parse(r.out) as { version: string; executor: unknown; executorError: { code: string } };
    assert.match(v.version, /^\d+\.\d+\.\d+$/);
    assert.equal(v.executor, null);
    assert.equal(v.executorError.code, 'NO_KEY');
  });

  it('offers --json only where there is JSON to print', async () => {
    const r = await ctl('logs', '--json');
    assert.equal(r.code, 2);
    assert.match(r.err, /Unknown option '--json'/);
  });
});

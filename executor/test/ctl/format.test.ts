import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { colourWanted, duration, makeStyle, relativeTime, table } from '../../src/ctl/format.ts';
import { NOW, ago } from './fixtures.ts';

describe('ctl format', () => {
  it('says times the way people do', () => {
    assert.equal(relativeTime(ago(2), NOW), 'just now');
    assert.equal(relativeTime(ago(42), NOW), '42 s ago');
    assert.equal(relativeTime(ago(180), NOW), '3 min ago');
    assert.equal(relativeTime(ago(5 * 3600 + 100), NOW), '5 h ago');
    assert.equal(relativeTime(ago(3 * 86400), NOW), '3 days ago');
    assert.equal(relativeTime(ago(-240), NOW), 'in 4 min');
    assert.equal(relativeTime(ago(90 * 86400), NOW), '2025-12-01');
    assert.equal(relativeTime(null, NOW), '-');
    assert.equal(duration(3 * 3600_000 + 12 * 60_000), '3 h 12 min');
  });

  it('colours only on a terminal, and never with NO_COLOR', () => {
    assert.equal(colourWanted(true, {}), true);
    assert.equal(colourWanted(false, {}), false);
    assert.equal(colourWanted(undefined, {}), false);
    assert.equal(colourWanted(true, { NO_COLOR: '1' }), false);
    assert.equal(colourWanted(true, { NO_COLOR: '' }), true, 'an empty NO_COLOR does not count (no-color.org)');
    assert.equal(colourWanted(true, { TERM: 'dumb' }), false);
    assert.equal(makeStyle(true).red('x'), '\u001b[31mx\u001b[39m');
    assert.equal(makeStyle(false).red('x'), 'x');
  });

  it('aligns columns by visible width, colour or not, and cuts the last one to the terminal', () => {
    const s = makeStyle(true);
    const out = table(['ID', 'OUTCOME', 'REASON'], [['1', s.green('succeeded'), ''], ['12', s.red('rolled-back'), 'x'.repeat(100)]], makeStyle(false), 40);
    const lines = out.replace(/\u001b\[[0-9;]*m/g, '').split('\n');
    assert.equal(lines[0], 'ID  OUTCOME      REASON');
    assert.equal(lines[1], '1   succeeded');
    assert.equal(lines[2]!.length, 40);
    assert.ok(lines[2]!.endsWith('x…'));
  });
});

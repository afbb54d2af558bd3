/**
 * The state vocabularies (shared/src/protocol/vocabulary.ts) and everything that spells them out:
 * the ctl output schemas, the `report` method's params, the config schema, the history reader, the
 * metric label sets. A word added to one place and not another makes the executor set its own
 * history aside or refuse every watcher report; this test fails first.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Ajv } from 'ajv';
import {
  CHECK_KINDS,
  DECLARED_CHECK_KINDS,
  DEPLOYMENT_OUTCOMES,
  DEPLOYMENT_PHASES,
  METHODS,
  REBOOT_REASONS,
  VULNERABILITY_DECISIONS,
  WATCHER_STATES,
  type WatcherReport,
} from '@pullnix/shared';
import { OUTPUT_SCHEMAS } from '../src/ctl/schemas.ts';
import { executorMetrics } from '../src/metrics.ts';
import { HistoryStore, parseRecord } from '../src/store/history.ts';
import { emptyState } from '../src/store/state.ts';
import { busyStatus, deployment } from './ctl/fixtures.ts';

const VOCABULARIES: Record<string, readonly string[]> = {
  DEPLOYMENT_PHASES,
  DEPLOYMENT_OUTCOMES,
  CHECK_KINDS,
  DECLARED_CHECK_KINDS,
  WATCHER_STATES,
  REBOOT_REASONS,
  VULNERABILITY_DECISIONS,
};

const configSchema: unknown = JSON.parse(readFileSync(new URL('../../../shared/schema/config.schema.json', import.meta.url), 'utf8'));

/** Every `enum` in a schema, with where it is. */
function enums(schema: unknown, path = ''): { path: string; words: unknown[] }[] {
  if (typeof schema !== 'object' || schema === null) return [];
  const found: { path: string; words: unknown[] }[] = [];
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'enum' && Array.isArray(value)) found.push({ path, words: value });
    else found.push(...enums(value, `${path}/${key}`));
  }
  return found;
}

/** The vocabularies a schema's enums spell out; fails on an enum that is a vocabulary with a word missing or added. */
function vocabulariesIn(name: string, schema: unknown): string[] {
  const used = new Set<string>();
  for (const { path, words } of enums(schema)) {
    const spelled = words.filter((w) => w !== null);
    const overlapping = Object.entries(VOCABULARIES).filter(([, vocabulary]) => spelled.some((w) => vocabulary.includes(w as string)));
    if (overlapping.length === 0) continue;
    const same = overlapping.find(([, vocabulary]) => vocabulary.length === spelled.length && vocabulary.every((w) => spelled.includes(w)));
    assert.ok(same, `${name}${path}: enum ${JSON.stringify(spelled)} drifted from ${overlapping.map(([n, v]) => `${n} ${JSON.stringify(v)}`).join(' / ')}`);
    used.add(same[0]);
  }
  return [...used].sort();
}

describe('state vocabularies: one source', () => {
  it('every schema enum that spells a vocabulary spells all of it, and each schema uses the ones it should', () => {
    const record = ['CHECK_KINDS', 'DEPLOYMENT_OUTCOMES', 'DEPLOYMENT_PHASES', 'REBOOT_REASONS'];
    const withWatcher = [...record, 'VULNERABILITY_DECISIONS', 'WATCHER_STATES'].sort();
    const expected: Record<string, string[]> = { status: withWatcher, history: record, rollback: record, 'reboot-now': record };
    for (const [name, schema] of Object.entries(OUTPUT_SCHEMAS)) assert.deepEqual(vocabulariesIn(`ctl ${name}`, schema), expected[name] ?? [], `ctl ${name}`);
    for (const method of Object.values(METHODS)) {
      const want = method.name === 'report' ? ['VULNERABILITY_DECISIONS', 'WATCHER_STATES'] : [];
      assert.deepEqual(vocabulariesIn(`method ${method.name} params`, method.params), want, `method ${method.name}`);
    }
    assert.deepEqual(vocabulariesIn('config.schema.json', configSchema), ['DECLARED_CHECK_KINDS']);
  });

  it('finds drift: an enum with a word left out is named', () => {
    const drifted = { properties: { state: { type: 'string', enum: WATCHER_STATES.filter((s) => s !== 'scanning') } } };
    assert.throws(() => vocabulariesIn('drifted', drifted), /drifted\/properties\/state: enum .* drifted from WATCHER_STATES/);
  });

  it('the executor takes a watcher report in every watcher state, with every gate decision', () => {
    const validate = new Ajv({ allErrors: true, strict: true }).compile(METHODS.report.params);
    const report = busyStatus().watcher.report!;
    for (const state of WATCHER_STATES) assert.ok(validate({ ...report, state } satisfies WatcherReport), `${state}: ${JSON.stringify(validate.errors)}`);
    const scan = { commit: 'a'.repeat(40), toplevel: '/nix/store/x', liveSystem: null, at: new Date().toISOString(), minSeverity: 7, new: [], fixed: [], allowed: [], counts: { new: 0, fixed: 0, allowed: 0 }, error: null };
    for (const decision of VULNERABILITY_DECISIONS) assert.ok(validate({ ...report, vulnerabilities: { ...scan, decision } }), `${decision}: ${JSON.stringify(validate.errors)}`);
  });

  it('the history reader and the history schema take a record in every phase, with every outcome and check kind', () => {
    const validate = new Ajv({ allErrors: true, strict: true }).compile(OUTPUT_SCHEMAS.history);
    const at = new Date().toISOString();
    const records = [
      ...DEPLOYMENT_PHASES.map((phase) => deployment({ phase, phases: [{ phase, at }] })),
      ...DEPLOYMENT_OUTCOMES.map((outcome) => deployment({ phase: 'finished', outcome, finishedAt: at })),
      deployment({ checks: CHECK_KINDS.map((kind) => ({ name: kind, kind, passed: true, attempts: 1, error: null, startedAt: at, durationMs: 1 })) }),
    ];
    for (const r of records) {
      const parsed = parseRecord(JSON.stringify(r));
      assert.notEqual(typeof parsed, 'string', `${r.phase}/${r.outcome}: ${String(parsed)}`);
    }
    assert.ok(validate({ deployments: records, total: records.length }), JSON.stringify(validate.errors));
  });

  const dir = mkdtempSync(join(tmpdir(), 'pullnix-vocabulary-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('the deployments metric has one series per outcome, and counts every outcome the history holds', () => {
    const history = new HistoryStore(join(dir, 'history.jsonl'));
    DEPLOYMENT_OUTCOMES.forEach((outcome, i) => history.append(deployment({ id: i + 1, phase: 'finished', outcome, finishedAt: new Date().toISOString() })));
    const series = executorMetrics(history, emptyState())
      .split('\n')
      .filter((l) => l.startsWith('pullnix_deployments_total{'));
    assert.deepEqual(
      series,
      DEPLOYMENT_OUTCOMES.map((o) => `pullnix_deployments_total{outcome="${o}"} 1`),
    );
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { OUTPUT_SCHEMAS } from '../../src/ctl/schemas.ts';
import { busyStatus, deployment, quietStatus } from './fixtures.ts';

const ajv = new Ajv({ allErrors: true, strict: true });
const validate = (name: keyof typeof OUTPUT_SCHEMAS, value: unknown) => {
  const v = ajv.getSchema(OUTPUT_SCHEMAS[name].$id as string) ?? ajv.compile(OUTPUT_SCHEMAS[name]);
  return v(value) ? null : JSON.stringify(v.errors);
};

describe('ctl --json schemas', () => {
  it('compile under ajv strict mode, each with an $id', () => {
    for (const [name, schema] of Object.entries(OUTPUT_SCHEMAS)) {
      assert.match(String(schema.$id), new RegExp(`/ctl/${name}\\.json$`));
      assert.doesNotThrow(() => new Ajv({ strict: true }).compile(schema), name);
    }
  });

  it('accept every field the executor can fill in, and every field left null', () => {
    assert.equal(validate('status', busyStatus()), null);
    assert.equal(validate('status', quietStatus()), null);
    const refused = busyStatus();
    refused.watcher.report!.untrusted = { head: 'f'.repeat(40), commit: null, reason: 'trust-setup', message: 'x', at: new Date().toISOString() };
    assert.equal(validate('status', refused), null, 'a refused range (watcher report untrusted)');
    const done = deployment({ phase: 'finished', outcome: 'rolled-back', error: { code: 'INTERNAL', message: 'x' }, finishedAt: new Date().toISOString() });
    assert.equal(validate('history', { deployments: [deployment(), done], total: 2 }), null);
    assert.equal(validate('rollback', { deployment: done }), null);
  });

  it('reject what is not the documented shape', () => {
    const extra = { ...quietStatus(), surprise: 1 };
    assert.match(validate('status', extra) ?? '', /additionalProperties/);
    const st = busyStatus();
    (st.current as { outcome: string | null }).outcome = 'exploded';
    assert.match(validate('status', st) ?? '', /enum/);
    assert.match(validate('history', { deployments: [{ ...deployment(), commit: 'main' }], total: 1 }) ?? '', /pattern/);
    assert.match(validate('error', { error: { code: 'SOMETHING', message: 'x', hint: null }, exitCode: 1 }) ?? '', /enum/);
    assert.match(validate('error', { error: { code: 'USAGE', message: 'x', hint: null }, exitCode: 0 }) ?? '', /enum/);
  });
});

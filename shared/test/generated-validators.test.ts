/**
 * The ahead-of-time validators (shared/src/generated/, from shared/scripts/generate-validators.ts):
 * up to date with the schemas, and judging exactly as ajv compiling the same schemas at run time
 * did (same verdicts, same error objects, same defaults filled in), so every message a user or an
 * operator reads is unchanged.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import configSchema from '../schema/config.schema.json' with { type: 'json' };
import { CONFIG_AJV_OPTIONS, eagerFunctions, generateValidators, PROTOCOL_AJV_OPTIONS } from '../scripts/generate-validators.ts';
import { validateConfig } from '../src/generated/config-validator.ts';
import { envelopeSchema } from '../src/protocol/envelope.ts';
import { METHODS, type MethodName } from '../src/protocol/methods/index.ts';
import { validateEnvelope, validateParams, type Validator } from '../src/protocol/validators.ts';

const GENERATED = new URL('../../src/generated/', import.meta.url);

/** Run a validator on a deep copy (useDefaults writes into its input); its verdict, errors and the filled-in data. */
function judge(validate: Validator, data: unknown): { ok: boolean; errors: unknown; data: unknown } {
  const copy = data === undefined ? undefined : (JSON.parse(JSON.stringify(data)) as unknown);
  const ok = validate(copy);
  return { ok, errors: validate.errors ?? null, data: copy };
}

const minimal = { repository: { url: 'ssh://git@example.org/cfg.git' }, build: { mode: 'flake' } };
const CONFIGS: unknown[] = [
  minimal,
  { ...minimal, poll: {}, verify: {}, operators: {}, units: {}, paths: {}, trust: {}, gates: {}, checks: {}, hooks: {}, metrics: {} },
  { ...minimal, repository: { url: 'x', brnch: 'main' }, activation: 'boot', poll: { intervalSec: 'often' } },
  { build: { mode: 'flake' } },
  { ...minimal, repository: { url: '', branch: 'a b' }, build: { mode: 'nix', extraFlags: [1] } },
  { ...minimal, checks: { web: { type: 'http', url: 'http://localhost/', expectStatus: 99 }, 'bad name': { type: 'tcp' } } },
  { ...minimal, hooks: { preDeploy: { argv: [] }, onSuccess: null, onFailure: { argv: ['x'], extra: 1 } } },
  { ...minimal, operators: { group: 'Ops', keys: [{ id: 'a', publicKey: 'ed25519:short' }] }, logLevel: 'loud' },
  { ...minimal, gates: { vulnerabilities: { enable: 'yes', minSeverity: 11, allow: ['CVE-1'] } }, socketPath: 'relative.sock' },
  { ...minimal, trust: { mode: 'all', since: 'abc', allowedSigners: [{ principal: 'a', key: 'ssh-ed25519 AAAA', validAfter: 'soon' }] } },
  [],
  'text',
  null,
];

describe('ahead-of-time validators', () => {
  it('are up to date with the schemas (else: npm run generate)', () => {
    for (const m of generateValidators()) {
      assert.equal(readFileSync(new URL(m.name, GENERATED), 'utf8'), m.text, `shared/src/generated/${m.name} is stale: run npm run generate`);
    }
  });

  it('judge configurations as ajv compiling the schema at run time does: verdict, errors, defaults', () => {
    const compiled = new Ajv(CONFIG_AJV_OPTIONS).compile(configSchema);
    for (const config of CONFIGS) {
      assert.deepEqual(judge(validateConfig as unknown as Validator, config), judge(compiled, config), JSON.stringify(config));
    }
  });

  it('judge envelopes and every method\'s params as ajv compiling them at run time does', () => {
    const ajv = new Ajv(PROTOCOL_AJV_OPTIONS);
    const envelope = ajv.compile(envelopeSchema);
    const base = { v: 2, id: 'abcdefghijkl', method: 'status', params: {}, keyId: 'watcher', run: 'r'.repeat(22), issuedAt: 1, nonce: 'n'.repeat(22), sig: 's'.repeat(86) };
    for (const data of [base, { ...base, id: '' }, { ...base, extra: 1 }, { ...base, issuedAt: -1 }, { v: 2 }, 'x', null]) {
      assert.deepEqual(judge(validateEnvelope, data), judge(envelope, data), JSON.stringify(data));
    }
    const samples: unknown[] = [{}, { commit: 'a'.repeat(40), toplevel: '/nix/store/x' }, { commit: 'nothex' }, { limit: 0 }, { limit: 20 }, { reason: 'x'.repeat(5000) }, { extra: true }, [], null];
    for (const name of Object.keys(METHODS) as MethodName[]) {
      const compiled = ajv.compile(METHODS[name].params);
      for (const params of samples) assert.deepEqual(judge(validateParams[name], params), judge(compiled, params), `${name} ${JSON.stringify(params)}`);
    }
  });
});

describe('generated validators are compiled with their module (so they go into the compile cache)', () => {
  it('every validator is a parenthesised function, and no runtime helper is imported as an ES module', () => {
    for (const m of generateValidators()) {
      assert.doesNotMatch(m.text, /^function validate\d+\(/m, `${m.name}: a function declaration is compiled lazily, at its first call`);
      assert.match(m.text, /^const validate\d+ = \(function validate\d+\(/m, m.name);
      assert.doesNotMatch(m.text, /^import \w+ from 'ajv\//m, `${m.name}: imports a CommonJS helper as an ES module (the export lexer)`);
    }
  });

  it('eagerFunctions keeps braces in strings and moves the exports after the functions', () => {
    const code = 'export const a = validate1;\nconst x = 1;\nfunction validate1(data, {p=""}={}){if (data === "}{") { return "\\"}"; }\nreturn `{`;\n}\nfunction validate2(d){return 1;}\n';
    const out = eagerFunctions(code);
    assert.equal(out, 'const x = 1;\nconst validate1 = (function validate1(data, {p=""}={}){if (data === "}{") { return "\\"}"; }\nreturn `{`;\n});\nconst validate2 = (function validate2(d){return 1;});\nexport const a = validate1;\n');
    const mod = new Function(`${out.replace('export ', '')}; return a;`)() as (d: unknown) => unknown;
    assert.equal(mod('}{'), '"}');
    assert.equal(mod(0), '{');
  });
});

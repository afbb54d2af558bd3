/**
 * Ahead-of-time JSON Schema validators: ajv's standalone code generation, run on our own schemas
 * (the configuration file's and the protocol's), written to shared/src/generated/. The daemons
 * and pullnix-ctl import those modules and never load ajv's compiler: ajv and its ~60 modules
 * cost each process several MiB of resident memory for a validation done once at start
 * (docs/benchmarks.md, the idle machine; docs/decisions.md).
 *
 * The generated modules are committed, so `tsc -b` alone builds the project; a unit test
 * (shared/test/generated-validators.test.ts) fails when a schema changed and they were not
 * regenerated. Regenerate with `npm run generate` (tsc -b, then this script from dist/):
 *
 *   node shared/dist/scripts/generate-validators.js [--check]
 *
 * The ajv options are the ones the runtime compilation used, so the validators accept, refuse
 * and describe exactly as before (same error objects, same messages).
 */
import { Ajv, type Options } from 'ajv';
import standalone from 'ajv/dist/standalone/index.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import configSchema from '../schema/config.schema.json' with { type: 'json' };
import { envelopeSchema } from '../src/protocol/envelope.ts';
import { METHODS, paramsExportName } from '../src/protocol/methods/index.ts';

/** shared/src/generated/, from shared/scripts/ or shared/dist/scripts/. */
function generatedDir(): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const shared = here.replace(/\/dist\/scripts\/$/, '/').replace(/\/scripts\/$/, '/');
  return `${shared}src/generated/`;
}

/** The ajv options every validator is generated with (and was compiled with at run time before). */
/**
 * The config schema's own annotation keywords (no validation of their own): the rules of checks
 * that JSON Schema cannot say simply, read from the schema by the daemons (checkKinds below) and
 * by the NixOS module (nixos/schema.nix, nixos/check-definitions.nix), never written twice.
 */
export const CONFIG_ANNOTATIONS = ['x-pullnix-kinds', 'x-pullnix-reserved'];
export const CONFIG_AJV_OPTIONS: Options = { allErrors: true, useDefaults: true, allowUnionTypes: true, strict: true, keywords: CONFIG_ANNOTATIONS };
export const PROTOCOL_AJV_OPTIONS: Options = { allErrors: false, strict: true };

export interface GeneratedModule {
  /** File name in shared/src/generated/. */
  name: string;
  text: string;
}

/** Both generated modules, as they must be on disk. */
export function generateValidators(): GeneratedModule[] {
  const config = newAjv(CONFIG_AJV_OPTIONS);
  config.addSchema(configSchema as object, 'config');
  const protocol = newAjv(PROTOCOL_AJV_OPTIONS);
  protocol.addSchema(envelopeSchema, 'envelope');
  for (const [name, spec] of Object.entries(METHODS)) protocol.addSchema(spec.params as object, `params_${name}`);
  const protocolExports: Record<string, string> = { envelope: 'envelope' };
  for (const name of Object.keys(METHODS)) protocolExports[paramsExportName(name)] = `params_${name}`;
  return [
    { name: 'config-validator.ts', text: moduleText('shared/schema/config.schema.json', CONFIG_AJV_OPTIONS, standaloneCode(config, { validateConfig: 'config' }) + checkAnnotations()) },
    {
      name: 'protocol-validators.ts',
      text: moduleText('envelopeSchema (shared/src/protocol/envelope.ts) and every method\'s params (shared/src/protocol/methods/)', PROTOCOL_AJV_OPTIONS, standaloneCode(protocol, protocolExports)),
    },
  ];
}

/** The schema's check annotations as constants of the generated module (config.ts reads them). */
function checkAnnotations(): string {
  const checks = (configSchema as { properties: { checks: { 'x-pullnix-reserved': unknown; additionalProperties: { 'x-pullnix-kinds': unknown } } } }).properties.checks;
  return `\nexport const checkKinds = ${JSON.stringify(checks.additionalProperties['x-pullnix-kinds'])};\nexport const reservedCheckNames = ${JSON.stringify(checks['x-pullnix-reserved'])};\n`;
}

/** ajv's standalone code generator (a CommonJS module: its function is the `default` of its exports). */
const standaloneCode = standalone.default;

function newAjv(options: Options): Ajv {
  // lines: one statement per line, so a schema change shows as a readable diff.
  return new Ajv({ ...options, code: { source: true, esm: true, lines: true } });
}

/**
 * ajv's ESM output still `require`s its small runtime helpers (ucs2length for minLength and
 * maxLength, ...); an ES module has no `require`, so each becomes a `require` made with
 * `createRequire`: imported as an ES module, a CommonJS file goes through Node's CommonJS export
 * lexer, ~5 ms of every pullnix-ctl run (docs/benchmarks.md §5).
 */
function moduleText(from: string, options: Options, code: string): string {
  const imports = new Map<string, string>();
  const body = code
    .replace(/^"use strict";\n?/, '')
    .replace(/require\("(ajv\/dist\/runtime\/[a-z0-9_]+)"\)/g, (_m, path: string) => {
      const local = `ajvRuntime_${path.split('/').pop()!}`;
      imports.set(local, `${path}.js`);
      return local;
    });
  if (/\brequire\(/.test(body.replace(/\bajvRuntime_[a-z0-9_]+/g, ''))) throw new Error(`generated code for ${from} still calls require(): ${/.*\brequire\(.*/.exec(body)?.[0]}`);
  const header = [
    '// @ts-nocheck',
    `// Generated by shared/scripts/generate-validators.ts (ajv standalone code) from ${from},`,
    `// ajv options ${JSON.stringify(options)}. Do not edit: \`npm run generate\` rewrites it, and a test fails when it is stale.`,
    ...(imports.size > 0 ? ["import { createRequire } from 'node:module';", 'const require = createRequire(import.meta.url);'] : []),
    ...[...imports].map(([local, path]) => `const ${local} = require('${path}');`),
  ];
  return `${header.join('\n')}\n${eagerFunctions(body).trimEnd()}\n`;
}

/**
 * Each top-level `function validateN(...) {...}` as `const validateN = (function validateN(...) {...});`,
 * and the `export const X = validateN;` lines moved after them (a const is not hoisted). V8 compiles
 * a parenthesised function with its module instead of at its first call, so its code goes into
 * Node's module compile cache: pullnix-ctl, which keeps one (ctl/compile-cache.ts), no longer
 * compiles the ~200 KB config validator on every run (it was ~20 ms of each run on a quiet
 * machine; docs/benchmarks.md §5). A daemon compiles it once at start either way.
 */
export function eagerFunctions(code: string): string {
  const exports: string[] = [];
  let rest = code.replace(/^export const \w+ = validate\d+;\n/gm, (line) => {
    exports.push(line);
    return '';
  });
  let out = '';
  for (let start = rest.search(/^function validate\d+\(/m); start !== -1; start = rest.search(/^function validate\d+\(/m)) {
    const end = closingBrace(rest, rest.indexOf('{', rest.indexOf(')', start)));
    const name = /^function (validate\d+)/.exec(rest.slice(start))![1];
    out += `${rest.slice(0, start)}const ${name} = (${rest.slice(start, end + 1)});`;
    rest = rest.slice(end + 1);
  }
  return `${out}${rest.trimEnd()}\n${exports.join('')}`;
}

/** The index of the brace closing the one at `open`, skipping string literals (ajv's code has no regex literals or comments). */
function closingBrace(code: string, open: number): number {
  let depth = 0;
  for (let i = open; i < code.length; i++) {
    const c = code[i];
    if (c === '"' || c === "'" || c === '`') {
      for (i++; i < code.length && code[i] !== c; i++) if (code[i] === '\\') i++;
    } else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return i;
  }
  throw new Error('generated code: unbalanced braces');
}

/** Write the modules (or, with check, only say which are stale). Returns the stale or rewritten names. */
export function writeValidators(check: boolean): string[] {
  const dir = generatedDir();
  const changed: string[] = [];
  for (const m of generateValidators()) {
    let current: string | null = null;
    try {
      current = readFileSync(dir + m.name, 'utf8');
    } catch {
      current = null;
    }
    if (current === m.text) continue;
    changed.push(m.name);
    if (!check) writeFileSync(dir + m.name, m.text);
  }
  return changed;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const check = process.argv.includes('--check');
  const changed = writeValidators(check);
  if (check && changed.length > 0) {
    process.stderr.write(`stale generated validators: ${changed.join(', ')} (run npm run generate)\n`);
    process.exit(1);
  }
  process.stdout.write(changed.length === 0 ? 'generated validators are up to date\n' : `${check ? 'stale' : 'wrote'}: ${changed.map((n) => `shared/src/generated/${n}`).join(', ')}\n`);
}

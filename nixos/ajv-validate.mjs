// Validates configuration files the NixOS module writes with ajv and the daemons' schema
// (shared/schema/config.schema.json, compiled with the options shared/src/config uses), so the
// Nix-side validator (nixos/schema.nix) cannot drift from the daemons' unnoticed.
//   node nixos/ajv-validate.mjs FILE...           each FILE is one config.json
//   node nixos/ajv-validate.mjs --cases FILE      FILE is { "<case>": <config>, ... }
// Prints "ok   <name>" or "FAIL <name> <errors>" per config; exits 1 if any is rejected.
// Run from the repository root (ajv is resolved from its node_modules).
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';

const require = createRequire(process.cwd() + '/package.json');
const { Ajv } = require('ajv');
const schema = JSON.parse(readFileSync('shared/schema/config.schema.json', 'utf8'));
// The schema's annotation keywords (x-…, shared/scripts/generate-validators.ts CONFIG_ANNOTATIONS) validate nothing themselves.
const keywords = [...new Set(JSON.stringify(schema).match(/"x-pullnix-[a-z-]+"(?=:)/g).map((k) => JSON.parse(k)))];
const validate = new Ajv({ allErrors: true, useDefaults: true, allowUnionTypes: true, strict: true, keywords }).compile(schema);

const args = process.argv.slice(2);
const configs =
  args[0] === '--cases'
    ? Object.entries(JSON.parse(readFileSync(args[1], 'utf8'))).map(([name, config]) => ({ name: `config.json of case ${name}`, config }))
    : args.map((file) => ({ name: file, config: JSON.parse(readFileSync(file, 'utf8')) }));

let bad = 0;
for (const { name, config } of configs) {
  const ok = validate(config);
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${ok ? '' : ' ' + JSON.stringify(validate.errors)}`);
  if (!ok) bad++;
}
if (configs.length === 0) {
  console.log('FAIL no config to validate');
  bad++;
}
process.exit(bad ? 1 : 0);

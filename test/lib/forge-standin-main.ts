/**
 * The forge stand-in as a process (the test bed runs it inside the machine, which has only `lo`):
 *   node forge-standin-main.js --kind github|gitea --port N --token-file F --store F
 * Statuses are kept in the store file, so a restart (or the machine's power cut) loses none.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ForgeStandIn } from './forge-standin.ts';

const { values } = parseArgs({ options: { kind: { type: 'string' }, port: { type: 'string' }, 'token-file': { type: 'string' }, store: { type: 'string' } } });
const kind = values.kind === 'gitea' ? 'gitea' : 'github';
const forge = new ForgeStandIn(kind, readFileSync(values['token-file']!, 'utf8').trim(), { store: values.store! });
await forge.start(Number(values.port));
process.stdout.write(`forge stand-in (${kind}) on ${forge.apiUrl}\n`);
process.on('SIGTERM', () => void forge.stop().then(() => process.exit(0)));

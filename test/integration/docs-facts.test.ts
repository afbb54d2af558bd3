/**
 * The documentation's facts, checked against the one source each comes from (issue 26): the
 * tables of paths, owners and modes (docs/architecture.md, docs/protocol.md) and the same claims
 * in prose, against nixos/units.nix (evaluated with nix-instantiate), nixos/module.nix and the
 * code's constants; every pullnix path and unit name the docs name exists in those sources; the
 * socket paths against shared's config resolution (the schema's descriptions included); every
 * JSON config example against the daemons' own validator; every example `pullnix-ctl` output is
 * marked for regeneration on the bed (test/system/16-first-hour.test.ts).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DEFAULT_CONFIG_PATH, defaultPrivateSocketPath, defaultWatcherSocketPath, parseConfig, parsePromoteConfig, parseRingsFile } from '@pullnix/shared';
import { markedBlocks, parseConsole } from '../lib/doc-blocks.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const read = (f: string) => readFileSync(join(ROOT, f), 'utf8');
const DOCS = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const schema = JSON.parse(read('shared/schema/config.schema.json')) as { properties: Record<string, { default?: unknown; properties?: Record<string, { default?: unknown; description?: string }> }> };
const SOCKET = schema.properties.socketPath!.default as string;
const GROUP = schema.properties.operators!.properties!.group!.default as string;

type Unit = { serviceConfig: Record<string, unknown> };
function units(): Record<string, Unit> {
  const expr = `import ${join(ROOT, 'nixos/units.nix')} { executorExec = "e"; watcherExec = "w"; configFile = "${DEFAULT_CONFIG_PATH}"; }`;
  const out = execFileSync('nix-instantiate', ['--eval', '--strict', '--json', '-E', expr], {
    encoding: 'utf8',
    env: { ...process.env, NIX_CONFIG: 'build-users-group =\nsubstituters =\nsandbox = false' },
  });
  return JSON.parse(out) as Record<string, Unit>;
}

/** The capture of `re` in a source file: a mode like 0o700 or "0700" → "0700". */
function modeIn(file: string, re: RegExp): string {
  const m = re.exec(read(file));
  assert.ok(m?.[1], `${file} no longer matches ${re}: the fact's source moved; update this test`);
  return m[1].padStart(4, '0');
}

interface Fact {
  mode: string | null;
  owner: string | null;
  group?: string;
  source: string;
}

function facts(): Map<string, Fact> {
  const u = units();
  const exec = u['pullnix-executor']!.serviceConfig;
  const watch = u['pullnix-watcher']!.serviceConfig;
  const watcherUser = watch.User as string;
  const sock = 'shared/src/ipc/server.ts';
  const handOver = markedBlocks(read('docs/nixos.md'), 'first-hour').find((b) => b.marker === 'hand-over-key')?.text;
  assert.ok(handOver, 'docs/nixos.md step 5 hands the deploy key over to the watcher (<!-- first-hour: hand-over-key -->)');
  const f = new Map<string, Fact>([
    ['/etc/pullnix/config.json', { mode: null, owner: 'root', source: 'nixos/module.nix environment.etc (a link into the store)' }],
    [`${dirname(SOCKET)}/`, { mode: String(exec.RuntimeDirectoryMode), owner: 'root', group: GROUP, source: 'units.nix RuntimeDirectoryMode; operators.group default' }],
    [SOCKET, { mode: modeIn(sock, /gid === null \? 0o\d+ : 0o(\d+)/), owner: 'root', group: GROUP, source: `${sock} (a socket with a group)` }],
    [`${dirname(defaultPrivateSocketPath(SOCKET))}/`, { mode: modeIn(sock, /chmodSync\(dir, 0o(700)\)/), owner: 'root', source: sock }],
    [defaultPrivateSocketPath(SOCKET), { mode: modeIn(sock, /gid === null \? 0o(\d+)/), owner: 'root', source: `${sock} (a socket without a group)` }],
    [`${dirname(defaultWatcherSocketPath(SOCKET))}/`, { mode: String(exec.RuntimeDirectoryMode), owner: 'root', group: watch.Group as string, source: 'units.nix RuntimeDirectoryMode, the watcher unit\'s Group' }],
    [defaultWatcherSocketPath(SOCKET), { mode: modeIn(sock, /gid === null \? 0o\d+ : 0o(\d+)/), owner: 'root', group: watch.Group as string, source: sock }],
    [`/var/lib/${exec.StateDirectory as string}/`, { mode: String(exec.StateDirectoryMode), owner: 'root', source: 'units.nix executor StateDirectoryMode' }],
    [`/var/lib/${exec.StateDirectory as string}/state.json`, { mode: modeIn('executor/src/store/state.ts', /mode: 0o(\d+)/), owner: 'root', source: 'executor/src/store/state.ts' }],
    [`/var/lib/${exec.StateDirectory as string}/history.jsonl`, { mode: modeIn('executor/src/store/history.ts', /chmodSync\(this\.path, 0o(\d+)\)/), owner: 'root', source: 'executor/src/store/history.ts' }],
    [`/var/lib/${exec.StateDirectory as string}/keys/`, { mode: modeIn('executor/src/keys.ts', /chmodSync\(dir, 0o(\d+)\)/), owner: 'root', source: 'executor/src/keys.ts' }],
    [`/var/lib/${exec.StateDirectory as string}/trust/`, { mode: modeIn('executor/src/pipeline/trust.ts', /mkdirSync\(trustDir\(config\.stateDir\), \{ recursive: true, mode: 0o(\d+)/), owner: 'root', source: 'executor/src/pipeline/trust.ts' }],
    [`/var/lib/${exec.StateDirectory as string}/keys/local-operator.key`, { mode: modeIn('shared/src/protocol/keys.ts', /mode: 0o(\d+)/), owner: 'root', source: 'shared/src/protocol/keys.ts' }],
    [`/var/lib/${watch.StateDirectory as string}/`, { mode: String(watch.StateDirectoryMode), owner: watcherUser, source: 'units.nix watcher StateDirectoryMode, User' }],
    [`/var/lib/${watch.StateDirectory as string}/watcher.key`, { mode: modeIn('shared/src/protocol/keys.ts', /mode: 0o(\d+)/), owner: watcherUser, source: 'shared/src/protocol/keys.ts' }],
    [`/var/lib/${watch.StateDirectory as string}/watcher.pub`, { mode: modeIn('watcher/src/own-key.ts', /paths\.pub, line, \{ mode: 0o(\d+)/), owner: watcherUser, source: 'watcher/src/own-key.ts' }],
    [`/var/lib/${watch.StateDirectory as string}/watcher.json`, { mode: modeIn('watcher/src/memory.ts', /mode: 0o(\d+)/), owner: watcherUser, source: 'watcher/src/memory.ts' }],
    [`/var/lib/${watch.StateDirectory as string}/report-outbox.json`, { mode: modeIn('watcher/src/forge/outbox.ts', /mode: 0o(\d+)/), owner: watcherUser, source: 'watcher/src/forge/outbox.ts' }],
    [`/var/lib/${watch.StateDirectory as string}/trust/`, { mode: modeIn('shared/src/trust.ts', /mkdirSync\(d, \{ recursive: true, mode: 0o(\d+)/), owner: watcherUser, source: 'shared/src/trust.ts' }],
    [`/var/lib/${watch.StateDirectory as string}/checkout/`, { mode: null, owner: watcherUser, source: 'the watcher' }],
    [`/var/lib/${watch.StateDirectory as string}/gcroots/`, { mode: null, owner: watcherUser, source: 'the watcher' }],
    [`/var/lib/${watch.StateDirectory as string}/vulnix/`, { mode: null, owner: watcherUser, source: 'the watcher' }],
    [`/var/cache/${watch.CacheDirectory as string}/`, { mode: String(watch.CacheDirectoryMode), owner: watcherUser, source: 'units.nix watcher CacheDirectoryMode' }],
    ['~/.config/pullnix/operator.key', { mode: modeIn('shared/src/protocol/keys.ts', /mode: 0o(\d+)/), owner: null, source: 'shared/src/protocol/keys.ts (directory: executor/src/ctl/commands.ts)' }],
    // The deploy key is the user's file; its owner and mode are what docs/nixos.md's step 5 makes them (run by the bed).
    ['repository.sshKeyFile', { mode: /chmod (0\d+) /.exec(handOver)?.[1] ?? '?', owner: /chown ([\w-]+):/.exec(handOver)?.[1] ?? '?', source: 'docs/nixos.md step 5 (hand-over-key), run by test/system/16-first-hour' }],
  ]);
  return f;
}

/** Rows `| \`path\`[, \`more\`] | owner[:group] mode | … |` of the docs' layout tables. */
function tableRows(): { where: string; path: string; ownerCol: string }[] {
  const rows: { where: string; path: string; ownerCol: string }[] = [];
  for (const doc of ['docs/architecture.md', 'docs/protocol.md']) {
    read(doc).split('\n').forEach((line, i) => {
      const m = /^\| `([^`]+)`[^|]*\| ([^|]+) \|/.exec(line);
      if (!m || !/^(\/|~|repository\.)/.test(m[1]!)) return;
      rows.push({ where: `${doc}:${i + 1}`, path: m[1]!, ownerCol: m[2]!.replace(/`/g, '').trim() });
    });
  }
  return rows;
}

test('the layout tables (architecture.md, protocol.md): every path, owner and mode is the one its source gives', () => {
  const known = facts();
  const rows = tableRows();
  assert.ok(rows.length >= 20, `the layout tables were found (${rows.length} rows)`);
  const problems: string[] = [];
  for (const r of rows) {
    const fact = known.get(r.path);
    if (!fact) {
      problems.push(`${r.where}: ${r.path}: no source known for this path (is it real? then add its source to this test)`);
      continue;
    }
    const mode = /\b(0[0-7]{3})\b/.exec(r.ownerCol)?.[1] ?? null;
    if (mode !== fact.mode) problems.push(`${r.where}: ${r.path} mode ${mode ?? 'none'}; ${fact.source} gives ${fact.mode ?? 'none stated'}`);
    const owner = /^([\w-]+)(?::(\S+))?/.exec(r.ownerCol.replace('<operators.group>', GROUP));
    if (fact.owner !== null && owner?.[1] !== fact.owner) problems.push(`${r.where}: ${r.path} owner ${owner?.[1]}; ${fact.source} gives ${fact.owner}`);
    if (owner?.[2] !== undefined && owner[2] !== fact.group) problems.push(`${r.where}: ${r.path} group ${owner[2]}; ${fact.source} gives ${fact.group ?? 'none'}`);
  }
  assert.deepEqual(problems, []);
});

test('every /run, /var/lib, /var/cache and /etc path of pullnix the docs name is a known one (or a file in a known directory)', () => {
  const known = [...facts().keys()];
  const problems: string[] = [];
  for (const doc of DOCS) {
    read(doc).split('\n').forEach((line, i) => {
      for (const m of line.matchAll(/(?<![\w.~-])\/(?:run|var\/lib|var\/cache|etc)\/pullnix[\w-]*(?:\/[\w.<>-]*)*/g)) {
        const p = m[0].replace(/[.]$/, '');
        const ok = known.some((k) => k === p || k === `${p}/` || (k.endsWith('/') && p.startsWith(k) && (p.slice(k.length).includes('/') || /^[\w.<>-]+$/.test(p.slice(k.length))) && sourceHasName(p.slice(k.length).split('/')[0]!)));
        // Files the user makes (the guide's deploy key and known_hosts, the hooks' example programs).
        const user =
          /^\/etc\/pullnix\/(deploy_key|deploy_key\.pub|known_hosts|maintenance-window|notify|forge-token)$/.test(p) ||
          /^\/etc\/pullnix\/?$/.test(p) ||
          // pullnix-promote (docs/rings.md): its config file is the user's; its workDir default is the schema's.
          p === '/etc/pullnix-promote/promote.json' ||
          p === (JSON.parse(read('shared/schema/promote.schema.json')) as { properties: { workDir: { default: string } } }).properties.workDir.default;
        if (!ok && !user) problems.push(`${doc}:${i + 1}: ${p}`);
      }
    });
  }
  assert.deepEqual(problems, [], 'paths the docs name that no source has');
});

let codeText: string | null = null;
/** A file or directory name appears as a literal in the daemons' code (their constants). */
function sourceHasName(name: string): boolean {
  if (name === '' || name.startsWith('<')) return true;
  codeText ??= ['shared/src', 'executor/src', 'watcher/src'].flatMap((d) => listTs(join(ROOT, d))).map((f) => readFileSync(f, 'utf8')).join('\n');
  return codeText.includes(`'${name}'`) || codeText.includes(`\`${name}\``) || codeText.includes(`"${name}"`) || codeText.includes(`/${name}'`) || codeText.includes(`/${name}\``);
}
function listTs(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? (e.name === 'test' ? [] : listTs(join(dir, e.name))) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

test('every pullnix unit name in the docs is a unit of nixos/units.nix or a transient unit the executor names', () => {
  const names = Object.keys(units()).map((n) => `${n}.service`);
  const transient = ['executor/src/pipeline/deployment.ts', 'executor/src/executor.ts'].flatMap((f) => [...read(f).matchAll(/transientUnitName\(`(pullnix-[a-z]+-)/g)].map((m) => m[1]!));
  assert.ok(transient.length >= 2, 'the activation and rollback units');
  const problems: string[] = [];
  for (const doc of DOCS) {
    read(doc).split('\n').forEach((line, i) => {
      for (const m of line.matchAll(/\bpullnix-[\w<>…*-]+\.service\b/g)) {
        if (!names.includes(m[0]) && !transient.some((t) => m[0].startsWith(t))) problems.push(`${doc}:${i + 1}: ${m[0]}`);
      }
    });
  }
  assert.deepEqual(problems, []);
});

test('the socket paths: the schema describes the watcher\'s socket as config resolution derives it', () => {
  const watcherSocket = defaultWatcherSocketPath(SOCKET);
  assert.equal(watcherSocket, '/run/pullnix-watcher/executor.sock');
  const description = schema.properties.watcher!.properties!.socketPath!.description!;
  assert.ok(description.includes(watcherSocket), `watcher.socketPath's description names ${watcherSocket}: ${description}`);
  assert.ok(!description.includes('/watcher/<name'), 'no longer the old <directory>/watcher/<name> form');
  const privateDescription = schema.properties.privateSocketPath!.default === null ? (schema.properties.privateSocketPath as { description?: string }).description ?? '' : '';
  assert.ok(privateDescription.includes('<directory of socketPath>/root/<name of socketPath>') && defaultPrivateSocketPath(SOCKET) === '/run/pullnix/root/executor.sock');
});

test('the prose claims about the metrics directory, its files and the deploy key are their sources\'', () => {
  const metrics = read('docs/metrics.md');
  const rule = /"d \$\{settings\.metrics\.textfileDirectory\} (\d+) (\S+) (\S+) - -"/.exec(read('nixos/module.nix'));
  assert.ok(rule, 'the module\'s tmpfiles rule for the textfile directory');
  assert.ok(metrics.includes(`\`d <textfileDirectory> ${rule[1]} ${rule[2]} ${rule[3]} - -\``), `docs/metrics.md quotes the module's rule d <textfileDirectory> ${rule[1]} ${rule[2]} ${rule[3]}`);
  const prom = modeIn('shared/src/metrics.ts', /writeFileAtomic\(this\.path, text, \{ mode: 0o(\d+)/);
  assert.match(metrics, new RegExp(`writes its file mode ${prom}\\b`), `docs/metrics.md: the .prom mode is shared/src/metrics.ts's ${prom}`);
  const key = facts().get('repository.sshKeyFile')!;
  for (const [doc, re] of [
    ['docs/nixos.md', /hands the key over to it \(owner `([\w-]+)`, mode (0\d+)\)/],
    ['docs/nixos.md', /must be readable by `([\w-]+)` \(owner, mode (0\d+)\)/],
    ['docs/security.md', /the deploy key \(`repository\.sshKeyFile`, ([\w-]+) (0\d+)\)/],
  ] as const) {
    const m = re.exec(read(doc));
    assert.ok(m, `${doc}: ${re}`);
    assert.deepEqual([m[1], m[2]], [key.owner, key.mode], `${doc}: the deploy key's owner and mode are step 5's`);
  }
});

test('every JSON config example in the docs passes the daemons\' validator (there is at least one)', () => {
  const examples: { where: string; text: string }[] = [];
  for (const doc of DOCS) {
    const lines = read(doc).split('\n');
    for (let i = 0; i < lines.length; i++) {
      if (lines[i]!.trim() !== '```json') continue;
      let j = i + 1;
      while (j < lines.length && lines[j]!.trim() !== '```') j++;
      const text = lines.slice(i + 1, j).join('\n');
      if (/^\s*\{\s*"(repository|ring|rings)"/.test(text)) examples.push({ where: `${doc}:${i + 1}`, text });
      i = j;
    }
  }
  assert.ok(examples.length >= 1, 'docs/nixos.md shows the config.json the module writes');
  // pullnix-promote's files (docs/rings.md) by their own validators; a `ring` section alone in a minimal config.
  const minimal = { repository: { url: 'ssh://git@example.org/cfg.git' }, build: { mode: 'flake' } };
  const parse = (e: { where: string; text: string }) =>
    /^\s*\{\s*"rings"/.test(e.text) ? parseRingsFile(e.text, e.where)
    : /"firstRingBranch"/.test(e.text) ? parsePromoteConfig(e.text, e.where)
    : /^\s*\{\s*"ring"/.test(e.text) ? parseConfig(JSON.stringify({ ...minimal, ...(JSON.parse(e.text) as object) }), e.where)
    : parseConfig(e.text, e.where);
  for (const e of examples) assert.doesNotThrow(() => parse(e), `${e.where} is a valid file of its kind`);
});

test('every example pullnix-ctl output (docs/cli.md, README.md) is marked to be regenerated on the bed', () => {
  const problems: string[] = [];
  for (const doc of ['docs/cli.md', 'README.md']) {
    const text = read(doc);
    const marked = new Set(markedBlocks(text, 'bed-example').map((b) => b.start));
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      if (lines[i]!.trim() !== '```console') continue;
      let j = i + 1;
      while (j < lines.length && lines[j]!.trim() !== '```') j++;
      const indent = /^\s*/.exec(lines[i]!)![0];
      const commands = parseConsole(lines.slice(i + 1, j).map((l) => l.slice(Math.min(indent.length, /^\s*/.exec(l)![0].length))).join('\n'));
      const shows = commands.some((c) => c.output.some((l) => l.trim() !== ''));
      if (shows && !marked.has(i + 1)) problems.push(`${doc}:${i + 1}: console output without <!-- bed-example: SITUATION -->`);
      i = j;
    }
  }
  assert.deepEqual(problems, []);
});

test('the examples\' normalisation: what varies between two runs is made equal, what an example shows is not', async () => {
  const { normaliseOutput: n } = await import('../lib/doc-blocks.ts');
  const runA = 'deployed      2926a101 "pullnix: operator alice"\n              deployment #2, deployed 1 min ago, generation 2\nlive          /nix/store/rq54hqz6qbzli67q7fcaibq8zll3hqs3-nixos-system-bed-gen2\nwatcher       connected, idle (pid 1466, 0.1.0)\n              last poll just now, next poll now\nkey id     bob@pnx-first-hour-24614';
  const runB = 'deployed      ec49b8fe "pullnix: operator alice"\n              deployment #2, deployed 28 s ago, generation 2\nlive          /nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-bed-gen2\nwatcher       connected, idle (pid 684, 0.1.0)\n              last poll 2 s ago, next poll in 1 s\nkey id     bob@pnx-first-hour-7412';
  assert.equal(n(runA), n(runB));
  assert.notEqual(n(runA), n(runA.replace('generation 2', 'generation 3')), 'a generation number is part of the example');
  assert.notEqual(n(runA), n(runA.replace('idle', 'deploying')), 'a state is part of the example');
  // Caught mid-poll (issue 20's runs under two CPU hogs): the bed polls every 2 s.
  assert.equal(n(runA), n(runA.replace('idle', 'polling').replace(', next poll now', '')), 'idle between polls or polling is timing');
  assert.notEqual(n(runA), n(runA.replace('last poll just now, next poll now', 'next poll now')), 'a poll never made is part of the example');
});

test('a mode stated in prose right after a known path (or its file name) is that path\'s', () => {
  const known = facts();
  // A path, or `<stateDir>/name` / `name` for the files of the state directories.
  const names = new Map<string, Fact>();
  for (const [p, f] of known) {
    if (f.mode === null || !p.startsWith('/')) continue;
    names.set(p.replace(/\/$/, ''), f);
    const base = p.replace(/\/$/, '').split('/').pop()!;
    if (/\.\w+$/.test(base)) names.set(base, f);
  }
  const problems: string[] = [];
  let checked = 0;
  for (const doc of DOCS.filter((d) => d !== 'docs/options.md')) {
    read(doc).split('\n').forEach((line, i) => {
      for (const [name, f] of names) {
        const before = name.startsWith('/') ? '[\\w/.-]' : '[\\w.-]';
        for (const m of line.matchAll(new RegExp(`(?<!${before})${name.replace(/[.]/g, '\\.')}/?\`?(?![\\w/-])`, 'g'))) {
          // the mode that follows within the same clause: "(mode 0600", " (0700", "`, 0660"
          const after = /^[^.;:|/]{0,24}?\b(0[0-7]{3})\b/.exec(line.slice(m.index! + m[0].length));
          if (!after) continue;
          checked++;
          if (after[1] !== f.mode) problems.push(`${doc}:${i + 1}: ${name} … ${after[1]}; ${f.source} gives ${f.mode}`);
        }
      }
    });
  }
  assert.ok(checked >= 8, `prose modes were found (${checked})`);
  assert.deepEqual(problems, []);
});

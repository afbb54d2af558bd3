/**
 * The journal catalogue is enforced, not hoped for: every event name the code logs is in
 * shared/src/log/events.ts, docs/events.md lists exactly the catalogue with the same priority and
 * process, and every failure, rollback, refusal and unreachable event is warning or worse so that
 * `journalctl -p warning` is the list of problems.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { EVENTS, type EventSpec } from '@pullnix/shared';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SOURCE_DIRS = ['executor/src', 'watcher/src', 'shared/src'];
const CATALOGUE: Record<string, EventSpec> = EVENTS;

/** `.event('name'`, `.event("name"`, `.event(\`name\``, across line breaks. */
const EVENT_CALL = /\.event\(\s*(['"`])([^'"`]*)\1/g;
/** `.event(someVariable` : a name the scan cannot check. */
const DYNAMIC_EVENT_CALL = /\.event\(\s*([^'"`\s)][^,)]*)/g;

export function eventCalls(text: string): string[] {
  return [...text.matchAll(EVENT_CALL)].map((m) => m[2]!);
}

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...tsFiles(path));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

/** Every `.event('name'` in the sources, with where it is. */
function loggedEvents(): { name: string; where: string }[] {
  const found: { name: string; where: string }[] = [];
  for (const dir of SOURCE_DIRS) {
    for (const file of tsFiles(join(ROOT, dir))) {
      for (const name of eventCalls(readFileSync(file, 'utf8'))) found.push({ name, where: relative(ROOT, file) });
    }
  }
  return found;
}

const SECTION_SOURCE: [RegExp, EventSpec['source']][] = [
  [/^The executor\b/, 'executor'],
  [/^The watcher\b/, 'watcher'],
  [/^Either process\b/, 'any'],
  [/^pullnix-ctl\b/, 'ctl'],
  [/^pullnix-promote\b/, 'promote'],
];

/** The catalogue tables of docs/events.md: `| \`name\` | priority | meaning | fields |` under `### <process>` headings. */
export function documentedEvents(markdown: string): Map<string, { priority: string; source: string | null; line: number }> {
  const docs = new Map<string, { priority: string; source: string | null; line: number }>();
  let source: string | null = null;
  let inCatalogue = false;
  markdown.split('\n').forEach((line, i) => {
    if (/^## The catalogue/.test(line)) inCatalogue = true;
    else if (/^## /.test(line)) inCatalogue = false;
    if (!inCatalogue) return;
    const heading = /^### (.*)$/.exec(line);
    if (heading) source = SECTION_SOURCE.find(([re]) => re.test(heading[1]!))?.[1] ?? null;
    const row = /^\|\s*`([a-z_]+\.[a-z_]+)`\s*\|\s*([a-z]+)\s*\|/.exec(line);
    if (!row) return;
    if (docs.has(row[1]!)) throw new Error(`docs/events.md lists ${row[1]} twice (line ${i + 1})`);
    docs.set(row[1]!, { priority: row[2]!, source, line: i + 1 });
  });
  return docs;
}

const SEVERE = new Set(['warning', 'error']);

describe('the event catalogue', () => {
  const docs = documentedEvents(readFileSync(join(ROOT, 'docs/events.md'), 'utf8'));

  it('finds event calls the way the code writes them (the scanner itself works)', () => {
    const sample = "log.event('deploy.accepted', { commit });\nthis.log\n  .event(\n    \"build.failed\", {});\nlog.event(`x.y`)\nlog.info('not.an_event')";
    assert.deepEqual(eventCalls(sample), ['deploy.accepted', 'build.failed', 'x.y']);
    assert.deepEqual([...`${sample}\nlog.event(name, {})`.matchAll(DYNAMIC_EVENT_CALL)].map((m) => m[1]), ['name']);
    const md = '## The catalogue\n### The watcher (`x`)\n| event | priority |\n| --- | --- |\n| `a.b` | info | m | - |\n## Other\n| `c.d` | error |';
    assert.deepEqual([...documentedEvents(md)], [['a.b', { priority: 'info', source: 'watcher', line: 5 }]]);
  });

  it('holds every event name the code logs', () => {
    const logged = loggedEvents();
    // The scan must see the code it guards; an empty result would pass vacuously.
    assert.ok(logged.length > 0, `no .event('...') calls found under ${SOURCE_DIRS.join(', ')}`);
    const unknown = logged.filter((e) => !Object.hasOwn(CATALOGUE, e.name)).map((e) => `${e.name} (${e.where})`);
    assert.deepEqual(unknown, [], 'logged but not in shared/src/log/events.ts');
  });

  it('has no entry the code never logs, and every call names its event literally', () => {
    const logged = new Set(loggedEvents().map((e) => e.name));
    const dead = Object.keys(CATALOGUE).filter((name) => !logged.has(name));
    assert.deepEqual(dead, [], 'in the catalogue (and docs/events.md) but no .event(...) call logs it: remove it, or log it');
    // A computed name would hide from the checks above; the catalogue is only enforceable if names are literals.
    const dynamic: string[] = [];
    for (const dir of SOURCE_DIRS) {
      for (const file of tsFiles(join(ROOT, dir))) {
        for (const m of readFileSync(file, 'utf8').matchAll(DYNAMIC_EVENT_CALL)) dynamic.push(`${relative(ROOT, file)}: .event(${m[1]}`);
      }
    }
    assert.deepEqual(dynamic, [], 'log events by their literal name, e.g. log.event(\'deploy.rolled_back\', ...)');
  });

  it('is what docs/events.md lists, with the same priority and process', () => {
    assert.ok(docs.size > 0, 'docs/events.md has no catalogue table under "## The catalogue"');
    const problems: string[] = [];
    for (const [name, spec] of Object.entries(CATALOGUE)) {
      const doc = docs.get(name);
      if (!doc) problems.push(`${name}: in the catalogue, missing from docs/events.md`);
      else {
        if (doc.priority !== spec.priority) problems.push(`${name}: docs/events.md line ${doc.line} says ${doc.priority}, the catalogue ${spec.priority}`);
        if (doc.source !== spec.source) problems.push(`${name}: docs/events.md line ${doc.line} lists it under ${doc.source ?? 'no process'}, the catalogue says ${spec.source}`);
      }
    }
    for (const [name, doc] of docs) if (!Object.hasOwn(CATALOGUE, name)) problems.push(`${name}: docs/events.md line ${doc.line} lists an event the catalogue does not have`);
    assert.deepEqual(problems, []);
  });

  it('puts every error, failure, rollback, refusal and unreachable event at warning or worse', () => {
    // By name: whatever the catalogue grows, an event that reports a problem lands in `-p warning`.
    const problem = /(fail|fatal|error|corrupt|roll(ed|ing)?_?back|refused|unreachable|unanswered|interrupted|not_descendant|reboot_required)/;
    const named = Object.entries(CATALOGUE).filter(([name]) => problem.test(name));
    const mild = named.filter(([, spec]) => !SEVERE.has(spec.priority)).map(([name, spec]) => `${name} is ${spec.priority}`);
    assert.deepEqual(mild, []);
    // And the ones the issue names, so the pattern above cannot quietly stop matching them.
    for (const name of ['deploy.activation_failed', 'deploy.verify_failed', 'deploy.commit_failed', 'deploy.rolling_back', 'deploy.rolled_back', 'deploy.rollback_failed', 'build.failed', 'executor.fatal', 'state.corrupt', 'request.refused', 'deploy.refused']) {
      assert.ok(Object.hasOwn(CATALOGUE, name), `${name} is missing from the catalogue`);
      assert.ok(SEVERE.has(CATALOGUE[name]!.priority), `${name} must be warning or error, is ${CATALOGUE[name]!.priority}`);
    }
    const errors = Object.entries(CATALOGUE).filter(([name]) => /(_failed|fatal|corrupt)$/.test(name) && !name.startsWith('verify.'));
    for (const [name, spec] of errors) assert.equal(spec.priority, 'error', `${name}: a failure someone must look at is an error`);
  });
});

/**
 * Counts what a node:test TAP report says, for test/run-all.sh's closing line. Node's own summary
 * (`# pass`, `# skipped`, ...) leaves out what a skipped suite (`describe(..., { skip })`) held:
 * its tests never run and are counted nowhere. This counts every result line of the report
 * instead, at every depth:
 *   - a passing test: passed; a failing, cancelled (timed-out) or todo test: failed;
 *   - a skipped test or a skipped suite: skipped, with its reason (which names the missing tool);
 *   - a suite (or a file, as the runner reports one) that ran is not a test of its own: its tests
 *     count; one that failed with no failing test inside (a hook, an error at load) counts as one
 *     failure.
 * Usage: node test/dist/lib/tap-summary.js [--ci] REPORT.tap
 *   prints "P passed, F failed, S skipped" and one line per skip and failure; with --ci (CI=true)
 *   every skip is a failure. Exits 1 when anything failed or the report holds no test at all.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface TapSummary {
  passed: number;
  failed: number;
  skipped: number;
  /** "name: reason" of each skipped test or suite. */
  skips: string[];
  /** name (and why, for cancelled and todo) of each failed test. */
  failures: string[];
}

interface Result {
  indent: number;
  ok: boolean;
  name: string;
  directive: { kind: 'SKIP' | 'TODO'; reason: string } | null;
  type: string | null;
  failureType: string | null;
}

const RESULT = /^( *)(ok|not ok) \d+ - (.*)$/;

function parseResults(tap: string): Result[] {
  const lines = tap.split('\n');
  const results: Result[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = RESULT.exec(lines[i]!);
    if (!m) continue;
    let name = m[3]!;
    let directive: Result['directive'] = null;
    const d = /^(.*?) # (SKIP|TODO)\b ?(.*)$/i.exec(name);
    if (d) {
      name = d[1]!;
      directive = { kind: d[2]!.toUpperCase() as 'SKIP' | 'TODO', reason: d[3]! };
    }
    const indent = m[1]!.length;
    // The YAML block right below the result line: its type and, for a failure, why.
    let type: string | null = null;
    let failureType: string | null = null;
    if (lines[i + 1]?.trim() === '---') {
      for (let j = i + 2; j < lines.length && lines[j]!.trim() !== '...'; j++) {
        const y = /^ *(type|failureType): '?([^']*)'?$/.exec(lines[j]!);
        if (y && y[1] === 'type') type = y[2]!;
        if (y && y[1] === 'failureType') failureType = y[2]!;
      }
    }
    results.push({ indent, ok: m[2] === 'ok', name, directive, type, failureType });
  }
  return results;
}

export function summarize(tap: string): TapSummary {
  const results = parseResults(tap);
  const s: TapSummary = { passed: 0, failed: 0, skipped: 0, skips: [], failures: [] };
  results.forEach((r, i) => {
    if (r.directive?.kind === 'SKIP') {
      s.skipped++;
      s.skips.push(`${r.name}: ${r.directive.reason || '(no reason given)'}`);
      return;
    }
    if (r.directive?.kind === 'TODO') {
      s.failed++;
      s.failures.push(`${r.name} (todo: ${r.directive.reason || 'not done'})`);
      return;
    }
    // Node reports children before their parent, deeper indented: a result with such results just
    // above it is a suite or a file; its children are counted already.
    const children: Result[] = [];
    for (let j = i - 1; j >= 0 && results[j]!.indent > r.indent; j--) children.push(results[j]!);
    const container = r.type === 'suite' || children.length > 0;
    if (container) {
      if (!r.ok && !children.some((c) => !c.ok && c.directive === null)) {
        s.failed++;
        s.failures.push(`${r.name} (${r.failureType ?? 'failed'} outside its tests)`);
      }
      return;
    }
    if (r.ok) {
      s.passed++;
    } else {
      s.failed++;
      s.failures.push(r.failureType === 'testTimeoutFailure' || r.failureType === 'cancelledByParent' ? `${r.name} (cancelled: ${r.failureType})` : r.name);
    }
  });
  return s;
}

/** Under CI every skip is a failure: CI installs every tool a test needs (.ci/run). */
export function strict(s: TapSummary): TapSummary {
  return { passed: s.passed, failed: s.failed + s.skipped, skipped: 0, skips: [], failures: [...s.failures, ...s.skips.map((k) => `skipped under CI=true, which must have every tool: ${k}`)] };
}

function main(argv: string[]): number {
  const ci = argv.includes('--ci');
  const file = argv.find((a) => a !== '--ci');
  if (!file) {
    process.stderr.write('usage: tap-summary [--ci] REPORT.tap\n');
    return 2;
  }
  let s = summarize(readFileSync(file, 'utf8'));
  if (ci) s = strict(s);
  for (const k of s.skips) process.stdout.write(`skipped: ${k}\n`);
  for (const f of s.failures) process.stdout.write(`FAILED: ${f}\n`);
  const empty = s.passed + s.failed + s.skipped === 0;
  if (empty) process.stdout.write('FAILED: the report holds no test at all (an empty glob, or nothing ran)\n');
  process.stdout.write(`${s.passed} passed, ${s.failed + (empty ? 1 : 0)} failed, ${s.skipped} skipped\n`);
  return s.failed > 0 || empty ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main(process.argv.slice(2));

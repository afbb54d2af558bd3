/**
 * Scenario plumbing: one machine per scenario, progress as test diagnostics, and a failing
 * scenario gets the machine's journal attached (written to a file; its path and the pullnix tail
 * are appended to the error), so a failure can be read without rerunning.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { EVENTS, type DeploymentRecord, type EventName } from '@pullnix/shared';
import { TestBed, short, shortPath, type BedOptions, type CommitOptions, type GenerationSpec, type JournalEntry } from './bed.ts';

// Interrupted (Ctrl-C, the runner's SIGTERM): exit, so that container.ts's exit hook kills the
// machines still running and removes their cgroups.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

export const SYSLOG_PRIORITY = { error: 3, warning: 4, info: 6, debug: 7 } as const;

export async function withBed(t: TestContext, options: Omit<BedOptions, 'log'>, fn: (bed: TestBed) => Promise<void>): Promise<void> {
  const t0 = Date.now();
  const bed = await TestBed.create({ ...options, log: (line) => t.diagnostic(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}`) });
  let failed = false;
  try {
    await fn(bed);
  } catch (error) {
    failed = true;
    let note: string;
    try {
      const { path, tail } = await bed.dumpJournal(options.name);
      note = `\n\n--- the machine's journal (all boots) is in ${path}\n--- its pullnix/switch lines, last 60:\n${tail}\n--- machine: ${await bed.describe()}`;
      t.diagnostic(`journal: ${path}`);
    } catch (dumpError) {
      note = `\n(journal could not be collected: ${(dumpError as Error).message})`;
    }
    if (error instanceof Error) {
      // node:test prints the stack (which starts with the message): extend that.
      if (error.stack) error.stack += note;
      else error.message += note;
      throw error;
    }
    throw new Error(`${String(error)}${note}`);
  } finally {
    await bed.destroy({ keepLogs: failed });
    t.diagnostic(`machine ${bed.name} destroyed after ${((Date.now() - t0) / 1000).toFixed(1)} s${failed ? `; logs kept in ${bed.base}/logs` : ''}`);
  }
}

/**
 * The machine as a NixOS user has it after installing: generation 1 built from the first commit,
 * booted, pullnix running; the watcher then deploys that commit once (nothing recorded it before),
 * which this waits for, so every scenario starts from "deployed = first commit".
 */
export async function installed(bed: TestBed, first: { spec?: Partial<GenerationSpec>; options?: CommitOptions } = {}): Promise<{ commit: string; toplevel: string; record: DeploymentRecord }> {
  const commit = await bed.commit({ label: 'gen1', ...first.spec }, 'initial configuration', first.options);
  await bed.boot();
  const toplevel = await bed.install(commit);
  await bed.waitForPullnix();
  const record = await bed.waitForOutcome(commit);
  assert.equal(record.outcome, 'succeeded', `the installed commit ${short(commit)} should deploy cleanly: ${JSON.stringify(record)}`);
  assert.equal(record.toplevel, toplevel);
  // The watcher is restarted after the outcome: wait until the new one is connected again.
  await bed.waitForWatcherRestart(record.id);
  bed.log(`installed and deployed ${short(commit)} (${shortPath(toplevel)}), deployment ${record.id}`);
  return { commit, toplevel, record };
}

/** Journal lines of one deployment (deployment=<id>), in order. */
export function ofDeployment(entries: readonly JournalEntry[], id: number): JournalEntry[] {
  return entries.filter((e) => e.fields.deployment === String(id));
}

/** Assert that the events occur in this order (each after the previous) and carry their catalogue priority. */
export function assertEventSequence(entries: readonly JournalEntry[], names: readonly EventName[], context: string): JournalEntry[] {
  const found: JournalEntry[] = [];
  let from = 0;
  for (const name of names) {
    const i = entries.findIndex((e, idx) => idx >= from && e.event === name);
    assert.ok(i >= 0, `${context}: expected journal event ${name} after ${found.map((f) => f.event).join(' → ') || 'the start'}; got ${entries.map((e) => e.event ?? '?').join(' → ')}`);
    const entry = entries[i]!;
    assert.equal(entry.priority, SYSLOG_PRIORITY[EVENTS[name].priority], `${context}: ${name} should be logged at priority ${EVENTS[name].priority}: ${entry.message}`);
    found.push(entry);
    from = i + 1;
  }
  return found;
}

export function phasesOf(record: DeploymentRecord): string[] {
  return record.phases.map((p) => p.phase);
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/**
 * The commit-status outbox and reporter (watcher/src/forge/) against the forge stand-in: a crash
 * between the post and the acknowledgement, Flux's identical-status skip, the bound, Retry-After,
 * GitHub's secondary limits, an outage, the reconciliation after a power cut, the decentralised
 * halt. Time is a number the test moves; nothing sleeps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type DeploymentRecord, type ReportConfig } from '@pullnix/shared';
import { CommitStatusReporter, GitHubClient, GiteaClient, Outbox, OUTBOX_FILE, describeRecord, type ForgeClient, type StatusBody, type StepEvent } from '@pullnix/watcher';
import { ForgeStandIn } from '../lib/forge-standin.ts';
import { CapturedLog } from '../lib/watcher-fixtures.ts';

const TOKEN = 'ghp_standInToken0123456789abcdefABCDEF';
const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const CONTEXT = 'pullnix/canary/host-1';

function status(state: StatusBody['state'], description: string, context = CONTEXT): StatusBody {
  return { state, description, context, targetUrl: null };
}

async function setup(t: { after: (fn: () => unknown) => void }, kind: 'github' | 'gitea' = 'github', limit = 64) {
  const forge = await new ForgeStandIn(kind, TOKEN).start();
  const dir = mkdtempSync(join(tmpdir(), 'pullnix-outbox-'));
  t.after(async () => {
    await forge.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const clock = { t: Date.parse('2026-12-07T12:00:00Z') };
  forge.now = () => clock.t;
  const log = new CapturedLog();
  const options = { apiUrl: forge.apiUrl, repository: 'infra/fleet', token: () => TOKEN, timeoutMs: 5000, now: () => clock.t };
  const client: ForgeClient = kind === 'github' ? new GitHubClient(options) : new GiteaClient(options);
  const path = join(dir, OUTBOX_FILE);
  const open = () => new Outbox({ path, client, logger: log.logger, limit, now: () => clock.t });
  return { forge, dir, clock, log, client, path, open };
}

for (const kind of ['github', 'gitea'] as const) {
  test(`${kind}: a crash between the forge's 201 and the outbox's acknowledgement ends in exactly one status`, async (t) => {
    const { forge, path, open } = await setup(t, kind);
    const outbox = open();
    outbox.enqueue(A, status('success', 'deployed generation 4, 3/3 checks, 38 s'));
    const beforeAck = readFileSync(path, 'utf8');
    assert.equal((await outbox.flush()).posted, 1);
    // The process died after the post and before the rename: the file still holds the entry.
    writeFileSync(path, beforeAck);
    const restarted = open();
    assert.equal(restarted.entries.length, 1);
    const r = await restarted.flush();
    assert.deepEqual([r.posted, r.skipped], [0, 1]);
    assert.equal(forge.of(A, CONTEXT).length, 1);
    assert.equal(restarted.entries.length, 0);
  });
}

test('the answer lost on the way back (the forge stored it, the connection died): retried, found at the forge, not posted twice', async (t) => {
  const { forge, clock, log, open } = await setup(t);
  const outbox = open();
  forge.modes.dropAnswerOfNextCreate = true;
  outbox.enqueue(A, status('failure', 'rolled back: check http-api: 503'));
  const first = await outbox.flush();
  assert.equal(first.posted, 0);
  assert.ok(first.nextInMs !== null && first.nextInMs > 0);
  assert.equal(log.count('report.deferred'), 1);
  clock.t += first.nextInMs!;
  const second = await open().flush();
  assert.deepEqual([second.posted, second.skipped], [0, 1]);
  assert.deepEqual(forge.of(A, CONTEXT).map((s) => s.state), ['failure']);
});

test("Flux's rule: a status identical to the commit's latest for the context is not posted; a different one is", async (t) => {
  const { forge, open } = await setup(t);
  const outbox = open();
  outbox.enqueue(A, status('pending', 'building'));
  await outbox.flush();
  outbox.enqueue(A, status('pending', 'building'));
  // Queued again (it left the outbox), skipped at the forge: no second POST.
  const r = await outbox.flush();
  assert.deepEqual([r.posted, r.skipped], [0, 1]);
  outbox.enqueue(A, status('pending', 'verifying 3 checks'));
  assert.equal((await outbox.flush()).posted, 1);
  assert.equal(forge.requests.filter((q) => q.method === 'POST').length, 2);
});

test('a queued pending status is replaced by a newer one of the same commit and context; a late pending never hides a queued outcome', async (t) => {
  const { open } = await setup(t);
  const outbox = open();
  outbox.enqueue(A, status('pending', 'building'));
  outbox.enqueue(A, status('success', 'deployed generation 2, 2/2 checks, 4 s'));
  assert.equal(outbox.enqueue(A, status('pending', 'building')), false);
  assert.deepEqual(outbox.entries.map((e) => e.status.state), ['success']);
});

test('the bound: past outboxLimit the oldest non-terminal status goes first, terminal ones are kept', async (t) => {
  const { open, log } = await setup(t, 'github', 8);
  const outbox = open();
  const sha = (i: number) => i.toString(16).padStart(40, '0');
  for (let i = 0; i < 6; i++) outbox.enqueue(sha(i), status('failure', `rolled back ${i}`));
  for (let i = 6; i < 11; i++) outbox.enqueue(sha(i), status('pending', `building ${i}`));
  assert.equal(outbox.entries.length, 8);
  assert.equal(outbox.entries.filter((e) => e.status.state === 'failure').length, 6, 'every terminal status kept');
  assert.deepEqual(outbox.entries.filter((e) => e.status.state === 'pending').map((e) => e.status.description), ['building 9', 'building 10']);
  assert.equal(log.count('report.dropped'), 3);
  for (let i = 11; i < 20; i++) outbox.enqueue(sha(i), status('success', `deployed ${i}`));
  assert.equal(outbox.entries.length, 8);
  assert.ok(outbox.entries.every((e) => e.status.state !== 'pending'), 'the pending ones went before any terminal one');
});

test('Retry-After: a 429 holds every post until the time the forge asked for has passed, also across a restart', async (t) => {
  const { forge, clock, open } = await setup(t);
  forge.modes.tooMany = { count: 1, retryAfterSec: 7 };
  const outbox = open();
  outbox.enqueue(A, status('success', 'deployed generation 4, 3/3 checks, 38 s'));
  const r = await outbox.flush();
  assert.equal(r.nextInMs, 7000);
  const posts = () => forge.requests.filter((q) => q.method === 'POST').length;
  assert.equal(posts(), 1);
  clock.t += 6999;
  const restarted = open();
  assert.equal((await restarted.flush()).nextInMs, 1, 'still held after a restart');
  assert.equal(posts(), 1, 'no request before Retry-After');
  clock.t += 1;
  assert.equal((await restarted.flush()).posted, 1);
  assert.equal(forge.of(A, CONTEXT).length, 1);
});

test("GitHub's secondary limit: at most 80 creates a minute go out; the outbox waits for the minute instead of meeting the 403", async (t) => {
  const { forge, clock, open } = await setup(t, 'github', 200);
  const outbox = open();
  const sha = (i: number) => i.toString(16).padStart(40, '0');
  for (let i = 0; i < 85; i++) outbox.enqueue(sha(i), status('success', `deployed ${i}`));
  const r = await outbox.flush();
  assert.equal(r.posted, 80);
  assert.equal(r.nextInMs, 60_000);
  assert.equal(forge.requests.filter((q) => q.method === 'POST').length, 80, 'the 81st was not sent');
  clock.t += 60_000;
  assert.equal((await open().flush()).posted, 5);
  assert.equal(forge.statuses.length, 85);
});

test("GitHub's secondary limit met anyway (another writer on the token): the 403 without retry-after waits a minute; with it, its time", async (t) => {
  const { forge, clock, open, path } = await setup(t, 'github', 200);
  const sha = (i: number) => i.toString(16).padStart(40, '0');
  const other = open();
  for (let i = 0; i < 80; i++) other.enqueue(sha(i), status('success', `other ${i}`));
  await other.flush();
  rmSync(path); // a second outbox that never saw those writes
  const outbox = open();
  outbox.enqueue(A, status('success', 'deployed generation 4, 3/3 checks, 38 s'));
  assert.equal((await outbox.flush()).nextInMs, 60_000);
  forge.modes.secondaryRetryAfterSec = 120;
  clock.t += 60_000 - 1;
  rmSync(path);
  const third = open();
  third.enqueue(B, status('success', 'deployed generation 5, 3/3 checks, 12 s'));
  assert.equal((await third.flush()).nextInMs, 120_000);
});

test('a forge outage delays statuses and loses none; the back-off grows; the token is never written to the outbox', async (t) => {
  const { forge, clock, open, path, log } = await setup(t);
  forge.modes.down = true;
  const outbox = open();
  outbox.enqueue(A, status('pending', 'building'));
  outbox.enqueue(A, status('failure', 'rolled back: check http-api: 503'));
  outbox.enqueue(B, status('pending', 'building'));
  const waits: number[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await outbox.flush();
    waits.push(r.nextInMs!);
    clock.t += r.nextInMs!;
  }
  assert.deepEqual(waits, [5000, 10000, 20000]);
  forge.modes.down = false;
  const r = await open().flush();
  assert.equal(r.posted, 2);
  assert.deepEqual(forge.statuses.map((s) => [s.sha, s.state]), [[A, 'failure'], [B, 'pending']]);
  assert.equal(log.count('report.forge_reachable'), 1);
  assert.ok(!readFileSync(path, 'utf8').includes(TOKEN));
  assert.ok(!log.raw.join('\n').includes(TOKEN), 'nor to the journal');
});

test('a description is cut to 140 characters (GitHub refuses longer ones with 422)', async (t) => {
  const { forge, open } = await setup(t);
  const outbox = open();
  outbox.enqueue(A, status('failure', `rolled back: check http-api: ${'x'.repeat(300)}`));
  assert.equal((await outbox.flush()).posted, 1);
  assert.equal([...forge.statuses[0]!.description].length, 140);
});

test('a status the forge refuses for good (422) is dropped with an error, the next goes out', async (t) => {
  const { forge, log, client } = await setup(t);
  const bad: ForgeClient = { kind: client.kind, writeLimits: client.writeLimits, latest: (s) => client.latest(s), create: (s, b) => client.create(s, { ...b, state: 'warning' as StatusBody['state'] }) };
  const outbox = new Outbox({ path: join(mkdtempSync(join(tmpdir(), 'pullnix-outbox-')), OUTBOX_FILE), client: bad, logger: log.logger, limit: 8, now: Date.now });
  outbox.enqueue(A, status('success', 'x'));
  const r = await outbox.flush();
  assert.deepEqual([r.posted, r.dropped], [0, 1]);
  assert.equal(log.count('report.rejected'), 1);
  assert.equal(forge.statuses.length, 0);
});

test('a corrupt outbox file is set aside and reported, never silently reset', async (t) => {
  const { path, open, log, dir } = await setup(t);
  writeFileSync(path, '{"v":1,"entries":[{"sha":');
  copyFileSync(path, join(dir, 'copy'));
  const outbox = open();
  assert.equal(outbox.entries.length, 0);
  assert.equal(log.count('state.corrupt'), 1);
});

function record(over: Partial<DeploymentRecord>): DeploymentRecord {
  return {
    id: 7,
    kind: 'deploy',
    commit: A,
    toplevel: '/nix/store/x-nixos-system',
    activation: 'test',
    requestedBy: 'watcher',
    previous: { toplevel: null, generation: null } as unknown as DeploymentRecord['previous'],
    phase: 'finished',
    phases: [],
    outcome: 'succeeded',
    error: null,
    activationExit: 0,
    generation: 4,
    startedAt: '2026-12-07T12:00:00.000Z',
    finishedAt: '2026-12-07T12:00:38.000Z',
    checks: [
      { name: 'git', kind: 'git', passed: true, attempts: 1, error: null, startedAt: null, durationMs: 1 },
      { name: 'failed-units', kind: 'units', passed: true, attempts: 1, error: null, startedAt: null, durationMs: 1 },
      { name: 'http-api', kind: 'http', passed: true, attempts: 1, error: null, startedAt: null, durationMs: 1 },
    ],
    ...over,
  };
}

test('the descriptions: deployed generation G, N/N checks, seconds; rolled back with the failing check; reboot pending', () => {
  assert.deepEqual(describeRecord(record({})), { state: 'success', description: 'deployed generation 4, 3/3 checks, 38 s' });
  const failed = record({ outcome: 'rolled-back', generation: null, checks: [{ name: 'http-api', kind: 'http', passed: false, attempts: 3, error: '503\nmore', startedAt: null, durationMs: 1 }] });
  assert.deepEqual(describeRecord(failed), { state: 'failure', description: 'rolled back: check http-api: 503' });
  assert.deepEqual(describeRecord(record({ outcome: 'rolled-back', checks: [], error: { code: 'ACTIVATION_FAILED', message: 'switch-to-configuration exited 2' } as DeploymentRecord['error'] })), { state: 'failure', description: 'rolled back: switch-to-configuration exited 2' });
  assert.deepEqual(describeRecord(record({ outcome: null, phase: 'reboot-pending', reboot: { needed: true, reasons: ['kernel'], mode: 'window', windowStart: '02:00' } })), { state: 'pending', description: 'reboot pending until 02:00' });
  assert.equal(describeRecord(record({ kind: 'rollback' })), null);
});

function reportConfig(extra: Partial<ReportConfig> = {}): ReportConfig {
  return { ...parseConfig(JSON.stringify({ repository: { url: 'file:///x' }, build: { mode: 'classic' } })).report, enable: true, repository: 'infra/fleet', tokenFile: '/nonexistent', ...extra };
}

test('reporter: pending → success; a newer head supersedes a pending commit with error "superseded by <sha>"', async (t) => {
  const { forge, client, dir, log, clock } = await setup(t);
  const reporter = new CommitStatusReporter({ report: reportConfig(), host: 'host-1', ring: 'canary', stateDir: dir, logger: log.logger, now: () => clock.t, client });
  assert.equal(reporter.context, CONTEXT);
  reporter.building(A);
  await reporter.outbox.flush();
  reporter.building(B);
  await reporter.outbox.flush();
  reporter.deploying(B, 3);
  await reporter.outbox.flush();
  reporter.outcome(record({ commit: B }));
  await reporter.outbox.flush();
  assert.deepEqual(forge.of(A, CONTEXT).map((s) => [s.state, s.description]), [['pending', 'building'], ['error', `superseded by ${B}`]]);
  assert.deepEqual(forge.of(B, CONTEXT).map((s) => [s.state, s.description]), [['pending', 'building'], ['pending', 'verifying 3 checks'], ['success', 'deployed generation 4, 3/3 checks, 38 s']]);
  // Statuses queued while the forge is away are coalesced: only the latest of a commit and context is posted.
  forge.modes.down = true;
  const C = 'c'.repeat(40);
  reporter.building(C);
  reporter.deploying(C, 3);
  await reporter.outbox.flush();
  forge.modes.down = false;
  clock.t += 3_600_000;
  reporter.outcome(record({ commit: C }));
  await reporter.outbox.flush();
  assert.deepEqual(forge.of(C, CONTEXT).map((s) => s.state), ['success']);
});

test('reporter after a power cut between the outcome and the post: the outcome comes from the history, exactly once', async (t) => {
  const { forge, client, dir, log, clock } = await setup(t);
  const make = () => new CommitStatusReporter({ report: reportConfig(), host: 'host-1', ring: 'canary', stateDir: dir, logger: log.logger, now: () => clock.t, client });
  const before = make();
  before.building(A);
  before.deploying(A, 3);
  await before.outbox.flush();
  // The executor recorded the outcome; the watcher never got the answer (the power went).
  const after = make();
  assert.equal(after.awaiting, A);
  const failed = record({ outcome: 'rolled-back', generation: null, checks: [{ name: 'http-api', kind: 'http', passed: false, attempts: 3, error: '503', startedAt: null, durationMs: 1 }] });
  after.reconcile([failed]);
  after.reconcile([failed]);
  assert.equal(after.awaiting, null);
  await after.outbox.flush();
  // The same outcome reported again (the answer did arrive after all): still one.
  after.outcome(failed);
  await after.outbox.flush();
  const terminal = forge.of(A, CONTEXT).filter((s) => s.state !== 'pending');
  assert.deepEqual(terminal.map((s) => [s.state, s.description]), [['failure', 'rolled back: check http-api: 503']]);
});

test('the decentralised halt counts the failures of this ring only, from the forge', async (t) => {
  const { forge, client, dir, log, clock } = await setup(t);
  const poster = new GitHubClient({ apiUrl: forge.apiUrl, repository: 'infra/fleet', token: () => TOKEN, timeoutMs: 5000 });
  await poster.create(A, status('failure', 'rolled back', 'pullnix/canary/h2'));
  await poster.create(A, status('failure', 'rolled back', 'pullnix/prod/h9'));
  await poster.create(A, status('success', 'deployed', 'pullnix/canary/h3'));
  const make = (haltAfter: number | null) => new CommitStatusReporter({ report: reportConfig({ haltAfter }), host: 'host-1', ring: 'canary', stateDir: dir, logger: log.logger, now: () => clock.t, client });
  assert.equal(await make(null).halt(A), null);
  assert.deepEqual(await make(1).halt(A), { halted: true, failures: 1, ring: 'canary', message: 'halted: 1 failure in ring canary' });
  assert.equal((await make(2).halt(A))!.halted, false);
  await poster.create(A, status('failure', 'rolled back', 'pullnix/canary/h3'));
  assert.deepEqual(await make(2).halt(A), { halted: true, failures: 2, ring: 'canary', message: 'halted: 2 failures in ring canary' });
  forge.modes.unavailable = true;
  assert.equal((await make(2).halt(A))!.halted, false, 'an unreachable forge does not halt');
  assert.equal(log.count('report.halt_unknown'), 1);
});

test('the step observer: a refusal of this host posts a failure; a commit already known bad posts nothing new', async (t) => {
  const { forge, client, dir, log, clock } = await setup(t);
  const reporter = new CommitStatusReporter({ report: reportConfig(), host: 'host-1', ring: 'canary', stateDir: dir, logger: log.logger, now: () => clock.t, client, checks: 4 });
  const event = (commit: string, step: StepEvent['step'], outcome: StepEvent['outcome'], detail: string | null): StepEvent => ({ commit, step, outcome, detail, toplevel: null });
  reporter.onStep(event(A, 'refused', 'untrusted', 'unsigned: commit aaaa has no signature'));
  reporter.onStep(event(B, 'refused', 'known-bad', 'build failed before'));
  reporter.onStep(event(B, 'refused', 'refused', 'KNOWN_BAD: bbbb failed before'));
  const C = 'c'.repeat(40);
  reporter.onStep(event(C, 'building', null, null));
  reporter.onStep(event(C, 'deploying', null, null));
  await reporter.outbox.flush();
  assert.deepEqual(forge.of(A, CONTEXT).map((s) => [s.state, s.description]), [['failure', 'refused: unsigned: commit aaaa has no signature']]);
  assert.deepEqual(forge.of(B, CONTEXT), []);
  assert.deepEqual(forge.of(C, CONTEXT).map((s) => s.description), ['verifying 4 checks']);
  reporter.onStep({ ...event(C, 'succeeded', 'deployed', null), deployment: record({ commit: C }) });
  await reporter.outbox.flush();
  assert.deepEqual(forge.of(C, CONTEXT).map((s) => s.state), ['pending', 'success']);
});

/**
 * Contract tests of the forge client and of the forge stand-in against recorded real GitHub
 * exchanges: @octokit/fixtures 23.1.2, scenario api.github.com/create-status (two creates, the
 * list of statuses, the combined status, recorded from api.github.com and normalised by octokit).
 * Both sides must agree with the recording: the client sends exactly the recorded requests and
 * reads the recorded answers; the stand-in answers the recorded requests in the recorded shapes.
 * Gitea's side has no recording; its shapes come from its API types (forge-standin.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isDeepStrictEqual, promisify } from 'node:util';
import { GitHubClient, GiteaClient, type HttpAnswer, type HttpRequest, type StatusBody, type Transport } from '@pullnix/watcher';
import { ForgeStandIn } from '../lib/forge-standin.ts';

interface Exchange {
  method: string;
  path: string;
  body: unknown;
  status: number;
  response: unknown;
  headers: Record<string, string | number>;
  reqheaders: Record<string, string | number>;
}

const require = createRequire(import.meta.url);
const FIXTURE = require('@octokit/fixtures/scenarios/api.github.com/create-status/normalized-fixture.json') as Exchange[];
const TOKEN = '0000000000000000000000000000000000000001';
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../../..');
const [OWNER, REPO] = ['octokit-fixture-org', 'create-status'];
const SHA = '0000000000000000000000000000000000000001';

test('the fixture is the create-status scenario: two creates, the list, the combined status', () => {
  assert.deepEqual(
    FIXTURE.map((x) => `${x.method} ${x.path.replace(/\?.*/, '')}`),
    [
      `post /repos/${OWNER}/${REPO}/statuses/${SHA}`,
      `post /repos/${OWNER}/${REPO}/statuses/${SHA}`,
      `get /repos/${OWNER}/${REPO}/commits/${SHA}/statuses`,
      `get /repos/${OWNER}/${REPO}/commits/${SHA}/status`,
    ],
  );
});

/** A transport that answers from the recording, after checking the request is the recorded one. */
function replay(exchanges: Exchange[], seen: { method: string; path: string; body: unknown; authorization: string | null }[]): Transport {
  return async (input: string, init: HttpRequest): Promise<HttpAnswer> => {
    const url = new URL(input);
    const method = init.method.toLowerCase();
    const body = init.body === null ? '' : (JSON.parse(init.body) as unknown);
    seen.push({ method, path: url.pathname, body, authorization: init.headers.authorization ?? null });
    const x = exchanges.find((e) => e.method === method && e.path.replace(/\?.*/, '') === url.pathname && isDeepStrictEqual(e.body, body));
    if (!x) return { status: 599, statusText: '', header: () => null, text: JSON.stringify({ message: `not in the recording: ${method} ${url.pathname} ${JSON.stringify(body)}` }) };
    const headers = new Map(Object.entries(x.headers).map(([k, v]) => [k.toLowerCase(), String(v)]));
    return { status: x.status, statusText: '', header: (name) => headers.get(name.toLowerCase()) ?? null, text: JSON.stringify(x.response) };
  };
}

test('the GitHub client sends exactly the recorded create requests and reads the recorded combined status', async () => {
  const seen: { method: string; path: string; body: unknown; authorization: string | null }[] = [];
  const client = new GitHubClient({ apiUrl: 'https://api.github.com', repository: `${OWNER}/${REPO}`, token: () => TOKEN, timeoutMs: 5000, transport: replay(FIXTURE, seen) });
  for (const x of FIXTURE.filter((e) => e.method === 'post')) {
    const b = x.body as { state: StatusBody['state']; target_url: string; description: string; context: string };
    await client.create(SHA, { state: b.state, description: b.description, context: b.context, targetUrl: b.target_url });
  }
  const latest = await client.latest(SHA);
  const recorded = FIXTURE[3]!.response as { statuses: { context: string; state: string; description: string }[] };
  assert.deepEqual(
    latest,
    recorded.statuses.map((s) => ({ context: s.context, state: s.state, description: s.description })),
  );
  assert.equal(seen.length, 3);
  // The recording used "token …"; the client sends "Bearer …": GitHub takes both for a token (docs "Authenticating to the REST API").
  for (const s of seen) assert.equal(s.authorization, `Bearer ${TOKEN}`);
});

test('the GitHub client names the forge error of a status it cannot post, with its cause kept', async () => {
  const client = new GitHubClient({ apiUrl: 'https://api.github.com', repository: `${OWNER}/${REPO}`, token: () => TOKEN, timeoutMs: 5000, transport: replay(FIXTURE, []) });
  await assert.rejects(client.create(SHA, { state: 'error', description: 'not recorded', context: 'x', targetUrl: null }), (e: Error) => /599 not in the recording/.test(e.message));
});

/** The recorded response's shape: its keys, recursively for objects (values are not compared). */
function keysOf(value: unknown): string[] {
  if (Array.isArray(value)) return value.length === 0 ? [] : keysOf(value[0]);
  if (typeof value !== 'object' || value === null) return [];
  return Object.keys(value).sort();
}

test('the GitHub stand-in answers the recorded requests as GitHub did: codes, shapes, order, the combined state', async (t) => {
  const forge = await new ForgeStandIn('github', TOKEN).start();
  t.after(() => forge.stop());
  const answers: { status: number; json: unknown }[] = [];
  for (const x of FIXTURE) {
    const r = await fetch(`${forge.apiUrl}${x.path}`, {
      method: x.method.toUpperCase(),
      headers: { authorization: String(x.reqheaders.authorization), accept: String(x.reqheaders.accept), ...(x.method === 'post' ? { 'content-type': 'application/json' } : {}) },
      body: x.method === 'post' ? JSON.stringify(x.body) : null,
    });
    answers.push({ status: r.status, json: await r.json() });
  }
  for (const [i, x] of FIXTURE.entries()) {
    const a = answers[i]!;
    assert.equal(a.status, x.status, `${x.method} ${x.path}`);
    assert.deepEqual(keysOf(a.json), keysOf(x.response), `the shape of ${x.method} ${x.path}`);
    const pick = (s: Record<string, unknown>) => ({ state: s.state, description: s.description, context: s.context, target_url: s.target_url });
    if (x.method === 'post') assert.deepEqual(pick(a.json as Record<string, unknown>), pick(x.response as Record<string, unknown>));
  }
  const list = answers[2]!.json as Record<string, unknown>[];
  assert.deepEqual(list.map((s) => s.context), (FIXTURE[2]!.response as Record<string, unknown>[]).map((s) => s.context), 'newest first, as recorded');
  const combined = answers[3]!.json as { state: string; total_count: number; statuses: Record<string, unknown>[] };
  const recorded = FIXTURE[3]!.response as { state: string; total_count: number; statuses: Record<string, unknown>[] };
  assert.equal(combined.state, recorded.state);
  assert.equal(combined.total_count, recorded.total_count);
  assert.deepEqual(keysOf(combined.statuses), keysOf(recorded.statuses));
});

test('the Gitea stand-in and client: Status names its state `status`, statuses live under /api/v1, "token" authorization', async (t) => {
  const forge = await new ForgeStandIn('gitea', 'gitea-token').start();
  t.after(() => forge.stop());
  const client = new GiteaClient({ apiUrl: forge.apiUrl, repository: 'infra/fleet', token: () => 'gitea-token', timeoutMs: 5000 });
  await client.create(SHA, { state: 'pending', description: ' building ', context: 'pullnix/canary/a', targetUrl: null });
  await client.create(SHA, { state: 'failure', description: 'rolled back: check http-api: 503', context: 'pullnix/canary/a', targetUrl: null });
  await client.create(SHA, { state: 'success', description: 'deployed generation 4, 3/3 checks, 38 s', context: 'pullnix/canary/b', targetUrl: null });
  assert.deepEqual(await client.latest(SHA), [
    { context: 'pullnix/canary/b', state: 'success', description: 'deployed generation 4, 3/3 checks, 38 s' },
    { context: 'pullnix/canary/a', state: 'failure', description: 'rolled back: check http-api: 503' },
  ]);
  const raw = (await (await fetch(`${forge.apiUrl}/repos/infra/fleet/commits/${SHA}/statuses`, { headers: { authorization: 'token gitea-token' } })).json()) as Record<string, unknown>[];
  assert.deepEqual(keysOf(raw), ['context', 'created_at', 'creator', 'description', 'id', 'status', 'target_url', 'updated_at', 'url']);
  for (const r of forge.requests) assert.equal(r.authorization, 'token gitea-token');
});

test("the client works under the watcher's own Node flags (--lite-mode --no-expose-wasm), where Node's fetch does not", async (t) => {
  const forge = await new ForgeStandIn('github', TOKEN).start();
  t.after(() => forge.stop());
  const flags = (JSON.parse(readFileSync(join(ROOT, 'nixos/node-flags.json'), 'utf8')) as { watcher: string[] }).watcher;
  const index = pathToFileURL(join(ROOT, 'watcher/dist/src/index.js')).href;
  const script = `
    const { GitHubClient } = await import(${JSON.stringify(index)});
    const client = new GitHubClient({ apiUrl: ${JSON.stringify(forge.apiUrl)}, repository: 'o/r', token: () => ${JSON.stringify(TOKEN)}, timeoutMs: 5000 });
    await client.create(${JSON.stringify(SHA)}, { state: 'success', description: 'deployed generation 4, 3/3 checks, 38 s', context: 'pullnix/h', targetUrl: null });
    process.stdout.write(JSON.stringify(await client.latest(${JSON.stringify(SHA)})));
  `;
  // Asynchronously: the stand-in answers from this process.
  const run = (code: string) => promisify(execFile)(process.execPath, [...flags, '--input-type=module', '-e', code], { encoding: 'utf8', timeout: 60_000 }).then((r) => ({ status: 0, ...r }), (e: { code: number; stdout: string; stderr: string }) => ({ status: e.code, stdout: e.stdout, stderr: e.stderr }));
  const r = await run(script);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), [{ context: 'pullnix/h', state: 'success', description: 'deployed generation 4, 3/3 checks, 38 s' }]);
  // Why watcher/src/forge/http.ts exists: fetch takes the whole process down under these flags.
  const f = await run(`await fetch(${JSON.stringify(forge.apiUrl)}).catch(() => {}); process.exit(0);`);
  assert.notEqual(f.status, 0);
  assert.match(f.stderr, /WebAssembly is not defined/);
});

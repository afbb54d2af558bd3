/**
 * A forge stand-in: an HTTP server speaking the commit-status endpoints of GitHub and of
 * Gitea/Forgejo, with the faults a fleet meets (an outage, 429 + Retry-After, GitHub's secondary
 * rate limit). No forge is installable here, so this is a claim about theirs, written from:
 *
 * GitHub (docs.github.com/rest/commits/statuses; the shapes contract-tested against the recorded
 * exchanges of @octokit/fixtures 23.1.2, scenarios/api.github.com/create-status, in
 * test/integration/forge-contract.test.ts):
 *   - POST /repos/{owner}/{repo}/statuses/{sha} → 201 and the status {url, id, node_id, state,
 *     description, target_url, context, created_at, updated_at, creator} (normalized-fixture.json [0]).
 *   - GET /repos/{owner}/{repo}/commits/{ref}/statuses → every status, newest first (fixture [2];
 *     docs: "in reverse chronological order").
 *   - GET /repos/{owner}/{repo}/commits/{ref}/status → {state, statuses (latest per context), sha,
 *     total_count, repository, commit_url, url} (fixture [3]); per_page/page.
 *   - state one of error, failure, pending, success, else 422 (docs: "Can be one of").
 *   - description over 140 characters → 422 "description is too long (maximum is 140 characters)"
 *     (the validation error as GitHub returns it, quoted in vince-riv/argo-diff#49 and
 *     sclorg/testing-farm-as-github-action#187).
 *   - the combined state: failure if any latest is error or failure, pending if any is pending or
 *     none exists, else success (docs "Get the combined status for a specific reference").
 *   - secondary limit: 80 content-creating requests a minute, 500 an hour; past them 403 with a
 *     "secondary rate limit" message and, in mode `secondaryRetryAfter`, a retry-after header
 *     (docs.github.com "Rate limits for the REST API", "About secondary rate limits").
 *   - Authorization "token X" or "Bearer X", else 401 "Bad credentials".
 *
 * Gitea / Forgejo (go-gitea/gitea routers/api/v1/repo/status.go, models/git/commit_status.go,
 * modules/structs/status.go):
 *   - under /api/v1; POST …/statuses/{sha} → 201 with a Status whose state is named `status`
 *     (structs.Status `json:"status"`), also `warning` accepted (CommitStatusState).
 *   - GET …/commits/{ref}/statuses: newest first by default (sortCommitStatusesSession: default
 *     Desc("created_unix")); page, limit.
 *   - GET …/commits/{ref}/status: CombinedStatus {state, sha, total_count, statuses, …}, the latest
 *     per context (GetLatestCommitStatus: max(id) grouped by context_hash).
 *   - description and context trimmed of spaces on create (NewCommitStatus: strings.TrimSpace).
 *   - Authorization "token X".
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type ForgeKind = 'github' | 'gitea';

export interface StoredStatus {
  id: number;
  sha: string;
  state: string;
  description: string;
  context: string;
  targetUrl: string | null;
  at: number;
}

export interface RecordedRequest {
  method: string;
  path: string;
  authorization: string | undefined;
  body: unknown;
}

/** Faults, switched on and off by the test. */
export interface ForgeModes {
  /** Every connection is closed without an answer. */
  down: boolean;
  /** 503 to every request. */
  unavailable: boolean;
  /** Answer the next N creates with 429 and this Retry-After (seconds). */
  tooMany: { count: number; retryAfterSec: number } | null;
  /** GitHub's secondary limits on creates (80/min, 500/h) enforced. */
  secondaryLimits: boolean;
  /** With secondaryLimits: the 403 carries retry-after (seconds); null: no header (the client must wait ≥ 60 s). */
  secondaryRetryAfterSec: number | null;
  /** The create is stored, then the connection dies before the answer (a post the client cannot know took). */
  dropAnswerOfNextCreate: boolean;
}

export class ForgeStandIn {
  readonly kind: ForgeKind;
  readonly token: string;
  readonly statuses: StoredStatus[] = [];
  readonly requests: RecordedRequest[] = [];
  readonly modes: ForgeModes = { down: false, unavailable: false, tooMany: null, secondaryLimits: true, secondaryRetryAfterSec: null, dropAnswerOfNextCreate: false };
  /** The stand-in's clock (tests move it to model the minute and the hour of the limits). */
  now: () => number = Date.now;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private nextId = 1000;
  private readonly creates: number[] = [];

  /** With a store file, the statuses survive a restart of the stand-in (a forge keeps what it took). */
  private readonly store: string | null;

  constructor(kind: ForgeKind, token: string, options: { store?: string } = {}) {
    this.kind = kind;
    this.token = token;
    this.store = options.store ?? null;
    if (this.store && existsSync(this.store)) {
      this.statuses.push(...(JSON.parse(readFileSync(this.store, 'utf8')) as StoredStatus[]));
      this.nextId = Math.max(this.nextId, ...this.statuses.map((x) => x.id + 1));
    }
  }

  /** The API base URL clients use (Gitea's under /api/v1). */
  get apiUrl(): string {
    const { port } = this.server!.address() as AddressInfo;
    return `http://127.0.0.1:${port}${this.kind === 'gitea' ? '/api/v1' : ''}`;
  }

  async start(port = 0, host = '127.0.0.1'): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server!.listen(port, host, resolve));
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** The statuses of one commit and context, oldest first. */
  of(sha: string, context: string): StoredStatus[] {
    return this.statuses.filter((s) => s.sha === sha && s.context === context);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.modes.down) {
      req.socket.destroy();
      return;
    }
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let body: unknown = null;
    if (text !== '') {
      try {
        body = JSON.parse(text);
      } catch {
        return this.send(res, 400, { message: 'Problems parsing JSON' });
      }
    }
    const url = new URL(req.url ?? '/', 'http://forge');
    this.requests.push({ method: req.method ?? '', path: url.pathname + url.search, authorization: req.headers.authorization, body });
    if (this.modes.unavailable) return this.send(res, 503, { message: 'Service Unavailable' });
    const prefix = this.kind === 'gitea' ? '/api/v1' : '';
    if (!url.pathname.startsWith(`${prefix}/repos/`)) return this.send(res, 404, { message: 'Not Found' });
    if (!this.authorized(req.headers.authorization)) return this.send(res, 401, { message: this.kind === 'github' ? 'Bad credentials' : 'token is required' });
    const parts = url.pathname.slice(prefix.length).split('/').filter(Boolean).map(decodeURIComponent);
    // repos, owner, repo, statuses, sha  |  repos, owner, repo, commits, ref, statuses|status
    if (req.method === 'POST' && parts.length === 5 && parts[3] === 'statuses') return this.create(parts[1]!, parts[2]!, parts[4]!, body, res);
    if (req.method === 'GET' && parts.length === 6 && parts[3] === 'commits' && parts[5] === 'statuses') return this.list(parts[4]!, url, res);
    if (req.method === 'GET' && parts.length === 6 && parts[3] === 'commits' && parts[5] === 'status') return this.combined(parts[1]!, parts[2]!, parts[4]!, url, res);
    return this.send(res, 404, { message: 'Not Found' });
  }

  private authorized(header: string | undefined): boolean {
    if (header === `token ${this.token}`) return true;
    return this.kind === 'github' && header === `Bearer ${this.token}`;
  }

  private create(owner: string, repo: string, sha: string, body: unknown, res: ServerResponse): void {
    const b = (body ?? {}) as Record<string, unknown>;
    const states = this.kind === 'github' ? ['error', 'failure', 'pending', 'success'] : ['pending', 'success', 'error', 'failure', 'warning'];
    if (typeof b.state !== 'string' || !states.includes(b.state)) return this.send(res, 422, { message: 'Validation Failed', errors: [{ resource: 'Status', field: 'state', code: 'invalid' }] });
    let description = typeof b.description === 'string' ? b.description : '';
    let context = typeof b.context === 'string' ? b.context : 'default';
    if (this.kind === 'github' && [...description].length > 140) {
      return this.send(res, 422, { message: 'Validation Failed', errors: [{ resource: 'Status', code: 'custom', field: 'description', message: 'description is too long (maximum is 140 characters)' }] });
    }
    if (this.kind === 'gitea') {
      description = description.trim();
      context = context.trim();
    }
    const now = this.now();
    if (this.modes.tooMany && this.modes.tooMany.count > 0) {
      this.modes.tooMany.count -= 1;
      return this.send(res, 429, { message: 'Too Many Requests' }, { 'retry-after': String(this.modes.tooMany.retryAfterSec) });
    }
    if (this.kind === 'github' && this.modes.secondaryLimits) {
      const minute = this.creates.filter((t) => t > now - 60_000).length;
      const hour = this.creates.filter((t) => t > now - 3_600_000).length;
      if (minute >= 80 || hour >= 500) {
        const headers: Record<string, string> = this.modes.secondaryRetryAfterSec === null ? {} : { 'retry-after': String(this.modes.secondaryRetryAfterSec) };
        return this.send(res, 403, { message: 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.' }, headers);
      }
    }
    this.creates.push(now);
    const stored: StoredStatus = { id: this.nextId++, sha, state: b.state, description, context, targetUrl: typeof b.target_url === 'string' ? b.target_url : null, at: now };
    this.statuses.push(stored);
    if (this.store) {
      writeFileSync(`${this.store}.tmp`, JSON.stringify(this.statuses));
      renameSync(`${this.store}.tmp`, this.store);
    }
    if (this.modes.dropAnswerOfNextCreate) {
      this.modes.dropAnswerOfNextCreate = false;
      res.socket?.destroy();
      return;
    }
    this.send(res, 201, this.shape(owner, repo, stored));
  }

  private list(sha: string, url: URL, res: ServerResponse): void {
    const all = this.statuses.filter((s) => s.sha === sha).reverse();
    this.send(res, 200, this.page(all, url).map((s) => this.shape('o', 'r', s)));
  }

  private combined(owner: string, repo: string, sha: string, url: URL, res: ServerResponse): void {
    const latest = new Map<string, StoredStatus>();
    for (const s of this.statuses) if (s.sha === sha) latest.set(s.context, s);
    const all = [...latest.values()].sort((a, b) => b.id - a.id);
    const states = all.map((s) => s.state);
    const state = states.some((s) => s === 'error' || s === 'failure') ? 'failure' : states.length === 0 || states.includes('pending') ? 'pending' : 'success';
    this.send(res, 200, { state, sha, total_count: all.length, statuses: this.page(all, url).map((s) => this.shape(owner, repo, s, 'combined')), repository: { full_name: `${owner}/${repo}` }, commit_url: '', url: '' });
  }

  private page(all: StoredStatus[], url: URL): StoredStatus[] {
    const size = Number(url.searchParams.get(this.kind === 'github' ? 'per_page' : 'limit') ?? 30) || 30;
    const page = Math.max(1, Number(url.searchParams.get('page') ?? 1) || 1);
    return all.slice((page - 1) * size, page * size);
  }

  /** GitHub's combined status lists its statuses without `creator` (normalized-fixture.json [3]); Gitea's keep it (structs.Status). */
  private shape(owner: string, repo: string, s: StoredStatus, where: 'status' | 'combined' = 'status'): Record<string, unknown> {
    const at = new Date(s.at).toISOString().replace(/\.\d+Z$/, 'Z');
    const creator = this.kind === 'github' && where === 'combined' ? {} : { creator: { login: 'pullnix-fleet', id: 1 } };
    const common = { id: s.id, description: s.description, target_url: s.targetUrl ?? '', context: s.context, created_at: at, updated_at: at, ...creator };
    const url = `${this.apiUrl}/repos/${owner}/${repo}/statuses/${s.sha}`;
    return this.kind === 'github' ? { url, avatar_url: '', node_id: '', state: s.state, ...common } : { url, status: s.state, ...common };
  }

  private send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
    res.end(text);
  }
}

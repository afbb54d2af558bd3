/**
 * Commit statuses at a forge, over its REST API with node:http(s) (http.ts says why not fetch). One client per kind:
 *
 * GitHub (REST v3, docs.github.com "REST API endpoints for commit statuses"):
 *   POST /repos/{owner}/{repo}/statuses/{sha}       {state, target_url, description, context} → 201
 *   GET  /repos/{owner}/{repo}/commits/{ref}/status  the combined status: the latest status per
 *        context (`statuses[]`, each with `state`), `total_count`; paged with per_page (≤ 100), page
 *   Authorization: Bearer <token>; Accept: application/vnd.github+json.
 *   Rate limits (docs.github.com "Rate limits for the REST API"): a 403 or 429 with
 *   `retry-after` (seconds) waits that long; with `x-ratelimit-remaining: 0` waits until
 *   `x-ratelimit-reset` (epoch seconds); a secondary limit without either waits at least a minute.
 *   Secondary limits on content-creating requests: 80 a minute, 500 an hour (the outbox paces
 *   itself below them, outbox.ts).
 *
 * Gitea and Forgejo (API v1; go-gitea/gitea routers/api/v1/repo/status.go, modules/structs/status.go,
 * and the go-sdk's gitea/status.go: CreateStatus, GetCombinedStatus):
 *   POST /repos/{owner}/{repo}/statuses/{sha}       CreateStatusOption {state, target_url, description, context} → 201
 *   GET  /repos/{owner}/{repo}/commits/{ref}/status  CombinedStatus {state, sha, total_count, statuses[]},
 *        the latest status per context (models/git/commit_status.go GetLatestCommitStatus: max(id)
 *        group by context_hash); paged with page, limit. A Status names its state `status`
 *        (structs.Status: `State CommitStatusState json:"status"`), not `state` as GitHub does.
 *   Authorization: token <token>.
 */
import { readFileSync } from 'node:fs';
import type { ReportConfig } from '@pullnix/shared';
import { nodeTransport, type HttpAnswer, type Transport } from './http.ts';

export type StatusState = 'pending' | 'success' | 'failure' | 'error';
export const STATUS_STATES: readonly StatusState[] = ['pending', 'success', 'failure', 'error'];

/** What a status says: the forge keeps the latest per (commit, context). */
export interface StatusBody {
  state: StatusState;
  description: string;
  context: string;
  targetUrl: string | null;
}

/** The latest status of one context on a commit, as the forge reports it. */
export interface RemoteStatus {
  context: string;
  state: string;
  description: string;
}

/** GitHub cuts nothing and refuses longer descriptions; pullnix cuts them itself (docs/report.md). */
export const DESCRIPTION_MAX = 140;

export function cutDescription(text: string): string {
  const one = text.replace(/\s+/g, ' ').trim();
  const chars = [...one];
  return chars.length <= DESCRIPTION_MAX ? one : `${chars.slice(0, DESCRIPTION_MAX - 1).join('')}…`;
}

/**
 * A request the forge did not take. `retryAfterMs`: how long the forge asked us to wait (or
 * null: choose a back-off). `permanent`: this status will never be accepted (422: a validation
 * error, such as GitHub's 1,000 statuses per commit and context), so it is dropped.
 */
export class ForgeError extends Error {
  readonly status: number | null;
  readonly retryAfterMs: number | null;
  readonly permanent: boolean;

  constructor(message: string, options: { status: number | null; retryAfterMs?: number | null; permanent?: boolean; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.name = 'ForgeError';
    this.status = options.status;
    this.retryAfterMs = options.retryAfterMs ?? null;
    this.permanent = options.permanent ?? false;
  }
}

export interface ForgeClient {
  readonly kind: ReportConfig['forge'];
  /** Content-creating writes allowed per minute and per hour (GitHub's secondary limits); null: none known. */
  readonly writeLimits: { perMinute: number; perHour: number } | null;
  create(sha: string, status: StatusBody, signal?: AbortSignal): Promise<void>;
  /** The latest status of every context on the commit. */
  latest(sha: string, signal?: AbortSignal): Promise<RemoteStatus[]>;
}

export interface ForgeClientOptions {
  apiUrl: string;
  /** owner/name */
  repository: string;
  /** Read at each request, so a rotated token is used at once and none stays in memory. */
  token: () => string;
  timeoutMs: number;
  now?: () => number;
  transport?: Transport;
}

/** The most pages of combined status read (100 contexts a page on GitHub): a fleet of 1,000 hosts fits. */
const MAX_PAGES = 20;

abstract class RestClient implements ForgeClient {
  abstract readonly kind: ReportConfig['forge'];
  abstract readonly writeLimits: { perMinute: number; perHour: number } | null;
  protected readonly base: string;
  private readonly options: ForgeClientOptions;

  constructor(options: ForgeClientOptions) {
    this.options = options;
    this.base = `${options.apiUrl.replace(/\/+$/, '')}/repos/${options.repository.split('/').map(encodeURIComponent).join('/')}`;
  }

  protected abstract headers(token: string): Record<string, string>;
  protected abstract pageQuery(page: number): string;
  protected abstract stateOf(status: Record<string, unknown>): unknown;

  async create(sha: string, status: StatusBody, signal?: AbortSignal): Promise<void> {
    const body: Record<string, string> = { state: status.state, description: cutDescription(status.description), context: status.context };
    if (status.targetUrl !== null) body.target_url = status.targetUrl;
    await this.request('POST', `${this.base}/statuses/${encodeURIComponent(sha)}`, body, signal);
  }

  async latest(sha: string, signal?: AbortSignal): Promise<RemoteStatus[]> {
    const all: RemoteStatus[] = [];
    for (let page = 1; page <= MAX_PAGES; page++) {
      const json = await this.request('GET', `${this.base}/commits/${encodeURIComponent(sha)}/status?${this.pageQuery(page)}`, null, signal);
      if (typeof json !== 'object' || json === null || !Array.isArray((json as { statuses?: unknown }).statuses)) {
        throw new ForgeError(`the forge's combined status of ${sha} has no statuses list`, { status: null });
      }
      const { statuses, total_count: total } = json as { statuses: Record<string, unknown>[]; total_count?: unknown };
      for (const s of statuses) {
        const state = this.stateOf(s);
        if (typeof s.context !== 'string' || typeof state !== 'string') continue;
        all.push({ context: s.context, state, description: typeof s.description === 'string' ? s.description : '' });
      }
      if (statuses.length === 0 || typeof total !== 'number' || all.length >= total) break;
    }
    return all;
  }

  private async request(method: 'GET' | 'POST', url: string, body: unknown, signal?: AbortSignal): Promise<unknown> {
    let token: string;
    try {
      token = this.options.token();
    } catch (cause) {
      throw new ForgeError(`the forge token cannot be read: ${(cause as Error).message}`, { status: null, cause });
    }
    const timeout = AbortSignal.timeout(this.options.timeoutMs);
    let response: HttpAnswer;
    try {
      response = await (this.options.transport ?? nodeTransport)(url, {
        method,
        headers: { ...this.headers(token), ...(body === null ? {} : { 'content-type': 'application/json; charset=utf-8' }), 'user-agent': 'pullnix' },
        body: body === null ? null : JSON.stringify(body),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
    } catch (cause) {
      const reason = timeout.aborted ? `no answer within ${this.options.timeoutMs / 1000} s` : describeFetchError(cause);
      throw new ForgeError(`${method} ${redact(url)}: ${reason}`, { status: null, cause });
    }
    const { text } = response;
    if (response.status >= 200 && response.status < 300) {
      if (text === '') return null;
      try {
        return JSON.parse(text) as unknown;
      } catch (cause) {
        throw new ForgeError(`${method} ${redact(url)}: answered ${response.status} with a body that is not JSON`, { status: response.status, cause });
      }
    }
    const said = messageOf(text) ?? response.statusText;
    const message = `${method} ${redact(url)}: ${response.status} ${said}`;
    throw new ForgeError(message, { status: response.status, retryAfterMs: waitAsked(response, this.options.now ?? Date.now, said), permanent: response.status === 422 || response.status === 400 });
  }
}

export class GitHubClient extends RestClient {
  readonly kind = 'github' as const;
  readonly writeLimits = { perMinute: 80, perHour: 500 };

  protected headers(token: string): Record<string, string> {
    return { accept: 'application/vnd.github+json', authorization: `Bearer ${token}`, 'x-github-api-version': '2022-11-28' };
  }

  protected pageQuery(page: number): string {
    return `per_page=100&page=${page}`;
  }

  protected stateOf(status: Record<string, unknown>): unknown {
    return status.state;
  }
}

export class GiteaClient extends RestClient {
  readonly kind = 'gitea' as const;
  readonly writeLimits = null;

  protected headers(token: string): Record<string, string> {
    return { accept: 'application/json', authorization: `token ${token}` };
  }

  protected pageQuery(page: number): string {
    return `limit=50&page=${page}`;
  }

  protected stateOf(status: Record<string, unknown>): unknown {
    // structs.Status names it `status`; accept `state` too, as Forgejo's and older answers may.
    return status.status ?? status.state;
  }
}

export function readToken(file: string): string {
  const token = readFileSync(file, 'utf8').trim();
  if (token === '') throw new Error(`${file} is empty`);
  if (/[\r\n]/.test(token)) throw new Error(`${file} holds more than one line`);
  return token;
}

export function createForgeClient(report: ReportConfig, options: { transport?: Transport; now?: () => number } = {}): ForgeClient {
  if (report.repository === null || report.tokenFile === null) throw new Error('report.repository and report.tokenFile are required with report.enable');
  const tokenFile = report.tokenFile;
  const common: ForgeClientOptions = { apiUrl: report.apiUrl, repository: report.repository, token: () => readToken(tokenFile), timeoutMs: report.timeoutSec * 1000, ...options };
  return report.forge === 'gitea' ? new GiteaClient(common) : new GitHubClient(common);
}

/**
 * How long the forge asked us to wait: `retry-after` (seconds or an HTTP date), else a spent
 * primary limit (`x-ratelimit-remaining: 0` → until `x-ratelimit-reset`), else at least a minute
 * for a 403/429 that is a rate limit by GitHub's words (docs.github.com "Rate limits for the REST
 * API": "If you receive a rate limit error ... wait at least one minute").
 */
export function waitAsked(response: HttpAnswer, now: () => number, message = ''): number | null {
  const after = response.header('retry-after');
  if (after !== null) {
    const seconds = Number(after);
    if (Number.isFinite(seconds) && seconds >= 0) return Math.round(seconds * 1000);
    const date = Date.parse(after);
    if (!Number.isNaN(date)) return Math.max(0, date - now());
  }
  if (response.header('x-ratelimit-remaining') === '0') {
    const reset = Number(response.header('x-ratelimit-reset'));
    if (Number.isFinite(reset) && reset > 0) return Math.max(0, reset * 1000 - now());
  }
  if (response.status === 429 || (response.status === 403 && /rate limit/i.test(message))) return 60_000;
  return null;
}

function messageOf(text: string): string | null {
  try {
    const json = JSON.parse(text) as { message?: unknown };
    return typeof json.message === 'string' ? json.message.slice(0, 300) : null;
  } catch {
    return text === '' ? null : text.slice(0, 300);
  }
}

function describeFetchError(error: unknown): string {
  const e = error as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  return e.code ?? e.cause?.code ?? e.message ?? String(error);
}

/** URLs carry no token here (it goes in a header), but user:password@ in apiUrl must not be logged. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return url;
  }
}

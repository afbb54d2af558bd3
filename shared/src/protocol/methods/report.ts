import type { JSONSchemaType } from 'ajv';
import { COMMIT_PATTERN, STORE_PATH_PATTERN } from '../grammar.ts';
import { defineMethod } from '../method.ts';
import { orNull } from '../nullable.ts';
import type { CommitInfo, VulnerabilityFinding, VulnerabilityScan, WatcherReport } from '../types.ts';
import { VULNERABILITY_DECISIONS, WATCHER_STATES } from '../vocabulary.ts';

export type ReportParams = WatcherReport;

const isoTime = orNull<string>({ type: 'string', maxLength: 40 });
const commitInfo: JSONSchemaType<CommitInfo> = {
  type: 'object',
  additionalProperties: false,
  required: ['commit', 'subject', 'time'],
  properties: {
    commit: { type: 'string', pattern: COMMIT_PATTERN },
    subject: orNull({ type: 'string', maxLength: 1000 }),
    time: isoTime,
  },
};

const finding: JSONSchemaType<VulnerabilityFinding> = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'package', 'version', 'score'],
  properties: {
    id: { type: 'string', pattern: '^CVE-[0-9]{4}-[0-9]{4,}$', maxLength: 32 },
    package: { type: 'string', maxLength: 256 },
    version: orNull({ type: 'string', maxLength: 256 }),
    score: orNull({ type: 'number', minimum: 0, maximum: 10 }),
  },
};
const findings = { type: 'array', maxItems: 100, items: finding } as const;
const vulnerabilityScan: JSONSchemaType<VulnerabilityScan> = {
  type: 'object',
  additionalProperties: false,
  required: ['commit', 'toplevel', 'liveSystem', 'at', 'decision', 'minSeverity', 'new', 'fixed', 'allowed', 'counts', 'error'],
  properties: {
    commit: { type: 'string', pattern: COMMIT_PATTERN },
    toplevel: { type: 'string', maxLength: 4096 },
    liveSystem: orNull({ type: 'string', maxLength: 4096 }),
    at: { type: 'string', maxLength: 40 },
    decision: { type: 'string', enum: VULNERABILITY_DECISIONS },
    minSeverity: { type: 'number', minimum: 0, maximum: 10 },
    new: findings,
    fixed: findings,
    allowed: findings,
    counts: {
      type: 'object',
      additionalProperties: false,
      required: ['new', 'fixed', 'allowed'],
      properties: { new: { type: 'integer', minimum: 0 }, fixed: { type: 'integer', minimum: 0 }, allowed: { type: 'integer', minimum: 0 } },
    },
    error: orNull({ type: 'string', maxLength: 4000 }),
  },
};

/** The watcher's state, for status (remote head, drift, next poll, last error). */
export const Report = defineMethod<ReportParams, Record<string, never>>()({
  name: 'report',
  roles: ['watcher'],
  summary: "the watcher's state, shown by status",
  params: {
    type: 'object',
    additionalProperties: false,
    required: ['state', 'pid', 'version', 'remoteHead', 'deployedCommit', 'lastPollAt', 'nextPollAt', 'lastError', 'failedBuilds'],
    properties: {
      state: { type: 'string', enum: WATCHER_STATES },
      pid: { type: 'integer', minimum: 1, maximum: 4194304 },
      version: { type: 'string', maxLength: 64 },
      remoteHead: orNull(commitInfo),
      deployedCommit: orNull(commitInfo),
      lastPollAt: isoTime,
      nextPollAt: isoTime,
      lastError: orNull({
        type: 'object',
        additionalProperties: false,
        required: ['kind', 'message', 'at', 'commit'],
        properties: {
          kind: { type: 'string', maxLength: 64 },
          message: { type: 'string', maxLength: 4000 },
          at: { type: 'string', maxLength: 40 },
          commit: orNull({ type: 'string', pattern: COMMIT_PATTERN }),
        },
      }),
      failedBuilds: { type: 'array', maxItems: 100, items: { type: 'string', pattern: COMMIT_PATTERN } },
      untrusted: {
        type: 'object',
        additionalProperties: false,
        required: ['head', 'commit', 'reason', 'message', 'at'],
        nullable: true,
        properties: {
          head: { type: 'string', pattern: COMMIT_PATTERN },
          commit: orNull({ type: 'string', pattern: COMMIT_PATTERN }),
          reason: { type: 'string', maxLength: 64 },
          message: { type: 'string', maxLength: 4000 },
          at: { type: 'string', maxLength: 40 },
        },
      },
      vulnerabilities: { ...vulnerabilityScan, nullable: true },
      // Optional: a watcher of an earlier version does not send it.
      refusedHead: {
        type: 'object',
        additionalProperties: false,
        required: ['commit', 'reason', 'deployed', 'at'],
        nullable: true,
        properties: {
          commit: { type: 'string', pattern: COMMIT_PATTERN },
          reason: { type: 'string', enum: ['not-descendant'] },
          deployed: orNull({ type: 'string', pattern: COMMIT_PATTERN }),
          at: { type: 'string', maxLength: 40 },
        },
      },
      // Optional: the phased-start gate's last decision (ring.phases).
      phased: {
        type: 'object',
        additionalProperties: false,
        required: ['commit', 'allowed', 'message'],
        nullable: true,
        properties: {
          commit: { type: 'string', pattern: COMMIT_PATTERN },
          allowed: { type: 'boolean' },
          message: { type: 'string', maxLength: 400 },
        },
      },
      // Optional: a watcher of an earlier version does not send it.
      prebuilt: {
        type: 'object',
        additionalProperties: false,
        required: ['toplevel', 'sourceCommit', 'manifestCommit', 'signer', 'cacheKey'],
        nullable: true,
        properties: {
          toplevel: { type: 'string', pattern: STORE_PATH_PATTERN },
          sourceCommit: { type: 'string', pattern: COMMIT_PATTERN },
          manifestCommit: { type: 'string', pattern: COMMIT_PATTERN },
          signer: orNull({ type: 'string', maxLength: 256 }),
          cacheKey: orNull({ type: 'string', maxLength: 256 }),
        },
      },
    },
  },
});

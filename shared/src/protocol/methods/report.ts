import { COMMIT_PATTERN } from '../grammar.ts';
import { defineMethod } from '../method.ts';
import type { WatcherReport } from '../types.ts';

export type ReportParams = WatcherReport;

const isoTime = { type: 'string', maxLength: 40, nullable: true } as const;
const commitInfo = {
  type: 'object',
  additionalProperties: false,
  required: ['commit', 'subject', 'time'],
  nullable: true,
  properties: {
    commit: { type: 'string', pattern: COMMIT_PATTERN },
    subject: { type: 'string', maxLength: 1000, nullable: true },
    time: isoTime,
  },
} as const;

const finding = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'package', 'version', 'score'],
  properties: {
    id: { type: 'string', pattern: '^CVE-[0-9]{4}-[0-9]{4,}$', maxLength: 32 },
    package: { type: 'string', maxLength: 256 },
    version: { type: 'string', maxLength: 256, nullable: true },
    score: { type: 'number', minimum: 0, maximum: 10, nullable: true },
  },
} as const;
const findings = { type: 'array', maxItems: 100, items: finding } as const;
const vulnerabilityScan = {
  type: 'object',
  additionalProperties: false,
  required: ['commit', 'toplevel', 'liveSystem', 'at', 'decision', 'minSeverity', 'new', 'fixed', 'allowed', 'counts', 'error'],
  nullable: true,
  properties: {
    commit: { type: 'string', pattern: COMMIT_PATTERN },
    toplevel: { type: 'string', maxLength: 4096 },
    liveSystem: { type: 'string', maxLength: 4096, nullable: true },
    at: { type: 'string', maxLength: 40 },
    decision: { type: 'string', enum: ['passed', 'refused', 'warned', 'error-allowed', 'error-refused'] },
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
    error: { type: 'string', maxLength: 4000, nullable: true },
  },
} as const;

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
      state: { type: 'string', enum: ['starting', 'idle', 'polling', 'fetching', 'building', 'scanning', 'deploying', 'backing-off', 'stopping'] },
      pid: { type: 'integer', minimum: 1, maximum: 4194304 },
      version: { type: 'string', maxLength: 64 },
      remoteHead: commitInfo,
      deployedCommit: commitInfo,
      lastPollAt: isoTime,
      nextPollAt: isoTime,
      lastError: {
        type: 'object',
        additionalProperties: false,
        required: ['kind', 'message', 'at', 'commit'],
        nullable: true,
        properties: {
          kind: { type: 'string', maxLength: 64 },
          message: { type: 'string', maxLength: 4000 },
          at: { type: 'string', maxLength: 40 },
          commit: { type: 'string', pattern: COMMIT_PATTERN, nullable: true },
        },
      },
      failedBuilds: { type: 'array', maxItems: 100, items: { type: 'string', pattern: COMMIT_PATTERN } },
      untrusted: {
        type: 'object',
        additionalProperties: false,
        required: ['head', 'commit', 'reason', 'message', 'at'],
        nullable: true,
        properties: {
          head: { type: 'string', pattern: COMMIT_PATTERN },
          commit: { type: 'string', pattern: COMMIT_PATTERN, nullable: true },
          reason: { type: 'string', maxLength: 64 },
          message: { type: 'string', maxLength: 4000 },
          at: { type: 'string', maxLength: 40 },
        },
      },
      vulnerabilities: vulnerabilityScan,
      // Optional: a watcher of an earlier version does not send it.
      refusedHead: {
        type: 'object',
        additionalProperties: false,
        required: ['commit', 'reason', 'deployed', 'at'],
        nullable: true,
        properties: {
          commit: { type: 'string', pattern: COMMIT_PATTERN },
          reason: { type: 'string', enum: ['not-descendant'] },
          deployed: { type: 'string', pattern: COMMIT_PATTERN, nullable: true },
          at: { type: 'string', maxLength: 40 },
        },
      },
    },
  } as never,
});

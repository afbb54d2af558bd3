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
      state: { type: 'string', enum: ['starting', 'idle', 'polling', 'fetching', 'building', 'deploying', 'backing-off', 'stopping'] },
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
    },
  } as never,
});

/**
 * The JSON Schemas of everything `pullnix-ctl ... --json` prints: the stable shape scripts rely
 * on (docs/cli.md). Typed with ajv's JSONSchemaType against the TypeScript types the executor
 * answers with (shared/src/protocol/types.ts), so a change to a type that is not made here too
 * does not compile. `additionalProperties: false` everywhere: the tests then fail on any field
 * that is not documented. Consumers should still ignore unknown fields: from protocol v1 on
 * fields may be added, never removed, renamed or retyped.
 * `pullnix-ctl schema NAME` prints them.
 */
import type { JSONSchemaType, SchemaObject } from 'ajv';
import {
  CHECK_KINDS,
  COMMIT_PATTERN,
  DEPLOYMENT_OUTCOMES,
  DEPLOYMENT_PHASES,
  ERROR_CODES,
  orNull,
  REBOOT_REASONS,
  VULNERABILITY_DECISIONS,
  WATCHER_STATES,
  PUBLIC_KEY_PATTERN,
  KEY_ID_PATTERN,
  type CheckResult,
  type CommitInfo,
  type DeploymentRecord,
  type ErrorData,
  type PauseInfo,
  type RebootInfo,
  type StatusResult,
  type VulnerabilityFinding,
  type VulnerabilityScan,
  type WatcherReport,
} from '@pullnix/shared/client';
import { CTL_ERROR_CODES } from './exit.ts';

export interface KeyOutput {
  keyId: string;
  publicKey: string;
  /** Where the private key is (absolute path). */
  file: string;
  /** Ready to paste into services.pullnix.settings.operators.keys. */
  nixos: string;
}

export interface VersionOutput {
  version: string;
  protocol: number;
  /** null when the executor could not be asked (see executorError). */
  executor: { version: string; pid: number; startedAt: string } | null;
  executorError: { code: string; message: string } | null;
}

export interface ErrorOutput {
  error: { code: string; message: string; hint: string | null };
  exitCode: number;
}

export type HistoryOutput = { deployments: DeploymentRecord[]; total: number };

const iso = { type: 'string', maxLength: 40 } as const;
const isoOrNull = orNull<string>(iso);
const commit = { type: 'string', pattern: COMMIT_PATTERN } as const;
const anyErrorCode = [...Object.keys(ERROR_CODES), ...Object.keys(CTL_ERROR_CODES)];

const errorData: JSONSchemaType<ErrorData> = {
  type: 'object',
  additionalProperties: false,
  required: ['code', 'message'],
  properties: {
    code: { type: 'string', enum: Object.keys(ERROR_CODES) as ErrorData['code'][] },
    message: { type: 'string' },
  },
};

const checkResult: JSONSchemaType<CheckResult> = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'kind', 'passed', 'attempts', 'error', 'startedAt', 'durationMs'],
  properties: {
    name: { type: 'string' },
    kind: { type: 'string', enum: CHECK_KINDS },
    passed: orNull({ type: 'boolean' }),
    attempts: { type: 'integer', minimum: 0 },
    error: orNull({ type: 'string' }),
    output: { type: 'string', nullable: true },
    units: { type: 'array', items: { type: 'string' }, nullable: true },
    preexisting: { type: 'array', items: { type: 'string' }, nullable: true },
    startedAt: isoOrNull,
    durationMs: { type: 'integer', minimum: 0 },
  },
};

const rebootInfo: JSONSchemaType<RebootInfo> = {
  type: 'object',
  additionalProperties: false,
  required: ['needed', 'reasons', 'mode'],
  properties: {
    needed: { type: 'boolean' },
    reasons: { type: 'array', items: { type: 'string', enum: REBOOT_REASONS } },
    mode: { type: 'string', enum: ['never', 'window'] },
    pendingUntil: { type: 'string', nullable: true },
    windowStart: { type: 'string', nullable: true },
    previousGeneration: { type: 'integer', nullable: true },
    previousDefault: { type: 'string', nullable: true },
    generation: { type: 'integer', nullable: true },
    oneShotEntry: { type: 'string', nullable: true },
    fromBootId: { type: 'string', nullable: true },
    trialBootId: { type: 'string', nullable: true },
    fallbackFromBootId: { type: 'string', nullable: true },
    trigger: { type: 'string', nullable: true },
  },
};

export const deploymentRecordSchema: JSONSchemaType<DeploymentRecord> = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'kind', 'commit', 'toplevel', 'activation', 'requestedBy', 'previous', 'phase', 'phases', 'outcome', 'error', 'activationExit', 'generation', 'startedAt', 'finishedAt'],
  properties: {
    id: { type: 'integer', minimum: 1 },
    kind: { type: 'string', enum: ['deploy', 'rollback'] },
    commit,
    toplevel: { type: 'string', pattern: '^/' },
    activation: { type: 'string', enum: ['test', 'switch'] },
    requestedBy: { type: 'string', pattern: KEY_ID_PATTERN },
    previous: {
      type: 'object',
      additionalProperties: false,
      required: ['system', 'generation'],
      properties: {
        system: orNull({ type: 'string' }),
        generation: orNull({ type: 'integer' }),
        failedUnits: { type: 'array', items: { type: 'string' }, nullable: true },
      },
    },
    phase: { type: 'string', enum: DEPLOYMENT_PHASES },
    phases: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['phase', 'at'],
        properties: {
          phase: { type: 'string', enum: DEPLOYMENT_PHASES },
          at: iso,
          detail: { type: 'string', nullable: true },
          unit: { type: 'string', nullable: true },
        },
      },
    },
    outcome: orNull({ type: 'string', enum: DEPLOYMENT_OUTCOMES }),
    error: orNull(errorData),
    activationExit: orNull({ type: 'integer' }),
    generation: orNull({ type: 'integer' }),
    bootId: { type: 'string', nullable: true },
    startedAt: iso,
    finishedAt: isoOrNull,
    checks: { type: 'array', items: checkResult, nullable: true },
    reboot: { ...rebootInfo, nullable: true },
  },
};

const commitInfo: JSONSchemaType<CommitInfo> = {
  type: 'object',
  additionalProperties: false,
  required: ['commit', 'subject', 'time'],
  properties: { commit, subject: orNull({ type: 'string' }), time: isoOrNull },
};

const vulnerabilityFinding: JSONSchemaType<VulnerabilityFinding> = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'package', 'version', 'score'],
  properties: { id: { type: 'string' }, package: { type: 'string' }, version: orNull({ type: 'string' }), score: orNull({ type: 'number' }) },
};
const vulnerabilityFindings = { type: 'array', items: vulnerabilityFinding } as const;

const vulnerabilityScan: JSONSchemaType<VulnerabilityScan> = {
  type: 'object',
  additionalProperties: false,
  required: ['commit', 'toplevel', 'liveSystem', 'at', 'decision', 'minSeverity', 'new', 'fixed', 'allowed', 'counts', 'error'],
  properties: {
    commit,
    toplevel: { type: 'string' },
    liveSystem: orNull({ type: 'string' }),
    at: iso,
    decision: { type: 'string', enum: VULNERABILITY_DECISIONS },
    minSeverity: { type: 'number' },
    new: vulnerabilityFindings,
    fixed: vulnerabilityFindings,
    allowed: vulnerabilityFindings,
    counts: {
      type: 'object',
      additionalProperties: false,
      required: ['new', 'fixed', 'allowed'],
      properties: { new: { type: 'integer' }, fixed: { type: 'integer' }, allowed: { type: 'integer' } },
    },
    error: orNull({ type: 'string' }),
  },
};

const watcherReport: JSONSchemaType<WatcherReport> = {
  type: 'object',
  additionalProperties: false,
  required: ['state', 'pid', 'version', 'remoteHead', 'deployedCommit', 'lastPollAt', 'nextPollAt', 'lastError', 'failedBuilds'],
  properties: {
    state: { type: 'string', enum: WATCHER_STATES },
    pid: { type: 'integer', minimum: 1 },
    version: { type: 'string' },
    remoteHead: orNull(commitInfo),
    deployedCommit: orNull(commitInfo),
    lastPollAt: isoOrNull,
    nextPollAt: isoOrNull,
    lastError: orNull({
      type: 'object',
      additionalProperties: false,
      required: ['kind', 'message', 'at', 'commit'],
      properties: {
        kind: { type: 'string' },
        message: { type: 'string' },
        at: iso,
        commit: orNull(commit),
      },
    }),
    failedBuilds: { type: 'array', items: commit },
    untrusted: {
      type: 'object',
      additionalProperties: false,
      required: ['head', 'commit', 'reason', 'message', 'at'],
      properties: { head: commit, commit: orNull(commit), reason: { type: 'string' }, message: { type: 'string' }, at: iso },
      nullable: true,
    },
    vulnerabilities: { ...vulnerabilityScan, nullable: true },
    refusedHead: {
      type: 'object',
      additionalProperties: false,
      required: ['commit', 'reason', 'deployed', 'at'],
      properties: { commit, reason: { type: 'string', enum: ['not-descendant'] }, deployed: orNull(commit), at: iso },
      nullable: true,
    },
    phased: {
      type: 'object',
      additionalProperties: false,
      required: ['commit', 'allowed', 'message'],
      properties: { commit, allowed: { type: 'boolean' }, message: { type: 'string' } },
      nullable: true,
    },
    prebuilt: {
      type: 'object',
      additionalProperties: false,
      required: ['toplevel', 'sourceCommit', 'manifestCommit', 'signer', 'cacheKey'],
      properties: { toplevel: { type: 'string' }, sourceCommit: commit, manifestCommit: commit, signer: orNull({ type: 'string' }), cacheKey: orNull({ type: 'string' }) },
      nullable: true,
    },
  },
};

const pauseInfo: JSONSchemaType<PauseInfo> = {
  type: 'object',
  additionalProperties: false,
  required: ['since', 'reason', 'by'],
  properties: { since: iso, reason: orNull({ type: 'string' }), by: { type: 'string' } },
};

export const statusSchema: JSONSchemaType<StatusResult> = {
  $id: 'https://pullnix.dev/schema/ctl/status.json',
  type: 'object',
  additionalProperties: false,
  required: ['version', 'executor', 'paused', 'deployed', 'liveSystem', 'current', 'lastFailure', 'knownBad', 'watcher', 'drift'],
  properties: {
    version: { type: 'string' },
    executor: {
      type: 'object',
      additionalProperties: false,
      required: ['pid', 'startedAt', 'busy'],
      properties: { pid: { type: 'integer', minimum: 1 }, startedAt: iso, busy: { type: 'boolean' } },
    },
    paused: orNull(pauseInfo),
    deployed: orNull({
      type: 'object',
      additionalProperties: false,
      required: ['deploymentId', 'commit', 'toplevel', 'generation', 'at'],
      properties: {
        deploymentId: { type: 'integer', minimum: 1 },
        commit,
        toplevel: { type: 'string', pattern: '^/' },
        generation: orNull({ type: 'integer' }),
        at: iso,
        rebootRequired: { type: 'array', items: { type: 'string', enum: REBOOT_REASONS }, nullable: true },
      },
    }),
    liveSystem: orNull({ type: 'string' }),
    current: orNull(deploymentRecordSchema),
    lastFailure: orNull({
      type: 'object',
      additionalProperties: false,
      required: ['deploymentId', 'commit', 'outcome', 'reason', 'at'],
      properties: {
        deploymentId: { type: 'integer', minimum: 1 },
        commit,
        outcome: { type: 'string', enum: DEPLOYMENT_OUTCOMES },
        reason: { type: 'string' },
        at: iso,
        failedChecks: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['name', 'kind', 'error'],
            properties: { name: { type: 'string' }, kind: { type: 'string', enum: CHECK_KINDS }, error: orNull({ type: 'string' }) },
          },
          nullable: true,
        },
      },
    }),
    knownBad: { type: 'array', items: commit },
    watcher: {
      type: 'object',
      additionalProperties: false,
      required: ['connected', 'report', 'reportedAt'],
      properties: {
        connected: { type: 'boolean' },
        report: orNull(watcherReport),
        reportedAt: isoOrNull,
      },
    },
    drift: orNull({ type: 'boolean' }),
  },
};

export const historySchema: JSONSchemaType<HistoryOutput> = {
  $id: 'https://pullnix.dev/schema/ctl/history.json',
  type: 'object',
  additionalProperties: false,
  required: ['deployments', 'total'],
  properties: { deployments: { type: 'array', items: deploymentRecordSchema }, total: { type: 'integer', minimum: 0 } },
};

export const versionSchema: JSONSchemaType<VersionOutput> = {
  $id: 'https://pullnix.dev/schema/ctl/version.json',
  type: 'object',
  additionalProperties: false,
  required: ['version', 'protocol', 'executor', 'executorError'],
  properties: {
    version: { type: 'string' },
    protocol: { type: 'integer' },
    executor: orNull({
      type: 'object',
      additionalProperties: false,
      required: ['version', 'pid', 'startedAt'],
      properties: { version: { type: 'string' }, pid: { type: 'integer', minimum: 1 }, startedAt: iso },
    }),
    executorError: orNull({
      type: 'object',
      additionalProperties: false,
      required: ['code', 'message'],
      properties: { code: { type: 'string', enum: anyErrorCode }, message: { type: 'string' } },
    }),
  },
};

export const keySchema: JSONSchemaType<KeyOutput> = {
  $id: 'https://pullnix.dev/schema/ctl/key.json',
  type: 'object',
  additionalProperties: false,
  required: ['keyId', 'publicKey', 'file', 'nixos'],
  properties: {
    keyId: { type: 'string', pattern: KEY_ID_PATTERN },
    publicKey: { type: 'string', pattern: PUBLIC_KEY_PATTERN },
    file: { type: 'string', pattern: '^/' },
    nixos: { type: 'string' },
  },
};

export const errorSchema: JSONSchemaType<ErrorOutput> = {
  $id: 'https://pullnix.dev/schema/ctl/error.json',
  type: 'object',
  additionalProperties: false,
  required: ['error', 'exitCode'],
  properties: {
    error: {
      type: 'object',
      additionalProperties: false,
      required: ['code', 'message', 'hint'],
      properties: { code: { type: 'string', enum: anyErrorCode }, message: { type: 'string' }, hint: orNull({ type: 'string' }) },
    },
    exitCode: { type: 'integer', enum: [1, 2, 3, 4] },
  },
};

export const syncSchema: JSONSchemaType<{ forwarded: true }> = {
  $id: 'https://pullnix.dev/schema/ctl/sync.json',
  type: 'object',
  additionalProperties: false,
  required: ['forwarded'],
  properties: { forwarded: { type: 'boolean', const: true } as never },
};

export const pauseSchema: JSONSchemaType<{ paused: PauseInfo }> = {
  $id: 'https://pullnix.dev/schema/ctl/pause.json',
  type: 'object',
  additionalProperties: false,
  required: ['paused'],
  properties: { paused: pauseInfo },
};

export const resumeSchema: JSONSchemaType<{ wasPaused: boolean }> = {
  $id: 'https://pullnix.dev/schema/ctl/resume.json',
  type: 'object',
  additionalProperties: false,
  required: ['wasPaused'],
  properties: { wasPaused: { type: 'boolean' } },
};

export const retrySchema: JSONSchemaType<{ forgotten: boolean; forwarded: boolean }> = {
  $id: 'https://pullnix.dev/schema/ctl/retry.json',
  type: 'object',
  additionalProperties: false,
  required: ['forgotten', 'forwarded'],
  properties: { forgotten: { type: 'boolean' }, forwarded: { type: 'boolean' } },
};

export const rollbackSchema: JSONSchemaType<{ deployment: DeploymentRecord }> = {
  $id: 'https://pullnix.dev/schema/ctl/rollback.json',
  type: 'object',
  additionalProperties: false,
  required: ['deployment'],
  properties: { deployment: deploymentRecordSchema },
};

export const rebootNowSchema: JSONSchemaType<{ deployment: DeploymentRecord }> = { ...rollbackSchema, $id: 'https://pullnix.dev/schema/ctl/reboot-now.json' };

/** Name → schema, for `pullnix-ctl schema NAME` and the tests. */
export const OUTPUT_SCHEMAS: Readonly<Record<'status' | 'history' | 'version' | 'key' | 'sync' | 'pause' | 'resume' | 'retry' | 'rollback' | 'reboot-now' | 'error', SchemaObject>> = {
  status: statusSchema,
  history: historySchema,
  version: versionSchema,
  key: keySchema,
  sync: syncSchema,
  pause: pauseSchema,
  resume: resumeSchema,
  retry: retrySchema,
  rollback: rollbackSchema,
  'reboot-now': rebootNowSchema,
  error: errorSchema,
} as const;

export type OutputName = keyof typeof OUTPUT_SCHEMAS;

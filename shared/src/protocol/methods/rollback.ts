import { defineMethod } from '../method.ts';
import type { DeploymentRecord } from '../types.ts';

export interface RollbackParams {
  /** A successful deployment's id; default: the successful deployment before the current one. */
  to?: number;
}

export const Rollback = defineMethod<RollbackParams, { deployment: DeploymentRecord }>()({
  name: 'rollback',
  roles: ['operator'],
  summary: "deploy an earlier successful deployment's system again (through the whole pipeline)",
  params: {
    type: 'object',
    additionalProperties: false,
    required: [],
    properties: { to: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER, nullable: true } },
  },
});

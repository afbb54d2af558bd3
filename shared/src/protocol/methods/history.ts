import { defineMethod } from '../method.ts';
import type { DeploymentRecord } from '../types.ts';

export interface HistoryParams {
  limit?: number;
  /** Only deployments with an id below this one (paging backwards). */
  before?: number;
}

export const History = defineMethod<HistoryParams, { deployments: DeploymentRecord[]; total: number }>()({
  name: 'history',
  roles: ['watcher', 'operator'],
  summary: 'deployments, newest first',
  params: {
    type: 'object',
    additionalProperties: false,
    required: [],
    properties: {
      limit: { type: 'integer', minimum: 1, maximum: 1000, nullable: true },
      before: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER, nullable: true },
    },
  },
});

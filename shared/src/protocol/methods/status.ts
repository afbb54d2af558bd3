import { defineMethod } from '../method.ts';
import type { StatusResult } from '../types.ts';

export type StatusParams = Record<string, never>;

export const Status = defineMethod<StatusParams, StatusResult>()({
  name: 'status',
  roles: ['watcher', 'operator'],
  summary: 'what is deployed, what runs, what failed, whether the watcher is connected',
  params: { type: 'object', additionalProperties: false, required: [], properties: {} } as never,
});

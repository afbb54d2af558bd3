import { defineMethod } from '../method.ts';
import type { PauseInfo } from '../types.ts';

export interface PauseParams {
  reason?: string;
}

export const Pause = defineMethod<PauseParams, { paused: PauseInfo }>()({
  name: 'pause',
  roles: ['operator'],
  summary: 'refuse deployments until resume (a running one finishes)',
  params: {
    type: 'object',
    additionalProperties: false,
    required: [],
    properties: { reason: { type: 'string', maxLength: 500, nullable: true } },
  },
});

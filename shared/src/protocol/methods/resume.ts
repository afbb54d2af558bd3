import { defineMethod } from '../method.ts';

export type ResumeParams = Record<string, never>;

export const Resume = defineMethod<ResumeParams, { wasPaused: boolean }>()({
  name: 'resume',
  roles: ['operator'],
  summary: 'accept deployments again',
  params: { type: 'object', additionalProperties: false, required: [], properties: {} } as never,
});

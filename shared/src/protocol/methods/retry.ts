import { COMMIT_PATTERN } from '../grammar.ts';
import { defineMethod } from '../method.ts';

export interface RetryParams {
  commit: string;
}

export const Retry = defineMethod<RetryParams, { forgotten: boolean; forwarded: boolean }>()({
  name: 'retry',
  roles: ['operator'],
  summary: 'forget that a commit failed, so it may be built and deployed again',
  params: {
    type: 'object',
    additionalProperties: false,
    required: ['commit'],
    properties: { commit: { type: 'string', pattern: COMMIT_PATTERN } },
  },
});

import { defineMethod } from '../method.ts';

export type SyncParams = Record<string, never>;

export const Sync = defineMethod<SyncParams, { forwarded: true }>()({
  name: 'sync',
  roles: ['operator'],
  summary: 'ask the connected watcher to poll now',
  params: { type: 'object', additionalProperties: false, required: [], properties: {} } as never,
});

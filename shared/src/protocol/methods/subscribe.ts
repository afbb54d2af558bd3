import { defineMethod } from '../method.ts';

export interface SubscribeParams {
  pid: number;
  version: string;
}

/**
 * The watcher registers its connection; the executor pushes `sync` and `retry` to it. `retries`
 * are the operator retries made while no watcher was connected, delivered once.
 */
export const Subscribe = defineMethod<SubscribeParams, { executorPid: number; retries: string[] }>()({
  name: 'subscribe',
  roles: ['watcher'],
  summary: "register this connection as the watcher's, to receive pushes",
  params: {
    type: 'object',
    additionalProperties: false,
    required: ['pid', 'version'],
    properties: {
      pid: { type: 'integer', minimum: 1, maximum: 4194304 },
      version: { type: 'string', maxLength: 64 },
    },
  },
});

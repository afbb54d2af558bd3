import { defineMethod } from '../method.ts';
import type { DeploymentRecord } from '../types.ts';

export type RebootNowParams = Record<string, never>;

/** A deployment waiting for reboot.window (phase reboot-pending): boot it on trial now (docs/executor.md "Reboots"). */
export const RebootNow = defineMethod<RebootNowParams, { deployment: DeploymentRecord }>()({
  name: 'reboot-now',
  roles: ['operator'],
  summary: 'boot the deployment waiting for the reboot window on trial now',
  params: { type: 'object', additionalProperties: false, required: [], properties: {} } as never,
});

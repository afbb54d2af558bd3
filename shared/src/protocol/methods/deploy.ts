import { COMMIT_PATTERN, STORE_PATH_PATTERN } from '../grammar.ts';
import { defineMethod } from '../method.ts';
import type { DeploymentRecord } from '../types.ts';

export interface DeployParams {
  commit: string;
  toplevel: string;
}

/**
 * Deploy a built system. Answers when the outcome is recorded (steps 1-6), before the watcher
 * restart. The watcher's role only: it deploys what it built from git. An operator key may not
 * make an arbitrary store path with a made-up commit the boot default; operators roll back to
 * recorded generations (`rollback`) and retry recorded commits (`retry`).
 */
export const Deploy = defineMethod<DeployParams, { deployment: DeploymentRecord }>()({
  name: 'deploy',
  roles: ['watcher'],
  summary: 'deploy a built system closure for a commit: activate, verify, commit or roll back',
  params: {
    type: 'object',
    additionalProperties: false,
    required: ['commit', 'toplevel'],
    properties: {
      commit: { type: 'string', pattern: COMMIT_PATTERN },
      toplevel: { type: 'string', pattern: STORE_PATH_PATTERN, maxLength: 256 },
    },
  },
});

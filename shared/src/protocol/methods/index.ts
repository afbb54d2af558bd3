/** Every protocol method, one file each. Both ends import from here; neither redeclares a message. */
import { Deploy } from './deploy.ts';
import { History } from './history.ts';
import { Pause } from './pause.ts';
import { RebootNow } from './reboot-now.ts';
import { Report } from './report.ts';
import { Resume } from './resume.ts';
import { Retry } from './retry.ts';
import { Rollback } from './rollback.ts';
import { Status } from './status.ts';
import { Subscribe } from './subscribe.ts';
import { Sync } from './sync.ts';

export { Deploy, History, Pause, RebootNow, Report, Resume, Retry, Rollback, Status, Subscribe, Sync };
export type { DeployParams } from './deploy.ts';
export type { HistoryParams } from './history.ts';
export type { PauseParams } from './pause.ts';
export type { RetryParams } from './retry.ts';
export type { RollbackParams } from './rollback.ts';
export type { SubscribeParams } from './subscribe.ts';

export const METHODS = {
  deploy: Deploy,
  status: Status,
  history: History,
  pause: Pause,
  resume: Resume,
  rollback: Rollback,
  retry: Retry,
  sync: Sync,
  'reboot-now': RebootNow,
  subscribe: Subscribe,
  report: Report,
} as const;

export type MethodName = keyof typeof METHODS;
export type Methods = typeof METHODS;

/** The name a method's generated params validator is exported under (an identifier: reboot-now → params_reboot_now). */
export function paramsExportName(method: string): string {
  return `params_${method.replace(/-/g, '_')}`;
}

export function isMethodName(value: string): value is MethodName {
  return Object.hasOwn(METHODS, value);
}

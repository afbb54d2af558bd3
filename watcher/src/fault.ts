/** Whose fault a failure is: the classification lives in shared/ (shared/src/fault.ts), the executor classifies its nix commands the same way. */
export { faultOf, type CommandFailure, type Fault } from '@pullnix/shared';

/**
 * `@pullnix/shared/client`: what a client of the executor's socket needs (pullnix-ctl): the
 * protocol's types and grammar, keys and signing, the node:net client, the configuration. Not the
 * request authentication with its generated protocol validators, the runner, the logger, metrics
 * or hooks, which only the daemons use: every module a `pullnix-ctl` run loads is start-up time
 * (docs/benchmarks.md §5). The main entry (`@pullnix/shared`) exports all of this too.
 */
export * from './protocol/canonical.ts';
export * from './protocol/errors.ts';
export * from './protocol/grammar.ts';
export * from './protocol/types.ts';
export type * from './protocol/method.ts';
export * from './protocol/nullable.ts';
// Types only: the methods' parameter schemas are the executor's (its validators), not a client's.
export type * from './protocol/methods/index.ts';
export * from './protocol/keys.ts';
export * from './protocol/envelope.ts';
export * from './ipc/client.ts';
export * from './config/config.ts';
export * from './fs/atomic.ts';
export { VERSION } from './version.ts';
export * from './users.ts';

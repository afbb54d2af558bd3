/**
 * `@pullnix/shared/server`: the executor's socket server (node-ipc). Apart from the package's main
 * entry so that a client (the watcher, pullnix-ctl) never loads node-ipc (docs/benchmarks.md §3, §5).
 */
export * from './ipc/server.ts';
export * from './ipc/refusal-log.ts';

/** The executor as a library: what the test bed and benchmarks start in-process. */
export { Executor, DEFAULT_HISTORY_LIMIT, type ExecutorOptions } from './executor.ts';
export { startDaemon, type Daemon, type DaemonOptions } from './daemon.ts';
export { ensureKeys, keysDir, trustedKeys, LOCAL_OPERATOR_KEY_ID, WATCHER_KEY_ID, type ExecutorKeys } from './keys.ts';
export { HistoryStore, parseRecord } from './store/history.ts';
export { StateStore, rebuildState, MAX_INTERRUPTIONS, MAX_KNOWN_BAD, type ExecutorState } from './store/state.ts';
export { systemClock, type Clock } from './pipeline/context.ts';
export { createServers, GROUP_MAX_CONNECTIONS, PRIVATE_MAX_CONNECTIONS, type ExecutorServers } from './server.ts';
export { executorTrustGate, verifyTrust, type TrustTimings } from './pipeline/trust.ts';
export type { PipelineContext } from './pipeline/context.ts';
export { executorMetrics, EXECUTOR_METRICS_FILE } from './metrics.ts';
export { emptyState } from './store/state.ts';

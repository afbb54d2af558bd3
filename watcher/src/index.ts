/** The watcher as a library: the benchmark and the tests drive one poll cycle in-process with Watcher.pollOnce(). */
export { Watcher, type PollOutcome, type PollResult, type WatcherOptions } from './watcher.ts';
export { ExecutorLink, watcherKeyPath, describeConnectFailure, type ExecutorClient, type ExecutorLinkOptions } from './executor-link.ts';
export { ensureOwnKey, ownKeyPaths, OWN_KEY_ID } from './own-key.ts';
export { GitCheckout, parseLsRemote, describeGitError, redactUrl, passThroughEnv, GIT_ENV_PASS_THROUGH, TRACKING_REF_PREFIX, type GitOps, type GitCheckoutOptions } from './git.ts';
export { buildArgv, buildSystem, pruneGcRoots, LOG_TAIL_LINES, type BuildResult, type BuildOptions } from './build.ts';
export { MemoryStore, parseMemory, emptyMemory, forgetCommit, type WatcherMemory, type BuildFailure, type HandledHead, type HandledResult, type TrustRefusal } from './memory.ts';
export { backoffDelayMs, pollDelayMs } from './backoff.ts';
export { Alarm, sleep, systemClock, type Clock } from './clock.ts';
export { TrustGate, allowedSignersLine, primaryFingerprints, sshFingerprint, sshTime, validAt, type TrustGateOptions, type TrustReason, type TrustResult } from '@pullnix/shared';
export { VulnerabilityGate, compareScans, meetsSeverity, describeFinding, SCAN_CACHE_SIZE, SCAN_CACHE_MAX_AGE_MS, type GateVerdict, type Comparison, type VulnerabilityGateOptions } from './gates/vulnerabilities.ts';
export { vulnixArgv, readVulnixResult, parseVulnixJson, type VulnixAnswer } from './gates/vulnix.ts';
export { PrebuiltSource, prebuiltTrustRole, type PrebuiltResult, type PrebuiltReason, type PrebuiltVerdict, type Provenance, type PrebuiltSourceOptions } from './pipeline/source-prebuilt.ts';

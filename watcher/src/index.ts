/** The watcher as a library: the benchmark and the tests drive one poll cycle in-process with Watcher.pollOnce(). */
export { Watcher, type PollOutcome, type PollResult, type WatcherOptions } from './watcher.ts';
export { ExecutorLink, watcherKeyPath, describeConnectFailure, type ExecutorClient, type ExecutorLinkOptions } from './executor-link.ts';
export { ensureOwnKey, ownKeyPaths, OWN_KEY_ID } from './own-key.ts';
export { GitCheckout, parseLsRemote, describeGitError, redactUrl, passThroughEnv, GIT_ENV_PASS_THROUGH, TRACKING_REF_PREFIX, type GitOps, type GitCheckoutOptions } from './commands/git.ts';
export { buildArgv } from './commands/nix-build.ts';
export { buildSystem, pruneGcRoots, BuildSource, LOG_TAIL_LINES, type BuildResult, type BuildOptions } from './pipeline/source-build.ts';
export { createSource, type SystemSource, type SourceMode, type Realised } from './pipeline/source.ts';
export { createGates, runGates, type Gate, type GateCandidate, type GateContext, type GateVerdict } from './pipeline/gates.ts';
export { DEPLOYMENT_STEPS, type DeploymentStep, type StepEvent, type StepObserver } from './pipeline/report.ts';
export type { WatcherContext, Ending } from './pipeline/context.ts';
export { MemoryStore, parseMemory, emptyMemory, forgetCommit, type WatcherMemory, type BuildFailure, type HandledHead, type HandledResult, type TrustRefusal } from './memory.ts';
export { backoffDelayMs, pollDelayMs } from './backoff.ts';
export { Alarm, sleep, systemClock, type Clock } from './clock.ts';
export { TrustGate, allowedSignersLine, primaryFingerprints, sshFingerprint, sshTime, validAt, type TrustGateOptions, type TrustReason, type TrustResult } from '@pullnix/shared';
export { VulnerabilityGate, compareScans, meetsSeverity, describeFinding, SCAN_CACHE_SIZE, SCAN_CACHE_MAX_AGE_MS, type ScanVerdict, type Comparison, type VulnerabilityGateOptions } from './pipeline/gate-vulnerabilities.ts';
export { vulnixArgv, readVulnixResult, parseVulnixJson, type VulnixAnswer } from './commands/vulnix.ts';
export { PrebuiltSource, prebuiltTrustRole, type PrebuiltResult, type PrebuiltReason, type PrebuiltVerdict, type Provenance, type PrebuiltSourceOptions } from './pipeline/source-prebuilt.ts';

/**
 * A stand-in executor for the watcher's tests: a real SocketServer from shared, with an
 * Authenticator that trusts the watcher's key, so every request the watcher sends is really
 * signed and checked. Deployments finish at once with the outcome the test chose.
 */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  Authenticator,
  newRunId,
  generateSigningKey,
  PullnixError,
  saveSigningKey,
  type DeploymentOutcome,
  type DeploymentRecord,
  type DeployParams,
  type Push,
  type SigningKey,
  type StatusResult,
  type WatcherReport,
} from '@pullnix/shared';
import { SocketServer, type Connection } from '@pullnix/shared/server';
import { GitRemote } from './git-remote.ts';

export type DeployAnswer = DeploymentOutcome | PullnixError;

/** main: c1 - c2 pushed to a new remote, with c1 deployed by a started fake executor in a new state directory. */
export async function c1DeployedC2Pushed(newStateDir: () => string) {
  const remote = new GitRemote();
  const c1 = remote.commit('c1');
  const c2 = remote.commit('c2');
  remote.push();
  const stateDir = newStateDir();
  const socketPath = join(stateDir, 'run', 'executor.sock');
  const executor = new FakeExecutor({ socketPath, stateDir });
  executor.deployed = c1;
  await executor.start();
  return { remote, c1, c2, stateDir, socketPath, executor };
}

export class FakeExecutor {
  readonly socketPath: string;
  readonly key: SigningKey;
  deployed: string | null = null;
  knownBad: string[] = [];
  paused: StatusResult['paused'] = null;
  /** What a deploy request ends as; default: succeeded. */
  answer: (params: DeployParams) => DeployAnswer = () => 'succeeded';
  readonly deploys: (DeployParams & { keyId: string })[] = [];
  readonly reports: WatcherReport[] = [];
  /** When set, every report is refused with it (as the executor refuses one its schema does not allow). */
  refuseReports: PullnixError | null = null;
  refusedReports = 0;
  subscribes = 0;
  /** Operator retries to hand to the next subscriber (the executor queues them while no watcher is connected). */
  pendingRetries: string[] = [];
  statusRequests = 0;
  private connection: Connection | null = null;
  private server: SocketServer | null = null;
  private nextId = 1;

  /** Creates `<stateDir>/keys/watcher.key` unless told not to, as the real executor does on its first start. */
  constructor(options: { socketPath: string; stateDir: string; writeKey?: boolean; key?: SigningKey }) {
    this.socketPath = options.socketPath;
    this.key = options.key ?? generateSigningKey('watcher');
    if (options.writeKey !== false) this.writeKey(options.stateDir);
  }

  writeKey(stateDir: string): void {
    saveSigningKey(join(stateDir, 'keys', 'watcher.key'), this.key);
  }

  get connected(): boolean {
    return this.connection !== null && !this.connection.closed;
  }

  async start(): Promise<void> {
    mkdirSync(dirname(this.socketPath), { recursive: true });
    this.server = new SocketServer({
      path: this.socketPath,
      group: null,
      authenticator: new Authenticator({ keys: [{ keyId: 'watcher', role: 'watcher', publicKey: this.key.publicKey }], runId: newRunId() }),
      handler: async (request, connection) => {
        const params = request.envelope.params as never;
        switch (request.method) {
          case 'subscribe':
            this.subscribes += 1;
            this.connection = connection;
            return { executorPid: process.pid, retries: this.pendingRetries.splice(0) };
          case 'status':
            this.statusRequests += 1;
            return this.status();
          case 'report':
            if (this.refuseReports) {
              this.refusedReports += 1;
              throw this.refuseReports;
            }
            this.reports.push(params as WatcherReport);
            return {};
          case 'deploy':
            return this.deploy(params as DeployParams, request.envelope.keyId);
          default:
            throw new PullnixError('FORBIDDEN', `${request.method} is not for the watcher`);
        }
      },
    });
    await this.server.start();
  }

  stop(): void {
    this.server?.stop();
    this.server = null;
    this.connection = null;
  }

  push(message: Push): void {
    if (!this.connection) throw new Error('no watcher is subscribed');
    this.connection.push(message);
  }

  get lastReport(): WatcherReport | undefined {
    return this.reports.at(-1);
  }

  status(): StatusResult {
    const now = new Date().toISOString();
    return {
      version: 'fake',
      executor: { pid: process.pid, startedAt: now, busy: false },
      paused: this.paused,
      deployed: this.deployed ? { deploymentId: 1, commit: this.deployed, toplevel: '/nix/store/00000000000000000000000000000000-x', generation: 1, at: now } : null,
      liveSystem: null,
      current: null,
      lastFailure: null,
      knownBad: [...this.knownBad],
      watcher: { connected: this.connected, report: this.lastReport ?? null, reportedAt: null },
      drift: null,
    };
  }

  private deploy(params: DeployParams, keyId: string): { deployment: DeploymentRecord } {
    this.deploys.push({ ...params, keyId });
    const answer = this.answer(params);
    if (answer instanceof PullnixError) throw answer;
    if (answer === 'succeeded') this.deployed = params.commit;
    else this.knownBad.push(params.commit);
    const now = new Date().toISOString();
    return {
      deployment: {
        id: this.nextId++,
        kind: 'deploy',
        commit: params.commit,
        toplevel: params.toplevel,
        activation: 'test',
        requestedBy: keyId,
        previous: { system: null, generation: null },
        phase: 'finished',
        phases: [],
        outcome: answer,
        error: answer === 'succeeded' ? null : { code: 'INTERNAL', message: 'verification failed (fake)' },
        activationExit: 0,
        generation: answer === 'succeeded' ? 2 : null,
        startedAt: now,
        finishedAt: now,
      },
    };
  }
}

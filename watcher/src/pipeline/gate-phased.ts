/**
 * The phased-start gate (ring.phases; docs/rings.md "Phased start"): a host of the ring deploys
 * the built commit only once its place for that commit is under the share of the ring the time
 * since it first reached this gate with the commit allows; until then it waits (looked at again
 * at every poll, nobody's fault). The decision itself is pure (../rings/phased.ts); this gate
 * keeps the first sighting in the watcher's memory so a restart does not reset the clock.
 */
import { readFileSync } from 'node:fs';
import type { Logger, RingConfig } from '@pullnix/shared';
import type { WatcherMemory } from '../memory.ts';
import { phasedDecision, sightingFor } from '../rings/phased.ts';
import type { Gate, GateCandidate, GateVerdict } from './gates.ts';

export interface PhasedGateOptions {
  ring: RingConfig;
  logger: Logger;
  memory: WatcherMemory;
  save: () => void;
  now: () => number;
  /** systemd's machine id (machine-id(5)): stable for the machine's life, unique in the fleet. */
  machineIdFile?: string;
}

export interface PhasedReport {
  commit: string;
  allowed: boolean;
  message: string;
}

export class PhasedGate implements Gate {
  readonly name = 'phased';
  private readonly o: PhasedGateOptions;
  private last: PhasedReport | null = null;
  /** The last (commit, share) logged, so a waiting host logs once per step of the share, not per poll. */
  private logged: string | null = null;

  constructor(options: PhasedGateOptions) {
    this.o = options;
  }

  get enabled(): boolean {
    return this.o.ring.name !== null && this.o.ring.phases.length > 0;
  }

  async evaluate(candidate: GateCandidate): Promise<GateVerdict> {
    const { memory, ring } = this.o;
    const file = this.o.machineIdFile ?? '/etc/machine-id';
    let machineId: string;
    try {
      machineId = readFileSync(file, 'utf8').trim();
      if (machineId === '') throw new Error('empty');
    } catch (error) {
      const reason = `phased: cannot read the machine id ${file}: ${(error as Error).message}`;
      this.last = { commit: candidate.commit, allowed: false, message: reason };
      return { verdict: 'wait', reason, retry: 'backoff' };
    }
    const now = this.o.now();
    const sighting = sightingFor(memory.phased, candidate.commit, now);
    if (sighting !== memory.phased) {
      memory.phased = sighting;
      this.o.save();
    }
    const d = phasedDecision({ ring: ring.name!, phases: ring.phases, machineId, sighting, now });
    this.last = { commit: candidate.commit, allowed: d.allowed, message: d.message };
    const key = `${candidate.commit}:${d.share}:${d.allowed}`;
    if (this.logged !== key) {
      this.logged = key;
      const fields = { commit: candidate.commit, ring: ring.name, share: d.share, position: Math.floor(d.position), since: sighting.firstSeenAt };
      if (d.allowed) this.o.logger.event('phased.allowed', fields);
      else this.o.logger.event('phased.waiting', { ...fields, allowed_at: d.allowedAt === null ? null : new Date(d.allowedAt).toISOString() });
    }
    return d.allowed ? { verdict: 'pass' } : { verdict: 'wait', reason: d.message, retry: 'next-poll' };
  }

  report(): { phased: PhasedReport | null } {
    return { phased: this.last };
  }
}

/**
 * The decentralised halt (report.haltAfter, docs/report.md): a gate that asks the forge how many
 * hosts of this machine's ring show `failure` on the commit, and holds it at haltAfter or more.
 * A wait, not a refusal: the commit is not this host's failure (it posts nothing, so one halted
 * host does not add to the count of the next), and it goes on by itself once the failures are
 * cleared at the forge or the branch moves. Status shows "halted: N failures in ring R".
 */
import type { ReportConfig } from '@pullnix/shared';
import type { CommitStatusReporter } from '../forge/reporter.ts';
import type { Gate, GateCandidate, GateContext, GateVerdict } from './gates.ts';

export class HaltGate implements Gate {
  readonly name = 'halt';
  readonly outcomes = { refuse: 'gate-refused', wait: 'halted' } as const;
  readonly enabled: boolean;
  private readonly reporter: CommitStatusReporter | null;

  constructor(report: ReportConfig, reporter: CommitStatusReporter | null) {
    this.reporter = reporter;
    this.enabled = reporter !== null && report.haltAfter !== null;
  }

  async evaluate(candidate: GateCandidate, context: GateContext): Promise<GateVerdict> {
    const verdict = await this.reporter?.halt(candidate.commit, context.signal);
    if (context.signal.aborted) return { verdict: 'stopped' };
    return verdict?.halted ? { verdict: 'wait', reason: verdict.message, retry: 'next-poll', shown: true } : { verdict: 'pass' };
  }
}

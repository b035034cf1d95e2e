/**
 * Statistical escalation's own storage (docs/analytics.md#statistical-escalation), implemented over PostgreSQL by
 * infra/quality-rules/pg-quality-rule-store.ts. Beside the activities that use it: only this feature speaks it.
 */
import type { MesProductionHold } from '../ports';
import type { ChartLimits, PartPoint, RuleDefinition, RuleState, RuleTrip, TripEvidence } from './rules';

export type EscalationPolicy = 'alert' | 'hold-line' | 'hold-order';
export type EscalationState = 'tripped' | 'alerted' | 'held' | 'release-decided' | 'released';

/** One version of a rule, as stored. */
export interface QualityRuleVersion {
  site: string;
  ruleId: string;
  version: number;
  line: string;
  /** null: every station of the line. */
  station: string | null;
  definition: RuleDefinition;
  limits: ChartLimits | null;
  active: boolean;
  changedBy: string;
  reason: string;
  changedAt: string;
}

/** What one evaluation pass of a line works on: its active rules' current versions with their state, and new parts. */
export interface LineBatch {
  rules: { rule: QualityRuleVersion; state: RuleState }[];
  points: PartPoint[];
}

/** What a pass decided, written with the cursor in one transaction. */
export interface LineBatchResult {
  states: { ruleId: string; version: number; state: RuleState; parts: number; trips: number }[];
  trips: { rule: QualityRuleVersion; trip: RuleTrip }[];
}

export interface StoredEscalation {
  escalationId: string;
  workflowId: string;
  site: string;
  line: string;
  station: string | null;
  ruleId: string;
  version: number;
  kind: RuleDefinition['kind'];
  firstPoint: string;
  trippedBy: string;
  trippedAt: string;
  summary: string;
  evidence: TripEvidence;
  workOrder: string;
  lotId: string;
  policy: EscalationPolicy;
  state: EscalationState;
  startedAt: string | null;
  alertedAt: string | null;
  alertTarget: string | null;
  hold: MesProductionHold | null;
  heldAt: string | null;
  decidedAt: string | null;
  decidedBy: string | null;
  decisionReason: string | null;
  signature: unknown;
  release: MesProductionHold | null;
  releasedAt: string | null;
  createdAt: string;
}

export interface QualityRuleStore {
  /**
   * One pass over a line, in one transaction holding the line's cursor: reads up to `batchSize` parts stored after the
   * cursor (only from transactions that can no longer commit behind it), lets `evaluate` decide, then writes the rule
   * states, the trips as escalations (one per rule version and first point) and the moved cursor together. A line seen
   * for the first time starts at the present: history is not replayed.
   */
  evaluateLine(
    site: string,
    line: string,
    batchSize: number,
    evaluate: (batch: LineBatch) => LineBatchResult,
    escalation: (
      rule: QualityRuleVersion,
      trip: RuleTrip,
    ) => { escalationId: string; workflowId: string; policy: EscalationPolicy },
  ): Promise<{ parts: number; trips: string[]; initialised: boolean }>;
  /** The line's escalations whose workflow has not yet said it started. */
  unstarted(site: string, line: string): Promise<StoredEscalation[]>;
  get(escalationId: string): Promise<StoredEscalation | undefined>;
  /** Marks the escalation's workflow started (once) and returns the escalation. */
  markStarted(escalationId: string): Promise<StoredEscalation>;
  recordAlert(escalationId: string, target: string): Promise<void>;
  recordHold(escalationId: string, hold: MesProductionHold): Promise<void>;
  /** Marks a decided escalation released, with the MES's read-back of its released hold (null: none was placed). */
  recordRelease(escalationId: string, release: MesProductionHold | null): Promise<void>;
}

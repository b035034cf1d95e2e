/**
 * Scheduling advice's own storage (docs/changeover.md#scheduling-advice), implemented over PostgreSQL by
 * infra/advice/pg-advice-store.ts. Beside the activities that use it rather than in activities/ports.ts: only this
 * feature speaks it.
 */
import type { MesResequencing, MesResequencingRequest } from '../ports';

export type AdviceAction = MesResequencingRequest['action'];
export type AdviceState = 'open' | 'accepted' | 'rejected' | 'sent';

/** A component lot's parts on a line over a window, from the inspections' material context. */
export interface LotDefectCounts {
  lotKey: string;
  /** The lot as the MES names it (its MES lot id, else its ERP batch, else the key). */
  lotId: string;
  material: string | null;
  parts: number;
  defective: number;
  /** The SKUs of the parts made from it (the orders of these SKUs use the lot's material). */
  skus: string[];
}

/** Why a lot tripped: what the test saw, and the rule it was held to. */
export interface AdviceEvidence {
  parts: number;
  defective: number;
  rate: number;
  pValue: number;
  test: 'one-sided exact binomial, H0: p <= threshold';
  thresholdRate: number;
  significance: number;
  minParts: number;
  window: { from: string; to: string };
}

export interface NewAdvice {
  site: string;
  line: string;
  /** Holdfast's lot key, and the lot as the MES names it. */
  componentLot: string;
  lotId: string;
  material: string | null;
  action: AdviceAction;
  /** use-on-less-critical: the orders the lot may still go to, in the MES's sequence. */
  orders: string[];
  /** The order running now on the line and its customer criticality, when the MES said. */
  currentOrder: { workOrder: string; customerCriticality: number } | null;
  evidence: AdviceEvidence;
  /** The evaluation that proposed it (workflow id and evaluation time). */
  proposedBy: string;
}

export interface StoredAdvice extends NewAdvice {
  adviceId: string;
  state: AdviceState;
  createdAt: string;
  decidedAt: string | null;
  decidedBy: string | null;
  decisionReason: string | null;
  signature: unknown;
  /** The MES's request id and its read-back once sent. */
  resequencing: MesResequencing | null;
  sentAt: string | null;
}

export interface AdviceStore {
  /** Counts per component lot of the line's production parts inspected in [from, to). */
  lotDefectCounts(site: string, line: string, from: string, to: string): Promise<LotDefectCounts[]>;
  /**
   * Stores the advice unless the lot already has one open, or had one proposed within the window (so a rejected
   * lot is not proposed again until its evidence is new): the advice's id, or undefined when none was stored.
   */
  propose(advice: NewAdvice): Promise<string | undefined>;
  /** Accepted advice of the line not sent to the MES yet, oldest first. */
  acceptedUnsent(site: string, line: string): Promise<StoredAdvice[]>;
  get(adviceId: string): Promise<StoredAdvice | undefined>;
  /** Records the MES's read-back of the request and marks the advice sent. */
  recordSent(adviceId: string, resequencing: MesResequencing): Promise<void>;
}

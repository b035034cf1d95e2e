import { ApplicationFailure } from '@temporalio/common';
import { ErrorType, type LineQualityRule } from '../../workflows/contracts';
import { atBoundary, configurationFailure } from '../boundary';
import { createOnce } from '../intents';
import type { IntentLedger, MesLineOrder, MesPort, MesResequencingRequest } from '../ports';
import type { AdviceAction, AdviceStore, LotDefectCounts, StoredAdvice } from './advice.ports';
import { trips } from './binomial-test';

export interface AdviceDeps {
  /** Absent in processes and tests that run no scheduling advice; its activities then fail as misconfigured. */
  advice?: AdviceStore;
  mesFor: (site: string) => MesPort;
  ledger: IntentLedger;
}

export interface LineQualityEvaluationInput {
  site: string;
  line: string;
  rule: LineQualityRule;
  /** The evaluation's time, from the workflow: a retried evaluation counts the same window. */
  evaluatedAt: string;
  /** Recorded on each advice: which rule proposed it. */
  proposedBy: string;
}

export interface LineQualityEvaluation {
  window: { from: string; to: string };
  lots: { lotKey: string; parts: number; defective: number; pValue: number; tripped: boolean }[];
  /** Advice stored by this evaluation (a lot with advice open, or proposed within the window, gets none). */
  proposed: string[];
}

/** What the MES's planner reads with the request: the evidence in one line. */
export function adviceReason(a: Pick<StoredAdvice, 'componentLot' | 'evidence' | 'action'>): string {
  const e = a.evidence;
  return (
    `Lot ${a.componentLot}: ${e.defective} of ${e.parts} parts defective (${(e.rate * 100).toFixed(2)} %) between ` +
    `${e.window.from} and ${e.window.to}; above ${(e.thresholdRate * 100).toFixed(2)} % at p = ${e.pValue.toPrecision(3)} ` +
    `(${e.test}, α = ${e.significance}). Advice: ${a.action}.`
  );
}

/**
 * What to advise for a tripped lot (docs/changeover.md#scheduling-advice). The current order is the line's running
 * order, else its first in sequence. Orders that may still take the lot: the line's other open orders of a SKU the
 * lot went into in the window (so they use its material), with a customer criticality below the current order's, in
 * the MES's sequence. None, or an MES that does not list line orders: hold what is left of the lot.
 */
export function chooseAction(
  lot: Pick<LotDefectCounts, 'skus'>,
  orders: readonly MesLineOrder[] | undefined,
): {
  action: AdviceAction;
  orders: string[];
  currentOrder: { workOrder: string; customerCriticality: number } | null;
} {
  const bySequence = [...(orders ?? [])].sort((a, b) => a.sequence - b.sequence);
  const current = bySequence.find((o) => /run|start|active|progress/i.test(o.status)) ?? bySequence[0];
  if (!current) return { action: 'hold-remaining', orders: [], currentOrder: null };
  const currentOrder = { workOrder: current.workOrder, customerCriticality: current.customerCriticality };
  const lessCritical = bySequence.filter(
    (o) =>
      o.workOrder !== current.workOrder &&
      o.customerCriticality < current.customerCriticality &&
      lot.skus.includes(o.sku),
  );
  return lessCritical.length > 0
    ? { action: 'use-on-less-critical', orders: lessCritical.map((o) => o.workOrder), currentOrder }
    : { action: 'hold-remaining', orders: [], currentOrder };
}

/** The MES request an accepted advice becomes; the key is the advice's, so it is sent once whatever retries. */
export function resequencingRequest(a: StoredAdvice): MesResequencingRequest {
  return {
    idempotencyKey: `advice:${a.adviceId}:resequence`,
    line: a.line,
    componentLot: a.lotId,
    action: a.action,
    ...(a.action === 'use-on-less-critical' ? { orders: a.orders } : {}),
    reason: adviceReason(a),
  };
}

export const createAdviceActivities = ({ advice: store, mesFor, ledger }: AdviceDeps) => {
  const adviceStore = (): AdviceStore => {
    if (!store) throw configurationFailure('this worker has no scheduling-advice store');
    return store;
  };
  return {
    /**
     * One evaluation of a line's rule: each component lot's parts over the window, the test, and advice for each lot
     * that trips. Idempotent: a retry finds the advice it stored open and stores none again.
     */
    async evaluateLineQuality(input: LineQualityEvaluationInput): Promise<LineQualityEvaluation> {
      const { site, line, rule } = input;
      const to = new Date(input.evaluatedAt);
      const window = { from: new Date(to.getTime() - rule.windowMs).toISOString(), to: to.toISOString() };
      const advice = adviceStore();
      const counts = await advice.lotDefectCounts(site, line, window.from, window.to);
      const lots = counts.filter((c) => c.parts >= rule.minParts).map((c) => ({ counts: c, result: trips(c, rule) }));
      const tripped = lots.filter((l) => l.result.tripped);
      let orders: MesLineOrder[] | undefined;
      if (tripped.length > 0) {
        const mes = mesFor(site);
        orders = mes.lineOrders
          ? await atBoundary(`MES line orders of ${line}`, () => mes.lineOrders!(line))
          : undefined;
      }
      const proposed: string[] = [];
      for (const { counts: c, result } of tripped) {
        const id = await advice.propose({
          site,
          line,
          componentLot: c.lotKey,
          lotId: c.lotId,
          material: c.material,
          ...chooseAction(c, orders),
          evidence: {
            parts: c.parts,
            defective: c.defective,
            rate: result.rate,
            pValue: result.pValue,
            test: 'one-sided exact binomial, H0: p <= threshold',
            thresholdRate: rule.thresholdRate,
            significance: rule.significance,
            minParts: rule.minParts,
            window,
          },
          proposedBy: input.proposedBy,
        });
        if (id !== undefined) proposed.push(id);
      }
      return {
        window,
        lots: lots.map(({ counts: c, result }) => ({
          lotKey: c.lotKey,
          parts: c.parts,
          defective: c.defective,
          pValue: result.pValue,
          tripped: result.tripped,
        })),
        proposed,
      };
    },

    /**
     * Sends the line's accepted advice to the MES, each exactly once (intent ledger, key from the advice id), and
     * stores the MES's read-back of the request. An MES without resequencing fails non-retryably, naming itself.
     */
    async sendAcceptedAdvice({ site, line }: { site: string; line: string }): Promise<{ sent: string[] }> {
      const advice = adviceStore();
      const accepted = await advice.acceptedUnsent(site, line);
      const sent: string[] = [];
      for (const a of accepted) {
        const mes = mesFor(site);
        const request = mes.requestResequencing?.bind(mes);
        if (!request) {
          throw ApplicationFailure.create({
            message: `the MES ${mes.system} of site ${site} offers no resequencing requests: advice ${a.adviceId} cannot be sent`,
            type: ErrorType.Configuration,
            nonRetryable: true,
            details: [{ system: mes.system, adviceId: a.adviceId }],
          });
        }
        const req = resequencingRequest(a);
        const created = await atBoundary(`MES resequencing for advice ${a.adviceId}`, () =>
          createOnce(
            ledger,
            { key: req.idempotencyKey, step: 'mes-resequence', system: mes.system, request: req },
            (o) => request(req, o),
          ),
        );
        const readBack = mes.getResequencing
          ? await atBoundary(`MES resequencing ${created.requestId}`, () => mes.getResequencing!(created.requestId))
          : created;
        await advice.recordSent(a.adviceId, readBack);
        sent.push(a.adviceId);
      }
      return { sent };
    },
  };
};

export type AdviceActivities = ReturnType<typeof createAdviceActivities>;

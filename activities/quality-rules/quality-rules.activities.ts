import { createHash } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { ErrorType, qualityEscalationWorkflowId } from '../../workflows/contracts';
import { atBoundary, configurationFailure } from '../boundary';
import { createOnce } from '../intents';
import type { EscalationPort, IntentLedger, MesPort, MesProductionHold } from '../ports';
import type {
  EscalationPolicy,
  LineBatch,
  LineBatchResult,
  QualityRuleStore,
  QualityRuleVersion,
  StoredEscalation,
} from './quality-rules.ports';
import { evaluateRule, type RuleTrip } from './rules';

export interface QualityRuleDeps {
  /** Absent in processes and tests that evaluate no rules; its activities then fail as misconfigured. */
  qualityRules?: QualityRuleStore;
  mesFor: (site: string) => MesPort;
  ledger: IntentLedger;
  escalationFor: (site: string) => { target: string; port: EscalationPort };
  /** The site's escalation policy (temporal.yaml sites[].escalationPolicy); absent: alert only. */
  escalationPolicyFor?: (site: string) => EscalationPolicy;
}

/** An escalation the evaluator starts a workflow for. */
export interface EscalationToStart {
  escalationId: string;
  workflowId: string;
  site: string;
  line: string;
  station: string | null;
  ruleId: string;
  version: number;
  policy: EscalationPolicy;
  summary: string;
}

export interface LineRulesEvaluation {
  /** Inspections read (counted or not). */
  inspections: number;
  /** Escalations this evaluation stored. */
  tripped: string[];
  /** Escalations of the line whose workflow has not said it started, this evaluation's included. */
  toStart: EscalationToStart[];
  /** The line's cursor was created by this evaluation: rules apply from now on. */
  initialised: boolean;
}

/** One pass's decisions: each active rule fed the parts of its scope, in the order read. */
export function decideBatch(batch: LineBatch): LineBatchResult {
  const result: LineBatchResult = { states: [], trips: [] };
  for (const { rule, state } of batch.rules) {
    const points = batch.points.filter((p) => rule.station === null || p.station === rule.station);
    if (points.length === 0) continue;
    const step = evaluateRule(rule.definition, rule.limits, state, points);
    result.states.push({
      ruleId: rule.ruleId,
      version: rule.version,
      state: step.state,
      parts: points.length,
      trips: step.trips.length,
    });
    for (const trip of step.trips) result.trips.push({ rule, trip });
  }
  return result;
}

const toStart = (e: StoredEscalation): EscalationToStart => ({
  escalationId: e.escalationId,
  workflowId: e.workflowId,
  site: e.site,
  line: e.line,
  station: e.station,
  ruleId: e.ruleId,
  version: e.version,
  policy: e.policy,
  summary: e.summary,
});

export const createQualityRuleActivities = ({
  qualityRules,
  mesFor,
  ledger,
  escalationFor,
  escalationPolicyFor,
}: QualityRuleDeps) => {
  const store = (): QualityRuleStore => {
    if (!qualityRules) throw configurationFailure('this worker has no quality-rule store');
    return qualityRules;
  };
  const escalation = async (id: string): Promise<StoredEscalation> => {
    const found = await store().get(id);
    if (!found) {
      throw ApplicationFailure.create({
        message: `no quality escalation ${id}`,
        type: ErrorType.NotFound,
        nonRetryable: true,
      });
    }
    return found;
  };
  const productionHolds = (site: string) => {
    const mes = mesFor(site);
    if (!mes.holdProduction || !mes.getProductionHold || !mes.releaseProductionHold) {
      throw configurationFailure(`the MES ${mes.system} of site ${site} offers no line or work-order holds`);
    }
    return {
      system: mes.system,
      hold: mes.holdProduction.bind(mes),
      get: mes.getProductionHold.bind(mes),
      release: mes.releaseProductionHold.bind(mes),
    };
  };

  return {
    /**
     * Reads the line's new inspections up to `maxBatches` × `batchSize`, evaluates every active rule over them and
     * stores the trips, each batch in one transaction with the cursor (so a retry reads on from where the last
     * committed batch left off, and no part is counted twice). Returns the escalations still to start.
     */
    async evaluateLineRules(input: {
      site: string;
      line: string;
      batchSize: number;
      maxBatches: number;
    }): Promise<LineRulesEvaluation> {
      const { site, line } = input;
      const rules = store();
      const policy = escalationPolicyFor?.(site) ?? 'alert';
      const named = (rule: QualityRuleVersion, trip: RuleTrip) => {
        const escalationId = escalationIdOf(rule, trip.firstPoint);
        return { escalationId, workflowId: qualityEscalationWorkflowId(escalationId), policy };
      };
      const out: LineRulesEvaluation = { inspections: 0, tripped: [], toStart: [], initialised: false };
      for (let b = 0; b < input.maxBatches; b += 1) {
        const pass = await rules.evaluateLine(site, line, input.batchSize, decideBatch, named);
        out.inspections += pass.parts;
        out.tripped.push(...pass.trips);
        out.initialised ||= pass.initialised;
        if (pass.initialised || pass.parts < input.batchSize) break;
      }
      out.toStart = (await rules.unstarted(site, line)).map(toStart);
      return out;
    },

    /** The escalation's workflow has started: recorded once (audited), and the escalation as stored returned. */
    async openQualityEscalation({ escalationId }: { escalationId: string }): Promise<StoredEscalation> {
      return store().markStarted(escalationId);
    },

    /** Alerts the site's escalation target once (its key is the escalation's); a repeat finds it alerted. */
    async alertQualityEscalation({
      escalationId,
    }: {
      escalationId: string;
    }): Promise<{ target: string; sent: boolean }> {
      const e = await escalation(escalationId);
      const { target, port } = escalationFor(e.site);
      if (e.alertedAt !== null) return { target: e.alertTarget ?? target, sent: false };
      const scope = e.station ? `${e.site}/${e.line}/${e.station}` : `${e.site}/${e.line}`;
      await atBoundary(`alert ${target} of quality escalation ${escalationId}`, () =>
        port.escalate({
          idempotencyKey: `quality-escalation:${escalationId}:alert`,
          site: e.site,
          line: e.line,
          lotId: e.lotId,
          lotCaseWorkflowId: e.workflowId,
          waitingSince: e.trippedAt,
          text:
            `Rule ${e.ruleId} v${e.version} tripped on ${scope}: ${e.summary}. ` +
            (e.policy === 'alert'
              ? 'Site policy: alert only.'
              : `Site policy: ${e.policy} in the MES until a signed release.`),
          qualityEscalation: {
            escalationId,
            ruleId: e.ruleId,
            version: e.version,
            station: e.station,
            policy: e.policy,
            summary: e.summary,
          },
        }),
      );
      await store().recordAlert(escalationId, target);
      return { target, sent: true };
    },

    /**
     * Holds the line (or the order of the part that tripped) in the MES exactly once: the intent ledger and the key
     * `quality-escalation:<id>:hold` make a retry, or a worker killed after the MES answered, find the same hold. The
     * MES's read-back of the hold is stored.
     */
    async holdForQualityEscalation({ escalationId }: { escalationId: string }): Promise<MesProductionHold> {
      const e = await escalation(escalationId);
      if (e.hold) return e.hold;
      if (e.policy === 'alert') throw configurationFailure(`escalation ${escalationId} holds nothing (policy alert)`);
      const mes = productionHolds(e.site);
      const req = {
        idempotencyKey: `quality-escalation:${escalationId}:hold`,
        scope: e.policy === 'hold-line' ? ('line' as const) : ('work-order' as const),
        line: e.line,
        workOrder: e.workOrder,
        ...(e.station ? { station: e.station } : {}),
        reason: `Holdfast rule ${e.ruleId} v${e.version}: ${e.summary} (escalation ${escalationId})`,
      };
      const created = await atBoundary(`MES ${req.scope} hold for escalation ${escalationId}`, () =>
        createOnce(
          ledger,
          { key: req.idempotencyKey, step: 'mes-production-hold', system: mes.system, request: req },
          (o) => mes.hold(req, o),
        ),
      );
      const readBack = await atBoundary(`MES production hold ${created.holdId}`, () => mes.get(created.holdId));
      await store().recordHold(escalationId, readBack);
      return readBack;
    },

    /** Whether a signed release was decided (the API stores it before it wakes the workflow). */
    async qualityEscalationDecision({
      escalationId,
    }: {
      escalationId: string;
    }): Promise<{ decided: boolean; decidedBy: string | null }> {
      const e = await escalation(escalationId);
      return { decided: e.decidedAt !== null, decidedBy: e.decidedBy };
    },

    /** Releases the MES hold exactly once (key `quality-escalation:<id>:release`) and stores its read-back. */
    async releaseQualityEscalation({ escalationId }: { escalationId: string }): Promise<MesProductionHold | null> {
      const e = await escalation(escalationId);
      if (e.state === 'released') return e.release;
      if (e.state !== 'release-decided') {
        throw ApplicationFailure.create({
          message: `escalation ${escalationId} is ${e.state}: only a signed release decision releases it`,
          type: ErrorType.BusinessRejection,
          nonRetryable: true,
        });
      }
      let readBack: MesProductionHold | null = null;
      const hold = e.hold;
      if (hold) {
        const mes = productionHolds(e.site);
        const req = {
          idempotencyKey: `quality-escalation:${escalationId}:release`,
          holdId: hold.holdId,
          comment: `released by ${e.decidedBy ?? '?'}: ${e.decisionReason ?? ''}`,
        };
        await atBoundary(`MES release of hold ${hold.holdId}`, () =>
          createOnce(
            ledger,
            { key: req.idempotencyKey, step: 'mes-production-hold-release', system: mes.system, request: req },
            () => mes.release(req),
          ),
        );
        readBack = await atBoundary(`MES production hold ${hold.holdId}`, () => mes.get(hold.holdId));
      }
      await store().recordRelease(escalationId, readBack);
      return readBack;
    },
  };
};

/**
 * The escalation's id: deterministic from the site, the rule's scope, the rule, its version and the trip's first point
 * (hashed, so any event id gives a short, URL-safe id), so a batch retried after it committed names the same
 * escalation, and one trip starts one workflow.
 */
export function escalationIdOf(
  rule: Pick<QualityRuleVersion, 'site' | 'line' | 'station' | 'ruleId' | 'version'>,
  firstPoint: string,
): string {
  const point = createHash('sha256').update(firstPoint).digest('hex').slice(0, 16);
  return `${rule.site}-${rule.line}-${rule.station ?? 'line'}-${rule.ruleId}-v${rule.version}-${point}`;
}

export type QualityRuleActivities = ReturnType<typeof createQualityRuleActivities>;

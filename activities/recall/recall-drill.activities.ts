import { msToNumber } from '@temporalio/common/lib/time';
import { atBoundary } from '../boundary';
import { ConfigError } from '../errors';
import type { EscalationPort, RecallDrillStore } from '../ports';
import type {
  RecallDrillEscalation,
  RecallDrillScope,
  RecallDrillState,
  RecallInput,
  RecallScope,
} from '../../workflows/contracts';

export interface RecallDrillDeps {
  /** The drills' rows and their mock recalls (infra/recall); absent in processes that run no drills. */
  drills?: RecallDrillStore;
  escalationFor: (site: string) => { target: string; port: EscalationPort };
}

/**
 * A recall drill's steps (docs/recall.md#drills). Each is keyed by the drill: a retry after a crash opens no second
 * recall and sends no second escalation for the same reason.
 */
export const createRecallDrillActivities = ({ drills, escalationFor }: RecallDrillDeps) => {
  const store = (): RecallDrillStore => {
    if (!drills) throw new ConfigError('this worker has no recall drill store');
    return drills;
  };
  return {
    /** Opens the drill's row; `missed` when the site's previous drill was due longer ago than `missedAfter`. */
    async beginRecallDrill(input: {
      drillId: string;
      site: string;
      scheduleId: string;
      workflowId: string;
      scheduledAt: string;
      completeWithin: string;
      missedAfter: string;
    }): Promise<{ previousScheduledAt: string | null; missed: boolean }> {
      return atBoundary(`begin of recall drill ${input.drillId}`, async () => {
        const { previousScheduledAt } = await store().begin({
          ...input,
          completeWithinMs: msToNumber(input.completeWithin),
        });
        const gap = previousScheduledAt === null ? 0 : Date.parse(input.scheduledAt) - Date.parse(previousScheduledAt);
        return { previousScheduledAt, missed: gap > msToNumber(input.missedAfter) };
      });
    },
    async pickRecallDrillScope(input: {
      drillId: string;
      site: string;
      scope: RecallDrillScope;
    }): Promise<RecallScope> {
      return atBoundary(`scope of recall drill ${input.drillId}`, () =>
        store().pickScope(input.drillId, input.site, input.scope),
      );
    },
    async openRecallDrill(input: { drillId: string; scope: RecallScope }): Promise<RecallInput> {
      return atBoundary(`recall of recall drill ${input.drillId}`, () => store().openRecall(input));
    },
    async finishRecallDrill(input: {
      drillId: string;
      overdue: boolean;
      durationMs: number;
      error?: string;
    }): Promise<{ state: RecallDrillState }> {
      return atBoundary(`result of recall drill ${input.drillId}`, () => store().finish(input.drillId, input));
    },
    /** Tells the site's escalation target; sent at most once per drill and reason. */
    async escalateRecallDrill(input: {
      drillId: string;
      site: string;
      workflowId: string;
      scheduledAt: string;
      recallId: string | null;
      reason: RecallDrillEscalation;
      text: string;
    }): Promise<{ sent: boolean }> {
      const { target, port } = escalationFor(input.site);
      if (await store().escalated(input.drillId, input.reason)) return { sent: false };
      await atBoundary(`escalate recall drill ${input.drillId} to ${target}`, () =>
        port.escalate({
          idempotencyKey: `recall-drill:${input.drillId}:${input.reason}`,
          site: input.site,
          line: '',
          lotId: input.recallId ?? '',
          lotCaseWorkflowId: input.workflowId,
          waitingSince: input.scheduledAt,
          text: input.text,
          recallDrill: { drillId: input.drillId, workflowId: input.workflowId, reason: input.reason },
        }),
      );
      await store().recordEscalation(input.drillId, { reason: input.reason, target, text: input.text });
      return { sent: true };
    },
  };
};

export type RecallDrillActivities = ReturnType<typeof createRecallDrillActivities>;

import type { Client } from '@temporalio/client';
import type { LotCaseStarter } from '../../activities/lot-case/lot-case.activities';
import { partDefectSignal, type LotCaseInput, type PartDefect } from '../../workflows/contracts';
import { LOT_CASE_WORKFLOW_TYPE, detectionSearchAttributes } from './gateway';

/** Signal-with-start of the lot's case workflow, by type name so activity code never imports workflow code. */
export function createTemporalLotCaseStarter(client: Client): LotCaseStarter {
  return {
    async enrol({ workflowId, taskQueue, input, part }) {
      const handle = await client.workflow.signalWithStart<(i: LotCaseInput) => Promise<unknown>, [PartDefect]>(
        LOT_CASE_WORKFLOW_TYPE,
        {
          workflowId,
          taskQueue,
          args: [input],
          signal: partDefectSignal,
          signalArgs: [part],
          // The opening part's: the case's site, line, lot, work order and sku are the part's own.
          typedSearchAttributes: detectionSearchAttributes(part),
          staticSummary: `Lot ${input.lotId} hold case · ${input.site}/${input.line} · ${input.sku}`,
          staticDetails: `Hold cycle of lot \`${input.lotId}\` (work order \`${input.workOrder}\`), opened by part \`${part.partId}\` (${part.defects[0]?.class ?? 'defect'} at ${part.station}).`,
        },
      );
      return { runId: handle.signaledRunId };
    },
  };
}

import type { Client } from '@temporalio/client';
import type { LotCaseStarter } from '../../activities/lot-case/lot-case.activities';
import { SearchAttributes, partDefectSignal, type LotCaseInput, type PartDefect } from '../../workflows/contracts';

/** Signal-with-start of the lot's case workflow, by type name so activity code never imports workflow code. */
export function createTemporalLotCaseStarter(client: Client): LotCaseStarter {
  return {
    async enrol({ workflowId, taskQueue, input, part }) {
      const handle = await client.workflow.signalWithStart<(i: LotCaseInput) => Promise<unknown>, [PartDefect]>(
        'lotCaseWorkflow',
        {
          workflowId,
          taskQueue,
          args: [input],
          signal: partDefectSignal,
          signalArgs: [part],
          typedSearchAttributes: [
            { key: SearchAttributes.site, value: input.site },
            { key: SearchAttributes.line, value: input.line },
            { key: SearchAttributes.station, value: part.station },
            { key: SearchAttributes.lot, value: input.lotId },
            { key: SearchAttributes.workOrder, value: input.workOrder },
            { key: SearchAttributes.sku, value: input.sku },
            { key: SearchAttributes.defectClass, value: part.defects[0]?.class ?? 'unknown' },
            { key: SearchAttributes.dispositionState, value: 'containing' },
            { key: SearchAttributes.detectedAt, value: new Date(part.inspectedAt) },
          ],
          staticSummary: `Lot ${input.lotId} hold case · ${input.site}/${input.line} · ${input.sku}`,
          staticDetails: `Hold cycle of lot \`${input.lotId}\` (work order \`${input.workOrder}\`), opened by part \`${part.partId}\` (${part.defects[0]?.class ?? 'defect'} at ${part.station}).`,
        },
      );
      return { runId: handle.signaledRunId };
    },
  };
}

import { atBoundary } from '../boundary';
import { ConfigError } from '../errors';
import type { RecallReconciliation, RecallStore, RecallTraceCounts } from '../ports';
import type { RecallScope, RecallStage, RecallTargets } from '../../workflows/contracts';

export interface RecallDeps {
  /** The recall's stages over the genealogy (infra/recall); absent in processes that run no recalls. */
  recalls?: RecallStore;
}

/**
 * A recall's stages (docs/recall.md). Each writes what it found to the recall's tables and returns counts only, so
 * the workflow's history stays small however far the trace reaches; each is keyed by the recall, so a retry after a
 * crash writes nothing twice.
 */
export const createRecallActivities = ({ recalls }: RecallDeps) => {
  const store = (): RecallStore => {
    if (!recalls) throw new ConfigError('this worker has no recall store');
    return recalls;
  };
  return {
    async traceRecall({ recallId, scope }: { recallId: string; scope: RecallScope }): Promise<RecallTraceCounts> {
      return atBoundary(`trace of recall ${recallId}`, () => store().trace(recallId, scope));
    },
    async classifyRecall({ recallId }: { recallId: string }): Promise<Record<string, number>> {
      return atBoundary(`classify of recall ${recallId}`, () => store().classify(recallId));
    },
    async reconcileRecall({ recallId }: { recallId: string }): Promise<RecallReconciliation> {
      return atBoundary(`reconcile of recall ${recallId}`, () => store().reconcile(recallId));
    },
    async reportRecall(input: {
      recallId: string;
      state: 'completed' | 'failed' | 'cancelled';
      stages: RecallStage[];
      targets: RecallTargets;
    }): Promise<void> {
      return atBoundary(`report of recall ${input.recallId}`, () =>
        store().report(input.recallId, input.state, input.stages, input.targets),
      );
    },
  };
};

import { Context } from '@temporalio/activity';
import { atBoundary } from '../boundary';
import { ConfigError } from '../errors';
import type {
  RecallReconciliation,
  RecallReinspector,
  RecallStore,
  RecallTraceCounts,
  ReinspectionBatch,
} from '../ports';
import type { RecallScope, RecallStage, RecallTargets } from '../../workflows/contracts';

export interface RecallDeps {
  /** The recall's stages over the genealogy (infra/recall); absent in processes that run no recalls. */
  recalls?: RecallStore;
  /** A model recall's re-inspection of stored images (infra/recall/reinspection.ts); absent: none here. */
  reinspector?: RecallReinspector;
}

/**
 * A recall's stages (docs/recall.md). Each writes what it found to the recall's tables and returns counts only, so
 * the workflow's history stays small however far the trace reaches; each is keyed by the recall, so a retry after a
 * crash writes nothing twice.
 */
export const createRecallActivities = ({ recalls, reinspector }: RecallDeps) => {
  const store = (): RecallStore => {
    if (!recalls) throw new ConfigError('this worker has no recall store');
    return recalls;
  };
  const reinspection = (): RecallReinspector => {
    if (!reinspector) throw new ConfigError('this worker has no reinspector');
    return reinspector;
  };
  return {
    async traceRecall({ recallId, scope }: { recallId: string; scope: RecallScope }): Promise<RecallTraceCounts> {
      return atBoundary(`trace of recall ${recallId}`, () => store().trace(recallId, scope));
    },
    async classifyRecall({ recallId }: { recallId: string }): Promise<Record<string, number>> {
      return atBoundary(`classify of recall ${recallId}`, () => store().classify(recallId));
    },
    /** One batch of a model recall's re-inspection; heartbeats each part, so a stuck image read shows in time. */
    async reinspectRecallBatch(input: {
      recallId: string;
      scope: Extract<RecallScope, { kind: 'model-version' }>;
      correctedModelVersion?: string;
      limit: number;
    }): Promise<ReinspectionBatch> {
      return atBoundary(`reinspection of recall ${input.recallId}`, () =>
        reinspection().reinspectBatch(input, (done) => Context.current().heartbeat(done)),
      );
    },
    async concludeReinspection({ recallId }: { recallId: string }): Promise<Record<string, number>> {
      return atBoundary(`reinspection of recall ${recallId}`, () => reinspection().conclude(recallId));
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

import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import { TemporalUnavailableError } from './gateway';
import {
  SearchAttributes,
  scarDecisionSignal,
  scarResponseSignal,
  scarStateQuery,
  type ScarDecision,
  type ScarInput,
  type ScarResponse,
  type ScarState,
} from '../../workflows/contracts';

/** What the API asks of SCAR workflows (docs/analytics.md#supplier-quality). */
export interface SupplierControl {
  /** Starts the SCAR's workflow; a second start of the same id changes nothing. */
  startScar(workflowId: string, input: ScarInput): Promise<void>;
  /** The workflow's state, or undefined when it does not exist. */
  scarState(workflowId: string): Promise<ScarState | undefined>;
  recordResponse(workflowId: string, response: ScarResponse): Promise<void>;
  decide(workflowId: string, decision: ScarDecision): Promise<void>;
}

export function createTemporalSupplierControl(client: Client, opts: { taskQueue: string }): SupplierControl {
  return {
    async startScar(workflowId, input) {
      try {
        await client.workflow.start('scarWorkflow', {
          workflowId,
          taskQueue: opts.taskQueue,
          workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
          typedSearchAttributes: [{ key: SearchAttributes.supplier, value: input.supplier }],
          args: [input],
        });
      } catch (err) {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      }
    },
    async scarState(workflowId) {
      try {
        return await client.workflow.getHandle(workflowId).query(scarStateQuery);
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return undefined;
        throw err;
      }
    },
    async recordResponse(workflowId, response) {
      await client.workflow.getHandle(workflowId).signal(scarResponseSignal, response);
    },
    async decide(workflowId, decision) {
      await client.workflow.getHandle(workflowId).signal(scarDecisionSignal, decision);
    },
  };
}

/** For the API process: answers 503 (TemporalUnavailableError) until Temporal is reached, then forwards. */
export function createDeferredSupplierControl(): { control: SupplierControl; connect(real: SupplierControl): void } {
  let real: SupplierControl | undefined;
  const target = () => {
    if (!real) throw new TemporalUnavailableError('not connected to Temporal yet');
    return real;
  };
  return {
    connect: (r) => {
      real = r;
    },
    control: {
      startScar: (id, input) => target().startScar(id, input),
      scarState: (id) => target().scarState(id),
      recordResponse: (id, r) => target().recordResponse(id, r),
      decide: (id, d) => target().decide(id, d),
    },
  };
}

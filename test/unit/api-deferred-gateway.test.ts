import {
  TemporalUnavailableError,
  type WorkflowGateway,
  createDeferredWorkflowGateway,
} from '../../infra/temporal/gateway';

describe('createDeferredWorkflowGateway (API started while Temporal is unreachable)', () => {
  it('fails every call as unavailable until connected, then delegates to the real gateway', async () => {
    const { gateway, connect } = createDeferredWorkflowGateway();

    await expect(gateway.describe('lot-1')).rejects.toBeInstanceOf(TemporalUnavailableError);
    await expect(gateway.lotCaseState('lot-1')).rejects.toBeInstanceOf(TemporalUnavailableError);

    const calls: string[] = [];
    const real: WorkflowGateway = {
      dispatchDetection: async (input) => {
        calls.push(`dispatch ${input.detection.eventId}`);
        return { workflowId: 'lot-1', runId: 'r1', awaitsConfirmation: true };
      },
      describe: async (id) => {
        calls.push(`describe ${id}`);
        return undefined;
      },
      lotCaseState: async () => undefined,
      submitDisposition: async () => {
        throw new Error('not used');
      },
      countersignDisposition: async () => {
        throw new Error('not used');
      },
      retryFailedStep: async () => {
        throw new Error('not used');
      },
    };
    connect(real);

    await expect(gateway.describe('lot-1')).resolves.toBeUndefined();
    expect(calls).toEqual(['describe lot-1']);
  });
});

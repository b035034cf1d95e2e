/** A recall workflow on a worker of its own, for workflow tests and recorded histories. */
import { randomUUID } from 'node:crypto';
import type { CreateOptions, MesHoldRequest, RecallStore } from '../../activities/ports';
import { recallWorkflowId, type RecallContainOptions } from '../../workflows/contracts';
import { FakeErp, FakeMes, MemoryContainment, RecordingEscalation } from './fake-ports';
import type { WorkflowHarness } from './workflow-harness';

/** An MES that takes `delayMs` per hold and counts the holds in flight. */
export class SlowMes extends FakeMes {
  inFlight = 0;
  maxInFlight = 0;
  readonly started: number[] = [];
  constructor(private readonly delayMs: number) {
    super();
  }
  override async holdLot(req: MesHoldRequest, opts?: CreateOptions) {
    this.started.push(Date.now());
    this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight);
    try {
      await new Promise((r) => setTimeout(r, this.delayMs));
      return await super.holdLot(req, opts);
    } finally {
      this.inFlight--;
    }
  }
}

/**
 * A real recall's workflow over the real contain activities: `lots` lots known to a slow MES (`delayMs` per hold), the
 * containment rows in memory, the genealogy stages as stand-ins that record the report's state.
 */
export async function startRecallRig(harness: WorkflowHarness, { lots, delayMs }: { lots: number; delayMs: number }) {
  const mes = new SlowMes(delayMs);
  const containment = new MemoryContainment();
  for (let i = 0; i < lots; i++) {
    const lotId = `F${String(i).padStart(4, '0')}`;
    mes.addLot({ lotId });
    containment.add({ lotKey: lotId, mes: { site: 'PLANT1', lotId } });
  }
  const reports: string[] = [];
  const recalls: RecallStore = {
    trace: async () => ({
      scopeLots: 1,
      forwardLots: lots,
      backwardLots: 0,
      deliveries: 0,
      customers: 0,
      gaps: 0,
      cycles: 0,
      truncated: 0,
    }),
    classify: async () => ({ 'in-stock': lots }),
    reconcile: async () => ({ produced: 0, accounted: 0, unreconciledLots: 0 }),
    report: async (_recallId, state) => {
      reports.push(state);
    },
  };
  const { worker, taskQueue } = await harness.worker({
    mes,
    erp: new FakeErp(),
    escalation: new RecordingEscalation(),
    recalls,
    containment,
  });
  const recallId = `PLANT1-${randomUUID().slice(0, 8)}`;
  const start = (contain: RecallContainOptions) =>
    harness.client.workflow.start('recallWorkflow', {
      workflowId: recallWorkflowId(recallId),
      taskQueue,
      args: [
        {
          recallId,
          site: 'PLANT1',
          kind: 'real',
          scope: { kind: 'mes-lot', site: 'PLANT1', lotId: 'R1' },
          reason: 'resin',
          requestedBy: 'qm',
          targets: { traceWithin: '8m', reconciliationAtLeast: 0.995 },
          preset: harness.config.activityPresets.traceWrite,
          contain,
        },
      ],
    });
  return { mes, containment, reports, worker, start, recallId };
}

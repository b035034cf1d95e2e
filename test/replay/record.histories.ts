/**
 * Records the workflow histories that test/replay/replay.test.ts replays. Run when workflow behaviour changes on
 * purpose (`npm run test:record-histories`), commit the new files beside the old ones: old histories must keep
 * replaying (use patched() for changes that would break them).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { defectWorkflow } from '../../workflows';
import { createTemporalLotCaseStarter } from '../../infra/temporal/gateway';
import {
  defectWorkflowId,
  dispositionUpdate,
  lotCaseEnrolment,
  lotCaseStateQuery,
  lotCaseWorkflowId,
} from '../../workflows/contracts';
import { eventually } from '../support/eventually';
import { FakeErp, FakeMes, RecordingEscalation } from '../support/fake-ports';
import { readTestEnv } from '../support/test-env';
import { WorkflowHarness, defectInput, detection } from '../support/workflow-harness';

const harness = new WorkflowHarness();
beforeAll(() => harness.setUp());
afterAll(() => harness.tearDown());

// v1: defect workflows handed their part to the lot case themselves. v2: the outbox dispatcher does it, as here.
// v3: lot cases record a part's trace links with their next stage record (patch lot-case-records-with-stage).
const VERSION = 'v3';

test(`record defect and lot-case histories (${VERSION})`, async () => {
  const mes = new FakeMes();
  const erp = new FakeErp();
  const { worker, taskQueue } = await harness.worker({ mes, erp, escalation: new RecordingEscalation() });
  const lotId = 'L-REPLAY';
  mes.addLot({ lotId, supplier: '17300001' });
  const policy = harness.policy();
  await worker.runUntil(async () => {
    const parts = [
      detection({ lotId, eventId: `replay-${Date.now()}-a` }),
      detection({ lotId, eventId: `replay-${Date.now()}-b` }),
    ];
    // As the outbox dispatcher starts a defect (infra/temporal/gateway.ts): the lot case enrolment beside the start.
    const lotCases = createTemporalLotCaseStarter(harness.client);
    const handles = await Promise.all(
      parts.map(async (d) => {
        const workflowId = defectWorkflowId(d.eventId);
        await lotCases.enrol(lotCaseEnrolment({ ...d, defectWorkflowId: workflowId }, policy, taskQueue));
        return harness.client.workflow.start(defectWorkflow, {
          workflowId,
          taskQueue,
          args: [{ ...defectInput(d, policy, taskQueue), lotCaseEnrolled: true }],
        });
      }),
    );
    await Promise.all(handles.map((h) => h.result()));
    const lotCase = harness.client.workflow.getHandle(lotCaseWorkflowId('PLANT1', lotId));
    await eventually(
      'lot case awaiting disposition',
      () => lotCase.query(lotCaseStateQuery),
      (state) => state.stage === 'awaiting-disposition',
    );
    await lotCase.executeUpdate(dispositionUpdate, {
      args: [{ decision: 'return-to-vendor', reason: 'MRB 7', decidedBy: 'qe.jane', requestId: 'replay-1' }],
    });
    await lotCase.result();
    const dir = join(__dirname, 'histories');
    // The CLI's JSON is the format operators export from production too (`temporal workflow show --output json`).
    const env = readTestEnv();
    const show = (workflowId: string) =>
      execFileSync(env.temporalCliPath, [
        'workflow',
        'show',
        '--workflow-id',
        workflowId,
        '--address',
        env.temporalAddress,
        '--namespace',
        env.namespace,
        '--output',
        'json',
      ]);
    writeFileSync(join(dir, `defect-${VERSION}.json`), show(handles[0]!.workflowId));
    writeFileSync(join(dir, `lot-case-${VERSION}.json`), show(lotCase.workflowId));
  });
});

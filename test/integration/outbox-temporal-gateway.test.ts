import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Client, Connection } from '@temporalio/client';
import type { Pool } from 'pg';
import { buildApp } from '../../api/app';
import { loadConfig, sitePolicy } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import { createPool } from '../../infra/db/pool';
import { startOutboxDispatcher } from '../../infra/outbox/dispatcher';
import {
  DEFECT_PRIORITY,
  DispositionRejectedError,
  LOT_CASE_PRIORITY,
  WorkflowNotFoundError,
  type WorkflowGateway,
  createTemporalWorkflowGateway,
} from '../../infra/temporal/gateway';
import {
  type DefectWorkflowInput,
  type PartDefect,
  SearchAttributes,
  defectWorkflowId,
  lotCaseWorkflowId,
} from '../../workflows/contracts';
import { eventually } from '../support/eventually';
import { readTestEnv } from '../support/test-env';

/**
 * The real gateway against the run's Temporal dev server. No worker polls the task queue used here, so started
 * workflows stay RUNNING (nothing executes) and queries cannot be answered.
 */
const env = readTestEnv();
const baseConfig = loadConfig();
const run = `gw-${randomUUID().slice(0, 8)}`;
const taskQueue = `holdfast-test-no-worker-${run}`;
const config: HoldfastConfig = {
  ...baseConfig,
  taskQueues: { quality: taskQueue },
  outbox: { ...baseConfig.outbox, pollInterval: '1h' },
};
let connection: Connection;
let client: Client;
let gateway: WorkflowGateway;
let pool: Pool;
const startedWorkflowIds: string[] = [];
/** For clean-up: the defect workflow a test starts and, unless shadow, the lot case the gateway enrols it in. */
const toCleanUp = (workflowId: string, lotId?: string) =>
  startedWorkflowIds.push(workflowId, ...(lotId ? [lotCaseWorkflowId('PLANT1', lotId)] : []));

function defectInput(eventId: string, lotId: string): DefectWorkflowInput {
  return {
    detection: {
      eventId,
      site: 'PLANT1',
      line: 'L1',
      station: 'S1',
      partId: 'P-1',
      sku: 'BRKT-200',
      lotId,
      workOrder: '1000100',
      defects: [
        { class: 'scratch', score: 0.93 },
        { class: 'dent', score: 0.41 },
      ],
      modelVersion: 'yolo-scratch-1.4.2',
      recipeVersion: 'R-17',
      inspectedAt: '2025-03-04T10:15:00.000Z',
      imageRef: 's3://vision/img|1.png',
    },
    policy: sitePolicy(config, config.sites[0]!),
    taskQueue,
  };
}

/** The payloads of the `partDefect` signals in a workflow's history, decoded. */
async function signalledParts(workflowId: string): Promise<PartDefect[]> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? [])
    .filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'partDefect')
    .map((e) => {
      const payload = e.workflowExecutionSignaledEventAttributes!.input!.payloads![0]!;
      return JSON.parse(Buffer.from(payload.data!).toString('utf8')) as PartDefect;
    });
}

beforeAll(async () => {
  connection = await Connection.connect({ address: env.temporalAddress });
  client = new Client({ connection, namespace: env.namespace });
  gateway = createTemporalWorkflowGateway(client, { taskQueue, queryTimeoutMs: 1_000, updateTimeoutMs: 5_000 });
  pool = createPool(env.databaseUrl, { max: 5 });
});

afterAll(async () => {
  for (const workflowId of startedWorkflowIds) {
    await client.workflow
      .getHandle(workflowId)
      .terminate('test cleanup')
      .catch(() => undefined);
  }
  if (pool) {
    await pool.query(`DELETE FROM holdfast.outbox WHERE event_id LIKE $1`, [`${run}-%`]);
    await pool.query(`DELETE FROM holdfast.inspection WHERE event_id LIKE $1`, [`${run}-%`]);
    await pool.end();
  }
  await connection?.close();
});

describe('createTemporalWorkflowGateway against the dev server', () => {
  it('starts the defect workflow by name with search attributes and metadata, once', async () => {
    const eventId = `${run}-start`;
    const lotId = `${run}-LOT-1`;
    const workflowId = defectWorkflowId(eventId);
    toCleanUp(workflowId, lotId);

    const first = await gateway.startDefectWorkflow(defectInput(eventId, lotId));
    expect(first).toMatchObject({ workflowId, alreadyStarted: false });
    expect(first.runId).toMatch(/\S/);

    const described = await gateway.describe(workflowId);
    expect(described).toMatchObject({ workflowId, runId: first.runId, status: 'RUNNING', type: 'defectWorkflow' });
    expect(described!.closeTime).toBeUndefined();

    const raw = await client.workflow.getHandle(workflowId).describe();
    expect(raw.taskQueue).toBe(taskQueue);
    const sa = raw.typedSearchAttributes;
    expect(sa.get(SearchAttributes.site)).toBe('PLANT1');
    expect(sa.get(SearchAttributes.line)).toBe('L1');
    expect(sa.get(SearchAttributes.station)).toBe('S1');
    expect(sa.get(SearchAttributes.lot)).toBe(lotId);
    expect(sa.get(SearchAttributes.workOrder)).toBe('1000100');
    expect(sa.get(SearchAttributes.sku)).toBe('BRKT-200');
    expect(sa.get(SearchAttributes.defectClass)).toBe('scratch');
    expect(sa.get(SearchAttributes.dispositionState)).toBe('containing');
    expect(sa.get(SearchAttributes.detectedAt)?.toISOString()).toBe('2025-03-04T10:15:00.000Z');
    const summary = await raw.staticSummary();
    expect(summary).toBe(`scratch on PLANT1/L1/S1 · lot ${lotId} · part P-1`);
    expect(Buffer.byteLength(summary!, 'utf8')).toBeLessThanOrEqual(200);
    const details = await raw.staticDetails();
    expect(details).toContain(`\`${eventId}\``);
    expect(details).toContain('yolo-scratch-1.4.2');
    expect(details).toContain('R-17');
    expect(details).toContain('s3://vision/img\\|1.png');

    const listed = await eventually('the workflow in visibility', async () => {
      for await (const wf of client.workflow.list({ query: `WorkflowType = 'defectWorkflow' AND Lot = '${lotId}'` }))
        return wf;
      return undefined;
    });
    expect(listed.workflowId).toBe(workflowId);

    const again = await gateway.startDefectWorkflow(defectInput(eventId, lotId));
    expect(again).toEqual({ workflowId, runId: first.runId, alreadyStarted: true });
  });

  it('hands the part to its lot case next to the start', async () => {
    const eventId = `${run}-enrol`;
    const lotId = `${run}-LOT-6`;
    const workflowId = defectWorkflowId(eventId);
    toCleanUp(workflowId, lotId);

    await gateway.startDefectWorkflow(defectInput(eventId, lotId));

    const lotCase = await client.workflow.getHandle(lotCaseWorkflowId('PLANT1', lotId)).describe();
    expect(lotCase).toMatchObject({ type: 'lotCaseWorkflow', taskQueue, status: { name: 'RUNNING' } });
    expect(lotCase.typedSearchAttributes.get(SearchAttributes.lot)).toBe(lotId);
    expect(lotCase.typedSearchAttributes.get(SearchAttributes.dispositionState)).toBe('containing');
    const parts = await signalledParts(lotCase.workflowId);
    expect(parts).toHaveLength(1);
    expect(parts[0]).toMatchObject({ eventId, partId: 'P-1', lotId, defectWorkflowId: workflowId });
    // The lot case, which holds the lot, goes ahead of defect workflows on the task queue when work queues up.
    const defect = await client.workflow.getHandle(workflowId).describe();
    expect(lotCase.raw.workflowExecutionInfo?.priority?.priorityKey).toBe(LOT_CASE_PRIORITY);
    expect(defect.raw.workflowExecutionInfo?.priority?.priorityKey).toBe(DEFECT_PRIORITY);
    expect(LOT_CASE_PRIORITY).toBeLessThan(DEFECT_PRIORITY);

    // A re-sent outbox row signals the same part again; the lot case drops event ids it has seen.
    await gateway.startDefectWorkflow(defectInput(eventId, lotId));
    expect((await signalledParts(lotCase.workflowId)).map((p) => p.eventId)).toEqual([eventId, eventId]);
  });

  it('queues lot cases ahead of defect workflows that were started before them', async () => {
    // A queue of its own, so that only this test's tasks are backlogged on it; no worker polls it.
    const prioQueue = `${taskQueue}-priority`;
    const lots = [1, 2, 3].map((i) => `${run}-LOT-P${i}`);
    for (const [i, lotId] of lots.entries()) {
      const eventId = `${run}-prio-${i}`;
      toCleanUp(defectWorkflowId(eventId), lotId);
      await gateway.startDefectWorkflow({ ...defectInput(eventId, lotId), taskQueue: prioQueue });
    }

    // Take the six backlogged workflow tasks as a worker would, one poll each.
    const polled: string[] = [];
    for (let i = 0; i < 6; i++) {
      // A long poll needs a deadline; the tasks are already backlogged, so each answers at once.
      const task = await connection.withDeadline(Date.now() + 10_000, () =>
        client.workflowService.pollWorkflowTaskQueue({
          namespace: env.namespace,
          taskQueue: { name: prioQueue },
          identity: `${run}-priority-probe`,
        }),
      );
      polled.push(task.workflowType?.name ?? '(none)');
    }

    expect(polled).toEqual([...Array(3).fill('lotCaseWorkflow'), ...Array(3).fill('defectWorkflow')]);
  });

  it('starts only the defect workflow when told its part is already contained', async () => {
    const eventId = `${run}-contained`;
    const lotId = `${run}-LOT-8`;
    const workflowId = defectWorkflowId(eventId);
    toCleanUp(workflowId);

    await gateway.startDefectWorkflow(defectInput(eventId, lotId), { enrol: false });

    expect(await gateway.describe(workflowId)).toMatchObject({ type: 'defectWorkflow', status: 'RUNNING' });
    expect(await gateway.describe(lotCaseWorkflowId('PLANT1', lotId))).toBeUndefined();
  });

  it('opens no lot case for a shadow station', async () => {
    const eventId = `${run}-shadow`;
    const lotId = `${run}-LOT-7`;
    const workflowId = defectWorkflowId(eventId);
    toCleanUp(workflowId); // shadow: no lot case

    await gateway.startDefectWorkflow({ ...defectInput(eventId, lotId), mode: 'shadow' });

    expect(await gateway.describe(workflowId)).toMatchObject({ status: 'RUNNING' });
    expect(await gateway.describe(lotCaseWorkflowId('PLANT1', lotId))).toBeUndefined();
  });

  it('treats a closed workflow with the same id as already started (REJECT_DUPLICATE)', async () => {
    const eventId = `${run}-closed`;
    const workflowId = defectWorkflowId(eventId);
    toCleanUp(workflowId, `${run}-LOT-2`);
    const first = await gateway.startDefectWorkflow(defectInput(eventId, `${run}-LOT-2`));
    await client.workflow.getHandle(workflowId).terminate('closing it for the test');

    const again = await gateway.startDefectWorkflow(defectInput(eventId, `${run}-LOT-2`));

    expect(again).toEqual({ workflowId, runId: first.runId, alreadyStarted: true });
    expect(await gateway.describe(workflowId)).toMatchObject({ status: 'TERMINATED', runId: first.runId });
  });

  it('answers undefined for unknown workflows and for queries no worker can answer', async () => {
    expect(await gateway.describe(`${run}-nope`)).toBeUndefined();
    expect(await gateway.defectState(`${run}-nope`)).toBeUndefined();
    expect(await gateway.lotCaseState(`${run}-nope`)).toBeUndefined();

    const eventId = `${run}-query`;
    toCleanUp(defectWorkflowId(eventId), `${run}-LOT-3`);
    await gateway.startDefectWorkflow(defectInput(eventId, `${run}-LOT-3`));
    const started = Date.now();
    expect(await gateway.defectState(defectWorkflowId(eventId))).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(5_000);
    // grpc-js reports a deadline as DEADLINE_EXCEEDED or, racing its own timer, CANCELLED: both mean no answer.
    const impatient = createTemporalWorkflowGateway(client, { taskQueue, queryTimeoutMs: 150 });
    for (let i = 0; i < 10; i += 1) {
      expect(await impatient.defectState(defectWorkflowId(eventId))).toBeUndefined();
    }
  });

  it('maps a disposition for a workflow that does not exist to WorkflowNotFoundError', async () => {
    const err = await gateway
      .submitDisposition(`lot-PLANT1-${run}-none`, {
        decision: 'scrap',
        reason: 'r',
        decidedBy: 'qa',
        requestId: `${run}-k`,
      })
      .catch((e: unknown) => e);

    expect(err).toBeInstanceOf(WorkflowNotFoundError);
    expect(err).not.toBeInstanceOf(DispositionRejectedError);
  });

  it('starts the workflow of an ingested failure through the outbox and records the run id', async () => {
    const app = await buildApp({ pool, gateway, config, namespace: env.namespace });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const dispatcher = startOutboxDispatcher({ pool, gateway, config });
    try {
      const { detection } = defectInput(`${run}-e2e`, `${run}-LOT-4`);
      const workflowId = defectWorkflowId(detection.eventId);
      toCleanUp(workflowId, detection.lotId);
      const res = await fetch(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}/v1/inspections`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...detection, imageRef: 's3://vision/img.png', result: 'fail' }),
      });
      expect(res.status).toBe(202);

      const runId = await eventually('the outbox row dispatched', async () => {
        const row = await pool.query<{ workflow_run_id: string | null }>(
          `SELECT workflow_run_id FROM holdfast.outbox WHERE event_id = $1 AND dispatched_at IS NOT NULL`,
          [detection.eventId],
        );
        return row.rows[0]?.workflow_run_id ?? undefined;
      });
      expect(await gateway.describe(workflowId)).toMatchObject({ runId, status: 'RUNNING', type: 'defectWorkflow' });
      const input = (await client.workflow.getHandle(workflowId).fetchHistory()).events?.[0]
        ?.workflowExecutionStartedEventAttributes;
      expect(input?.taskQueue?.name).toBe(taskQueue);
    } finally {
      await dispatcher.stop();
      await app.close();
    }
  });
});

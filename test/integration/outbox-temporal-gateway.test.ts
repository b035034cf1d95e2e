import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Client, Connection } from '@temporalio/client';
import type { Pool } from 'pg';
import { buildApp } from '../../api/app';
import { loadConfig, sitePolicy } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import { createPool } from '../../infra/db/pool';
import { startOutboxDispatcher } from '../../infra/outbox/dispatcher';
import { holdfastDataConverter, holdfastPayloadCodec } from '../../infra/temporal/payload-codec';
import {
  DispositionRejectedError,
  LOT_CASE_PRIORITY,
  WorkflowNotFoundError,
  type WorkflowGateway,
  createTemporalWorkflowGateway,
} from '../../infra/temporal/gateway';
import {
  type DefectDetection,
  type DetectionDispatch,
  SearchAttributes,
  lotCaseWorkflowId,
  shadowWorkflowId,
} from '../../workflows/contracts';
import { eventually } from '../support/eventually';
import { readTestEnv } from '../support/test-env';
import { asAdmin, caseSignature, testSigningKey } from '../support/identity';

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
const codec = holdfastPayloadCodec();
/** For clean-up: every workflow a test starts. */
const toCleanUp = (...workflowIds: string[]) => startedWorkflowIds.push(...workflowIds);

function dispatchOf(eventId: string, lotId: string): DetectionDispatch {
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

/** The payloads of the `partDefect` signals in a workflow's history, decrypted and decoded. */
async function signalledParts(workflowId: string): Promise<DefectDetection[]> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const stored = (history.events ?? [])
    .filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'partDefect')
    .map((e) => e.workflowExecutionSignaledEventAttributes!.input!.payloads![0]!);
  const decoded = await codec.decode(stored);
  return decoded.map((payload) => JSON.parse(Buffer.from(payload.data!).toString('utf8')) as DefectDetection);
}

beforeAll(async () => {
  connection = await Connection.connect({ address: env.temporalAddress });
  client = new Client({ connection, namespace: env.namespace, dataConverter: holdfastDataConverter(codec) });
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
  it("hands a part to its lot's case by signal-with-start, with search attributes, metadata and priority", async () => {
    const eventId = `${run}-enrol`;
    const lotId = `${run}-LOT-1`;
    const workflowId = lotCaseWorkflowId('PLANT1', lotId);
    toCleanUp(workflowId);

    const first = await gateway.dispatchDetection(dispatchOf(eventId, lotId));
    expect(first).toMatchObject({ workflowId, awaitsConfirmation: true });
    expect(first.runId).toMatch(/\S/);

    const described = await gateway.describe(workflowId);
    expect(described).toMatchObject({ workflowId, runId: first.runId, status: 'RUNNING', type: 'lotCaseWorkflow' });
    const raw = await client.workflow.getHandle(workflowId).describe();
    expect(raw.taskQueue).toBe(taskQueue);
    // The lot case, which holds the lot, goes ahead of other work on the task queue when work queues up.
    expect(raw.raw.workflowExecutionInfo?.priority?.priorityKey).toBe(LOT_CASE_PRIORITY);
    const sa = raw.typedSearchAttributes;
    expect(sa.get(SearchAttributes.site)).toBe('PLANT1');
    expect(sa.get(SearchAttributes.line)).toBe('L1');
    expect(sa.get(SearchAttributes.station)).toEqual(['S1']);
    expect(sa.get(SearchAttributes.lot)).toBe(lotId);
    expect(sa.get(SearchAttributes.workOrder)).toEqual(['1000100']);
    expect(sa.get(SearchAttributes.sku)).toBe('BRKT-200');
    expect(sa.get(SearchAttributes.defectClass)).toEqual(['scratch']);
    expect(sa.get(SearchAttributes.dispositionState)).toBe('containing');
    expect(sa.get(SearchAttributes.detectedAt)?.toISOString()).toBe('2025-03-04T10:15:00.000Z');
    expect(await raw.staticSummary()).toBe(`Lot ${lotId} hold case · PLANT1/L1 · BRKT-200`);
    expect(await raw.staticDetails()).toContain('opened by part `P-1`');
    const parts = await signalledParts(workflowId);
    expect(parts).toEqual([dispatchOf(eventId, lotId).detection]);

    const listed = await eventually('the lot case in visibility', async () => {
      for await (const wf of client.workflow.list({
        query: `WorkflowType = 'lotCaseWorkflow' AND Lot = '${lotId}' AND WorkOrder = '1000100'`,
      }))
        return wf;
      return undefined;
    });
    expect(listed.workflowId).toBe(workflowId);

    // A re-sent outbox row signals the same part to the same run again; the lot case drops event ids it has seen.
    expect(await gateway.dispatchDetection(dispatchOf(eventId, lotId))).toEqual(first);
    expect((await signalledParts(workflowId)).map((p) => p.eventId)).toEqual([eventId, eventId]);
  });

  it('queues lot cases ahead of shadow workflows that were started before them', async () => {
    // A queue of its own, so that only this test's tasks are backlogged on it; no worker polls it.
    const prioQueue = `${taskQueue}-priority`;
    for (const i of [1, 2, 3]) {
      const shadow = { ...dispatchOf(`${run}-prio-shadow-${i}`, `${run}-LOT-S${i}`), taskQueue: prioQueue };
      toCleanUp((await gateway.dispatchDetection({ ...shadow, mode: 'shadow' })).workflowId);
    }
    for (const i of [1, 2, 3]) {
      const part = { ...dispatchOf(`${run}-prio-${i}`, `${run}-LOT-P${i}`), taskQueue: prioQueue };
      toCleanUp((await gateway.dispatchDetection(part)).workflowId);
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

    expect(polled).toEqual([...Array(3).fill('lotCaseWorkflow'), ...Array(3).fill('shadowDefectWorkflow')]);
  });

  it("starts a shadow station's defect as a shadow workflow of its own, once, and opens no lot case", async () => {
    const eventId = `${run}-shadow`;
    const lotId = `${run}-LOT-7`;
    const workflowId = shadowWorkflowId(eventId);
    toCleanUp(workflowId);

    const first = await gateway.dispatchDetection({ ...dispatchOf(eventId, lotId), mode: 'shadow' });

    expect(first).toMatchObject({ workflowId, awaitsConfirmation: false });
    expect(await gateway.describe(workflowId)).toMatchObject({ status: 'RUNNING', type: 'shadowDefectWorkflow' });
    const raw = await client.workflow.getHandle(workflowId).describe();
    expect(raw.typedSearchAttributes.get(SearchAttributes.dispositionState)).toBe('shadow');
    expect(raw.typedSearchAttributes.get(SearchAttributes.lot)).toBe(lotId);
    const summary = await raw.staticSummary();
    expect(summary).toBe(`shadow: scratch on PLANT1/L1/S1 · lot ${lotId} · part P-1`);
    expect(Buffer.byteLength(summary!, 'utf8')).toBeLessThanOrEqual(200);
    const details = await raw.staticDetails();
    expect(details).toContain(`\`${eventId}\``);
    expect(details).toContain('yolo-scratch-1.4.2');
    expect(details).toContain('s3://vision/img\\|1.png');
    expect(await gateway.describe(lotCaseWorkflowId('PLANT1', lotId))).toBeUndefined();

    // Sent again, open or closed (REJECT_DUPLICATE): the first run answers.
    expect(await gateway.dispatchDetection({ ...dispatchOf(eventId, lotId), mode: 'shadow' })).toEqual(first);
    await client.workflow.getHandle(workflowId).terminate('closing it for the test');
    expect(await gateway.dispatchDetection({ ...dispatchOf(eventId, lotId), mode: 'shadow' })).toEqual(first);
    expect(await gateway.describe(workflowId)).toMatchObject({ status: 'TERMINATED', runId: first.runId });
  });

  it('answers undefined for unknown workflows and for queries no worker can answer', async () => {
    expect(await gateway.describe(`${run}-nope`)).toBeUndefined();
    expect(await gateway.lotCaseState(`${run}-nope`)).toBeUndefined();

    const { workflowId } = await gateway.dispatchDetection(dispatchOf(`${run}-query`, `${run}-LOT-3`));
    toCleanUp(workflowId);
    const started = Date.now();
    expect(await gateway.lotCaseState(workflowId)).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(5_000);
    // grpc-js reports a deadline as DEADLINE_EXCEEDED or, racing its own timer, CANCELLED: both mean no answer.
    const impatient = createTemporalWorkflowGateway(client, { taskQueue, queryTimeoutMs: 150 });
    for (let i = 0; i < 10; i += 1) {
      expect(await impatient.lotCaseState(workflowId)).toBeUndefined();
    }
  });

  it('maps a disposition for a workflow that does not exist to WorkflowNotFoundError', async () => {
    const err = await gateway
      .submitDisposition(`lot-PLANT1-${run}-none`, {
        decision: 'scrap',
        reason: 'r',
        decidedBy: 'local:qa',
        signatures: [caseSignature({ id: 'local:qa', roles: ['quality-engineer'] })],
        requestId: `${run}-k`,
      })
      .catch((e: unknown) => e);

    expect(err).toBeInstanceOf(WorkflowNotFoundError);
    expect(err).not.toBeInstanceOf(DispositionRejectedError);
  });

  it("hands an ingested failure to its lot's case through the outbox and records the run, unconfirmed until the case records it", async () => {
    const app = await buildApp({ signingKey: await testSigningKey(), pool, gateway, config, namespace: env.namespace });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const dispatcher = startOutboxDispatcher({ pool, gateway, config });
    try {
      const { detection } = dispatchOf(`${run}-e2e`, `${run}-LOT-4`);
      const workflowId = lotCaseWorkflowId('PLANT1', detection.lotId);
      toCleanUp(workflowId);
      const res = await fetch(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}/v1/inspections`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(await asAdmin()) },
        body: JSON.stringify({ ...detection, imageRef: 's3://vision/img.png', result: 'fail' }),
      });
      expect(res.status).toBe(202);

      const row = await eventually('the outbox row dispatched', async () => {
        const { rows } = await pool.query<{ workflow_run_id: string; confirmed_at: Date | null }>(
          `SELECT workflow_run_id, confirmed_at FROM holdfast.outbox WHERE event_id = $1 AND dispatched_at IS NOT NULL`,
          [detection.eventId],
        );
        return rows[0];
      });
      expect(await gateway.describe(workflowId)).toMatchObject({
        runId: row.workflow_run_id,
        status: 'RUNNING',
        type: 'lotCaseWorkflow',
      });
      // No worker polls this queue: nothing has recorded the part, so the row still waits for its confirmation.
      expect(row.confirmed_at).toBeNull();
      const input = (await client.workflow.getHandle(workflowId).fetchHistory()).events?.[0]
        ?.workflowExecutionStartedEventAttributes;
      expect(input?.taskQueue?.name).toBe(taskQueue);
      expect((await signalledParts(workflowId)).map((p) => p.eventId)).toEqual([detection.eventId]);
    } finally {
      await dispatcher.stop();
      await app.close();
    }
  });
});

import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../api/app';
import { ExternalSystemError } from '../../activities/errors';
import type { HoldfastConfig } from '../../infra/config/schema';
import { type OutboxDispatcher, startOutboxDispatcher } from '../../infra/outbox/dispatcher';
import { createTemporalWorkflowGateway } from '../../infra/temporal/gateway';
import { type DispositionOutcome, lotCaseWorkflowId, retryFailedStepUpdate } from '../../workflows/contracts';
import type { DefectView } from '../../api/schemas/defect.schema';
import type { LotView } from '../../api/schemas/lot.schema';
import { eventually } from '../support/eventually';
import { FakeErp, FakeMes, RecordingEscalation } from '../support/fake-ports';
import { WorkflowHarness } from '../support/workflow-harness';
import { asAdmin, testSigningKey } from '../support/identity';

/**
 * The API end to end on real workflows: ingest → outbox → lot case (fake MES/ERP behind a real worker) → reads and an
 * idempotent disposition through HTTP.
 */
const harness = new WorkflowHarness();
const run = `api-wf-${randomUUID().slice(0, 8)}`;

beforeAll(() => harness.setUp());

afterAll(async () => {
  if (harness.pool) {
    await harness.pool.query(`DELETE FROM holdfast.api_idempotency WHERE key LIKE $1`, [`${run}-%`]);
    await harness.pool.query(`DELETE FROM holdfast.trace_link WHERE from_id LIKE $1 OR to_id LIKE $1`, [`%${run}%`]);
    await harness.pool.query(`DELETE FROM holdfast.lot_case WHERE lot_id LIKE $1`, [`${run}-%`]);
    await harness.pool.query(`DELETE FROM holdfast.outbox WHERE event_id LIKE $1`, [`${run}-%`]);
    await harness.pool.query(`DELETE FROM holdfast.inspection WHERE event_id LIKE $1`, [`${run}-%`]);
  }
  await harness.tearDown();
});

interface Answer {
  status: number;
  text: string;
  json<T = Record<string, unknown>>(): T;
}

test('a failed inspection becomes a held lot whose disposition goes through the API exactly once', async () => {
  const mes = new FakeMes();
  const erp = new FakeErp();
  const { worker, taskQueue } = await harness.worker({ mes, erp, escalation: new RecordingEscalation() });
  const config: HoldfastConfig = {
    ...harness.config,
    taskQueues: { quality: taskQueue },
    outbox: { ...harness.config.outbox, pollInterval: '1h' },
  };
  const lotId = `${run}-LOT`;
  const eventId = `${run}-evt-1`;
  mes.addLot({ lotId, quantity: 50 });
  // The stock block is refused once for good: the case parks in needs-attention until an operator retries.
  erp.failures.set(
    'postGoodsMovement',
    new ExternalSystemError('fake-erp', 'rejected', 'Deficit of SL Unrestricted-use 1 PC', 400),
  );

  const gateway = createTemporalWorkflowGateway(harness.client, { taskQueue });
  let app: FastifyInstance | undefined;
  let dispatcher: OutboxDispatcher | undefined;
  await worker.runUntil(async () => {
    try {
      app = await buildApp({
        signingKey: await testSigningKey(),
        pool: harness.pool,
        gateway,
        config,
        namespace: harness.namespace,
      });
      await app.listen({ host: '127.0.0.1', port: 0 });
      const baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
      dispatcher = startOutboxDispatcher({ pool: harness.pool, gateway, config });
      const http = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
        const res = await fetch(`${baseUrl}${path}`, {
          method,
          headers: {
            ...(await asAdmin()),
            ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
            ...headers,
          },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        });
        const text = await res.text();
        const answer: Answer = { status: res.status, text, json: <T>() => JSON.parse(text) as T };
        return answer;
      };
      const liveStage = (stage: string) =>
        eventually(
          `lot ${lotId} in ${stage}`,
          async () => (await http('GET', `/v1/lots/${lotId}`)).json<LotView>(),
          (view) => view.live?.stage === stage,
        );

      const ingest = await http('POST', '/v1/inspections', {
        eventId,
        site: 'PLANT1',
        line: 'L1',
        station: 'S2',
        partId: 'P-1',
        sku: 'BRKT-200',
        lotId,
        workOrder: '1000100',
        result: 'fail',
        defects: [{ class: 'scratch', score: 0.93 }],
        modelVersion: 'vision-1.0.0',
        recipeVersion: 'BRKT-200@3',
        inspectedAt: new Date().toISOString(),
      });
      expect(ingest.status).toBe(202);

      const parked = await liveStage('needs-attention');
      expect(parked.live!.failures).toEqual([expect.objectContaining({ step: 'erp-stock-block' })]);
      expect(parked.workflow).toMatchObject({ workflowId: lotCaseWorkflowId('PLANT1', lotId), status: 'RUNNING' });
      // The part's own view, from PostgreSQL, names the step that holds it up.
      const parkedPart = (await http('GET', `/v1/defects/${eventId}`)).json<DefectView>();
      expect(parkedPart.lotCase).toMatchObject({ stage: 'needs-attention', part: { eventId, status: 'containing' } });
      expect(parkedPart.lotCase!.failures).toEqual([
        expect.objectContaining({ step: 'erp-stock-block', eventId, partId: 'P-1' }),
      ]);

      const scrap = { decision: 'scrap', reason: 'cracked flange', decidedBy: 'qe.jane' };
      const early = await http('POST', `/v1/lots/${lotId}/disposition`, scrap, { 'Idempotency-Key': `${run}-k1` });
      expect(early.status).toBe(409);
      expect(early.json()).toMatchObject({ type: 'urn:holdfast:problem:disposition-rejected' });
      expect(early.json<{ detail: string }>().detail).toContain('needs-attention');
      const earlyAgain = await http('POST', `/v1/lots/${lotId}/disposition`, scrap, { 'Idempotency-Key': `${run}-k1` });
      expect(earlyAgain.text).toBe(early.text);

      await harness.client.workflow
        .getHandle(lotCaseWorkflowId('PLANT1', lotId))
        .executeUpdate(retryFailedStepUpdate, { args: [{ requestedBy: 'erp.admin' }] });
      await liveStage('awaiting-disposition');

      const decided = await http('POST', `/v1/lots/${lotId}/disposition`, scrap, { 'Idempotency-Key': `${run}-k2` });
      expect(decided.status).toBe(200);
      expect(decided.json()).toMatchObject({ decision: 'scrap', decidedBy: 'qe.jane', requestId: `${run}-k2` });
      const outcome = decided.json<DispositionOutcome>();
      expect(outcome.status).toBe('completed');
      expect(outcome.materialDocuments.map((d) => d.movementType)).toContain('555');
      const replay = await http('POST', `/v1/lots/${lotId}/disposition`, scrap, { 'Idempotency-Key': `${run}-k2` });
      expect(replay.status).toBe(200);
      expect(replay.text).toBe(decided.text);
      expect(erp.documents.filter((d) => d.movementType === '555')).toHaveLength(1);

      const defect = (await http('GET', `/v1/defects/${eventId}`)).json<DefectView>();
      const lotCaseId = lotCaseWorkflowId('PLANT1', lotId);
      expect(defect.dispatch).toMatchObject({ state: 'confirmed', workflowId: lotCaseId });
      expect(defect.workflow).toMatchObject({ workflowId: lotCaseId, runId: defect.dispatch!.runId });
      expect(defect.workflow!.temporalUiUrl).toContain(`/workflows/${lotCaseId}/${defect.dispatch!.runId!}`);
      expect(defect.lotCase).toMatchObject({ stage: 'closed', part: { eventId, status: 'contained' }, failures: [] });

      const lot = (await http('GET', `/v1/lots/${lotId}`)).json<LotView>();
      expect(lot.inspections).toEqual({ pass: 0, fail: 1, total: 1 });
      expect(lot.cases.length).toBeGreaterThanOrEqual(1);
      expect(lot.cases[0]).toMatchObject({ workflowId: lotCaseWorkflowId('PLANT1', lotId) });
    } finally {
      await dispatcher?.stop();
      await app?.close();
    }
  });
});

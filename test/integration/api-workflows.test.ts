import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { z } from 'zod';
import { buildApp } from '../../api/app';
import { ExternalSystemError } from '../../activities/errors';
import type { HoldfastConfig } from '../../infra/config/schema';
import { startOutboxDispatcher } from '../../infra/outbox/dispatcher';
import { createTemporalWorkflowGateway } from '../../infra/temporal/gateway';
import { type DispositionOutcome, lotCaseWorkflowId, retryFailedStepUpdate } from '../../workflows/contracts';
import type { DefectView } from '../../api/schemas/defect.schema';
import type { LotView } from '../../api/schemas/lot.schema';
import type { DispositionOutcomeSchema } from '../../api/schemas/disposition.schema';
import { eventually } from '../support/eventually';
import { FakeErp, FakeMes, RecordingEscalation } from '../support/fake-ports';
import { WorkflowHarness } from '../support/workflow-harness';
import { signerAccount, testSigningKey } from '../support/identity';
import { type ApiClient, apiClient } from '../support/api-client';

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

/** The API on the harness's Temporal and PostgreSQL, with the outbox dispatcher; `http` sends an admin's token. */
async function startApi(taskQueue: string): Promise<{ http: ApiClient; close(): Promise<void> }> {
  const config: HoldfastConfig = {
    ...harness.config,
    taskQueues: { quality: taskQueue },
    outbox: { ...harness.config.outbox, pollInterval: '1h' },
  };
  const gateway = createTemporalWorkflowGateway(harness.client, { taskQueue });
  const app = await buildApp({
    signingKey: await testSigningKey(),
    pool: harness.pool,
    gateway,
    config,
    namespace: harness.namespace,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const dispatcher = startOutboxDispatcher({ pool: harness.pool, gateway, config });
  const http = apiClient(() => baseUrl);
  return {
    http,
    async close() {
      await dispatcher.stop();
      await app.close();
    },
  };
}

/** A failed inspection of the lot, as a station posts it. */
const failedPart = (lotId: string, eventId: string) => ({
  eventId,
  site: 'PLANT1',
  line: 'L1',
  station: 'S2',
  partId: `P-${eventId}`,
  sku: 'BRKT-200',
  lotId,
  workOrder: '1000100',
  result: 'fail',
  defects: [{ class: 'scratch', score: 0.93 }],
  modelVersion: 'vision-1.0.0',
  recipeVersion: 'BRKT-200@3',
  inspectedAt: new Date().toISOString(),
});

const liveStage = (http: ApiClient, lotId: string, stage: string) =>
  eventually(
    `lot ${lotId} in ${stage}`,
    async () => (await http('GET', `/v1/lots/${lotId}`)).json<LotView>(),
    (view) => view.live?.stage === stage,
  );

test('a failed inspection becomes a held lot whose disposition goes through the API exactly once', async () => {
  const mes = new FakeMes();
  const erp = new FakeErp();
  const { worker, taskQueue } = await harness.worker({ mes, erp, escalation: new RecordingEscalation() });
  const lotId = `${run}-LOT`;
  const eventId = `${run}-evt-1`;
  mes.addLot({ lotId, quantity: 50 });
  // The stock block is refused once for good: the case parks in needs-attention until an operator retries.
  erp.failures.set(
    'postGoodsMovement',
    new ExternalSystemError('fake-erp', 'rejected', 'Deficit of SL Unrestricted-use 1 PC', 400),
  );

  const engineer = await signerAccount(harness.pool, { username: `${run}-qe`, roles: ['quality-engineer'] });
  await worker.runUntil(async () => {
    const api = await startApi(taskQueue);
    try {
      const { http } = api;
      const ingest = await http('POST', '/v1/inspections', failedPart(lotId, eventId));
      expect(ingest.status).toBe(202);

      const parked = await liveStage(http, lotId, 'needs-attention');
      expect(parked.live!.failures).toEqual([expect.objectContaining({ step: 'erp-stock-block' })]);
      expect(parked.workflow).toMatchObject({ workflowId: lotCaseWorkflowId('PLANT1', lotId), status: 'RUNNING' });
      // The part's own view, from PostgreSQL, names the step that holds it up.
      const parkedPart = (await http('GET', `/v1/defects/${eventId}`)).json<DefectView>();
      expect(parkedPart.lotCase).toMatchObject({ stage: 'needs-attention', part: { eventId, status: 'containing' } });
      expect(parkedPart.lotCase!.failures).toEqual([
        expect.objectContaining({ step: 'erp-stock-block', eventId, partId: `P-${eventId}` }),
      ]);

      const scrap = { decision: 'scrap', reason: 'cracked flange', signature: engineer.signature() };
      const dispose = (key: string) =>
        http('POST', `/v1/lots/${lotId}/disposition`, scrap, { ...engineer.headers, 'Idempotency-Key': key });
      const early = await dispose(`${run}-k1`);
      expect(early.status).toBe(409);
      expect(early.json()).toMatchObject({ type: 'urn:holdfast:problem:disposition-rejected' });
      expect(early.json<{ detail: string }>().detail).toContain('needs-attention');
      const earlyAgain = await dispose(`${run}-k1`);
      expect(earlyAgain.text).toBe(early.text);

      await harness.client.workflow
        .getHandle(lotCaseWorkflowId('PLANT1', lotId))
        .executeUpdate(retryFailedStepUpdate, { args: [{ requestedBy: 'erp.admin' }] });
      await liveStage(http, lotId, 'awaiting-disposition');

      const decided = await dispose(`${run}-k2`);
      expect(decided.status).toBe(200);
      expect(decided.json()).toMatchObject({ decision: 'scrap', decidedBy: engineer.id, requestId: `${run}-k2` });
      const outcome = decided.json<DispositionOutcome>();
      expect(outcome.status).toBe('completed');
      expect(outcome.materialDocuments.map((d) => d.movementType)).toContain('555');
      const replay = await dispose(`${run}-k2`);
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
      await api.close();
    }
  });
});

test('use-as-is needs two signatures by two people; each verifies on read and fails once the record is altered', async () => {
  const mes = new FakeMes();
  const erp = new FakeErp();
  const { worker, taskQueue } = await harness.worker({ mes, erp, escalation: new RecordingEscalation() });
  const lotId = `${run}-UAI`;
  mes.addLot({ lotId, quantity: 50 });
  const engineer = await signerAccount(harness.pool, { username: `${run}-uai-qe`, roles: ['quality-engineer'] });
  const manager = await signerAccount(harness.pool, { username: `${run}-uai-qm`, roles: ['quality-manager'] });
  const managerToo = await signerAccount(harness.pool, {
    username: `${run}-uai-qe-qm`,
    roles: ['quality-engineer', 'quality-manager'],
  });
  await worker.runUntil(async () => {
    const api = await startApi(taskQueue);
    try {
      const { http } = api;
      const sign = (path: string, who: typeof engineer, body: object, key = randomUUID()) =>
        http('POST', `/v1/lots/${lotId}/disposition${path}`, body, {
          ...who.headers,
          'Idempotency-Key': `${run}-${key}`,
        });
      expect((await http('POST', '/v1/inspections', failedPart(lotId, `${run}-uai-1`))).status).toBe(202);
      await liveStage(http, lotId, 'awaiting-disposition');

      // The two-person rule is the disposition's own: it signs, and the case waits for the second signature.
      const release = { decision: 'use-as-is', reason: 'MRB 2026-77: cosmetic only, customer deviation D-12' };
      const first = await sign('', managerToo, { ...release, signature: managerToo.signature('responsibility') });
      expect(first.status).toBe(200);
      expect(first.json()).toMatchObject({ status: 'awaiting-second-signature', decidedBy: managerToo.id });
      const waiting = await liveStage(http, lotId, 'awaiting-second-signature');
      expect(waiting.live!.decision!.signatures).toEqual([
        expect.objectContaining({
          signer: { id: managerToo.id, name: `${run}-uai-qe-qm`, roles: ['quality-engineer', 'quality-manager'] },
          meaning: 'responsibility',
          valid: true,
        }),
      ]);
      expect(erp.documents.map((d) => d.movementType)).toEqual(['344']);

      // The same person twice: refused by the case's validator, at once, with the reason; a quality engineer may not
      // countersign at all (the route's access); a wrong password signs nothing.
      const twice = await sign('/countersign', managerToo, { signature: managerToo.signature('approval') });
      expect(twice.status).toBe(409);
      expect(twice.json<{ detail: string }>().detail).toBe(
        `use-as-is needs a second person: ${run}-uai-qe-qm (${managerToo.id}) has signed it already`,
      );
      expect((await sign('/countersign', engineer, { signature: engineer.signature() })).status).toBe(403);
      const wrong = await sign('/countersign', manager, { signature: { meaning: 'approval', password: 'nope' } });
      expect(wrong.status).toBe(401);
      expect(erp.documents.map((d) => d.movementType)).toEqual(['344']);

      const countersigned = await sign('/countersign', manager, { signature: manager.signature('approval') });
      expect(countersigned.status).toBe(200);
      const outcome = countersigned.json<z.infer<typeof DispositionOutcomeSchema>>();
      expect(outcome).toMatchObject({ status: 'completed', decision: 'use-as-is', lotStatus: 'RELEASED' });
      expect(outcome.signatures.map((s) => [s.signer.id, s.valid])).toEqual([
        [managerToo.id, true],
        [manager.id, true],
      ]);
      expect(erp.documents.map((d) => d.movementType)).toEqual(['344', '343']);

      // Read back from the case's record: both signatures, each manifestation shown, each verified.
      const closed = await eventually(
        'the closed case recorded',
        async () => (await http('GET', `/v1/lots/${lotId}`)).json<LotView>(),
        (view) => view.cases[0]?.stage === 'closed',
      );
      expect(closed.cases[0]!.disposition!.signatures.map((s) => [s.signer.name, s.meaning, s.valid])).toEqual([
        [`${run}-uai-qe-qm`, 'responsibility', true],
        [`${run}-uai-qm`, 'approval', true],
      ]);
      expect(closed.cases[0]!.disposition!.signatures[1]!.signedAt).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+\+00:00$/);

      // Someone with database access rewrites the reason of the signed record: every signature on it turns invalid.
      await harness.pool.query(
        `UPDATE holdfast.lot_case SET state = jsonb_set(state, '{disposition,reason}', '"no defect found"')
          WHERE lot_id = $1`,
        [lotId],
      );
      const altered = (await http('GET', `/v1/lots/${lotId}`)).json<LotView>();
      expect(altered.cases[0]!.disposition!.signatures.map((s) => [s.valid, s.problem])).toEqual([
        [false, 'the signed record was changed after it was signed'],
        [false, 'the signed record was changed after it was signed'],
      ]);
      // ...or edits a signature's meaning instead: its seal no longer covers it.
      await harness.pool.query(
        `UPDATE holdfast.lot_case
            SET state = jsonb_set(jsonb_set(state, '{disposition,reason}', to_jsonb($2::text)),
                                  '{disposition,signatures,1,meaning}', '"review"')
          WHERE lot_id = $1`,
        [lotId, release.reason],
      );
      const forged = (await http('GET', `/v1/lots/${lotId}`)).json<LotView>();
      expect(forged.cases[0]!.disposition!.signatures.map((s) => [s.valid, s.problem])).toEqual([
        [true, undefined],
        [false, 'the manifestation (signer, time, meaning or hash) was changed after signing'],
      ]);
    } finally {
      await api.close();
    }
  });
});

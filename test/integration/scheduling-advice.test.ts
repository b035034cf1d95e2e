/**
 * Scheduling advice against real PostgreSQL (docs/changeover.md#scheduling-advice): a small genealogy and the line's
 * inspections stored through ingest, the rule's evaluation over them (the advice and its evidence stored once per lot
 * and window), the signed accept and reject routes with their refusals (unsigned, wrong role, wrong password, decided
 * already) and audit, and the accepted advice sent to a typed fake MES exactly once through the intent ledger, its
 * read-back kept. The site and ERP plant are this run's own.
 */
import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import { type LineQualityEvaluation, createAdviceActivities } from '../../activities/advice/advice.activities';
import { binomialUpperTail } from '../../activities/advice/binomial-test';
import type { LotInput, MovementInput } from '../../activities/ports';
import { buildApp } from '../../api/app';
import { createPgAdviceStore } from '../../infra/advice/pg-advice-store';
import { createAuditTrail } from '../../infra/audit/audit-trail';
import { loadConfig } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import { createPool } from '../../infra/db/pool';
import { lotKey, lotNode, mesEventKey, workOrderNode } from '../../infra/genealogy/genealogy-keys';
import { createGenealogyStore } from '../../infra/genealogy/genealogy-store';
import { ingestInspections } from '../../infra/ingest/ingest.service';
import type { InspectionResult } from '../../infra/ingest/inspection.schema';
import { createPgIntentLedger } from '../../infra/ledger/pg-intent-ledger';
import type { WorkflowGateway } from '../../infra/temporal/gateway';
import { ResequencingMes } from '../support/advice-fakes';
import { auditRecordsOf } from '../support/audit';
import { bearerFor, signerAccount, testSigningKey } from '../support/identity';
import { readTestEnv } from '../support/test-env';

const run = randomUUID().replace(/-/g, '').slice(0, 8).toUpperCase();
const SITE = `SA${run}`;
const PLANT = `P${run.slice(0, 3)}`;
const rule = { windowMs: 86_400_000, thresholdRate: 0.05, minParts: 50, significance: 0.01 };
const key = (material: string, batch: string) => lotKey({ erp: { plant: PLANT, material, batch } });
const LOT = { bad: key('CMP', 'C1'), good: key('CMP', 'C2'), badL2: key('CMP', 'C3'), raw: key('RM', 'R1') };

let pool: Pool;
let app: FastifyInstance;
let config: HoldfastConfig;
const woken: string[] = [];
const mes = new ResequencingMes();
const activities = () =>
  createAdviceActivities({
    advice: createPgAdviceStore(pool, createAuditTrail(pool)),
    mesFor: () => mes,
    ledger: createPgIntentLedger(pool),
  });
const mock = () => new MockActivityEnvironment();
type EvaluationInput = Parameters<ReturnType<typeof activities>['evaluateLineQuality']>[0];
const evaluate = (input: EvaluationInput): Promise<LineQualityEvaluation> =>
  mock().run(activities().evaluateLineQuality, input);
const send = (site: string, line: string): Promise<{ sent: string[] }> =>
  mock().run(activities().sendAcceptedAdvice, { site, line });

function purchased(lot: string, batch: string): LotInput {
  return {
    lotKey: lot,
    site: SITE,
    material: 'RM',
    quantity: 1000,
    unit: 'KG',
    origin: 'purchased',
    erp: { plant: PLANT, material: 'RM', batch },
    purchased: {
      supplier: 'SUP-1',
      supplierBatch: `SB-${batch}`,
      purchaseOrder: '4500000001',
      purchaseOrderItem: '00010',
      goodsReceipt: `gr-${run}-${batch}`,
    },
    sourceSystem: 'erp',
    document: `gr-${run}-${batch}`,
  };
}

function component(lot: string, batch: string): LotInput {
  return {
    lotKey: lot,
    site: SITE,
    material: 'CMP',
    quantity: 500,
    unit: 'PC',
    origin: 'produced',
    mes: { site: SITE, lotId: batch },
    erp: { plant: PLANT, material: 'CMP', batch },
    produced: { workOrder: `WO-${batch}`, line: 'L0' },
    sourceSystem: 'mes',
    document: `lot-${run}-${batch}`,
  };
}

let seq = 0;
const move = (kind: MovementInput['kind'], from: string, to: string): MovementInput => ({
  edgeKey: mesEventKey(`${run}-${(seq += 1)}`),
  kind,
  from,
  to,
  quantity: 10,
  unit: 'PC',
  occurredAt: new Date(Date.now() - 3 * 3_600_000).toISOString(),
  site: SITE,
  sourceSystem: 'mes',
  document: `ev-${run}-${seq}`,
});

/** `parts` parts of a work order on a line, the first `failed` of them failed, inspected in the last hours. */
function parts(line: string, workOrder: string, count: number, failed: number): InspectionResult[] {
  return Array.from({ length: count }, (_, n) => ({
    eventId: `${run}-${workOrder}-${n}`,
    site: SITE,
    line,
    station: 'S1',
    partId: `${workOrder}-P${n}`,
    sku: 'BRKT-200',
    lotId: `F-${workOrder}`,
    workOrder,
    result: n < failed ? ('fail' as const) : ('pass' as const),
    defects: n < failed ? [{ class: 'scratch', score: 0.9 }] : [],
    modelVersion: 'vision-1.0.0',
    recipeVersion: 'BRKT-200@1',
    inspectedAt: new Date(Date.now() - 2 * 3_600_000 + n * 1000).toISOString(),
  }));
}

const url = (line: string, rest = '') => `/v1/lines/${SITE}/${line}/advice${rest}`;

beforeAll(async () => {
  pool = createPool(readTestEnv().databaseUrl, { max: 4 });
  const base = loadConfig();
  config = { ...base, sites: [{ ...base.sites[0]!, id: SITE, erpPlant: PLANT }] };
  const gateway = new Proxy({} as WorkflowGateway, {
    get: (_, name) =>
      name === 'adviceDecided'
        ? async (_site: string, _line: string, id: string) => void woken.push(id)
        : () => Promise.reject(new Error(`the advice routes must not call the gateway (${String(name)})`)),
  });
  app = await buildApp({ signingKey: await testSigningKey(), pool, gateway, config, namespace: 'test' });

  const store = createGenealogyStore(createAuditTrail(pool));
  const batch = { source: `advice-test-${run}` };
  await store.recordLots(batch, [
    purchased(LOT.raw, 'R1'),
    component(LOT.bad, 'C1'),
    component(LOT.good, 'C2'),
    component(LOT.badL2, 'C3'),
  ]);
  await store.recordMovements(batch, [
    ...[LOT.bad, LOT.good, LOT.badL2].flatMap((lot) => {
      const wo = workOrderNode(SITE, `WO-${lot.split('/')[2]!}`);
      return [move('consumed', lotNode(LOT.raw), wo), move('produced', wo, lotNode(lot))];
    }),
    move('consumed', lotNode(LOT.bad), workOrderNode(SITE, `F1-${run}`)),
    move('consumed', lotNode(LOT.good), workOrderNode(SITE, `F2-${run}`)),
    move('consumed', lotNode(LOT.badL2), workOrderNode(SITE, `F3-${run}`)),
  ]);
  for (const batchOf of [
    parts('L1', `F1-${run}`, 100, 12),
    parts('L1', `F2-${run}`, 100, 1),
    parts('L2', `F3-${run}`, 80, 20),
  ]) {
    expect((await ingestInspections(pool, config, batchOf)).kind).toBe('stored');
  }
  mes.lineOrderList = [
    {
      workOrder: `F1-${run}`,
      sku: 'BRKT-200',
      line: 'L1',
      status: 'RUNNING',
      sequence: 1,
      customerCriticality: 3,
      plannedQuantity: 500,
    },
    {
      workOrder: `F9-${run}`,
      sku: 'BRKT-200',
      line: 'L1',
      status: 'RELEASED',
      sequence: 2,
      customerCriticality: 1,
      plannedQuantity: 200,
    },
  ];
});

afterAll(async () => {
  await app?.close();
  await pool?.end();
});

describe('scheduling advice', () => {
  let adviceId: string;

  test('an evaluation proposes advice for the lot that trips, with its evidence, and only once per window', async () => {
    const evaluatedAt = new Date().toISOString();
    const input = { site: SITE, line: 'L1', rule, evaluatedAt, proposedBy: `test-${run}` };
    const first = await evaluate(input);
    expect(first.lots).toEqual([
      expect.objectContaining({ lotKey: LOT.bad, parts: 100, defective: 12, tripped: true }),
      expect.objectContaining({ lotKey: LOT.good, parts: 100, defective: 1, tripped: false }),
    ]);
    expect(first.proposed).toHaveLength(1);
    adviceId = first.proposed[0]!;
    // The same evaluation again (a retry), and a later one: the lot's advice is open, none is added.
    expect((await evaluate(input)).proposed).toEqual([]);
    const later = { ...input, evaluatedAt: new Date(Date.now() + 60_000).toISOString() };
    expect((await evaluate(later)).proposed).toEqual([]);

    const res = await app.inject({
      method: 'GET',
      url: url('L1'),
      headers: await bearerFor({ username: `op-${run.toLowerCase()}`, roles: ['operator'] }),
    });
    expect(res.statusCode).toBe(200);
    const [advice, ...more] = res.json<{ advice: Record<string, unknown>[] }>().advice;
    expect(more).toEqual([]);
    expect(advice).toMatchObject({
      adviceId,
      componentLot: LOT.bad,
      lotId: 'C1',
      material: 'CMP',
      state: 'open',
      action: 'use-on-less-critical',
      orders: [`F9-${run}`],
      currentOrder: { workOrder: `F1-${run}`, customerCriticality: 3 },
      evidence: {
        parts: 100,
        defective: 12,
        rate: 0.12,
        thresholdRate: 0.05,
        significance: 0.01,
        minParts: 50,
        window: { to: evaluatedAt },
      },
      signatures: [],
    });
    expect((advice!.evidence as { pValue: number }).pValue).toBeCloseTo(binomialUpperTail(100, 12, 0.05), 12);
  });

  test('accepting needs a signature, the quality-engineer role and the right password', async () => {
    const qe = await signerAccount(pool, { username: `qe-${run.toLowerCase()}`, roles: ['quality-engineer'] });
    const unsigned = await app.inject({
      method: 'POST',
      url: url('L1', `/${adviceId}/accept`),
      headers: qe.headers,
      payload: { reason: 'confirmed at the bench' },
    });
    expect(unsigned.statusCode).toBe(400);
    expect(unsigned.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(unsigned.body).toContain('signature');

    const operator = await signerAccount(pool, { username: `op2-${run.toLowerCase()}`, roles: ['operator'] });
    const wrongRole = await app.inject({
      method: 'POST',
      url: url('L1', `/${adviceId}/accept`),
      headers: operator.headers,
      payload: { reason: 'confirmed', signature: operator.signature() },
    });
    expect(wrongRole.statusCode).toBe(403);

    const wrongPassword = await app.inject({
      method: 'POST',
      url: url('L1', `/${adviceId}/accept`),
      headers: qe.headers,
      payload: { reason: 'confirmed', signature: { meaning: 'approval', password: 'not-it' } },
    });
    expect(wrongPassword.statusCode).toBe(401);

    const missing = await app.inject({
      method: 'POST',
      url: url('L1', `/${randomUUID()}/accept`),
      headers: qe.headers,
      payload: { reason: 'confirmed', signature: qe.signature() },
    });
    expect(missing.statusCode).toBe(404);
    const row = await pool.query(`SELECT state FROM holdfast.scheduling_advice WHERE advice_id = $1`, [adviceId]);
    expect(row.rows[0]).toEqual({ state: 'open' });
  });

  test('a signed accept is recorded, audited, wakes the rule; sent once, the read-back kept', async () => {
    const qe = await signerAccount(pool, { username: `qe3-${run.toLowerCase()}`, roles: ['quality-engineer'] });
    const res = await app.inject({
      method: 'POST',
      url: url('L1', `/${adviceId}/accept`),
      headers: qe.headers,
      payload: { reason: 'lot C1 scratches confirmed at the bench', signature: qe.signature('approval') },
    });
    expect(res.statusCode).toBe(200);
    const accepted = res.json<{
      state: string;
      decidedBy: string;
      signatures: { valid: boolean; signer: { id: string } }[];
    }>();
    expect(accepted).toMatchObject({ state: 'accepted', decidedBy: qe.id });
    expect(accepted.signatures).toEqual([
      expect.objectContaining({ valid: true, signer: expect.objectContaining({ id: qe.id }) }),
    ]);
    expect(woken).toEqual([adviceId]);
    const audit = await auditRecordsOf(pool, adviceId);
    expect(audit).toEqual([
      expect.objectContaining({ action: 'advice.propose', recordType: 'scheduling-advice' }),
      expect.objectContaining({
        action: 'advice.accept',
        recordType: 'scheduling-advice',
        reason: 'lot C1 scratches confirmed at the bench',
      }),
    ]);

    const again = await app.inject({
      method: 'POST',
      url: url('L1', `/${adviceId}/reject`),
      headers: qe.headers,
      payload: { reason: 'changed my mind', signature: qe.signature() },
    });
    expect(again.statusCode).toBe(409);

    // Sent by the rule's activity; a second pass (a retry, the next evaluation) sends nothing more.
    expect(await send(SITE, 'L1')).toEqual({ sent: [adviceId] });
    expect(await send(SITE, 'L1')).toEqual({ sent: [] });
    expect((await auditRecordsOf(pool, adviceId)).map((r) => r.action)).toEqual([
      'advice.propose',
      'advice.accept',
      'advice.send',
    ]);
    expect(mes.requests).toEqual([
      expect.objectContaining({
        idempotencyKey: `advice:${adviceId}:resequence`,
        line: 'L1',
        componentLot: 'C1',
        action: 'use-on-less-critical',
        orders: [`F9-${run}`],
      }),
    ]);
    const read = await app.inject({ method: 'GET', url: url('L1', '?state=sent'), headers: qe.headers });
    expect(read.json<{ advice: unknown[] }>().advice).toEqual([
      expect.objectContaining({
        adviceId,
        state: 'sent',
        resequencing: expect.objectContaining({ requestId: 'RS-1', status: 'ACCEPTED', componentLot: 'C1' }),
        signatures: [expect.objectContaining({ valid: true })],
      }),
    ]);
  });

  test('a signed reject closes the advice and nothing goes to the MES', async () => {
    const evaluation = await evaluate({
      site: SITE,
      line: 'L2',
      rule,
      evaluatedAt: new Date().toISOString(),
      proposedBy: `test-${run}`,
    });
    expect(evaluation.proposed).toHaveLength(1);
    const id = evaluation.proposed[0]!;
    const qe = await signerAccount(pool, { username: `qe4-${run.toLowerCase()}`, roles: ['quality-engineer'] });
    const res = await app.inject({
      method: 'POST',
      url: url('L2', `/${id}/reject`),
      headers: qe.headers,
      payload: { reason: 'a gauge fault, not the lot', signature: qe.signature('review') },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ state: 'rejected', decisionReason: 'a gauge fault, not the lot' });
    expect(await send(SITE, 'L2')).toEqual({ sent: [] });
    expect(mes.requests).toHaveLength(1);
    expect((await auditRecordsOf(pool, id)).map((r) => r.action)).toEqual(['advice.propose', 'advice.reject']);
    // Rejected within the window: the lot is not proposed again until its evidence is new.
    const again = await evaluate({
      site: SITE,
      line: 'L2',
      rule,
      evaluatedAt: new Date().toISOString(),
      proposedBy: `test-${run}`,
    });
    expect(again.proposed).toEqual([]);
  });
});

import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { Pool } from 'pg';
import { createActivities } from '../../activities';
import { ConfigError } from '../../activities/errors';
import { ExternalSystemError } from '../../activities/errors';
import { ErrorType } from '../../workflows/contracts';
import { FakeErp, FakeMes, MemoryIntentLedger, RecordingEscalation } from '../support/fake-ports';

/** A pool stand-in that records SQL: these units check the activity boundary, not PostgreSQL (integration does). */
function recordingPool(rows: unknown[] = []) {
  const queries: { text: string; values: unknown[] }[] = [];
  const pool = {
    query: async (text: string, values: unknown[] = []) => {
      queries.push({ text, values });
      return { rows, rowCount: rows.length };
    },
  } as unknown as Pool;
  return { pool, queries };
}

function build(
  overrides: {
    mes?: FakeMes;
    erp?: FakeErp;
    pool?: Pool;
    escalation?: RecordingEscalation;
    ledger?: MemoryIntentLedger;
  } = {},
) {
  const mes = overrides.mes ?? new FakeMes();
  const erp = overrides.erp ?? new FakeErp();
  const escalation = overrides.escalation ?? new RecordingEscalation();
  const ledger = overrides.ledger ?? new MemoryIntentLedger();
  const activities = createActivities({
    pool: overrides.pool ?? recordingPool().pool,
    ledger,
    mesFor: (site) => {
      if (site !== 'PLANT1') throw new ConfigError(`site "${site}" has no MES configured in temporal.yaml`);
      return mes;
    },
    erpFor: () => erp,
    escalationFor: () => ({ target: 'test', port: escalation }),
  });
  return { activities, mes, erp, escalation, ledger };
}

const env = () => new MockActivityEnvironment();

test.each([
  ['validation', ErrorType.Validation],
  ['rejected', ErrorType.BusinessRejection],
  ['not-found', ErrorType.NotFound],
] as const)('a %s error from a connector becomes a non-retryable %s failure', async (kind, type) => {
  const { activities, erp } = build();
  erp.failures.set('postGoodsMovement', new ExternalSystemError('sap', kind, 'Material BRKT-9 does not exist', 400));
  const run = env().run(activities.postGoodsMovement, {
    site: 'PLANT1',
    idempotencyKey: 'evt-1:block-344',
    movementType: '344' as const,
    material: 'BRKT-9',
    plant: '1010',
    storageLocation: '0001',
    batch: 'B1',
    quantity: 1,
    unit: 'PC',
    headerText: 'Hold L-1',
  });
  const failure = await run.catch((e: unknown) => e);
  expect(failure).toBeInstanceOf(ApplicationFailure);
  expect(failure).toMatchObject({ type, nonRetryable: true });
  expect((failure as Error).message).toContain('ERP goods movement 344 for batch B1');
  expect((failure as Error).message).toContain('BRKT-9 does not exist');
});

test('a transient error stays retryable (Temporal retries it with the preset backoff)', async () => {
  const { activities, mes } = build();
  mes.addLot({ lotId: 'L-1' });
  mes.failures.set('holdLot', new ExternalSystemError('mes', 'transient', 'socket hang up'));
  const failure = await env()
    .run(activities.holdLot, {
      site: 'PLANT1',
      idempotencyKey: 'k',
      lotId: 'L-1',
      workOrder: 'W',
      reason: 'r',
      defectClass: 'scratch',
      line: 'L1',
      station: 'S1',
    })
    .catch((e: unknown) => e);
  expect(failure).toBeInstanceOf(ExternalSystemError);
  expect(failure).not.toBeInstanceOf(ApplicationFailure);
});

test('an unknown site is a non-retryable configuration failure', async () => {
  const { activities } = build();
  const failure = await env()
    .run(activities.fetchLot, { site: 'NOPE', lotId: 'L-1' })
    .catch((e: unknown) => e);
  expect(failure).toMatchObject({ type: ErrorType.Configuration, nonRetryable: true });
});

test('holdLot passes the idempotency key through, so a retry finds the first hold', async () => {
  const { activities, mes } = build();
  mes.addLot({ lotId: 'L-2' });
  const req = {
    site: 'PLANT1',
    idempotencyKey: 'PLANT1:L-2:evt-9:mes-hold',
    lotId: 'L-2',
    workOrder: 'W',
    reason: 'r',
    defectClass: 'dent',
    line: 'L1',
    station: 'S1',
  };
  const first = await env().run(activities.holdLot, req);
  const second = await env().run(activities.holdLot, req);
  expect(second).toEqual(first);
  expect(mes.holds.size).toBe(1);
});

describe('the intent ledger decides whether a create looks its key up first', () => {
  const block = {
    site: 'PLANT1',
    idempotencyKey: 'evt-7:block-344',
    movementType: '344' as const,
    material: 'BRKT-200',
    plant: '1010',
    storageLocation: '0001',
    batch: 'B7',
    quantity: 1,
    unit: 'PC',
    headerText: 'Hold L-7',
  };
  const { site: _site, ...blockRequest } = block;

  test('a new intent creates without a look-up and records the document on the intent', async () => {
    const { activities, erp, ledger } = build();
    const doc = await env().run(activities.postGoodsMovement, block);
    expect(erp.createOptions.get(block.idempotencyKey)).toEqual({ lookupFirst: false });
    expect(ledger.intents.get(block.idempotencyKey)).toMatchObject({
      step: 'erp-goods-movement',
      system: 'fake-erp',
      request: JSON.stringify(blockRequest),
      outcome: doc,
    });
  });

  test('an intent recorded before with no outcome (a lost response, a crash) looks the key up first', async () => {
    const { activities, erp, ledger } = build();
    erp.failures.set('postGoodsMovement', new ExternalSystemError('sap', 'transient', 'socket hang up'));
    await expect(env().run(activities.postGoodsMovement, block)).rejects.toThrow('socket hang up');
    expect(erp.createOptions.get(block.idempotencyKey)).toEqual({ lookupFirst: false });
    expect(ledger.intents.get(block.idempotencyKey)?.outcome).toBeUndefined();

    const doc = await env().run(activities.postGoodsMovement, block);
    expect(erp.createOptions.get(block.idempotencyKey)).toEqual({ lookupFirst: true });
    expect(ledger.intents.get(block.idempotencyKey)?.outcome).toEqual(doc);
    expect(erp.documents).toHaveLength(1);
  });

  test('an intent with its outcome recorded returns it without asking the ERP', async () => {
    const { activities, erp } = build();
    const first = await env().run(activities.postGoodsMovement, block);
    const calls = erp.calls.length;
    expect(await env().run(activities.postGoodsMovement, block)).toEqual(first);
    expect(erp.calls).toHaveLength(calls);
  });

  test('a work-order count with a recorded outcome still asks the MES, for the counts as they are now', async () => {
    const { activities, mes } = build();
    mes.addLot({ lotId: 'L-8' });
    const count = {
      site: 'PLANT1',
      idempotencyKey: 'evt-8:wo-quality',
      workOrder: '1000100',
      lotId: 'L-8',
      partId: 'P-8',
      defectClass: 'scratch',
      nonconformingQuantity: 1,
    };
    await env().run(activities.recordWorkOrderQuality, count);
    expect(mes.createOptions.get(count.idempotencyKey)).toEqual({ lookupFirst: false });
    await env().run(activities.recordWorkOrderQuality, count);
    expect(mes.createOptions.get(count.idempotencyKey)).toEqual({ lookupFirst: true });
    expect(mes.qualityEvents.size).toBe(1);
  });

  test('another request under a recorded key is a non-retryable validation failure naming the key', async () => {
    const { activities, erp } = build();
    await env().run(activities.postGoodsMovement, block);
    const calls = erp.calls.length;
    const failure = await env()
      .run(activities.postGoodsMovement, { ...block, quantity: 2 })
      .catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({ type: ErrorType.Validation, nonRetryable: true });
    expect((failure as Error).message).toContain(block.idempotencyKey);
    expect(erp.calls).toHaveLength(calls);
    expect(erp.documents).toHaveLength(1);
  });
});

test('escalation is sent once per key: a recorded escalation is not sent again', async () => {
  const escalation = new RecordingEscalation();
  const fresh = recordingPool([]);
  const { activities } = build({ escalation, pool: fresh.pool });
  const message = {
    idempotencyKey: 'PLANT1:L-3:evt-1:escalation',
    site: 'PLANT1',
    line: 'L1',
    lotId: 'L-3',
    lotCaseWorkflowId: 'lot-PLANT1-L-3',
    waitingSince: '2026-11-25T00:00:00Z',
    text: 'waiting',
  };
  expect(await env().run(activities.escalateDisposition, message)).toEqual({ sent: true });
  expect(fresh.queries.map((q) => q.text.trim().split(/\s+/)[0])).toEqual(['SELECT', 'INSERT']);

  const already = recordingPool([{ '?column?': 1 }]);
  const again = build({ escalation, pool: already.pool });
  expect(await env().run(again.activities.escalateDisposition, message)).toEqual({ sent: false });
  expect(escalation.messages).toHaveLength(1);
});

test('enrolParts writes the inspection edges and confirms the outbox rows in one idempotent statement', async () => {
  const { pool, queries } = recordingPool();
  const { activities } = build({ pool });
  const part = (eventId: string, partId: string) => ({
    eventId,
    site: 'PLANT1',
    line: 'L1',
    station: 'S1',
    partId,
    sku: 'BRKT-200',
    lotId: 'L-1',
    workOrder: '1000100',
    defects: [{ class: 'scratch', score: 0.9 }],
    modelVersion: 'm1',
    recipeVersion: 'r1',
    inspectedAt: '2026-11-25T00:00:00Z',
  });
  await env().run(activities.enrolParts, {
    lotCaseWorkflowId: 'lot-PLANT1-L-1',
    runId: 'run-1',
    parts: [part('evt-1', 'P-1'), part('evt-2', 'P-2')],
  });
  expect(queries).toHaveLength(1);
  const [{ text, values }] = queries as [{ text: string; values: unknown[] }];
  expect(text).toContain('ON CONFLICT (from_kind, from_id, relation, to_kind, to_id) DO NOTHING');
  expect(text).toMatch(/UPDATE holdfast\.outbox SET confirmed_at = clock_timestamp\(\)/);
  expect(text).toContain('confirmed_at IS NULL');
  expect(values.slice(0, 2)).toEqual([['evt-1', 'evt-2'], 'run-1']);
  const relations = ['part-of-lot', 'inspects-part', 'counted-on', 'handled-by'];
  expect(values[4]).toEqual([...relations, ...relations]);
  expect(values[6]).toEqual([
    ...['PLANT1/L-1', 'P-1', '1000100', 'lot-PLANT1-L-1'],
    ...['PLANT1/L-1', 'P-2', '1000100', 'lot-PLANT1-L-1'],
  ]);
});

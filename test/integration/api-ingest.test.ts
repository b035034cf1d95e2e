import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import { buildApp } from '../../api/app';
import { loadConfig } from '../../infra/config/load';
import { createPool } from '../../infra/db/pool';
import type { DispatchedDetection, WorkflowDescription, WorkflowGateway } from '../../infra/temporal/gateway';
import {
  type DetectionDispatch,
  type DispositionOutcome,
  type DispositionRequest,
  type LotCaseState,
  lotCaseWorkflowId,
} from '../../workflows/contracts';
import { readTestEnv } from '../support/test-env';
import { asAdmin, testSigningKey } from '../support/identity';

/** Ingest never touches Temporal: every method fails the test if called. */
class UntouchedGateway implements WorkflowGateway {
  readonly calls: string[] = [];
  private touched(name: string): never {
    this.calls.push(name);
    throw new Error(`ingest must not call the workflow gateway (${name})`);
  }
  async dispatchDetection(_: DetectionDispatch): Promise<DispatchedDetection> {
    return this.touched('dispatchDetection');
  }
  async describe(_: string): Promise<WorkflowDescription | undefined> {
    return this.touched('describe');
  }
  async lotCaseState(_: string): Promise<LotCaseState | undefined> {
    return this.touched('lotCaseState');
  }
  async submitDisposition(_: string, __: DispositionRequest): Promise<DispositionOutcome> {
    return this.touched('submitDisposition');
  }
  async countersignDisposition(): Promise<DispositionOutcome> {
    return this.touched('countersignDisposition');
  }
  async retryFailedStep(_: string, __: string): Promise<never> {
    throw new Error('not used by these tests');
  }
}

const config = loadConfig();
const run = `api-ingest-${randomUUID().slice(0, 8)}`;
let seq = 0;
let pool: Pool;
let app: FastifyInstance;
const gateway = new UntouchedGateway();

function inspection(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  seq += 1;
  return {
    eventId: `${run}-${seq}`,
    site: 'PLANT1',
    line: 'L1',
    station: 'S1',
    partId: `P-${seq}`,
    sku: 'BRKT-200',
    lotId: `${run}-LOT`,
    workOrder: '1000100',
    result: 'fail',
    defects: [{ class: 'scratch', score: 0.91, bbox: { x: 10, y: 20, width: 30, height: 40 } }],
    modelVersion: 'yolo-scratch-1.4.2',
    recipeVersion: 'R-17',
    inspectedAt: '2025-03-04T10:15:00.123+01:00',
    imageRef: 's3://vision/PLANT1/L1/S1/img.png',
    ...overrides,
  };
}

const passed = (overrides: Record<string, unknown> = {}) => inspection({ result: 'pass', defects: [], ...overrides });

async function rowsFor(eventIds: string[]) {
  const inspections = await pool.query<{ event_id: string; result: string; received_at: Date; xmin: string }>(
    `SELECT event_id, result, received_at, xmin::text AS xmin FROM holdfast.inspection
      WHERE event_id = ANY($1::text[]) ORDER BY event_id`,
    [eventIds],
  );
  const outbox = await pool.query<{
    id: string;
    event_id: string;
    kind: string;
    workflow_id: string;
    payload: DetectionDispatch;
    xmin: string;
  }>(
    `SELECT id, event_id, kind, workflow_id, payload, xmin::text AS xmin FROM holdfast.outbox
      WHERE event_id = ANY($1::text[]) ORDER BY id`,
    [eventIds],
  );
  return { inspections: inspections.rows, outbox: outbox.rows };
}

let baseUrl: string;

interface HttpAnswer {
  statusCode: number;
  headers: Headers;
  body: string;
  json<T = unknown>(): T;
}

/** Real HTTP on 127.0.0.1 (app.inject's light-my-request is ESM-only below, which jest cannot load). */
async function post(payload: unknown): Promise<HttpAnswer> {
  const res = await fetch(`${baseUrl}/v1/inspections`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(await asAdmin()) },
    body: JSON.stringify(payload),
  });
  const body = await res.text();
  return { statusCode: res.status, headers: res.headers, body, json: <T>() => JSON.parse(body) as T };
}

beforeAll(async () => {
  pool = createPool(readTestEnv().databaseUrl, { max: 5 });
  app = await buildApp({ signingKey: await testSigningKey(), pool, gateway, config, namespace: 'default' });
  await app.listen({ host: '127.0.0.1', port: 0 });
  baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await app?.close();
  if (pool) {
    await pool.query(`DELETE FROM holdfast.outbox WHERE event_id LIKE $1`, [`${run}-%`]);
    await pool.query(`DELETE FROM holdfast.inspection WHERE event_id LIKE $1`, [`${run}-%`]);
    await pool.end();
  }
  expect(gateway.calls).toEqual([]);
});

describe('POST /v1/inspections', () => {
  it('stores a single failed result with its outbox row in the same transaction', async () => {
    const body = inspection();
    const res = await post(body);

    expect(res.statusCode).toBe(202);
    expect(res.json()).toEqual({
      accepted: 1,
      duplicates: 0,
      results: [
        { eventId: body.eventId, status: 'accepted', workflowId: lotCaseWorkflowId('PLANT1', body.lotId as string) },
      ],
    });
    const { inspections, outbox } = await rowsFor([body.eventId as string]);
    expect(inspections).toHaveLength(1);
    expect(outbox).toHaveLength(1);
    // Same xmin: both rows were written by one transaction.
    expect(outbox[0]!.xmin).toBe(inspections[0]!.xmin);
    expect(outbox[0]!.kind).toBe('defect.detected');
    expect(outbox[0]!.workflow_id).toBe(lotCaseWorkflowId('PLANT1', body.lotId as string));
    const payload = outbox[0]!.payload;
    expect(payload.taskQueue).toBe(config.taskQueues.quality);
    expect(payload.policy).toMatchObject({ site: 'PLANT1', notificationType: 'F3', blockQuantity: 'defective-parts' });
    expect(payload.policy.presets).toEqual(config.activityPresets);
    expect(payload.detection).toEqual({
      eventId: body.eventId,
      site: 'PLANT1',
      line: 'L1',
      station: 'S1',
      partId: body.partId,
      sku: 'BRKT-200',
      lotId: body.lotId,
      workOrder: '1000100',
      defects: body.defects,
      modelVersion: 'yolo-scratch-1.4.2',
      recipeVersion: 'R-17',
      inspectedAt: '2025-03-04T10:15:00.123+01:00',
      imageRef: 's3://vision/PLANT1/L1/S1/img.png',
    });
  });

  it('stores a passed result without an outbox row', async () => {
    const body = passed();
    const res = await post(body);

    expect(res.statusCode).toBe(202);
    expect(res.json()).toEqual({
      accepted: 1,
      duplicates: 0,
      results: [{ eventId: body.eventId, status: 'accepted' }],
    });
    const { inspections, outbox } = await rowsFor([body.eventId as string]);
    expect(inspections.map((r) => r.result)).toEqual(['pass']);
    expect(outbox).toHaveLength(0);
  });

  it("sends a shadow station's failure to a shadow workflow of its own, not to the lot's case", async () => {
    // temporal.yaml: PLANT1/L1/S3 is a camera in parallel monitoring.
    const body = inspection({ station: 'S3' });
    const res = await post(body);

    expect(res.statusCode).toBe(202);
    const workflowId = `shadow-${String(body.eventId)}`;
    expect(res.json()).toMatchObject({ results: [{ eventId: body.eventId, status: 'accepted', workflowId }] });
    const { outbox } = await rowsFor([body.eventId as string]);
    expect(outbox.map((r) => [r.workflow_id, r.payload.mode])).toEqual([[workflowId, 'shadow']]);
  });

  it('stores a batch in one transaction with outbox rows in the order sent', async () => {
    const batch = [inspection(), passed(), inspection({ station: 'S2' }), inspection({ line: 'L2', station: 'S1' })];
    const ids = batch.map((b) => b.eventId as string);
    const res = await post({ results: batch });

    expect(res.statusCode).toBe(202);
    const json = res.json<{ accepted: number; duplicates: number; results: { eventId: string; status: string }[] }>();
    expect(json.accepted).toBe(4);
    expect(json.duplicates).toBe(0);
    expect(json.results.map((r) => r.eventId)).toEqual(ids);
    const { inspections, outbox } = await rowsFor(ids);
    expect(inspections).toHaveLength(4);
    expect(new Set(inspections.map((r) => r.xmin)).size).toBe(1);
    expect(outbox.map((r) => r.event_id)).toEqual([ids[0], ids[2], ids[3]]);
    expect(new Set(outbox.map((r) => r.xmin))).toEqual(new Set([inspections[0]!.xmin]));
  });

  it('reports a re-sent identical result as duplicate and changes nothing', async () => {
    const failed = inspection();
    const pass = passed();
    expect((await post({ results: [failed, pass] })).statusCode).toBe(202);
    const before = await rowsFor([failed.eventId as string, pass.eventId as string]);

    // Key order differs: the fingerprint is over canonical JSON, not the bytes sent.
    const reordered = Object.fromEntries(Object.entries(failed).reverse());
    const fresh = inspection();
    const res = await post({ results: [reordered, pass, fresh] });

    expect(res.statusCode).toBe(202);
    expect(res.json()).toEqual({
      accepted: 1,
      duplicates: 2,
      results: [
        {
          eventId: failed.eventId,
          status: 'duplicate',
          workflowId: lotCaseWorkflowId('PLANT1', failed.lotId as string),
        },
        { eventId: pass.eventId, status: 'duplicate' },
        { eventId: fresh.eventId, status: 'accepted', workflowId: lotCaseWorkflowId('PLANT1', fresh.lotId as string) },
      ],
    });
    const after = await rowsFor([failed.eventId as string, pass.eventId as string]);
    expect(after).toEqual(before);
  });

  it('refuses the whole batch with 409 when an event id comes back with a different payload', async () => {
    const original = inspection();
    expect((await post(original)).statusCode).toBe(202);
    const before = await rowsFor([original.eventId as string]);

    const changed = { ...original, defects: [{ class: 'dent', score: 0.5 }] };
    const innocent = inspection();
    const res = await post({ results: [innocent, changed] });

    expect(res.statusCode).toBe(409);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const problem = res.json<{ status: number; conflicts: string[]; detail: string }>();
    expect(problem.status).toBe(409);
    expect(problem.conflicts).toEqual([original.eventId]);
    expect(await rowsFor([original.eventId as string])).toEqual(before);
    const { inspections } = await rowsFor([innocent.eventId as string]);
    expect(inspections).toHaveLength(0);
  });

  it('refuses a batch that repeats one event id with two payloads', async () => {
    const a = inspection();
    const res = await post({ results: [a, { ...a, partId: 'other' }] });

    expect(res.statusCode).toBe(409);
    expect(res.json<{ conflicts: string[] }>().conflicts).toEqual([a.eventId]);
    expect((await rowsFor([a.eventId as string])).inspections).toHaveLength(0);
  });

  it('answers 400 naming results.N.<field> for each bad field and stores nothing of the batch', async () => {
    const good = inspection();
    const bad = inspection({ defects: [{ class: 'scratch', score: 1.5 }], inspectedAt: '2025-03-04T10:15:00' });
    const alsoBad = inspection({ eventId: 'has spaces', colour: 'red' });
    const res = await post({ results: [good, bad, alsoBad] });

    expect(res.statusCode).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const problem = res.json<{ type: string; status: number; errors: { field: string; message: string }[] }>();
    expect(problem.status).toBe(400);
    expect(problem.errors.map((e) => e.field).sort()).toEqual(
      ['results.1.defects.0.score', 'results.1.inspectedAt', 'results.2.colour', 'results.2.eventId'].sort(),
    );
    const ids = [good.eventId as string, bad.eventId as string];
    expect((await rowsFor(ids)).inspections).toHaveLength(0);
  });

  it("stores the producer's inspectionKind and counts by it (docs/analytics.md#first-pass-yield)", async () => {
    const part = `${run}-KIND`;
    const first = passed({ partId: part, inspectedAt: '2025-03-04T09:00:00Z' });
    const reworked = passed({ partId: part, inspectedAt: '2025-03-04T09:30:00Z', inspectionKind: 'after-rework' });
    const again = passed({ partId: part, inspectedAt: '2025-03-04T09:40:00Z', inspectionKind: 'first' });
    const res = await post({ results: [again, reworked, first] });

    expect(res.statusCode).toBe(202);
    const kinds = await pool.query<{ event_id: string; declared_kind: string | null; inspection_kind: string }>(
      `SELECT event_id, declared_kind, inspection_kind FROM holdfast.inspection WHERE event_id = ANY($1::text[])`,
      [[first.eventId, reworked.eventId, again.eventId]],
    );
    const byId = new Map(kinds.rows.map((r) => [r.event_id, [r.declared_kind, r.inspection_kind]]));
    expect(byId.get(first.eventId as string)).toEqual([null, 'first']);
    expect(byId.get(reworked.eventId as string)).toEqual(['after-rework', 'after-rework']);
    // Declared first, but inspected after the part's first inspection here: a re-inspection.
    expect(byId.get(again.eventId as string)).toEqual(['first', 're-inspection']);

    const bad = await post({ results: [passed({ inspectionKind: 'second-pass' })] });
    expect(bad.statusCode).toBe(400);
    expect(bad.json<{ errors: { field: string }[] }>().errors.map((e) => e.field)).toEqual([
      'results.0.inspectionKind',
    ]);
  });

  it('answers 400 naming the field for an unknown site, line or station', async () => {
    const res = await post({
      results: [inspection({ station: 'S9' }), inspection({ line: 'L9' }), inspection({ site: 'NOWHERE' })],
    });

    expect(res.statusCode).toBe(400);
    const problem = res.json<{ errors: { field: string; message: string }[] }>();
    expect(problem.errors).toEqual([
      { field: 'results.0.station', message: 'unknown station "S9" on line PLANT1/L1' },
      { field: 'results.1.line', message: 'unknown line "L9" at site PLANT1' },
      { field: 'results.2.site', message: 'unknown site "NOWHERE"' },
    ]);
  });

  it('names the field of a single (non-batch) result without a prefix', async () => {
    const res = await post(inspection({ result: 'fail', defects: [], station: 'S7' }));

    expect(res.statusCode).toBe(400);
    const fields = res.json<{ errors: { field: string }[] }>().errors.map((e) => e.field);
    expect(fields.sort()).toEqual(['defects', 'station']);
  });

  it('answers 413 problem+json for a body over api.bodyLimitBytes', async () => {
    const huge = inspection({ partId: 'x'.repeat(config.api.bodyLimitBytes + 1) });
    const res = await post(huge);

    expect(res.statusCode).toBe(413);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.json<{ status: number }>().status).toBe(413);
    expect((await rowsFor([huge.eventId as string])).inspections).toHaveLength(0);
  });

  it('answers 400 for more results than api.maxBatch', async () => {
    const results = Array.from({ length: config.api.maxBatch + 1 }, () => passed());
    const res = await post({ results });

    expect(res.statusCode).toBe(400);
    expect(res.json<{ errors: { field: string }[] }>().errors.map((e) => e.field)).toEqual(['results']);
  });

  it('accepts concurrent sends of one event id without an error: one accepted, the rest duplicates', async () => {
    const body = inspection();
    const responses = await Promise.all(Array.from({ length: 6 }, () => post(body)));

    expect(responses.map((r) => r.statusCode)).toEqual([202, 202, 202, 202, 202, 202]);
    const statuses = responses.map((r) => r.json<{ results: { status: string }[] }>().results[0]!.status).sort();
    expect(statuses).toEqual(['accepted', 'duplicate', 'duplicate', 'duplicate', 'duplicate', 'duplicate']);
    const { inspections, outbox } = await rowsFor([body.eventId as string]);
    expect(inspections).toHaveLength(1);
    expect(outbox).toHaveLength(1);
  });
});

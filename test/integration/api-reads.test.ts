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
import type { DefectView } from '../../api/schemas/defect.schema';
import type { LotView } from '../../api/schemas/lot.schema';
import { readTestEnv } from '../support/test-env';
import { asAdmin, bearerFor, testSigningKey } from '../support/identity';

/** Answers reads from maps the test fills; `unavailable` makes every call fail like an unreachable frontend. */
class ReadGateway implements WorkflowGateway {
  readonly descriptions = new Map<string, WorkflowDescription>();
  readonly lotStates = new Map<string, LotCaseState>();
  readonly calls: string[] = [];
  unavailable = false;

  private check(call: string): void {
    this.calls.push(call);
    if (this.unavailable) throw new Error('14 UNAVAILABLE: No connection established');
  }
  async dispatchDetection(_: DetectionDispatch): Promise<DispatchedDetection> {
    throw new Error('reads never hand parts to workflows');
  }
  async describe(workflowId: string): Promise<WorkflowDescription | undefined> {
    this.check(`describe ${workflowId}`);
    return this.descriptions.get(workflowId);
  }
  async lotCaseState(workflowId: string): Promise<LotCaseState | undefined> {
    this.check(`lotCaseState ${workflowId}`);
    return this.lotStates.get(workflowId);
  }
  async submitDisposition(_: string, __: DispositionRequest): Promise<DispositionOutcome> {
    throw new Error('reads never submit dispositions');
  }
  async countersignDisposition(): Promise<DispositionOutcome> {
    throw new Error('reads never countersign');
  }
  async retryFailedStep(_: string, __: string): Promise<never> {
    throw new Error('not used by these tests');
  }
}

const config = loadConfig();
const namespace = 'holdfast-test-ns';
const run = `api-reads-${randomUUID().slice(0, 8)}`;
const uiBase = config.api.temporalUiUrl.replace(/\/+$/, '');
let seq = 0;
let pool: Pool;
let app: FastifyInstance;
let baseUrl: string;
const gateway = new ReadGateway();

function inspection(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  seq += 1;
  return {
    eventId: `${run}-${seq}`,
    site: 'PLANT1',
    line: 'L1',
    station: 'S1',
    partId: `P-${seq}`,
    sku: 'BRKT-200',
    lotId: `${run}-LOT-A`,
    workOrder: '1000100',
    result: 'fail',
    defects: [{ class: 'scratch', score: 0.91 }],
    modelVersion: 'yolo-scratch-1.4.2',
    recipeVersion: 'R-17',
    inspectedAt: '2025-03-04T10:15:00Z',
    ...overrides,
  };
}

async function http(method: string, path: string, body?: unknown) {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { ...(await asAdmin()), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return {
    status: res.status,
    contentType: res.headers.get('content-type') ?? '',
    json: <T = Record<string, unknown>>() => JSON.parse(text) as T,
  };
}

async function ingest(...results: Record<string, unknown>[]): Promise<void> {
  const res = await http('POST', '/v1/inspections', { results });
  expect(res.status).toBe(202);
}

async function addTraceLink(fromKind: string, fromId: string, relation: string, toKind: string, toId: string) {
  await pool.query(
    `INSERT INTO holdfast.trace_link (from_kind, from_id, relation, to_kind, to_id, system, attributes)
     VALUES ($1, $2, $3, $4, $5, 'sap-sim', '{"note":"test"}'::jsonb)`,
    [fromKind, fromId, relation, toKind, toId],
  );
}

const lotState = (lotId: string, overrides: Partial<LotCaseState> = {}): LotCaseState => ({
  site: 'PLANT1',
  line: 'L1',
  lotId,
  sku: 'BRKT-200',
  stage: 'awaiting-disposition',
  holdId: 'H-77',
  notification: '200000123',
  parts: [],
  pendingParts: 0,
  lotBlocked: false,
  blockedQuantity: 2,
  materialDocuments: [
    { materialDocument: '4900000001', materialDocumentYear: '2025', movementType: '344', quantity: 2 },
  ],
  openedAt: '2025-03-04T10:16:00.000Z',
  ...overrides,
});

beforeAll(async () => {
  pool = createPool(readTestEnv().databaseUrl, { max: 5 });
  app = await buildApp({ signingKey: await testSigningKey(), pool, gateway, config, namespace });
  await app.listen({ host: '127.0.0.1', port: 0 });
  baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

beforeEach(() => {
  gateway.unavailable = false;
});

afterAll(async () => {
  await app?.close();
  if (pool) {
    await pool.query(`DELETE FROM holdfast.trace_link WHERE from_id LIKE $1 OR to_id LIKE $1`, [`%${run}%`]);
    await pool.query(`DELETE FROM holdfast.lot_case WHERE lot_id LIKE $1`, [`${run}-%`]);
    await pool.query(`DELETE FROM holdfast.outbox WHERE event_id LIKE $1`, [`${run}-%`]);
    await pool.query(`DELETE FROM holdfast.inspection WHERE event_id LIKE $1`, [`${run}-%`]);
    await pool.end();
  }
});

describe('GET /v1/defects/{id}', () => {
  it('answers from PostgreSQL: the inspection, its hand-over, its part in the lot case with what holds it up, trace and Web UI link', async () => {
    const body = inspection({ lotId: `${run}-LOT-P` });
    const eventId = body.eventId as string;
    const lotId = body.lotId as string;
    const workflowId = lotCaseWorkflowId('PLANT1', lotId);
    await ingest(body);
    await pool.query(
      `UPDATE holdfast.outbox SET dispatched_at = now(), confirmed_at = now(), workflow_run_id = 'run-9'
        WHERE event_id = $1`,
      [eventId],
    );
    const part = {
      eventId,
      partId: body.partId as string,
      station: 'S1',
      workOrder: '1000100',
      defectClass: 'scratch',
      status: 'containing' as const,
      notificationItem: '0002',
      materialDocument: {
        materialDocument: '4900000007',
        materialDocumentYear: '2025',
        movementType: '344',
        quantity: 1,
      },
    };
    const failure = (step: string, of?: { eventId: string; partId: string }) => ({
      step,
      errorType: 'HoldfastBusinessRejection',
      message: `${step} refused`,
      at: '2025-03-04T10:17:00.000Z',
      ...of,
    });
    const parked = lotState(lotId, {
      stage: 'needs-attention',
      parts: [{ ...part, eventId: `${eventId}-other`, partId: 'P-other', status: 'contained' }, part],
      failures: [
        failure('mes-work-order-quality', { eventId, partId: part.partId }),
        failure('mes-work-order-quality', { eventId: `${eventId}-other`, partId: 'P-other' }),
        failure('erp-complete-notification'),
      ],
    });
    await pool.query(
      `INSERT INTO holdfast.lot_case (workflow_id, run_id, site, line, lot_id, sku, stage, hold_id, notification, state,
                                      opened_at)
       VALUES ($1, 'run-9', 'PLANT1', 'L1', $2, 'BRKT-200', 'needs-attention', 'H-77', '200000123', $3::jsonb,
               '2025-03-04T10:16:00Z')`,
      [workflowId, lotId, JSON.stringify(parked)],
    );
    await addTraceLink('inspection', eventId, 'handled-by', 'workflow', workflowId);
    await addTraceLink('part', `${run}-P`, 'inspected-by', 'inspection', eventId);
    await addTraceLink('inspection', `${eventId}-other`, 'raised', 'notification', `QN-${run}-2`);
    gateway.unavailable = true;
    gateway.calls.length = 0;

    const res = await http('GET', `/v1/defects/${eventId}`);

    expect(res.status).toBe(200);
    const view = res.json<DefectView>();
    expect(view.eventId).toBe(eventId);
    expect(view.inspection).toMatchObject({
      eventId,
      site: 'PLANT1',
      result: 'fail',
      defects: [{ class: 'scratch', score: 0.91 }],
      inspectedAt: '2025-03-04T10:15:00.000Z',
    });
    expect(view.dispatch).toMatchObject({ state: 'confirmed', workflowId, runId: 'run-9', redispatches: 0 });
    expect(view.workflow).toEqual({
      workflowId,
      runId: 'run-9',
      temporalUiUrl: `${uiBase}/namespaces/${namespace}/workflows/${workflowId}/run-9`,
    });
    expect(view.lotCase).toMatchObject({
      workflowId,
      runId: 'run-9',
      stage: 'needs-attention',
      holdId: 'H-77',
      notification: '200000123',
      part,
      openedAt: '2025-03-04T10:16:00.000Z',
    });
    // Its own parked step and the lot's, not another part's.
    expect(view.lotCase!.failures.map((f) => `${f.step} ${f.partId ?? 'lot'}`)).toEqual([
      `mes-work-order-quality ${part.partId}`,
      'erp-complete-notification lot',
    ]);
    expect(view.trace.map((t) => `${t.relation} ${t.toId}`)).toEqual([
      `handled-by ${workflowId}`,
      `inspected-by ${eventId}`,
    ]);
    expect(view.trace[0]!).toMatchObject({ fromKind: 'inspection', system: 'sap-sim', attributes: { note: 'test' } });
    // Temporal was unreachable and never asked.
    expect(gateway.calls).toEqual([]);
  });

  it('links to the lot case without a run id while the part waits to be handed over', async () => {
    const body = inspection();
    await ingest(body);
    const workflowId = lotCaseWorkflowId('PLANT1', body.lotId as string);

    const view = (await http('GET', `/v1/defects/${String(body.eventId)}`)).json<DefectView>();

    expect(view.dispatch).toMatchObject({ state: 'pending', workflowId, attempts: 0, redispatches: 0 });
    expect(view.workflow).toEqual({
      workflowId,
      temporalUiUrl: `${uiBase}/namespaces/${namespace}/workflows/${workflowId}`,
    });
    expect(view.lotCase).toBeUndefined();
  });

  it("links a shadow station's defect to its shadow workflow", async () => {
    const body = inspection({ station: 'S3' });
    await ingest(body);
    const workflowId = `shadow-${String(body.eventId)}`;

    const view = (await http('GET', `/v1/defects/${String(body.eventId)}`)).json<DefectView>();

    expect(view.workflow).toMatchObject({ workflowId });
    expect(view.lotCase).toBeUndefined();
  });

  it('shows a passed inspection without a workflow and without asking Temporal', async () => {
    const body = inspection({ result: 'pass', defects: [] });
    await ingest(body);
    gateway.calls.length = 0;

    const view = (await http('GET', `/v1/defects/${String(body.eventId)}`)).json<DefectView>();

    expect(view.inspection.result).toBe('pass');
    expect(view.workflow).toBeUndefined();
    expect(view.dispatch).toBeUndefined();
    expect(gateway.calls).toEqual([]);
  });

  it('answers 404 problem+json for an unknown id', async () => {
    const res = await http('GET', `/v1/defects/${run}-missing`);

    expect(res.status).toBe(404);
    expect(res.contentType).toMatch(/^application\/problem\+json/);
    expect(res.json()).toMatchObject({ status: 404, title: 'Not Found' });
  });
});

describe('GET /v1/lots/{lotId}', () => {
  it('returns counts, cases newest first, the live open case, trace documents and Web UI links', async () => {
    const lotId = `${run}-LOT-B`;
    await ingest(
      inspection({ lotId }),
      inspection({ lotId, result: 'pass', defects: [] }),
      inspection({ lotId, result: 'pass', defects: [] }),
    );
    const wfId = lotCaseWorkflowId('PLANT1', lotId);
    const closedState = lotState(lotId, {
      stage: 'closed',
      disposition: {
        decision: 'rework',
        decidedBy: 'qa.lee',
        reason: 'burr',
        requestId: 'k-1',
        signatures: [],
        status: 'completed',
        materialDocuments: [],
        lotStatus: 'REWORK',
        notificationClosed: true,
      },
    });
    await pool.query(
      `INSERT INTO holdfast.lot_case (workflow_id, run_id, site, line, lot_id, sku, stage, hold_id, notification, state,
                                      opened_at, closed_at)
       VALUES ($1, 'run-old', 'PLANT1', 'L1', $2, 'BRKT-200', 'closed', 'H-1', '200000001', $3::jsonb,
               '2025-03-01T08:00:00Z', '2025-03-02T08:00:00Z'),
              ($1, 'run-new', 'PLANT1', 'L1', $2, 'BRKT-200', 'awaiting-disposition', 'H-77', '200000123', $4::jsonb,
               '2025-03-04T10:16:00Z', NULL)`,
      [wfId, lotId, JSON.stringify(closedState), JSON.stringify(lotState(lotId))],
    );
    gateway.descriptions.set(wfId, {
      workflowId: wfId,
      runId: 'run-new',
      status: 'RUNNING',
      type: 'lotCaseWorkflow',
      startTime: '2025-03-04T10:16:00.000Z',
    });
    gateway.lotStates.set(wfId, lotState(lotId, { pendingParts: 1 }));
    await addTraceLink('lot', `PLANT1/${lotId}`, 'held-by', 'mes-hold', 'H-77');

    const res = await http('GET', `/v1/lots/${lotId}`);

    expect(res.status).toBe(200);
    const view = res.json<LotView>();
    expect(view.site).toBe('PLANT1');
    expect(view.inspections).toEqual({ pass: 2, fail: 1, total: 3 });
    expect(view.cases.map((c) => c.runId)).toEqual(['run-new', 'run-old']);
    expect(view.cases[0]).toMatchObject({
      workflowId: wfId,
      stage: 'awaiting-disposition',
      holdId: 'H-77',
      notification: '200000123',
      materialDocuments: lotState(lotId).materialDocuments,
      temporalUiUrl: `${uiBase}/namespaces/${namespace}/workflows/${wfId}/run-new`,
    });
    expect(view.cases[0]!.disposition).toBeUndefined();
    expect(view.cases[1]).toMatchObject({ stage: 'closed', disposition: { decision: 'rework', decidedBy: 'qa.lee' } });
    expect(view.cases[1]!.closedAt).toBe('2025-03-02T08:00:00.000Z');
    expect(view.workflow).toMatchObject({ workflowId: wfId, runId: 'run-new', status: 'RUNNING' });
    expect(view.live).toMatchObject({ stage: 'awaiting-disposition', pendingParts: 1, holdId: 'H-77' });
    expect(view.trace).toEqual([
      expect.objectContaining({ fromId: `PLANT1/${lotId}`, toKind: 'mes-hold', toId: 'H-77' }),
    ]);
  });

  it('does not query a lot case that is no longer running', async () => {
    const lotId = `${run}-LOT-C`;
    await ingest(inspection({ lotId }));
    const wfId = lotCaseWorkflowId('PLANT1', lotId);
    gateway.descriptions.set(wfId, {
      workflowId: wfId,
      runId: 'r',
      status: 'COMPLETED',
      type: 'lotCaseWorkflow',
      startTime: '2025-03-04T10:16:00.000Z',
      closeTime: '2025-03-05T10:16:00.000Z',
    });
    gateway.lotStates.set(wfId, lotState(lotId));
    gateway.calls.length = 0;

    const view = (await http('GET', `/v1/lots/${lotId}`)).json<LotView>();

    expect(view.workflow).toMatchObject({ status: 'COMPLETED', closeTime: '2025-03-05T10:16:00.000Z' });
    expect(view.live).toBeUndefined();
    expect(gateway.calls).toEqual([`describe ${wfId}`]);
  });

  it('asks for ?site= when the lot id exists at more than one site, and answers with it', async () => {
    const lotId = `${run}-LOT-D`;
    await ingest(inspection({ lotId }));
    // A second site's inspection of a lot with the same id, written directly (the test config has one site).
    await pool.query(
      `INSERT INTO holdfast.inspection (event_id, site, line, station, part_id, sku, lot_id, work_order, result,
                                        model_version, recipe_version, inspected_at, payload_sha256)
       VALUES ($1, 'PLANT2', 'L1', 'S1', 'P', 'SKU', $2, 'WO', 'pass', 'm', 'r', now(), 'x')`,
      [`${run}-plant2`, lotId],
    );

    const ambiguous = await http('GET', `/v1/lots/${lotId}`);
    expect(ambiguous.status).toBe(400);
    expect(ambiguous.contentType).toMatch(/^application\/problem\+json/);
    expect(ambiguous.json()).toMatchObject({ status: 400, sites: ['PLANT1', 'PLANT2'] });

    const plant2 = await http('GET', `/v1/lots/${lotId}?site=PLANT2`);
    expect(plant2.status).toBe(200);
    expect(plant2.json()).toMatchObject({ site: 'PLANT2', inspections: { pass: 1, fail: 0, total: 1 } });

    // Not ambiguous to a user of one of the sites: their site is meant, and the other stays out of reach.
    const plant1User = await bearerFor({ roles: ['operator'], sites: ['PLANT1'] });
    const mine = await app.inject({ method: 'GET', url: `/v1/lots/${lotId}`, headers: plant1User });
    expect([mine.statusCode, mine.json<{ site: string }>().site]).toEqual([200, 'PLANT1']);
    const theirs = await app.inject({ method: 'GET', url: `/v1/lots/${lotId}?site=PLANT2`, headers: plant1User });
    expect(theirs.statusCode).toBe(403);
  });

  it('answers 404 for a lot never seen, or not seen at the given site', async () => {
    const unknown = await http('GET', `/v1/lots/${run}-NEVER`);
    expect(unknown.status).toBe(404);
    expect(unknown.contentType).toMatch(/^application\/problem\+json/);

    const lotId = `${run}-LOT-E`;
    await ingest(inspection({ lotId }));
    expect((await http('GET', `/v1/lots/${lotId}?site=PLANT9`)).status).toBe(404);
  });

  it('rejects unknown query parameters with 400 naming them', async () => {
    const res = await http('GET', `/v1/lots/${run}-LOT-A?plant=PLANT1`);

    expect(res.status).toBe(400);
    expect(res.json<{ errors: unknown[] }>().errors).toEqual([
      { field: 'querystring.plant', message: 'unknown property (not allowed)' },
    ]);
  });
});

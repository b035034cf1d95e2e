/**
 * The audit trail through the API, on the run's real PostgreSQL: each wired action (disposition, lot-case retry,
 * station verdicts) writes exactly one record per change with its actor, old and new values and reason; a refused
 * request writes what it should and nothing half-written; and GET /v1/audit filters, pages and exports the records
 * as stored. The lot case is a typed stand-in for the Temporal gateway (api-workflows.test.ts runs the real one).
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import { buildApp } from '../../api/app';
import { type AuditRecord, hashMatches } from '../../infra/audit/audit-record';
import { verifyAuditTrail } from '../../infra/audit/audit-chain';
import { loadConfig } from '../../infra/config/load';
import {
  type DispatchedDetection,
  DispositionRejectedError,
  TemporalUnavailableError,
  UpdateRejectedError,
  type WorkflowGateway,
} from '../../infra/temporal/gateway';
import {
  type DispositionOutcome,
  type DispositionRequest,
  type RetryFailedStepResult,
  lotCaseWorkflowId,
} from '../../workflows/contracts';
import { auditRecordsOf } from '../support/audit';
import { testPool } from '../support/test-env';
import { signerAccount, testSigningKey } from '../support/identity';
import { apiClient } from '../support/api-client';

/** The lot case as the test wants it to answer, call by call. */
class LotCaseStandIn implements WorkflowGateway {
  disposition: (request: DispositionRequest) => Promise<DispositionOutcome> = async (request) => completed(request);
  retry: () => Promise<RetryFailedStepResult> = async () => ({ steps: ['blockStock'] });
  async dispatchDetection(): Promise<DispatchedDetection> {
    throw new Error('not used');
  }
  async describe() {
    return undefined;
  }
  async lotCaseState() {
    return undefined;
  }
  async submitDisposition(_: string, request: DispositionRequest) {
    return this.disposition(request);
  }
  async countersignDisposition(): Promise<DispositionOutcome> {
    throw new Error('not used');
  }
  async retryFailedStep() {
    return this.retry();
  }
}

const completed = (request: DispositionRequest): DispositionOutcome => ({
  status: 'completed',
  decision: request.decision,
  decidedBy: request.decidedBy,
  reason: request.reason,
  requestId: request.requestId,
  signatures: request.signatures,
  materialDocuments: [
    { materialDocument: '4900000042', materialDocumentYear: '2025', movementType: '555', quantity: 2 },
  ],
  lotStatus: 'SCRAPPED',
  notificationClosed: true,
});

const config = loadConfig();
const run = `audit-${randomUUID().slice(0, 8)}`;
/** Names unique to this run, so the run's shared trail can be filtered down to this file's records. */
const engineer = `qe.${run}`;
let lots = 0;
let pool: Pool;
let app: FastifyInstance;
let baseUrl: string;
const lotCase = new LotCaseStandIn();

const http = apiClient(() => baseUrl);

async function newLot(): Promise<{ lotId: string; workflowId: string }> {
  lots += 1;
  const lotId = `${run}-LOT-${lots}`;
  const res = await http('POST', '/v1/inspections', {
    eventId: `${run}-${lots}`,
    site: 'PLANT1',
    line: 'L1',
    station: 'S1',
    partId: `P-${lots}`,
    sku: 'BRKT-200',
    lotId,
    workOrder: '1000100',
    result: 'fail',
    defects: [{ class: 'scratch', score: 0.9 }],
    modelVersion: 'm-1',
    recipeVersion: 'r-1',
    inspectedAt: '2025-03-04T10:15:00Z',
  });
  expect(res.status).toBe(202);
  return { lotId, workflowId: lotCaseWorkflowId('PLANT1', lotId) };
}

/** Who made the changes the admin's token made (retries, verdicts): the principal, whatever the body claims. */
const ADMIN = { kind: 'user', id: 'local:test-admin', displayName: 'test-admin', address: '127.0.0.1' };

let signer: Awaited<ReturnType<typeof signerAccount>>;
const scrap = { decision: 'scrap', reason: 'cracked flange, beyond rework' } as const;
/** What the case is handed for `scrap` signed by this run's engineer (the seal differs per signature). */
const signedScrap = (key: string) => ({
  ...scrap,
  decidedBy: `local:${engineer}`,
  requestId: key,
  signatures: [
    expect.objectContaining({ signer: { id: `local:${engineer}`, name: engineer, roles: ['quality-engineer'] } }),
  ],
});
const dispose = async (lotId: string, key: string) =>
  http(
    'POST',
    `/v1/lots/${lotId}/disposition`,
    { ...scrap, signature: signer.signature() },
    {
      'Idempotency-Key': key,
      ...signer.headers,
    },
  );
const page = (query: string) => http('GET', `/v1/audit?${query}`);

beforeAll(async () => {
  pool = testPool();
  signer = await signerAccount(pool, { username: engineer, roles: ['quality-engineer'] });
  app = await buildApp({ signingKey: await testSigningKey(), pool, gateway: lotCase, config, namespace: 'default' });
  await app.listen({ host: '127.0.0.1', port: 0 });
  baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

beforeEach(() => {
  lotCase.disposition = async (request) => completed(request);
  lotCase.retry = async () => ({ steps: ['blockStock'] });
});

afterAll(async () => {
  await app?.close();
  if (pool) {
    // The audit records stay: the table refuses deletes, and they are told apart by this run's names.
    await pool.query(`DELETE FROM holdfast.api_idempotency WHERE key LIKE $1`, [`${run}-%`]);
    await pool.query(`DELETE FROM holdfast.inspection_verdict WHERE frame_id LIKE $1`, [`${run}-%`]);
    await pool.query(`DELETE FROM holdfast.outbox WHERE event_id LIKE $1`, [`${run}-%`]);
    await pool.query(`DELETE FROM holdfast.inspection WHERE event_id LIKE $1`, [`${run}-%`]);
    await pool.end();
  }
});

describe('a disposition', () => {
  it('accepted by the lot case: one record with the request, its answer, its reason and who claimed it', async () => {
    const { lotId, workflowId } = await newLot();
    const key = `${run}-k-${randomUUID()}`;
    const res = await dispose(lotId, key);
    expect(res.status).toBe(200);

    const records = await auditRecordsOf(pool, workflowId);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      action: 'lot-case.disposition',
      recordType: 'lot-case',
      actor: { kind: 'user', id: `local:${engineer}`, displayName: engineer, address: '127.0.0.1' },
      old: { stage: 'awaiting-disposition', disposition: null },
      new: { disposition: signedScrap(key) },
      reason: scrap.reason,
      outcome: 'accepted',
      detail: res.json(),
    });
    expect(records[0]!.at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$/);

    // The stored answer replayed: nothing changed, nothing recorded.
    expect((await dispose(lotId, key)).text).toBe(res.text);
    expect(await auditRecordsOf(pool, workflowId)).toHaveLength(1);
  });

  it('refused by the lot case: one record of the refusal, with the answer stored beside it', async () => {
    const { lotId, workflowId } = await newLot();
    lotCase.disposition = async () => {
      throw new DispositionRejectedError(`lot ${lotId} cannot take a disposition while its case is containing`);
    };
    const key = `${run}-k-${randomUUID()}`;
    const res = await dispose(lotId, key);
    expect(res.status).toBe(409);

    expect(await auditRecordsOf(pool, workflowId)).toEqual([
      expect.objectContaining({
        action: 'lot-case.disposition',
        old: null,
        new: { disposition: signedScrap(key) },
        outcome: 'refused',
        detail: res.json(),
      }),
    ]);
    const stored = await pool.query(`SELECT state FROM holdfast.api_idempotency WHERE key = $1`, [key]);
    expect(stored.rows).toEqual([{ state: 'done' }]);
  });

  it('that never reached a lot case records nothing, and its retry with the key records the outcome once', async () => {
    const { lotId, workflowId } = await newLot();
    lotCase.disposition = async () => {
      throw new TemporalUnavailableError('not connected to Temporal yet');
    };
    const key = `${run}-k-${randomUUID()}`;
    expect((await dispose(lotId, key)).status).toBe(503);
    expect(await auditRecordsOf(pool, workflowId)).toEqual([]);
    expect((await dispose(`${run}-never-inspected`, `${run}-k-${randomUUID()}`)).status).toBe(404);
    expect((await page(`recordId=${lotCaseWorkflowId('PLANT1', `${run}-never-inspected`)}`)).json()).toEqual({
      records: [],
      next: null,
    });

    lotCase.disposition = async (request) => completed(request);
    expect((await dispose(lotId, key)).status).toBe(200);
    expect((await auditRecordsOf(pool, workflowId)).map((r) => r.outcome)).toEqual(['accepted']);
  });
});

describe('a lot-case retry', () => {
  it('records the request with the steps that run again, or the refusal', async () => {
    const { lotId, workflowId } = await newLot();
    const retry = () => http('POST', `/v1/lots/${lotId}/retry`, { requestedBy: 'erp.admin' });

    expect((await retry()).status).toBe(200);
    lotCase.retry = async () => {
      throw new UpdateRejectedError(`no step of lot ${lotId} is waiting for a retry (stage awaiting-disposition)`);
    };
    const refused = await retry();
    expect(refused.status).toBe(409);

    expect(await auditRecordsOf(pool, workflowId)).toEqual([
      expect.objectContaining({
        action: 'lot-case.retry',
        actor: ADMIN,
        new: { requestedBy: 'erp.admin' },
        reason: null,
        outcome: 'accepted',
        detail: { steps: ['blockStock'] },
      }),
      expect.objectContaining({ action: 'lot-case.retry', outcome: 'refused', detail: refused.json() }),
    ]);
  });
});

describe('station verdicts', () => {
  it('records each new or corrected verdict with the one it replaced, and nothing for one sent again', async () => {
    const post = (verdicts: unknown[]) => http('POST', '/v1/stations/PLANT1/L1/S1/verdicts', { verdicts });
    const first = {
      frameId: `${run}-f1`,
      verdict: 'fail',
      defectClass: 'scratch',
      source: 'manual',
      decidedBy: engineer,
    };
    const second = { frameId: `${run}-f2`, verdict: 'pass', source: 'ground-truth', decidedBy: 'camera-sim' };
    const recordOf = (v: { frameId: string; source: string }) => `PLANT1/L1/S1/${v.frameId}/${v.source}`;

    expect((await post([first, second])).json()).toEqual({ recorded: 2 });
    expect((await post([first, second])).json()).toEqual({ recorded: 2 });
    const corrected = { ...first, verdict: 'pass', defectClass: undefined, decidedBy: 'qe.lead' };
    expect((await post([corrected])).json()).toEqual({ recorded: 1 });

    expect(await auditRecordsOf(pool, recordOf(second))).toEqual([
      expect.objectContaining({
        action: 'station-verdict.record',
        actor: ADMIN,
        old: null,
        new: { verdict: 'pass', defectClass: null, decidedBy: 'camera-sim' },
        outcome: 'done',
      }),
    ]);
    expect(await auditRecordsOf(pool, recordOf(first))).toEqual([
      expect.objectContaining({
        old: null,
        new: { verdict: 'fail', defectClass: 'scratch', decidedBy: engineer },
      }),
      expect.objectContaining({
        actor: ADMIN,
        old: { verdict: 'fail', defectClass: 'scratch', decidedBy: engineer },
        new: { verdict: 'pass', defectClass: null, decidedBy: 'qe.lead' },
      }),
    ]);
  });
});

describe('GET /v1/audit', () => {
  /** Three dispositions by this run's engineer: accepted, refused, accepted. */
  let mine: AuditRecord[];
  beforeAll(async () => {
    for (const refuse of [false, true, false]) {
      const { lotId } = await newLot();
      lotCase.disposition = async (request) => {
        if (refuse) throw new DispositionRejectedError('already decided');
        return completed(request);
      };
      await dispose(lotId, `${run}-k-${randomUUID()}`);
    }
    const res = await page(`actor=local:${engineer}&recordType=lot-case&limit=500`);
    mine = res.json<{ records: AuditRecord[] }>().records.slice(-3);
    expect(mine.map((r) => r.outcome)).toEqual(['accepted', 'refused', 'accepted']);
  });

  it('answers each record exactly as stored, hashes included, so a copy is checked without the database', async () => {
    const res = await page(`recordId=${mine[1]!.recordId}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const [record] = res.json<{ records: AuditRecord[] }>().records;
    const stored = await pool.query<{ content: string; prev_hash: string; hash: string }>(
      `SELECT content, prev_hash, hash FROM holdfast.audit_record WHERE seq = $1`,
      [record!.seq],
    );
    expect(record).toEqual({
      ...JSON.parse(stored.rows[0]!.content),
      prevHash: stored.rows[0]!.prev_hash,
      hash: stored.rows[0]!.hash,
    });
    expect(hashMatches(record!)).toBe(true);
    expect(hashMatches({ ...record!, reason: 'something else' })).toBe(false);

    // An unfiltered page is a piece of the chain: each record names the hash of the one before.
    const all = (await page(`after=${mine[0]!.seq - 1}&limit=3`)).json<{ records: AuditRecord[] }>().records;
    expect(all.map((r) => r.seq)).toEqual([mine[0]!.seq, mine[0]!.seq + 1, mine[0]!.seq + 2]);
    expect(all.every(hashMatches)).toBe(true);
    expect(all[1]!.prevHash).toBe(all[0]!.hash);
    expect(all[2]!.prevHash).toBe(all[1]!.hash);
  });

  it('filters by record, actor and time, and pages by `after` with a Link to the next page', async () => {
    const first = await page(
      `actor=local:${engineer}&recordType=lot-case&from=${encodeURIComponent(mine[0]!.at)}&limit=2`,
    );
    const body = first.json<{ records: AuditRecord[]; next: string | null }>();
    expect(body.records.map((r) => r.seq)).toEqual([mine[0]!.seq, mine[1]!.seq]);
    expect(body.next).toBe(String(mine[1]!.seq));
    expect(first.headers.get('link')).toBe(
      `</v1/audit?actor=${encodeURIComponent(`local:${engineer}`)}&recordType=lot-case` +
        `&from=${encodeURIComponent(mine[0]!.at)}&limit=2&after=${mine[1]!.seq}>; rel="next"`,
    );
    const link = /^<([^>]+)>/.exec(first.headers.get('link')!)![1]!;
    const second = (await http('GET', link)).json<{ records: AuditRecord[]; next: string | null }>();
    expect(second).toEqual({ records: [mine[2]], next: null });

    // [from, to): the instant of the second record as `to` leaves the first only.
    const window = await page(
      `actor=local:${engineer}&recordType=lot-case&from=${encodeURIComponent(mine[0]!.at)}&to=${encodeURIComponent(mine[1]!.at)}`,
    );
    expect(window.json<{ records: AuditRecord[] }>().records.map((r) => r.seq)).toEqual([mine[0]!.seq]);
    expect((await page(`recordType=no-such-type&actor=local:${engineer}`)).json()).toEqual({ records: [], next: null });
  });

  it('exports CSV (RFC 4180) on format=csv or Accept: text/csv, with the hashed content for checking', async () => {
    const csv = await page(`recordId=${mine[0]!.recordId}&format=csv`);
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    const lines = csv.text.split('\r\n');
    expect(lines[0]).toBe(
      'seq,at,actor_kind,actor_id,actor_display_name,actor_address,action,record_type,record_id,old,new,reason,' +
        'outcome,detail,prev_hash,hash,content',
    );
    expect(lines).toHaveLength(3);
    expect(lines[2]).toBe('');
    expect(lines[1]).toMatch(
      new RegExp(
        `^${mine[0]!.seq},${mine[0]!.at.replace('+', '\\+')},user,local:${engineer.replace('.', '\\.')},${engineer.replace('.', '\\.')},` +
          `127\\.0\\.0\\.1,lot-case\\.disposition,lot-case,${mine[0]!.recordId},` +
          `"\\{""disposition"":null,""stage"":""awaiting-disposition""\\}",`,
      ),
    );
    // The reason holds a comma: quoted; the content column is the exact text hashed, its quotes doubled.
    expect(lines[1]).toContain(',"cracked flange, beyond rework",accepted,');
    const { prevHash, hash, ...content } = mine[0]!;
    expect(lines[1]!.endsWith(`,${prevHash},${hash},"${JSON.stringify(sorted(content)).replaceAll('"', '""')}"`)).toBe(
      true,
    );

    const byAccept = await http('GET', `/v1/audit?recordId=${mine[0]!.recordId}`, undefined, {
      accept: 'text/csv, application/json;q=0.5',
    });
    expect(byAccept.text).toBe(csv.text);
    const jsonWins = await http('GET', `/v1/audit?recordId=${mine[0]!.recordId}`, undefined, {
      accept: 'application/json, text/csv;q=0.1',
    });
    expect(jsonWins.headers.get('content-type')).toMatch(/^application\/json/);
  });

  it('refuses bad filters with 400 problem+json naming the field', async () => {
    const cases: [string, string][] = [
      ['from=2026-01-01T00:00:00', 'querystring.from'],
      ['to=yesterday', 'querystring.to'],
      ['from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z', 'querystring.to'],
      ['limit=501', 'querystring.limit'],
      ['limit=0', 'querystring.limit'],
      ['after=-1', 'querystring.after'],
      ['format=xml', 'querystring.format'],
      ['user=qe.jane', 'querystring.user'],
    ];
    for (const [query, field] of cases) {
      const res = await page(query);
      expect([query, res.status, res.headers.get('content-type')]).toEqual([
        query,
        400,
        expect.stringMatching(/^application\/problem\+json/),
      ]);
      expect(res.json<{ errors: { field: string }[] }>().errors.map((e) => e.field)).toContain(field);
    }
  });

  it('the run’s whole audit trail verifies', async () => {
    const check = await verifyAuditTrail(pool, { anchors: [] });
    expect(check.problem).toBeUndefined();
    expect(check.records).toBeGreaterThanOrEqual(mine[2]!.seq);
  });
});

/** The canonical form: keys sorted at every level (what the content column holds). */
function sorted(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sorted);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sorted((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import { buildApp } from '../../api/app';
import { loadConfig } from '../../infra/config/load';
import { createPool } from '../../infra/db/pool';
import {
  type DispatchedDetection,
  DispositionRejectedError,
  type WorkflowDescription,
  type WorkflowGateway,
  WorkflowNotFoundError,
} from '../../infra/temporal/gateway';
import {
  type DetectionDispatch,
  type DispositionOutcome,
  type DispositionRequest,
  type LotCaseState,
  lotCaseWorkflowId,
} from '../../workflows/contracts';
import { auditRecordsOf } from '../support/audit';
import { eventually } from '../support/eventually';
import { readTestEnv } from '../support/test-env';
import { signerAccount, testSigningKey } from '../support/identity';
import { apiClient } from '../support/api-client';

type DispositionBehaviour = (workflowId: string, request: DispositionRequest) => Promise<DispositionOutcome>;

/** Records every disposition submitted; the test decides per call what the lot case answers. */
class DispositionGateway implements WorkflowGateway {
  readonly submitted: { workflowId: string; request: DispositionRequest }[] = [];
  behaviour: DispositionBehaviour = async (_, request) => outcomeFor(request);

  async dispatchDetection(_: DetectionDispatch): Promise<DispatchedDetection> {
    throw new Error('not used');
  }
  async describe(_: string): Promise<WorkflowDescription | undefined> {
    return undefined;
  }
  async lotCaseState(_: string): Promise<LotCaseState | undefined> {
    return undefined;
  }
  async submitDisposition(workflowId: string, request: DispositionRequest): Promise<DispositionOutcome> {
    // As Temporal does for an update id it has seen: the first update's outcome, whatever this request carries.
    const first = this.submitted.find((s) => s.workflowId === workflowId && s.request.requestId === request.requestId);
    this.submitted.push({ workflowId, request });
    return this.behaviour(workflowId, first?.request ?? request);
  }
  async countersignDisposition(): Promise<DispositionOutcome> {
    throw new Error('countersigning runs against the real lot case (api-workflows.test.ts)');
  }
  async retryFailedStep(_: string, __: string): Promise<never> {
    throw new Error('not used by these tests');
  }
}

function outcomeFor(request: DispositionRequest): DispositionOutcome {
  return {
    status: 'completed',
    decision: request.decision,
    decidedBy: request.decidedBy,
    reason: request.reason,
    requestId: request.requestId,
    signatures: request.signatures,
    materialDocuments: [
      { materialDocument: '4900000042', materialDocumentYear: '2025', movementType: '555', quantity: 2.5 },
    ],
    lotStatus: 'SCRAPPED',
    notificationClosed: true,
  };
}

const config = loadConfig();
const run = `api-disp-${randomUUID().slice(0, 8)}`;
let seq = 0;
let pool: Pool;
let app: FastifyInstance;
let baseUrl: string;
const gateway = new DispositionGateway();

const http = apiClient(() => baseUrl);

/** This file's quality engineer, a real local account: a disposition re-enters its password to sign. */
let engineer: Awaited<ReturnType<typeof signerAccount>>;
const dispose = (lotId: string, key: string | undefined, body: unknown) =>
  http('POST', `/v1/lots/${lotId}/disposition`, body, {
    ...engineer.headers,
    ...(key === undefined ? {} : { 'Idempotency-Key': key }),
  });

async function newLot(): Promise<string> {
  seq += 1;
  const lotId = `${run}-LOT-${seq}`;
  const res = await http('POST', '/v1/inspections', {
    eventId: `${run}-${seq}`,
    site: 'PLANT1',
    line: 'L1',
    station: 'S1',
    partId: `P-${seq}`,
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
  return lotId;
}

const key = () => `${run}-key-${randomUUID()}`;
const scrapDecision = { decision: 'scrap', reason: 'cracked flange, beyond rework' } as const;
let scrap: typeof scrapDecision & { signature: { meaning: 'approval'; password: string } };

async function idempotencyRow(k: string) {
  const res = await pool.query<{ state: string; response_status: number | null }>(
    `SELECT state, response_status FROM holdfast.api_idempotency WHERE scope = 'lot-disposition' AND key = $1`,
    [k],
  );
  return res.rows[0];
}

beforeAll(async () => {
  pool = createPool(readTestEnv().databaseUrl, { max: 5 });
  engineer = await signerAccount(pool, { username: `${run}-qe`, roles: ['quality-engineer'] });
  scrap = { ...scrapDecision, signature: { meaning: 'approval', password: engineer.password } };
  app = await buildApp({ signingKey: await testSigningKey(), pool, gateway, config, namespace: 'default' });
  await app.listen({ host: '127.0.0.1', port: 0 });
  baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

beforeEach(() => {
  gateway.submitted.length = 0;
  gateway.behaviour = async (_, request) => outcomeFor(request);
});

afterAll(async () => {
  await app?.close();
  if (pool) {
    await pool.query(`DELETE FROM holdfast.api_idempotency WHERE key LIKE $1`, [`${run}-%`]);
    await pool.query(`DELETE FROM holdfast.outbox WHERE event_id LIKE $1`, [`${run}-%`]);
    await pool.query(`DELETE FROM holdfast.inspection WHERE event_id LIKE $1`, [`${run}-%`]);
    await pool.end();
  }
});

describe('POST /v1/lots/{lotId}/disposition', () => {
  it('submits the update to the lot case with the key as request id and answers 200 with the outcome', async () => {
    const lotId = await newLot();
    const k = key();
    const res = await dispose(lotId, k, { ...scrap, signature: engineer.signature('responsibility') });

    expect(res.status).toBe(200);
    expect(res.contentType).toMatch(/^application\/json/);
    // The decider is the signed-in person; the signature is theirs, with the meaning they stated, sealed and valid.
    const submitted = gateway.submitted[0]!.request;
    expect(gateway.submitted).toEqual([
      {
        workflowId: lotCaseWorkflowId('PLANT1', lotId),
        request: { ...scrapDecision, decidedBy: engineer.id, requestId: k, signatures: [expect.any(Object)] },
      },
    ]);
    expect(submitted.signatures[0]).toMatchObject({
      signer: { id: engineer.id, name: `${run}-qe`, roles: ['quality-engineer'] },
      meaning: 'responsibility',
      method: 'password',
    });
    expect(JSON.stringify(submitted)).not.toContain(engineer.password);
    expect(res.json()).toEqual({
      ...outcomeFor(submitted),
      signatures: [{ ...submitted.signatures[0], valid: true }],
    });
    expect(await idempotencyRow(k)).toEqual({ state: 'done', response_status: 200 });
  });

  it('replays the stored answer byte for byte for a retry with the same key and body, without a second update', async () => {
    const lotId = await newLot();
    const k = key();
    const first = await dispose(lotId, k, scrap);
    // Same body, other key order: the fingerprint is over canonical JSON.
    const retry = await dispose(lotId, k, { signature: scrap.signature, reason: scrap.reason, decision: 'scrap' });

    expect(first.status).toBe(200);
    expect(retry.status).toBe(200);
    expect(retry.text).toBe(first.text);
    expect(retry.contentType).toBe(first.contentType);
    expect(gateway.submitted).toHaveLength(1);
  });

  it('answers 422 when the key is reused with a different body or another lot, and changes nothing', async () => {
    const lotId = await newLot();
    const otherLot = await newLot();
    const k = key();
    expect((await dispose(lotId, k, scrap)).status).toBe(200);

    const changed = await dispose(lotId, k, { ...scrap, decision: 'rework' });
    const elsewhere = await dispose(otherLot, k, scrap);

    for (const res of [changed, elsewhere]) {
      expect(res.status).toBe(422);
      expect(res.contentType).toMatch(/^application\/problem\+json/);
      expect(res.json()).toMatchObject({ status: 422 });
    }
    expect(gateway.submitted).toHaveLength(1);
    expect(await idempotencyRow(k)).toEqual({ state: 'done', response_status: 200 });
  });

  it('answers 409 to a retry while the first request with that key is still in flight', async () => {
    const lotId = await newLot();
    const k = key();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    gateway.behaviour = async (_, request) => {
      await held;
      return outcomeFor(request);
    };

    const first = dispose(lotId, k, scrap);
    await eventually('the first request at the gateway', () => gateway.submitted.length === 1);
    const concurrent = await dispose(lotId, k, scrap);

    expect(concurrent.status).toBe(409);
    expect(concurrent.contentType).toMatch(/^application\/problem\+json/);
    expect(concurrent.json()).toMatchObject({ status: 409, type: 'urn:holdfast:problem:idempotency-key-in-flight' });
    release();
    expect((await first).status).toBe(200);
    expect((await dispose(lotId, k, scrap)).text).toBe((await first).text);
    expect(gateway.submitted).toHaveLength(1);
  });

  it('takes over an in-flight key left behind by a process that died mid-request', async () => {
    const lotId = await newLot();
    const k = key();
    // Same fingerprint as the request below, claimed ten minutes ago and never completed.
    const first = await dispose(lotId, k, scrap);
    await pool.query(
      `UPDATE holdfast.api_idempotency
          SET state = 'in-flight', response_status = NULL, response_body = NULL, completed_at = NULL,
              created_at = now() - interval '10 minutes'
        WHERE scope = 'lot-disposition' AND key = $1`,
      [k],
    );

    const retry = await dispose(lotId, k, scrap);

    expect(retry.status).toBe(200);
    expect(retry.text).toBe(first.text);
    expect(gateway.submitted).toHaveLength(2);
    expect(await idempotencyRow(k)).toEqual({ state: 'done', response_status: 200 });
  });

  it('answers 409 with the validator message for a rejected transition, and replays that answer', async () => {
    const lotId = await newLot();
    const k = key();
    gateway.behaviour = async () => {
      throw new DispositionRejectedError('lot case is containing; a disposition needs stage awaiting-disposition');
    };

    const res = await dispose(lotId, k, scrap);
    const retry = await dispose(lotId, k, scrap);

    expect(res.status).toBe(409);
    expect(res.contentType).toMatch(/^application\/problem\+json/);
    expect(res.json()).toMatchObject({
      status: 409,
      type: 'urn:holdfast:problem:disposition-rejected',
      detail: 'lot case is containing; a disposition needs stage awaiting-disposition',
    });
    expect(retry.status).toBe(409);
    expect(retry.text).toBe(res.text);
    expect(gateway.submitted).toHaveLength(1);
  });

  it('answers 404 for a lot never inspected, and 404 when the lot has no open lot case', async () => {
    const never = await dispose(`${run}-NEVER`, key(), scrap);
    expect(never.status).toBe(404);
    expect(never.contentType).toMatch(/^application\/problem\+json/);
    expect(gateway.submitted).toHaveLength(0);

    const lotId = await newLot();
    gateway.behaviour = async (workflowId) => {
      throw new WorkflowNotFoundError(`no open workflow ${workflowId}`);
    };
    const k = key();
    const noCase = await dispose(lotId, k, scrap);
    expect(noCase.status).toBe(404);
    expect(await idempotencyRow(k)).toEqual({ state: 'done', response_status: 404 });
  });

  it('answers 503 when Temporal is unavailable and frees the key, so the retry runs', async () => {
    const lotId = await newLot();
    const k = key();
    gateway.behaviour = async () => {
      throw new Error('14 UNAVAILABLE: connect ECONNREFUSED 127.0.0.1:7233');
    };

    const unavailable = await dispose(lotId, k, scrap);

    expect(unavailable.status).toBe(503);
    expect(unavailable.contentType).toMatch(/^application\/problem\+json/);
    expect(unavailable.text).not.toMatch(/ECONNREFUSED|7233|at .*\.ts/);
    expect(await idempotencyRow(k)).toBeUndefined();

    gateway.behaviour = async (_, request) => outcomeFor(request);
    const retry = await dispose(lotId, k, scrap);
    expect(retry.status).toBe(200);
    expect(gateway.submitted.map((s) => s.request.requestId)).toEqual([k, k]);
  });

  it('answers 400 naming the header when Idempotency-Key is missing or too long, without calling the workflow', async () => {
    const lotId = await newLot();

    const missing = await dispose(lotId, undefined, scrap);
    const tooLong = await dispose(lotId, 'k'.repeat(201), scrap);

    for (const res of [missing, tooLong]) {
      expect(res.status).toBe(400);
      expect(res.contentType).toMatch(/^application\/problem\+json/);
      const problem = res.json<{ errors: { field: string }[]; detail: string }>();
      expect(problem.errors.map((e) => e.field)).toEqual(['headers.idempotency-key']);
      expect(problem.detail).toMatch(/Idempotency-Key/);
    }
    expect(gateway.submitted).toHaveLength(0);
  });

  it('answers 400 naming each bad body field, including unknown ones', async () => {
    const lotId = await newLot();

    const res = await dispose(lotId, key(), { decision: 'release', reason: '', decidedBy: 'qa', status: 'released' });

    expect(res.status).toBe(400);
    const fields = res
      .json<{ errors: { field: string }[] }>()
      .errors.map((e) => e.field)
      .sort();
    // `decidedBy` is unknown now: the decider is whoever signed in and signs, never a name the body claims.
    expect(fields).toEqual(['decidedBy', 'decision', 'reason', 'signature', 'status']);
    expect(gateway.submitted).toHaveLength(0);
  });
});

describe('the electronic signature on a disposition (21 CFR Part 11 §11.200, §11.300)', () => {
  /** The signing attempts of one account, as the audit trail recorded them. */
  const attemptsOf = async (username: string) =>
    (await auditRecordsOf(pool, username))
      .filter((r) => r.action === 'e-signature.credentials')
      .map((r) => ({ outcome: r.outcome, detail: r.detail as { reason?: string; lockedUntil?: string } | null }));

  it('a local account must re-enter its password: 400 naming signature.password, nothing submitted', async () => {
    const lotId = await newLot();
    const res = await dispose(lotId, key(), { ...scrapDecision, signature: { meaning: 'approval' } });
    expect(res.status).toBe(400);
    expect(res.json<{ errors: { field: string }[] }>().errors.map((e) => e.field)).toEqual(['signature.password']);
    expect(gateway.submitted).toHaveLength(0);
  });

  it('a wrong password signs nothing (401), is audited, and a stored answer is not replayed to it', async () => {
    const lotId = await newLot();
    const k = key();
    const wrong = { ...scrapDecision, signature: { meaning: 'approval', password: 'not-the-password' } };
    const before = (await attemptsOf(`${run}-qe`)).length;

    const res = await dispose(lotId, k, wrong);

    expect(res.status).toBe(401);
    expect(res.json()).toMatchObject({ type: 'urn:holdfast:problem:signature-credentials-refused' });
    expect(res.text).not.toContain('not-the-password');
    expect(gateway.submitted).toHaveLength(0);
    expect(await idempotencyRow(k)).toBeUndefined();
    expect((await attemptsOf(`${run}-qe`)).slice(before)).toEqual([
      { outcome: 'refused', detail: { reason: 'unknown-or-wrong-password', failedSignIns: 1 } },
    ]);

    // The right password signs; the same key with a wrong one again gets no copy of the answer.
    expect((await dispose(lotId, k, scrap)).status).toBe(200);
    expect((await dispose(lotId, k, wrong)).status).toBe(401);
    expect(gateway.submitted).toHaveLength(1);
  });

  it('repeated wrong passwords lock the account (423) until the lock ends, each attempt audited', async () => {
    const username = `${run}-locked`;
    const locked = await signerAccount(pool, { username, roles: ['quality-engineer'] });
    const lotId = await newLot();
    const attempt = (password: string) =>
      http(
        'POST',
        `/v1/lots/${lotId}/disposition`,
        { ...scrapDecision, signature: { meaning: 'approval', password } },
        { ...locked.headers, 'Idempotency-Key': key() },
      );

    const statuses: number[] = [];
    for (let i = 0; i < config.identity.local.maxFailedSignIns; i++) statuses.push((await attempt('wrong')).status);
    const withRightPassword = await attempt(locked.password);

    expect(statuses).toEqual([...Array(config.identity.local.maxFailedSignIns - 1).fill(401), 423]);
    expect(withRightPassword.status).toBe(423);
    expect(withRightPassword.json()).toMatchObject({ type: 'urn:holdfast:problem:account-locked' });
    expect(gateway.submitted).toHaveLength(0);
    const attempts = await attemptsOf(username);
    expect(attempts.map((a) => a.detail?.reason)).toEqual([
      ...Array(config.identity.local.maxFailedSignIns).fill('unknown-or-wrong-password'),
      'locked',
    ]);
    expect(attempts[config.identity.local.maxFailedSignIns - 1]!.detail?.lockedUntil).toEqual(expect.any(String));
  });
});

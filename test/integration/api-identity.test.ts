/**
 * Who may call what (docs/identity.md): every route declares its access, people and machine keys are told apart,
 * sites and stations are kept apart, and bad credentials of every kind are a 401 (OWASP API2).
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import Fastify, { type FastifyInstance } from 'fastify';
import { SignJWT } from 'jose';
import type { Pool } from 'pg';
import { buildApp } from '../../api/app';
import { loadConfig } from '../../infra/config/load';
import { createAccounts } from '../../infra/identity/accounts';
import {
  ACCOUNT_STATUS_TTL_MS,
  createAuthenticator,
  LOCAL_AUDIENCE,
  LOCAL_ISSUER,
} from '../../infra/identity/authenticate';
import { enforceRouteAccess } from '../../infra/identity/route-access';
import { generateSigningKey } from '../../infra/identity/signing-key';
import { createAuditTrail } from '../../infra/audit/audit-trail';
import { createGenealogyStore } from '../../infra/genealogy/genealogy-store';
import { lotKey } from '../../infra/genealogy/genealogy-keys';
import type { WorkflowGateway } from '../../infra/temporal/gateway';
import { asAdmin, bearerFor, machineKey, stationKey, testSigningKey } from '../support/identity';
import { eventually } from '../support/eventually';
import { readTestEnv, testPool } from '../support/test-env';
import { createPool } from '../../infra/db/pool';
import { migrate } from '../../infra/db/migrate';

const base = loadConfig();
// Every sign-in here comes from one address: the per-address sign-in limit (api-owasp.test.ts) is raised so that
// the account lock-out is what these tests see.
const config = {
  ...base,
  identity: { ...base.identity, local: { ...base.identity.local, maxFailedSignIns: 3 } },
  api: { ...base.api, rateLimit: { ...base.api.rateLimit, signIn: { max: 1_000, timeWindow: '1m' } } },
};
const run = `identity-${randomUUID().slice(0, 8)}`;
const gateway = new Proxy({} as WorkflowGateway, {
  get: (_, name) => () => Promise.reject(new Error(`unexpected Temporal call ${String(name)}`)),
});

let pool: Pool;
let app: FastifyInstance;
let seq = 0;
const passed = (site = 'PLANT1', station = 'S1') => {
  seq += 1;
  return {
    eventId: `${run}-${seq}`,
    site,
    line: 'L1',
    station,
    partId: `P-${seq}`,
    sku: 'BRKT-200',
    lotId: `${run}-LOT`,
    workOrder: '1000100',
    result: 'pass',
    defects: [],
    modelVersion: 'm-1',
    recipeVersion: 'R-1',
    inspectedAt: '2026-12-06T10:00:00Z',
  };
};

beforeAll(async () => {
  pool = testPool();
  app = await buildApp({ signingKey: await testSigningKey(), pool, gateway, config, namespace: 'default' });
  // The lot exists at PLANT1 for the site checks.
  const seeded = await app.inject({
    method: 'POST',
    url: '/v1/inspections',
    headers: await asAdmin(),
    payload: passed(),
  });
  expect(seeded.statusCode).toBe(202);
  // ... and in the genealogy, for the trace routes.
  const lotId = `${run}-LOT`;
  await createGenealogyStore(createAuditTrail(pool)).recordLots({ source: `identity-test-${run}` }, [
    {
      lotKey: lotKey({ mes: { site: 'PLANT1', lotId } }),
      site: 'PLANT1',
      material: 'BRKT-200',
      origin: 'produced',
      mes: { site: 'PLANT1', lotId },
      sourceSystem: 'mes',
      document: `${run}-lot`,
    },
  ]);
  // ... and a recall of that lot, for the recall reads.
  await pool.query(
    `INSERT INTO holdfast.recall (recall_id, site, kind, scope, reason, requested_by, idempotency_key, request_sha256,
                                  workflow_id)
     VALUES ($1, 'PLANT1', 'mock', '{}', 'r', 'x', $1, 'x', $1)`,
    [`${run}-RCL`],
  );
  // ... and a model recall, for its re-inspection.
  await pool.query(
    `INSERT INTO holdfast.recall (recall_id, site, kind, scope, reason, requested_by, idempotency_key, request_sha256,
                                  workflow_id)
     VALUES ($1, 'PLANT1', 'mock', '{"kind":"model-version","modelVersion":"m-1"}', 'r', 'x', $1, 'x', $1)`,
    [`${run}-MRCL`],
  );
});

afterAll(async () => {
  await app?.close();
  await pool?.end();
});

it('refuses to start a process with a route that declares no access', async () => {
  const bare = Fastify();
  enforceRouteAccess(bare, { authenticator: createAuthenticator({ identity: config.identity }) });
  expect(() => bare.get('/v1/undeclared', async () => 'x')).toThrow(/declares no access/);
  await bare.close();
});

describe('role × route', () => {
  const lot = `/v1/lots/${run}-LOT`;
  const signature = { meaning: 'approval', password: 'x' };
  const decide = { decision: 'scrap', reason: 'r', signature };
  const routes = {
    ingest: { method: 'POST', url: '/v1/inspections', payload: () => passed() },
    lot: { method: 'GET', url: lot },
    disposition: { method: 'POST', url: `${lot}/disposition`, payload: () => decide },
    countersign: { method: 'POST', url: `${lot}/disposition/countersign`, payload: () => ({ signature }) },
    retry: { method: 'POST', url: `${lot}/retry`, payload: () => ({ requestedBy: 'x' }) },
    audit: { method: 'GET', url: '/v1/audit?limit=1' },
    defect: { method: 'GET', url: `/v1/defects/${run}-1` },
    verdicts: {
      method: 'POST',
      url: '/v1/stations/PLANT1/L1/S1/verdicts',
      payload: () => ({ verdicts: [{ frameId: `${run}-f`, verdict: 'pass', source: 'manual', decidedBy: 'x' }] }),
    },
    shadow: { method: 'GET', url: '/v1/stations/PLANT1/L1/S1/shadow-report' },
    traceBackward: { method: 'GET', url: `/v1/trace/backward?by=mes-lot&site=PLANT1&lotId=${run}-LOT` },
    traceForward: { method: 'GET', url: `/v1/trace/forward?by=mes-lot&site=PLANT1&lotId=${run}-LOT` },
    traceGaps: { method: 'GET', url: '/v1/trace/gaps?site=PLANT1&limit=1' },
    fsma204: { method: 'GET', url: '/v1/records/fsma204?site=PLANT1&from=2026-01-01&to=2026-01-01' },
    genealogy: { method: 'GET', url: `${lot}/genealogy` },
    qualityRecord: { method: 'GET', url: `${lot}/quality-record` },
    recallStart: {
      method: 'POST',
      url: '/v1/recalls',
      payload: () => ({
        site: 'PLANT1',
        kind: 'mock',
        scope: { kind: 'mes-lot', site: 'PLANT1', lotId: `${run}-LOT` },
        reason: 'r',
      }),
    },
    recall: { method: 'GET', url: `/v1/recalls/${run}-RCL` },
    recalls: { method: 'GET', url: '/v1/recalls?site=PLANT1&kind=mock&limit=1' },
    recallDrills: { method: 'GET', url: '/v1/recall-drills?site=PLANT1&limit=1' },
    recallReport: { method: 'GET', url: `/v1/recalls/${run}-RCL/report?format=csv` },
    recallFsma204: { method: 'GET', url: `/v1/recalls/${run}-RCL/fsma204` },
    reinspections: { method: 'GET', url: `/v1/recalls/${run}-MRCL/reinspections` },
    recallCancel: { method: 'POST', url: `/v1/recalls/${run}-RCL/cancel`, payload: () => ({ reason: 'r' }) },
    recallNotifications: { method: 'GET', url: `/v1/recalls/${run}-RCL/notifications` },
    recallAcknowledge: {
      method: 'POST',
      url: `/v1/recalls/${run}-RCL/notifications/C1-S1/acknowledge`,
      payload: () => ({ contact: 'J. Doe', channel: 'phone' }),
    },
    changeoverStart: {
      method: 'POST',
      url: '/v1/lines/PLANT1/L1/changeover',
      payload: () => ({ workOrder: `${run}-WO`, sku: 'BRKT-200', reason: 'r', signature }),
    },
    changeover: { method: 'GET', url: `/v1/lines/PLANT1/L1/changeovers/${run}-WO` },
    changeoverApprove: {
      method: 'POST',
      url: `/v1/lines/PLANT1/L1/changeovers/${run}-WO/first-article/approve`,
      payload: () => ({ reason: 'r', signature }),
    },
    changeoverCancel: {
      method: 'POST',
      url: `/v1/lines/PLANT1/L1/changeovers/${run}-WO/cancel`,
      payload: () => ({ reason: 'r' }),
    },
    defectRates: {
      method: 'GET',
      url: '/v1/quality/defect-rates?site=PLANT1&by=supplier-lot&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z',
    },
    advice: { method: 'GET', url: '/v1/lines/PLANT1/L1/advice' },
    metricsFpy: { method: 'GET', url: '/v1/metrics/fpy?site=PLANT1&line=L1&groupBy=station,shift&bucket=day' },
    metricsDefects: { method: 'GET', url: '/v1/metrics/defects?site=PLANT1&groupBy=line&bucket=shift' },
    metricsLotQuality: { method: 'GET', url: '/v1/metrics/lot-quality?site=PLANT1&by=supplier' },
    metricsHeatmap: { method: 'GET', url: '/v1/metrics/defect-heatmap?site=PLANT1&by=line' },
    lotDefects: { method: 'GET', url: `${lot}/defects` },
    defectImage: { method: 'GET', url: `/v1/defects/${run}-1/image` },
    qualityRuleChart: { method: 'GET', url: `/v1/quality-rules/PLANT1/${run}-R/chart` },
    adviceAccept: {
      method: 'POST',
      url: `/v1/lines/PLANT1/L1/advice/00000000-0000-4000-8000-000000000000/accept`,
      payload: () => ({ reason: 'r', signature }),
    },
    adviceReject: {
      method: 'POST',
      url: `/v1/lines/PLANT1/L1/advice/00000000-0000-4000-8000-000000000000/reject`,
      payload: () => ({ reason: 'r', signature }),
    },
    erpFeed: { method: 'GET', url: '/v1/erp-feed/PLANT1' },
    costOfQuality: {
      method: 'GET',
      url: '/v1/metrics/cost-of-quality?site=PLANT1&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z&groupBy=line',
    },
    qualityRules: { method: 'GET', url: '/v1/quality-rules?site=PLANT1' },
    qualityRulePut: {
      method: 'PUT',
      url: `/v1/quality-rules/PLANT1/${run}-R`,
      payload: () => ({ line: 'L1', station: 'S1', definition: { kind: 'consecutive-nc', count: 3 }, reason: 'r' }),
    },
    qualityRuleLimits: {
      method: 'POST',
      url: `/v1/quality-rules/PLANT1/${run}-R/limits`,
      payload: () => ({ from: '2026-01-01T00:00:00Z', to: '2026-01-02T00:00:00Z', reason: 'r' }),
    },
    qualityEscalations: { method: 'GET', url: '/v1/quality-escalations?site=PLANT1' },
    escalationRelease: {
      method: 'POST',
      url: `/v1/quality-escalations/${run}-ESC/release`,
      payload: () => ({ reason: 'r', signature }),
    },
    suppliers: { method: 'GET', url: '/v1/suppliers' },
    supplierScorecard: { method: 'GET', url: `/v1/suppliers/${run}-SUP/scorecard` },
    scars: { method: 'GET', url: '/v1/scars?limit=1' },
    scar: { method: 'GET', url: '/v1/scars/999999999' },
    scarRequest: {
      method: 'POST',
      url: `/v1/suppliers/${run}-SUP/scars`,
      payload: () => ({ reason: 'r', signature }),
    },
    scarResponse: {
      method: 'POST',
      url: '/v1/scars/999999999/response',
      payload: () => ({ responseId: 'x', disciplines: { D4: 'c' }, rootCause: 'c', correctiveAction: 'a' }),
    },
    scarAccept: { method: 'POST', url: '/v1/scars/999999999/accept', payload: () => ({ reason: 'r', signature }) },
    scarReject: { method: 'POST', url: '/v1/scars/999999999/reject', payload: () => ({ reason: 'r', signature }) },
    me: { method: 'GET', url: '/v1/me' },
    dashboardNow: { method: 'GET', url: '/v1/dashboard/now?site=PLANT1' },
    // Server-sent events: read as a stream (inject would wait for an end that never comes).
    live: { method: 'GET', url: '/v1/live?site=PLANT1&line=L1', stream: true },
    health: { method: 'GET', url: '/health' },
    metrics: { method: 'GET', url: '/metrics' },
    docs: { method: 'GET', url: '/docs/json' },
    signIn: { method: 'POST', url: '/v1/auth/token', payload: () => ({ username: 'nobody', password: 'x' }) },
  } as const;
  type Route = keyof typeof routes;
  /** Every route answering the same, then the exceptions. */
  const row = (status: number) =>
    Object.fromEntries(Object.keys(routes).map((r) => [r, status])) as Record<Route, number>;
  /** The public routes, for anyone with any credentials (the sign-in's bad password is a 401 of its own). */
  const open = { health: 200, metrics: 200, docs: 200, signIn: 401 } as const;
  /** The genealogy's reads: every reader of the lot's site. */
  const traced = {
    traceBackward: 200,
    traceForward: 200,
    traceGaps: 200,
    genealogy: 200,
    fsma204: 200,
    recall: 200,
    recalls: 200,
    recallDrills: 200,
    recallReport: 200,
    recallFsma204: 200,
    reinspections: 200,
    recallNotifications: 200,
  } as const;
  /** The lot quality record: every reader of the lot's site, like the lot itself. */
  const records = { qualityRecord: 200 } as const;
  /** The ERP feed's status (PLANT1 has no feed here: 404 past access) and cost of quality: every reader of the site. */
  const feedReaders = { erpFeed: 'through', costOfQuality: 200 } as const;
  /** First-pass yield, the defect Pareto and lot quality: every reader of the site. */
  const metricsReaders = { metricsFpy: 200, metricsDefects: 200, metricsLotQuality: 200 } as const;
  /**
   * The dashboard's own reads (its Now view, live updates, heat map, control charts, a lot's defects and frames):
   * every reader of the site. The seeded inspection has no image (404 past access); the rule exists once a quality
   * engineer has stored it (404 before).
   */
  const dashboardReaders = {
    me: 200,
    dashboardNow: 200,
    live: 200,
    metricsHeatmap: 200,
    lotDefects: 200,
    defectImage: 'through',
    qualityRuleChart: 'through',
  } as const;
  /**
   * A changeover's status, the line's defect rates, its scheduling advice, the quality rules and escalations: every
   * reader of the line's site (this app has no changeover control: 503 past access).
   */
  const changeoverReaders = {
    changeover: 'through',
    defectRates: 200,
    advice: 200,
    qualityRules: 200,
    qualityEscalations: 200,
  } as const;
  /** Starting and approving a changeover, deciding advice: quality engineers and managers; cancelling: also operators. */
  const changeoverDeciders = {
    ...changeoverReaders,
    changeoverStart: 'through',
    changeoverApprove: 'through',
    changeoverCancel: 'through',
    adviceAccept: 'through',
    adviceReject: 'through',
    qualityRulePut: 'through',
    qualityRuleLimits: 'through',
    escalationRelease: 'through',
  } as const;
  /**
   * Supplier scorecards and SCARs: purchasing data of every site, so every reader (of any site) reads them; an unknown
   * supplier or SCAR is the handler's 404. Requesting and deciding SCARs: quality engineers and managers, signed.
   */
  const supplierReaders = { suppliers: 200, supplierScorecard: 'through', scars: 200, scar: 'through' } as const;
  const supplierDeciders = {
    ...supplierReaders,
    scarRequest: 'through',
    scarResponse: 'through',
    scarAccept: 'through',
    scarReject: 'through',
  } as const;
  // Where the handler itself would answer (Temporal stand-in refusing: 500; the signer's password refused: 401 of its
  // own type) the access check has let the call through.
  const signatureRefused = (res: { statusCode: number; body: string }) =>
    res.statusCode === 401 && res.body.includes('urn:holdfast:problem:signature-credentials-refused');
  const through = (res: { statusCode: number; body: string }) =>
    signatureRefused(res) || (res.statusCode !== 401 && res.statusCode !== 403);

  const cases: [string, () => Promise<Record<string, string>>, Record<Route, number | 'through'>][] = [
    ['no credentials', async () => ({}), { ...row(401), health: 200, metrics: 200, docs: 200, signIn: 401 }],
    [
      'operator',
      () => bearerFor({ roles: ['operator'], sites: ['PLANT1'] }),
      {
        ...row(403),
        lot: 200,
        defect: 200,
        shadow: 200,
        ...traced,
        ...records,
        ...metricsReaders,
        ...dashboardReaders,
        ...changeoverReaders,
        ...feedReaders,
        changeoverCancel: 'through',
        ...supplierReaders,
        ...open,
      },
    ],
    [
      'quality-engineer',
      () => bearerFor({ roles: ['quality-engineer'], sites: ['PLANT1'] }),
      {
        ...row(403),
        lot: 200,
        defect: 200,
        shadow: 200,
        ...traced,
        ...records,
        ...metricsReaders,
        ...dashboardReaders,
        verdicts: 200,
        disposition: 'through',
        retry: 'through',
        recallStart: 'through',
        recallAcknowledge: 'through',
        ...changeoverDeciders,
        ...feedReaders,
        ...supplierDeciders,
        ...open,
      },
    ],
    [
      'quality-manager',
      () => bearerFor({ roles: ['quality-manager'], sites: ['PLANT1'] }),
      {
        ...row(403),
        lot: 200,
        defect: 200,
        shadow: 200,
        ...traced,
        ...records,
        ...metricsReaders,
        ...dashboardReaders,
        verdicts: 200,
        disposition: 'through',
        countersign: 'through',
        retry: 'through',
        recallStart: 'through',
        recallCancel: 'through',
        recallAcknowledge: 'through',
        ...changeoverDeciders,
        ...feedReaders,
        ...supplierDeciders,
        ...open,
      },
    ],
    [
      'integrator',
      () => bearerFor({ roles: ['integrator'], sites: ['PLANT1'] }),
      {
        ...row(403),
        ingest: 202,
        lot: 200,
        defect: 200,
        shadow: 200,
        ...traced,
        ...records,
        ...metricsReaders,
        ...dashboardReaders,
        retry: 'through',
        ...changeoverReaders,
        ...feedReaders,
        ...supplierReaders,
        ...open,
      },
    ],
    [
      'auditor',
      () => bearerFor({ roles: ['auditor'], sites: ['PLANT1'] }),
      {
        ...row(403),
        lot: 200,
        defect: 200,
        shadow: 200,
        ...traced,
        ...records,
        ...metricsReaders,
        ...dashboardReaders,
        audit: 200,
        ...changeoverReaders,
        ...feedReaders,
        ...supplierReaders,
        ...open,
      },
    ],
    [
      'admin',
      () => asAdmin(),
      {
        ...row(200),
        ...dashboardReaders,
        ingest: 202,
        disposition: 'through',
        countersign: 'through',
        retry: 'through',
        recallStart: 'through',
        recallCancel: 'through',
        recallAcknowledge: 'through',
        ...changeoverDeciders,
        ...feedReaders,
        ...supplierDeciders,
        ...open,
      },
    ],
    [
      'a PLANT2 quality engineer',
      () => bearerFor({ roles: ['quality-engineer'], sites: ['PLANT2'] }),
      // An escalation's site is known only once it is read: one that does not exist is 404 for every quality person.
      // Who they are is theirs to read at any site.
      { ...row(403), escalationRelease: 404, ...supplierDeciders, ...open, me: 200 },
    ],
  ];

  it('covers every operation the API serves', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json<{ paths: Record<string, object> }>();
    const operations = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((m) => `${m.toUpperCase()} ${path.replace(/\{[^}]+\}/g, '*')}`),
    );
    const covered = Object.values(routes).map(
      (r) => `${r.method} ${r.url.split('?')[0]!.replace(`${run}-LOT`, '*').replace(`${run}-1`, '*')}`,
    );
    const byPattern = (op: string) => covered.some((c) => new RegExp(`^${op.replace(/\*/g, '[^/]+')}$`).test(c));
    expect(operations.filter((op) => !byPattern(op))).toEqual([]);
  });

  it.each(cases)('%s', async (_who, headers, expected) => {
    for (const [name, status] of Object.entries(expected)) {
      const route = routes[name as Route];
      const res = await app.inject({
        method: route.method,
        url: route.url,
        headers: {
          ...(await headers()),
          ...(['disposition', 'countersign', 'recallStart', 'changeoverStart', 'changeoverApprove'].includes(name)
            ? { 'idempotency-key': randomUUID() }
            : {}),
        },
        ...('payload' in route ? { payload: route.payload() } : {}),
        ...('stream' in route ? { payloadAsStream: true } : {}),
      });
      if ('stream' in route) {
        // An open stream is left to the app's close (it ends every stream); a refusal is read whole.
        if (res.statusCode === 200) expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
        else res.body = (await res.stream().toArray()).join('');
      }
      if (status === 'through') expect([name, through(res)]).toEqual([name, true]);
      else expect([name, res.statusCode]).toEqual([name, status]);
      // A refused password is the token endpoint's own answer, not a challenge for credentials.
      if (res.statusCode === 401 && name !== 'signIn' && !signatureRefused(res))
        expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="holdfast"/);
      if (res.statusCode === 401 || res.statusCode === 403) {
        expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      }
    }
  });
});

describe('a station key', () => {
  it('posts inspections for its own station only, and can never decide a lot', async () => {
    const { headers } = await stationKey(pool, { site: 'PLANT1', line: 'L1', station: 'S1' });
    const post = (payload: unknown) =>
      app.inject({ method: 'POST', url: '/v1/inspections', headers, payload: payload as object });
    expect((await post(passed())).statusCode).toBe(202);
    const other = await post({ results: [passed(), passed('PLANT1', 'S2')] });
    expect([other.statusCode, other.json<{ detail: string }>().detail]).toEqual([
      403,
      'key is scoped to station L1/S1',
    ]);
    const decided = await app.inject({
      method: 'POST',
      url: `/v1/lots/${run}-LOT/disposition`,
      headers: { ...headers, 'idempotency-key': randomUUID() },
      payload: { decision: 'scrap', reason: 'r', signature: { meaning: 'approval', password: 'x' } },
    });
    expect(decided.statusCode).toBe(403);
    // Nor start a recall (OWASP API6: a business flow only a person may drive).
    const recall = await app.inject({
      method: 'POST',
      url: '/v1/recalls',
      headers: { ...headers, 'idempotency-key': randomUUID() },
      payload: { site: 'PLANT1', kind: 'mock', scope: { kind: 'serial', serial: 'x' }, reason: 'r' },
    });
    expect(recall.statusCode).toBe(403);
  });
});

describe('bad credentials are 401 (OWASP API2)', () => {
  const call = (headers: Record<string, string>) => app.inject({ method: 'GET', url: `/v1/lots/${run}-LOT`, headers });
  const sign = async (claims: { iss?: string; aud?: string; exp?: number }, key = testSigningKey()) =>
    new SignJWT({ roles: ['admin'], sites: ['*'] })
      .setProtectedHeader({ alg: 'ES256' })
      .setSubject('local:mallory')
      .setIssuer(claims.iss ?? LOCAL_ISSUER)
      .setAudience(claims.aud ?? LOCAL_AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(claims.exp ?? Math.floor(Date.now() / 1000) + 60)
      .sign((await key).privateKey);
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  it.each([
    ['expired', async () => bearer(await sign({ exp: Math.floor(Date.now() / 1000) - 120 })), /expired/],
    ['wrong issuer', async () => bearer(await sign({ iss: 'https://evil.example' })), /issuer .* not trusted/],
    ['wrong audience', async () => bearer(await sign({ aud: 'someone-else' })), /aud/],
    ['signed by another key', async () => bearer(await sign({}, generateSigningKey())), /signature/],
    [
      'tampered payload',
      async () => {
        const [h, , s] = (await sign({})).split('.');
        const body = Buffer.from(
          JSON.stringify({ sub: 'local:mallory', roles: ['admin'], iss: LOCAL_ISSUER, aud: LOCAL_AUDIENCE, exp: 9e9 }),
        ).toString('base64url');
        return bearer(`${h}.${body}.${s}`);
      },
      /signature/,
    ],
    [
      'alg none',
      async () => {
        const enc = (v: object) => Buffer.from(JSON.stringify(v)).toString('base64url');
        return bearer(
          `${enc({ alg: 'none' })}.${enc({ sub: 'x', iss: LOCAL_ISSUER, aud: LOCAL_AUDIENCE, exp: 9e9 })}.`,
        );
      },
      /algorithm none is not accepted/,
    ],
    ['not a JWT', async () => bearer('hello'), /not a JWT/],
    ['Basic scheme', async () => ({ authorization: 'Basic YWRtaW46YWRtaW4=' }), /Bearer/],
    ['unknown API key', async () => ({ 'x-api-key': `hfk_000000000000_${'A'.repeat(43)}` }), /API key/],
  ])('%s', async (_case, headers, detail) => {
    const res = await call(await headers());
    expect(res.statusCode).toBe(401);
    expect(res.json<{ detail: string }>().detail).toMatch(detail);
    expect(res.headers['www-authenticate']).toContain('error="invalid_token"');
  });

  it('refuses a revoked key, and the key that replaced a rotated one works', async () => {
    const key = await machineKey(pool, { name: 'mes bridge', scope: { site: 'PLANT1' }, actions: ['lots:read'] });
    expect((await call(key.headers)).statusCode).toBe(200);
    const accounts = createAccounts(pool, createAuditTrail(pool), { maxFailedSignIns: 3, lockForMs: 60_000 });
    const rotated = await accounts.rotateKey({ kind: 'system', id: 'test' }, key.id);
    expect((await call(key.headers)).statusCode).toBe(401);
    expect((await call({ 'x-api-key': rotated!.key })).statusCode).toBe(200);
    await accounts.revokeKey({ kind: 'system', id: 'test' }, rotated!.record.id);
    expect((await call({ 'x-api-key': rotated!.key })).statusCode).toBe(401);
  });
});

describe('local sign-in', () => {
  it('gives a token that works, and locks the account after maxFailedSignIns wrong passwords', async () => {
    const accounts = createAccounts(pool, createAuditTrail(pool), { maxFailedSignIns: 3, lockForMs: 60_000 });
    const username = `qe-${run}`.toLowerCase();
    const { password } = await accounts.addUser(
      { kind: 'system', id: 'test' },
      {
        username,
        roles: ['quality-engineer'],
        sites: ['PLANT1'],
      },
    );
    const { rows } = await pool.query<{ password_hash: string }>(
      'SELECT password_hash FROM holdfast.user_account WHERE username = $1',
      [username],
    );
    expect(rows[0]!.password_hash).toMatch(/^\$argon2id\$/);
    const signIn = (pw: string) =>
      app.inject({ method: 'POST', url: '/v1/auth/token', payload: { username, password: pw } });

    const good = await signIn(password);
    expect(good.statusCode).toBe(200);
    const token = good.json<{ access_token: string }>().access_token;
    expect((await call(bearerHeader(token))).statusCode).toBe(200);

    for (let i = 0; i < 3; i += 1) expect((await signIn('wrong')).statusCode).toBe(401);
    expect((await signIn(password)).statusCode).toBe(401);
    const { rows: audit } = await pool.query<{ content: string }>(
      `SELECT content FROM holdfast.audit_record WHERE record_type = 'user' AND record_id = $1 ORDER BY seq`,
      [username],
    );
    const outcomes = audit.map(
      (r) => JSON.parse(r.content) as { action: string; outcome: string; detail: { reason?: string } | null },
    );
    expect(outcomes.map((o) => `${o.action}:${o.outcome}:${o.detail?.reason ?? ''}`)).toEqual([
      'user.create:done:',
      'user.sign-in:accepted:',
      'user.sign-in:refused:unknown-or-wrong-password',
      'user.sign-in:refused:unknown-or-wrong-password',
      'user.sign-in:refused:unknown-or-wrong-password',
      'user.sign-in:refused:locked',
    ]);
  });

  it(`stops taking a token once its account is disabled or reset, within ${ACCOUNT_STATUS_TTL_MS} ms`, async () => {
    const accounts = createAccounts(pool, createAuditTrail(pool), { maxFailedSignIns: 3, lockForMs: 60_000 });
    const username = `op-${run}`.toLowerCase();
    const admin = { kind: 'system', id: 'test' } as const;
    const { password } = await accounts.addUser(admin, { username, roles: ['operator'], sites: ['PLANT1'] });
    const signIn = async (pw: string) => {
      const res = await app.inject({ method: 'POST', url: '/v1/auth/token', payload: { username, password: pw } });
      expect(res.statusCode).toBe(200);
      return bearerHeader(res.json<{ access_token: string }>().access_token);
    };
    /** The status of `headers`' next request, polled until it is 401 (the cached status expires). */
    const refusedWithin = async (headers: Record<string, string>) => {
      const res = await eventually(
        'the token refused',
        () => call(headers),
        (r) => r.statusCode === 401,
        {
          timeoutMs: ACCOUNT_STATUS_TTL_MS + 10_000,
          intervalMs: 250,
        },
      );
      expect(res.json<{ detail: string }>().detail).toMatch(/disabled|changed after the token/);
    };

    const token = await signIn(password);
    expect((await call(token)).statusCode).toBe(200);
    expect(await accounts.setDisabled(admin, username, true)).toBe(true);
    await refusedWithin(token);
    // Enabled again, the old token stays refused (the account changed after it was issued); a new sign-in works.
    expect(await accounts.setDisabled(admin, username, false)).toBe(true);
    const fresh = await signIn(password);
    // Until the cached "disabled" expires, the new token is refused too.
    await eventually(
      'the new token taken',
      () => call(fresh),
      (r) => r.statusCode === 200,
      {
        timeoutMs: ACCOUNT_STATUS_TTL_MS + 10_000,
        intervalMs: 250,
      },
    );
    expect((await call(token)).statusCode).toBe(401);

    // A token's iat counts whole seconds: the reset comes in a later second than the sign-in.
    await sleep(1_100);
    const newPassword = await accounts.resetPassword(admin, username);
    await refusedWithin(fresh);
    expect((await call(await signIn(newPassword!))).statusCode).toBe(200);
  });

  const call = (headers: Record<string, string>) => app.inject({ method: 'GET', url: `/v1/lots/${run}-LOT`, headers });
  const bearerHeader = (token: string) => ({ authorization: `Bearer ${token}` });
});

it('describes the credentials of every operation in the OpenAPI document', async () => {
  const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json<{
    components: { securitySchemes: Record<string, { type: string }> };
    paths: Record<string, Record<string, { security?: Record<string, string[]>[] }>>;
  }>();
  expect(Object.keys(doc.components.securitySchemes).sort()).toEqual(['apiKey', 'bearerToken']);
  expect(doc.paths['/v1/lots/{lotId}/disposition']!.post!.security).toEqual([{ bearerToken: [] }]);
  expect(doc.paths['/v1/inspections']!.post!.security).toEqual([{ bearerToken: [] }, { apiKey: [] }]);
  expect(doc.paths['/v1/auth/token']!.post!.security).toEqual([]);
  expect(doc.paths['/health']!.get!.security).toEqual([]);
});

it("creates the first start's admin once, with a password that signs in", async () => {
  // A database of its own: the shared one already has accounts.
  const database = `identity_first_${run.slice(-8)}`.replace(/-/g, '_');
  await pool.query(`CREATE DATABASE ${database}`);
  const url = new URL(readTestEnv().databaseUrl);
  url.pathname = `/${database}`;
  const fresh = createPool(url.toString(), { max: 2 });
  try {
    await migrate(fresh);
    const accounts = createAccounts(fresh, createAuditTrail(fresh), { maxFailedSignIns: 3, lockForMs: 60_000 });
    const password = await accounts.ensureFirstAdmin();
    expect(password).toMatch(/^[A-Za-z0-9_-]{24}$/);
    expect(await accounts.ensureFirstAdmin()).toBeUndefined();
    const signedIn = await accounts.signIn({ username: 'admin', password: password!, address: '127.0.0.1' });
    expect(signedIn).toMatchObject({ ok: true, user: { username: 'admin', roles: ['admin'], sites: 'all' } });
  } finally {
    await fresh.end();
    await pool.query(`DROP DATABASE ${database}`);
  }
});

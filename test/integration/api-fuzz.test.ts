/**
 * Property-based fuzzing of every route the API (through inject) and the inference edge (over loopback HTTP: it binds
 * a port of its own) serve (OWASP API8 and API4: bad input of any shape is a 4xx problem, never a 5xx, and a refused
 * request writes nothing).
 *
 * The routes come from the apps themselves (infra/http/openapi.ts registeredRoutes), so a new route is fuzzed with
 * random input at once, and the coverage test fails until it has a valid example in VALID_REQUESTS to mutate.
 * Each request is checked for: a status below 500; a 4xx in application/problem+json whose `status` is the answer's;
 * and, for every answer of 400 or more, the row counts of every table of the holdfast schema unchanged, but for the
 * records the design keeps of a refusal (an audit record with outcome `refused`, a stored idempotent 4xx answer).
 *
 * A failure names the route, the seed and the shrunk request; FUZZ_SEED=<seed> runs that seed again.
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import type { FastifyInstance, InjectOptions } from 'fastify';
import type { Pool } from 'pg';
import { Registry } from 'prom-client';
import { buildApp } from '../../api/app';
import { loadConfig } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import { type ListedRoute, registeredRoutes } from '../../infra/http/openapi';
import { createAuditTrail } from '../../infra/audit/audit-trail';
import { createAccounts } from '../../infra/identity/accounts';
import { createAuthenticator } from '../../infra/identity/authenticate';
import type { Role } from '../../infra/identity/principal';
import { createPgDeferredFrameAdmin } from '../../infra/inference/deferred-frames';
import { type FrameHttpOptions, type FrameHttpServer, openFrameHttp } from '../../infra/inference/frame-http';
import { parseFrame } from '../../infra/vision/frame.schema';
import { type WorkflowGateway, WorkflowNotFoundError } from '../../infra/temporal/gateway';
import type { ChangeoverControl } from '../../infra/temporal/changeover-starter';
import type { SupplierControl } from '../../infra/temporal/supplier-control';
import { changeoverWorkflowId } from '../../workflows/contracts';
import { holdfastPayloadCodec } from '../../infra/temporal/payload-codec';
import { bearerFor, machineKey, signerAccount, testSigningKey } from '../support/identity';
import { failedInspection } from '../support/plant';
import { quietLog } from '../support/quiet-log';
import { testPool } from '../support/test-env';

const SEED = Number(process.env.FUZZ_SEED ?? 20_261_206);
/**
 * Per route and kind of run: enough to reach past validation often, small enough for a loaded 2-core machine. Each
 * request counts every table's rows before and after, so a pass over every route takes minutes there: the passes
 * below allow five.
 */
const RUNS = { random: 60, mutated: 60, roles: 20 };

const base = loadConfig();
/** Limits raised: the fuzzer is one identity sending hundreds of requests, and a 429 would hide what it probes. */
const config: HoldfastConfig = {
  ...base,
  api: {
    ...base.api,
    rateLimit: {
      max: 1_000_000,
      machineMax: 1_000_000,
      timeWindow: '1m',
      signIn: { max: 1_000_000, timeWindow: '1m' },
    },
  },
};

/**
 * Temporal as the API sees it when no case is open for the lot: every read finds nothing and every update is told
 * there is no workflow. The fuzzer tests the HTTP edge; a real workflow would only slow it down.
 */
const noWorkflows: WorkflowGateway = {
  dispatchDetection: () => Promise.reject(new Error('the API never dispatches; the outbox dispatcher does')),
  describe: () => Promise.resolve(undefined),
  lotCaseState: () => Promise.resolve(undefined),
  submitDisposition: (id) => Promise.reject(new WorkflowNotFoundError(`no workflow ${id}`)),
  countersignDisposition: (id) => Promise.reject(new WorkflowNotFoundError(`no workflow ${id}`)),
  retryFailedStep: (id) => Promise.reject(new WorkflowNotFoundError(`no workflow ${id}`)),
  startRecall: () => Promise.resolve(),
};

/** No changeover exists: starting one answers as started, every other call finds none. */
const noChangeovers: ChangeoverControl = {
  orderStarted: () => Promise.resolve('started'),
  start: (request) =>
    Promise.resolve({
      outcome: 'started',
      workflowId: changeoverWorkflowId(request.site, request.line, request.workOrder),
    }),
  view: () => Promise.resolve(undefined),
  approveFirstArticle: (site, line, workOrder) =>
    Promise.reject(new WorkflowNotFoundError(`no changeover of ${site}/${line} ${workOrder}`)),
  cancel: (site, line, workOrder) =>
    Promise.reject(new WorkflowNotFoundError(`no changeover of ${site}/${line} ${workOrder}`)),
};

/** SCAR workflows start as asked and none is found afterwards. */
const noSuppliers: SupplierControl = {
  startScar: () => Promise.resolve(),
  scarState: () => Promise.resolve(undefined),
  recordResponse: (id) => Promise.reject(new WorkflowNotFoundError(`no workflow ${id}`)),
  decide: (id) => Promise.reject(new WorkflowNotFoundError(`no workflow ${id}`)),
};

const run = `fuzz-${randomUUID().slice(0, 8)}`;
const LOT = `${run}-LOT`;

interface ValidRequest {
  params?: Record<string, string>;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: unknown;
}

/** A request each route accepts (past validation), for the mutations to start from. */
const VALID_REQUESTS: Record<string, () => ValidRequest> = {
  'GET /health': () => ({}),
  'GET /metrics': () => ({}),
  'GET /docs/json': () => ({}),
  // The dashboard's shell and bundle (public, no data): any path under /ui is the shell; an unknown asset is a 404.
  'GET /ui': () => ({}),
  'GET /ui/*': () => ({}),
  'GET /ui/assets/:file': () => ({ params: { file: 'app.css' } }),
  'POST /v1/auth/token': () => ({ body: { username: `${run}-nobody`, password: 'not-the-password' } }),
  'POST /v1/inspections': () => ({ body: failedInspection(LOT, { result: 'pass', defects: [] }) }),
  'GET /v1/defects/:id': () => ({ params: { id: `cam-${run}` } }),
  'GET /v1/lots/:lotId': () => ({ params: { lotId: LOT }, query: { site: 'PLANT1' } }),
  'GET /v1/lots/:lotId/defects': () => ({ params: { lotId: LOT }, query: { site: 'PLANT1' } }),
  'GET /v1/defects/:id/image': () => ({ params: { id: `cam-${run}` } }),
  'POST /v1/lots/:lotId/disposition': () => ({
    params: { lotId: LOT },
    headers: { 'idempotency-key': `${run}-${randomUUID()}` },
    body: {
      decision: 'scrap',
      reason: 'Scratch depth beyond drawing limit',
      site: 'PLANT1',
      signature: { meaning: 'approval', password: adminPassword },
    },
  }),
  'POST /v1/lots/:lotId/disposition/countersign': () => ({
    params: { lotId: LOT },
    headers: { 'idempotency-key': `${run}-${randomUUID()}` },
    body: { site: 'PLANT1', signature: { meaning: 'approval', password: adminPassword } },
  }),
  'POST /v1/lots/:lotId/retry': () => ({ params: { lotId: LOT }, body: { requestedBy: 'qe.jane', site: 'PLANT1' } }),
  'POST /v1/stations/:site/:line/:station/verdicts': () => ({
    params: { site: 'PLANT1', line: 'L1', station: 'S1' },
    body: {
      verdicts: [
        { frameId: `${run}-frame-1`, verdict: 'fail', defectClass: 'scratch', source: 'manual', decidedBy: 'qe' },
      ],
    },
  }),
  'GET /v1/stations/:site/:line/:station/shadow-report': () => ({
    params: { site: 'PLANT1', line: 'L1', station: 'S1' },
    query: { since: '2026-01-01T00:00:00Z', until: '2027-01-01T00:00:00Z', source: 'manual' },
  }),
  'GET /v1/audit': () => ({ query: { recordType: 'lot-case', limit: '5', format: 'json' } }),
  'GET /v1/trace/backward': () => ({
    query: { by: 'mes-lot', site: 'PLANT1', lotId: LOT, depth: '5', limit: '10' },
  }),
  'GET /v1/trace/forward': () => ({
    query: { by: 'supplier-lot', supplier: 'V100', supplierBatch: `${run}-VB`, format: 'json' },
  }),
  'GET /v1/trace/gaps': () => ({ query: { site: 'PLANT1', state: 'all', limit: '10' } }),
  'GET /v1/quality/defect-rates': () => ({
    query: { site: 'PLANT1', line: 'L1', by: 'supplier-lot', from: '2026-01-01T00:00:00Z', to: '2026-02-01T00:00:00Z' },
  }),
  'GET /v1/metrics/fpy': () => ({
    query: {
      site: 'PLANT1',
      line: 'L1',
      groupBy: 'station,shift,workOrder',
      bucket: 'hour',
      from: '2026-01-01T00:00:00Z',
      to: '2026-02-01T00:00:00Z',
    },
  }),
  'GET /v1/metrics/defects': () => ({
    query: { site: 'PLANT1', groupBy: 'line,sku', bucket: 'week', inspectionKind: 'first,after-rework' },
  }),
  'GET /v1/metrics/lot-quality': () => ({
    query: {
      site: 'PLANT1',
      by: 'supplier-lot',
      groupBy: 'shiftDate',
      fromShiftDate: '2026-01-01',
      toShiftDate: '2026-01-31',
    },
  }),
  'GET /v1/metrics/defect-heatmap': () => ({
    query: {
      site: 'PLANT1',
      by: 'component-lot',
      line: 'L1',
      from: '2026-01-01T00:00:00Z',
      to: '2026-01-31T00:00:00Z',
    },
  }),
  'POST /v1/lines/:site/:line/changeover': () => ({
    params: { site: 'PLANT1', line: 'L1' },
    headers: { 'idempotency-key': `${run}-${randomUUID()}` },
    body: {
      workOrder: `${run}-WO`,
      sku: 'BRKT-200',
      reason: 'manual changeover for a trial run',
      signature: { meaning: 'approval', password: adminPassword },
    },
  }),
  'GET /v1/lines/:site/:line/changeovers/:workOrder': () => ({
    params: { site: 'PLANT1', line: 'L1', workOrder: `${run}-WO` },
  }),
  'POST /v1/lines/:site/:line/changeovers/:workOrder/first-article/approve': () => ({
    params: { site: 'PLANT1', line: 'L1', workOrder: `${run}-WO` },
    headers: { 'idempotency-key': `${run}-${randomUUID()}` },
    body: { reason: 'first parts measured good', signature: { meaning: 'approval', password: adminPassword } },
  }),
  'POST /v1/lines/:site/:line/changeovers/:workOrder/cancel': () => ({
    params: { site: 'PLANT1', line: 'L1', workOrder: `${run}-WO` },
    body: { reason: 'order withdrawn' },
  }),
  'GET /v1/lines/:site/:line/advice': () => ({ params: { site: 'PLANT1', line: 'L1' }, query: { state: 'open' } }),
  'POST /v1/lines/:site/:line/advice/:id/accept': () => ({
    params: { site: 'PLANT1', line: 'L1', id: randomUUID() },
    body: { reason: 'confirmed at the bench', signature: { meaning: 'approval', password: adminPassword } },
  }),
  'POST /v1/lines/:site/:line/advice/:id/reject': () => ({
    params: { site: 'PLANT1', line: 'L1', id: randomUUID() },
    body: { reason: 'a gauge fault', signature: { meaning: 'review', password: adminPassword } },
  }),
  'GET /v1/erp-feed/:site': () => ({ params: { site: 'PLANT1' } }),
  'GET /v1/metrics/cost-of-quality': () => ({
    query: { site: 'PLANT1', from: '2026-01-01T00:00:00Z', to: '2026-01-02T00:00:00Z', groupBy: 'supplier,period' },
  }),
  'GET /v1/quality-rules': () => ({ query: { site: 'PLANT1', line: 'L1', history: 'true' } }),
  'PUT /v1/quality-rules/:site/:ruleId': () => ({
    params: { site: 'PLANT1', ruleId: `${run}-fuzz` },
    body: {
      line: 'L1',
      station: 'S1',
      definition: { kind: 'p-chart', subgroup: { parts: 50 }, runRules: [1, 2, 3, 4] },
      active: true,
      reason: 'fraction nonconforming at S1',
    },
  }),
  'POST /v1/quality-rules/:site/:ruleId/limits': () => ({
    params: { site: 'PLANT1', ruleId: `${run}-fuzz` },
    body: { from: '2026-01-01T00:00:00Z', to: '2026-01-02T00:00:00Z', reason: 'baseline January' },
  }),
  'GET /v1/quality-rules/:site/:ruleId/chart': () => ({
    params: { site: 'PLANT1', ruleId: `${run}-fuzz` },
    query: { from: '2026-01-01T00:00:00Z', to: '2026-01-02T00:00:00Z' },
  }),
  'GET /v1/quality-escalations': () => ({ query: { site: 'PLANT1', state: 'held', limit: '10' } }),
  'POST /v1/quality-escalations/:id/release': () => ({
    params: { id: `${run}-esc` },
    body: { reason: 'fixture re-clamped', signature: { meaning: 'approval', password: adminPassword } },
  }),
  'GET /v1/suppliers': () => ({ query: { from: '2026-01-01T00:00:00Z', to: '2026-02-01T00:00:00Z' } }),
  'GET /v1/suppliers/:supplier/scorecard': () => ({
    params: { supplier: 'V100' },
    query: { from: '2026-01-01T00:00:00Z', to: '2026-02-01T00:00:00Z', bucket: 'week', material: 'STEEL' },
  }),
  'POST /v1/suppliers/:supplier/scars': () => ({
    params: { supplier: `V-${randomUUID().slice(0, 8)}` },
    body: {
      reason: 'three receipts rejected',
      material: 'STEEL',
      signature: { meaning: 'approval', password: adminPassword },
    },
  }),
  'GET /v1/scars': () => ({ query: { supplier: 'V100', state: 'verifying', limit: '5' } }),
  'GET /v1/scars/:id': () => ({ params: { id: '1' } }),
  'POST /v1/scars/:id/response': () => ({
    params: { id: '1' },
    body: {
      responseId: `8D-${run}`,
      disciplines: { D4: 'die wear', D5: 'die replaced' },
      rootCause: 'die wear',
      correctiveAction: 'die replaced',
      attachments: ['https://supplier.example/8d.pdf'],
    },
  }),
  'POST /v1/scars/:id/accept': () => ({
    params: { id: '1' },
    body: { reason: 'root cause found', signature: { meaning: 'approval', password: adminPassword } },
  }),
  'POST /v1/scars/:id/reject': () => ({
    params: { id: '1' },
    body: { reason: 'no root cause', signature: { meaning: 'review', password: adminPassword } },
  }),
  'GET /v1/lots/:lotId/quality-record': () => ({ params: { lotId: LOT }, query: { site: 'PLANT1', format: 'csv' } }),
  'GET /v1/records/fsma204': () => ({ query: { site: 'PLANT1', from: '2026-01-01', to: '2026-01-31', lot: 'R1' } }),
  'GET /v1/lots/:lotId/genealogy': () => ({ params: { lotId: LOT }, query: { site: 'PLANT1' } }),
  'POST /v1/recalls': () => ({
    headers: { 'idempotency-key': `${run}-${randomUUID()}` },
    body: {
      site: 'PLANT1',
      kind: 'mock',
      scope: { kind: 'supplier-lot', supplier: 'V100', supplierBatch: `${run}-VB` },
      reason: 'quarterly mock recall',
    },
  }),
  'GET /v1/recalls/:recallId': () => ({ params: { recallId: `PLANT1-${run}` } }),
  'GET /v1/recalls': () => ({ query: { site: 'PLANT1', kind: 'mock', limit: '5' } }),
  'GET /v1/recall-drills': () => ({ query: { site: 'PLANT1', limit: '5' } }),
  'GET /v1/recalls/:recallId/report': () => ({ params: { recallId: `PLANT1-${run}` }, query: { format: 'csv' } }),
  'GET /v1/recalls/:recallId/fsma204': () => ({ params: { recallId: `PLANT1-${run}` }, query: { format: 'csv' } }),
  'GET /v1/recalls/:recallId/reinspections': () => ({
    params: { recallId: `PLANT1-${run}` },
    query: { outcome: 'no-image', limit: '5' },
  }),
  'POST /v1/recalls/:recallId/cancel': () => ({
    params: { recallId: `PLANT1-${run}` },
    body: { reason: 'recalled in error' },
  }),
  'GET /v1/recalls/:recallId/notifications': () => ({ params: { recallId: `PLANT1-${run}` } }),
  'POST /v1/recalls/:recallId/notifications/:notificationId/acknowledge': () => ({
    params: { recallId: `PLANT1-${run}`, notificationId: 'C1-S1' },
    body: {
      contact: 'J. Doe, quality lead',
      channel: 'phone',
      note: 'will quarantine',
      acknowledgedAt: '2026-12-06T10:00:00Z',
    },
  }),
  'GET /v1/me': () => ({}),
  'GET /v1/dashboard/now': () => ({ query: { site: 'PLANT1', line: 'L1' } }),
  // A site the configuration does not have: 404 before the stream opens. A stream of a real site would never end,
  // and inject waits for the end (test/integration/dashboard-now.test.ts reads the stream itself).
  'GET /v1/live': () => ({ query: { site: `NOSITE-${run}`, line: 'L1' } }),
  'POST /codec/encode': () => ({
    headers: { 'x-namespace': 'default' },
    body: { payloads: [{ metadata: { encoding: Buffer.from('json/plain').toString('base64') }, data: 'e30=' }] },
  }),
  'POST /codec/decode': () => ({
    headers: { 'x-namespace': 'default' },
    body: { payloads: [{ metadata: { encoding: Buffer.from('binary/encrypted').toString('base64') }, data: 'AAAA' }] },
  }),
  'OPTIONS /codec/encode': () => ({
    headers: { origin: 'http://127.0.0.1:8233', 'access-control-request-method': 'POST' },
  }),
  'OPTIONS /codec/decode': () => ({
    headers: { origin: 'http://127.0.0.1:8233', 'access-control-request-method': 'POST' },
  }),
  // The inference edge (infra/inference/frame-http.ts).
  'POST /v1/stations/:site/:line/:station/frames': () => ({
    params: { site: 'PLANT1', line: 'L1', station: 'S1' },
    body: {
      frameId: `${run}-f1`,
      partId: 'P-1',
      lotId: LOT,
      workOrder: '1000100',
      sku: 'BRKT-200',
      capturedAt: '2026-12-06T10:00:00Z',
      image: { encoding: 'png', data: Buffer.from('\x89PNG\r\n\x1a\nnot really', 'latin1').toString('base64') },
    },
  }),
  'GET /v1/deferred-frames': () => ({ query: { limit: '10' } }),
  'POST /v1/deferred-frames/:eventId/retry': () => ({ params: { eventId: `${run}-kept` } }),
  'POST /v1/deferred-frames/:eventId/drop': () => ({
    params: { eventId: `${run}-kept` },
    body: { droppedBy: 'operator.jo', reason: 'the image server lost the file' },
  }),
};

/** Roles and machine keys for the runs that are not admin's: each sees 403s and 404s of its own. */
const OTHER_ROLES: Role[] = ['operator', 'quality-engineer', 'quality-manager', 'integrator', 'auditor'];

let pool: Pool;
let api: FastifyInstance;
let adminHeaders: Record<string, string>;
/** The admin is a real local account, so that a signature in a valid request verifies and reaches the lot case. */
let adminPassword: string;
/** Who sends the fuzzed requests, by name. */
let identities: Record<string, Record<string, string>>;

// ---------------------------------------------------------------------------------------------------------------
// Rows: what a refused request may leave behind.

interface RowCounts {
  [table: string]: number;
}
let countSql: string;

/** Every table of the holdfast schema, found at run time so a new table is watched too; refusal records apart. */
async function prepareRowCounts(): Promise<void> {
  const { rows } = await pool.query<{ table_name: string }>(
    `SELECT table_name FROM information_schema.tables
      WHERE table_schema = 'holdfast' AND table_type = 'BASE TABLE' ORDER BY table_name`,
  );
  const names = rows.map((r) => r.table_name);
  for (const needed of ['inspection', 'outbox', 'api_idempotency', 'audit_record', 'intent', 'inspection_verdict']) {
    if (!names.includes(needed)) throw new Error(`table holdfast.${needed} is missing: migrations not run?`);
  }
  const parts = names.flatMap((t) => {
    if (t === 'audit_record') {
      // A refusal, and a check of credentials (a signer's password verified before the request was refused for
      // another reason) are records of an attempt: they may be written by a refused request.
      const attempt = `content::jsonb ->> 'outcome' = 'refused' OR content::jsonb ->> 'action' = 'e-signature.credentials'`;
      return [
        `(SELECT count(*) FROM holdfast.audit_record WHERE NOT (${attempt})) AS "audit_record"`,
        `(SELECT count(*) FROM holdfast.audit_record WHERE ${attempt}) AS "audit_record (refused)"`,
      ];
    }
    if (t === 'api_idempotency') {
      const refusal = `state = 'done' AND response_status BETWEEN 400 AND 499`;
      return [
        `(SELECT count(*) FROM holdfast.api_idempotency WHERE NOT (${refusal})) AS "api_idempotency"`,
        `(SELECT count(*) FROM holdfast.api_idempotency WHERE ${refusal}) AS "api_idempotency (stored 4xx)"`,
      ];
    }
    return [`(SELECT count(*) FROM holdfast.${t}) AS "${t}"`];
  });
  countSql = `SELECT ${parts.join(', ')}`;
}

async function rowCounts(): Promise<RowCounts> {
  const { rows } = await pool.query<Record<string, string>>(countSql);
  return Object.fromEntries(Object.entries(rows[0]!).map(([k, v]) => [k, Number(v)]));
}

const MAY_GROW_ON_REFUSAL = new Set(['audit_record (refused)', 'api_idempotency (stored 4xx)']);

function changedRows(before: RowCounts, after: RowCounts): string[] {
  return Object.keys(after)
    .filter((t) => after[t] !== before[t] && !(MAY_GROW_ON_REFUSAL.has(t) && after[t]! > before[t]!))
    .map((t) => `${t}: ${before[t]} -> ${after[t]}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Requests.

interface FuzzRequest {
  method: string;
  params: Record<string, string>;
  query: [string, string][];
  headers: Record<string, string>;
  /** Raw body text; undefined sends none. */
  body?: string;
}

const encodeSegment = (value: string) => {
  try {
    return encodeURIComponent(value);
  } catch {
    // A lone surrogate cannot be percent-encoded as UTF-8: send what a lenient client would, U+FFFD.
    return encodeURIComponent(value.replace(/[\uD800-\uDFFF]/g, '\uFFFD'));
  }
};

/** A request as inject takes it; the url is a string, the body text. */
type Sendable = InjectOptions & { url: string; payload?: string };

function toInject(route: ListedRoute, req: FuzzRequest): Sendable {
  const path = route.url.replace(/:([A-Za-z0-9_]+)/g, (_, name: string) => encodeSegment(req.params[name] ?? ''));
  const search = new URLSearchParams(req.query).toString();
  return {
    method: req.method as InjectOptions['method'],
    url: search ? `${path}?${search}` : path,
    headers: req.headers,
    ...(req.body === undefined ? {} : { payload: req.body }),
  };
}

/** What must hold for every answer; returns what went wrong, or nothing. */
function checkAnswer(res: Answer): string | undefined {
  if (res.statusCode >= 500) return `answered ${res.statusCode}: ${res.body.slice(0, 300)}`;
  if (res.statusCode >= 400) {
    const type = [res.headers['content-type'] ?? ''].flat().join(', ');
    if (!type.startsWith('application/problem+json')) return `${res.statusCode} in ${type || 'no content type'}`;
    let status: unknown;
    try {
      status = (JSON.parse(res.body) as { status?: unknown }).status;
    } catch {
      return `${res.statusCode} problem body is not JSON: ${res.body.slice(0, 200)}`;
    }
    if (status !== res.statusCode) return `${res.statusCode} problem says status ${String(status)}`;
  }
  return undefined;
}

interface Answer {
  statusCode: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: string;
}

/** An app under fuzzing: its routes and how a request reaches it. */
interface Target {
  routes: ListedRoute[];
  send(request: Sendable): Promise<Answer>;
}

async function sendChecked(target: Target, route: ListedRoute, req: FuzzRequest): Promise<number> {
  const before = await rowCounts();
  const res = await target.send(toInject(route, req));
  const wrong = checkAnswer(res);
  if (wrong) throw new Error(`${route.method} ${route.url}: ${wrong}`);
  if (res.statusCode >= 400) {
    const changed = changedRows(before, await rowCounts());
    if (changed.length > 0) {
      throw new Error(`${route.method} ${route.url}: refused with ${res.statusCode} but wrote ${changed.join(', ')}`);
    }
  }
  return res.statusCode;
}

// ---------------------------------------------------------------------------------------------------------------
// Generators.

const anyText = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom('', ' ', '..', '.', '%', '%00', '\u0000', 'null', '-1', '1e309', '__proto__'),
  },
  { weight: 1, arbitrary: fc.constantFrom(1, 300, 5_000).map((n) => 'x'.repeat(n)) },
);

/** Header values a client can send at all: visible ASCII and spaces (inject refuses control characters). */
const headerText = fc.string({ unit: 'binary-ascii', maxLength: 60 }).map((s) => s.replace(/[^\x20-\x7e]/g, ''));

const HEADER_NAMES = [
  'accept',
  'idempotency-key',
  'x-namespace',
  'origin',
  'access-control-request-method',
  'traceparent',
  'x-request-id',
  'x-forwarded-for',
  'if-none-match',
  'accept-language',
];

const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'application/problem+json',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'image/png',
  'application/octet-stream',
];

const extraHeaders = fc.dictionary(
  fc.oneof(fc.constantFrom(...HEADER_NAMES), fc.stringMatching(/^x-[a-z0-9-]{1,20}$/)),
  headerText,
  { maxKeys: 4 },
);

const queryPairs = (keys: string[]) =>
  fc.array(
    fc.tuple(
      fc.oneof(fc.constantFrom(...keys, 'site', 'limit', 'after', 'format'), fc.string({ maxLength: 12 })),
      anyText,
    ),
    {
      maxLength: 5,
    },
  );

/** Every path into a JSON value: the places a mutation may hit. */
function pathsOf(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  const here = [prefix];
  if (Array.isArray(value)) return [...here, ...value.flatMap((v, i) => pathsOf(v, [...prefix, i]))];
  if (value !== null && typeof value === 'object') {
    return [...here, ...Object.entries(value).flatMap(([k, v]) => pathsOf(v, [...prefix, k]))];
  }
  return here;
}

type Mutation =
  | { kind: 'delete' | 'null' | 'empty'; at: (string | number)[] }
  | { kind: 'replace'; at: (string | number)[]; value: unknown }
  | { kind: 'extra'; at: (string | number)[]; key: string; value: unknown }
  | { kind: 'huge'; at: (string | number)[]; size: number };

const DELETE = Symbol('delete');

function applyMutation(root: unknown, m: Mutation): unknown {
  const copy = structuredClone(root);
  const replaceAt = (value: unknown, at: (string | number)[], next: (old: unknown) => unknown): unknown => {
    if (at.length === 0) return next(value);
    if (value === null || typeof value !== 'object') return value;
    const [head, ...rest] = at;
    const container = value as Record<string | number, unknown>;
    const updated = replaceAt(container[head!], rest, next);
    if (updated === DELETE) {
      if (Array.isArray(container)) container.splice(Number(head), 1);
      else delete container[head!];
    } else {
      container[head!] = updated;
    }
    return value;
  };
  switch (m.kind) {
    case 'delete': {
      const left = replaceAt(copy, m.at, () => DELETE);
      return left === DELETE ? undefined : left;
    }
    case 'null':
      return replaceAt(copy, m.at, () => null);
    case 'empty':
      return replaceAt(copy, m.at, (old) => (Array.isArray(old) ? [] : typeof old === 'object' && old ? {} : ''));
    case 'replace':
      return replaceAt(copy, m.at, () => m.value);
    case 'huge':
      return replaceAt(copy, m.at, () => '\u00e9'.repeat(m.size));
    case 'extra':
      return replaceAt(copy, m.at, (old) =>
        old !== null && typeof old === 'object' && !Array.isArray(old) ? { ...old, [m.key]: m.value } : old,
      );
  }
}

function mutations(valid: unknown): fc.Arbitrary<Mutation[]> {
  const at = fc.constantFrom(...pathsOf(valid));
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    fc.record({ kind: fc.constantFrom('delete' as const, 'null' as const, 'empty' as const), at }),
    fc.record({
      kind: fc.constant('replace' as const),
      at,
      value: fc.oneof(fc.jsonValue({ maxDepth: 2 }), anyText, fc.double(), fc.constantFrom(true, -1, 0, 1e300)),
    }),
    fc.record({
      kind: fc.constant('extra' as const),
      at,
      key: fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('__proto__', 'constructor', 'site', 'admin')),
      value: fc.jsonValue({ maxDepth: 1 }),
    }),
    fc.record({ kind: fc.constant('huge' as const), at, size: fc.constantFrom(256, 70_000, 600_000) }),
  );
  return fc.array(mutation, { minLength: 1, maxLength: 3 });
}

const methodOf = (route: ListedRoute) => route.method;
const takesBody = (route: ListedRoute) => route.method === 'POST' || route.method === 'PUT' || route.method === 'PATCH';

/** Random requests: params, query, headers and any body, the valid example's values among the choices. */
function randomRequest(route: ListedRoute, valid: ValidRequest): fc.Arbitrary<FuzzRequest> {
  const paramNames = [...route.url.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]!);
  const params = fc.record<Record<string, string>>(
    Object.fromEntries(paramNames.map((name) => [name, fc.oneof(fc.constant(valid.params?.[name] ?? 'x'), anyText)])),
  );
  const body = takesBody(route)
    ? fc.oneof(
        { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
        { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 80 }) },
        { weight: 1, arbitrary: fc.constant(undefined) },
      )
    : fc.constant(undefined);
  return fc
    .record({
      params,
      query: queryPairs(Object.keys(valid.query ?? {})),
      headers: extraHeaders,
      contentType: fc.option(fc.constantFrom(...CONTENT_TYPES), { nil: undefined, freq: 4 }),
      body,
    })
    .map(({ params: p, query, headers, contentType, body: b }) => ({
      method: methodOf(route),
      params: p,
      query,
      headers: {
        ...(valid.headers ?? {}),
        ...headers,
        ...(b !== undefined ? { 'content-type': contentType ?? 'application/json' } : {}),
      },
      ...(b !== undefined ? { body: b } : {}),
    }));
}

/** The valid example with one to three mutations of its body, query or headers. */
function mutatedRequest(route: ListedRoute, valid: ValidRequest): fc.Arbitrary<FuzzRequest> {
  const validQuery = valid.query ?? {};
  return fc
    .record({
      body: valid.body === undefined ? fc.constant(undefined) : mutations(valid.body),
      query: Object.keys(validQuery).length
        ? fc.option(mutations(validQuery), { nil: undefined })
        : fc.constant(undefined),
      headers: fc.option(extraHeaders, { nil: undefined }),
    })
    .map(({ body, query, headers }) => {
      const mutatedBody = body?.reduce<unknown>(applyMutation, valid.body);
      const mutatedQuery = (query?.reduce<unknown>(applyMutation, validQuery) ?? validQuery) as unknown;
      const pairs: [string, string][] =
        mutatedQuery !== null && typeof mutatedQuery === 'object'
          ? Object.entries(mutatedQuery).map(([k, v]) => [k, typeof v === 'string' ? v : (JSON.stringify(v) ?? '')])
          : [];
      return {
        method: methodOf(route),
        params: valid.params ?? {},
        query: pairs,
        headers: {
          ...(valid.headers ?? {}),
          ...(headers ?? {}),
          ...(valid.body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(valid.body !== undefined ? { body: JSON.stringify(mutatedBody) ?? 'null' } : {}),
      };
    });
}

/** Runs `arbitrary`'s requests against one route; a failure names the route, the seed and the shrunk request. */
async function fuzzRoute(
  target: Target,
  route: ListedRoute,
  arbitrary: fc.Arbitrary<FuzzRequest>,
  numRuns: number,
  callers: string[],
): Promise<void> {
  // The caller by name, so that a counterexample shows who sent it rather than a token.
  await fc.assert(
    fc.asyncProperty(arbitrary, fc.constantFrom(...callers), async (req, caller) => {
      await sendChecked(target, route, { ...req, headers: { ...req.headers, ...identities[caller]! } });
    }),
    { seed: SEED, numRuns },
  );
}

function servedRoutes(app: FastifyInstance): ListedRoute[] {
  // HEAD is fastify's automatic twin of each GET.
  return registeredRoutes(app).filter((r) => r.method !== 'HEAD');
}

const keyOf = (r: ListedRoute) => `${r.method} ${r.url}`;

async function fuzzEveryRoute(target: Target, kind: 'random' | 'mutated' | 'roles'): Promise<void> {
  const failures: string[] = [];
  for (const route of target.routes) {
    const valid = VALID_REQUESTS[keyOf(route)]?.() ?? {};
    const arbitrary = kind === 'mutated' ? mutatedRequest(route, valid) : randomRequest(route, valid);
    const callers = kind === 'roles' ? Object.keys(identities).filter((c) => c !== 'admin') : ['admin'];
    try {
      await fuzzRoute(target, route, arbitrary, RUNS[kind], callers);
    } catch (err) {
      const { message, cause } = err as Error;
      failures.push(
        `${keyOf(route)} (FUZZ_SEED=${SEED}): ${message}${cause instanceof Error ? `\n${cause.message}` : ''}`,
      );
    }
  }
  expect(failures).toEqual([]);
}

// ---------------------------------------------------------------------------------------------------------------

let apiTarget: Target;
let edgeTarget: Target;
let edge: FrameHttpServer | undefined;

/**
 * The inference edge's pipeline up to where it needs a model: the frame parsed by the real parser (a bad payload is
 * refused naming its fields), and a frame that parses refused for want of an active recipe, as the pipeline refuses
 * one before loading a model.
 */
const parsingPipeline: FrameHttpOptions['pipeline'] = {
  handleFrame: async ({ payload }) => {
    const parsed = parseFrame(payload);
    if (!parsed.ok) return { kind: 'refused', reason: 'bad-payload', detail: parsed.reason, issues: parsed.issues };
    return { kind: 'refused', reason: 'no-recipe', detail: `no active recipe for ${parsed.frame.sku}` };
  },
};

async function openEdge(): Promise<FrameHttpServer> {
  const audit = createAuditTrail(pool);
  const pipeline = { ...parsingPipeline, countRefused: () => undefined };
  return openFrameHttp({
    config: { ...config, vision: { ...config.vision, http: { ...config.vision.http, port: 0 } } },
    pipeline,
    deferredFrames: createPgDeferredFrameAdmin(pool, pipeline, audit),
    metrics: new Registry(),
    health: [],
    log: quietLog(),
    authenticator: createAuthenticator({
      identity: config.identity,
      signingKey: await testSigningKey(),
      accounts: createAccounts(pool, audit, { maxFailedSignIns: 5, lockForMs: 60_000 }),
    }),
  });
}

/** The edge binds a port of its own (it has no inject): requests go over loopback HTTP. */
async function sendOverHttp(baseUrl: string, request: Sendable): Promise<Answer> {
  const res = await fetch(`${baseUrl}${request.url}`, {
    method: request.method ?? 'GET',
    headers: request.headers as Record<string, string>,
    ...(request.payload === undefined ? {} : { body: request.payload }),
  });
  return { statusCode: res.status, headers: Object.fromEntries(res.headers), body: await res.text() };
}

beforeAll(async () => {
  pool = testPool();
  await prepareRowCounts();
  api = await buildApp({
    signingKey: await testSigningKey(),
    pool,
    gateway: noWorkflows,
    changeovers: noChangeovers,
    suppliers: noSuppliers,
    config,
    namespace: 'default',
    payloadCodec: holdfastPayloadCodec(),
  });
  await api.ready();
  const admin = await signerAccount(pool, { username: `${run}-admin`, roles: ['admin'] });
  adminHeaders = admin.headers;
  adminPassword = admin.password;
  identities = { admin: adminHeaders };
  for (const role of OTHER_ROLES) identities[role] = await bearerFor({ username: `${run}-${role}`, roles: [role] });
  identities['quality-engineer at PLANT2'] = await bearerFor({
    username: `${run}-plant2-qe`,
    roles: ['quality-engineer'],
    sites: ['PLANT2'],
  });
  identities['station key PLANT1/L1/S1'] = (
    await machineKey(pool, {
      name: `${run} station`,
      scope: { site: 'PLANT1', line: 'L1', station: 'S1' },
      actions: ['inspections:write', 'frames:write', 'verdicts:write', 'stations:read'],
    })
  ).headers;
  // The lot exists at PLANT1, so that dispositions and retries get past the look-up to the (absent) lot case.
  const seeded = await api.inject({
    method: 'POST',
    url: '/v1/inspections',
    headers: adminHeaders,
    payload: failedInspection(LOT, { result: 'pass', defects: [] }),
  });
  expect(seeded.statusCode).toBe(202);
  apiTarget = { routes: servedRoutes(api), send: (request) => api.inject(request) };
  const opened = await openEdge();
  edge = opened;
  edgeTarget = { routes: opened.routes.filter((r) => r.method !== 'HEAD'), send: (r) => sendOverHttp(opened.url, r) };
});

afterAll(async () => {
  await edge?.close();
  await api?.close();
  await pool?.end();
});

function fuzzEveryRouteOf(target: () => Target) {
  it('knows every route the app serves, with a valid request for each', async () => {
    const { routes } = target();
    expect(routes.length).toBeGreaterThan(4);
    expect(routes.map(keyOf).filter((r) => !(r in VALID_REQUESTS))).toEqual([]);
    // Each valid example gets past validation: otherwise its mutations would test the validator only.
    for (const route of routes) {
      const valid = VALID_REQUESTS[keyOf(route)]!();
      const status = await sendChecked(target(), route, {
        method: route.method,
        params: valid.params ?? {},
        query: Object.entries(valid.query ?? {}),
        headers: {
          ...adminHeaders,
          ...(valid.headers ?? {}),
          ...(valid.body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(valid.body !== undefined ? { body: JSON.stringify(valid.body) } : {}),
      });
      expect([keyOf(route), status]).not.toEqual([keyOf(route), 400]);
    }
  });

  it('random params, query, headers and bodies as admin: no 5xx, 4xx as problem+json, no write on refusal', async () => {
    await fuzzEveryRoute(target(), 'random');
  }, 300_000);

  it('mutations of a valid request as admin: the same', async () => {
    await fuzzEveryRoute(target(), 'mutated');
  }, 300_000);

  it('random requests as the other roles, another site and a station key: the same', async () => {
    await fuzzEveryRoute(target(), 'roles');
  }, 300_000);
}

describe('API: every route, fuzzed', () => fuzzEveryRouteOf(() => apiTarget));

describe('inference edge: every route, fuzzed', () => fuzzEveryRouteOf(() => edgeTarget));

describe('the checks themselves', () => {
  const probe: ListedRoute = { method: 'POST', url: '/v1/fuzz-probe', hidden: true };
  const request: FuzzRequest = { method: 'POST', params: {}, query: [], headers: {}, body: '{}' };
  const answering = (answer: Answer, write?: () => Promise<unknown>): Target => ({
    routes: [probe],
    send: async () => {
      await write?.();
      return answer;
    },
  });
  const problem = (status: number) => ({
    statusCode: status,
    headers: { 'content-type': 'application/problem+json; charset=utf-8' },
    body: JSON.stringify({ type: 'about:blank', title: 'x', status }),
  });

  it('catch a 5xx, a 4xx that is not problem+json, and a problem whose status differs', async () => {
    await expect(sendChecked(answering(problem(503)), probe, request)).rejects.toThrow(/answered 503/);
    const plain = { statusCode: 414, headers: { 'content-type': 'application/json' }, body: '{"statusCode":414}' };
    await expect(sendChecked(answering(plain), probe, request)).rejects.toThrow(/414 in application\/json/);
    const lying = { ...problem(400), statusCode: 404 };
    await expect(sendChecked(answering(lying), probe, request)).rejects.toThrow(/404 problem says status 400/);
    expect(await sendChecked(answering(problem(404)), probe, request)).toBe(404);
  });

  it('catch a refused request that wrote a row, and let a stored refusal through', async () => {
    const key = `${run}-probe-${randomUUID()}`;
    const claim = (state: 'in-flight' | 'done', status: number | null) => () =>
      pool.query(
        `INSERT INTO holdfast.api_idempotency (scope, key, request_sha256, state, response_status)
         VALUES ('fuzz-probe', $1, 'x', $2, $3)`,
        [`${key}-${state}`, state, status],
      );
    try {
      await expect(sendChecked(answering(problem(400), claim('in-flight', null)), probe, request)).rejects.toThrow(
        /refused with 400 but wrote api_idempotency: \d+ -> \d+/,
      );
      expect(await sendChecked(answering(problem(404), claim('done', 404)), probe, request)).toBe(404);
    } finally {
      await pool.query(`DELETE FROM holdfast.api_idempotency WHERE scope = 'fuzz-probe' AND key LIKE $1`, [`${key}%`]);
    }
  });
});

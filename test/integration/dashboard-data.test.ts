/**
 * The dashboard's own reads (docs/dashboard.md): the defect heat map against a computation over holdfast.inspection
 * written here; a p-chart and an FPY rule drawn as charts after the evaluator's own pass (store.evaluateLine with the
 * activity's decideBatch) has judged the parts, the limits and trips checked against a hand computation; a lot's
 * defects for the MRB console, and its frames' images served from a local image store only from an allowed origin, with
 * redirects, non-images and other origins refused. Real PostgreSQL; the site is this run's own (no shift calendar, so
 * every inspection falls in shift `all`, dated by UTC).
 */
import { randomUUID } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { decideBatch, escalationIdOf } from '../../activities/quality-rules/quality-rules.activities';
import type { QualityRuleVersion } from '../../activities/quality-rules/quality-rules.ports';
import { type ChartDefinition, type RuleTrip, chartSubgroups } from '../../activities/quality-rules/rules';
import { buildApp } from '../../api/app';
import type {
  ControlChartResponse,
  DefectHeatmapResponse,
  LotDefectsResponse,
} from '../../api/schemas/dashboard.schema';
import { defectHeatmap } from '../../infra/analytics/defect-heatmap';
import { createAuditTrail } from '../../infra/audit/audit-trail';
import { loadConfig } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import { type InspectionRecord, insertInspections } from '../../infra/ingest/inspection.repository';
import { drawnSubgroups } from '../../infra/quality-rules/control-chart';
import { baselinePoints, createPgQualityRuleStore } from '../../infra/quality-rules/pg-quality-rule-store';
import type { WorkflowGateway } from '../../infra/temporal/gateway';
import { eventually } from '../support/eventually';
import { asAdmin, bearerFor, testSigningKey } from '../support/identity';
import { testPool } from '../support/test-env';

jest.setTimeout(60_000);

const pool = testPool();
const run = randomUUID().replace(/-/g, '').slice(0, 8).toUpperCase();
const SITE = `DD${run}`;
const DAY0 = Date.parse('2026-05-04T00:00:00.000Z');
const HOUR = 3_600_000;

/** The smallest PNG there is (1×1, transparent): what the image store serves. */
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==',
  'base64',
);

let app: FastifyInstance;
let baseUrl: string;
let admin: { authorization: string };
let imageStore: Server;
let otherStore: Server;
let imageOrigin: string;
let otherOrigin: string;
let seq = 0;

function serveImages(req: IncomingMessage, res: ServerResponse): void {
  switch (req.url) {
    case '/frames/ok.png':
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': PNG.length }).end(PNG);
      return;
    case '/frames/moved.png':
      res.writeHead(302, { location: '/frames/ok.png' }).end();
      return;
    case '/frames/page.png':
      res.writeHead(200, { 'content-type': 'text/html' }).end('<html>not an image</html>');
      return;
    case '/frames/slow.png':
      // Never answers: the API gives up after its 2 s.
      return;
    case '/frames/huge.png':
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': 6 * 1024 * 1024 });
      res.write(PNG);
      return;
    case '/frames/drawing.svg':
      res.writeHead(200, { 'content-type': 'image/svg+xml' }).end('<svg xmlns="http://www.w3.org/2000/svg"/>');
      return;
    default:
      res.writeHead(404).end();
  }
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

interface Row {
  line: string;
  station?: string;
  part: string;
  sku?: string;
  workOrder?: string;
  lotId?: string;
  fail: boolean;
  at: number;
  mode?: 'production' | 'shadow';
  imageRef?: string;
  defects?: string[];
}

async function store(rows: Row[]): Promise<string[]> {
  const records: InspectionRecord[] = rows.map((r) => {
    seq += 1;
    return {
      eventId: `${run}-E${String(seq).padStart(5, '0')}`,
      site: SITE,
      line: r.line,
      station: r.station ?? 'S1',
      partId: `${run}-${r.part}`,
      sku: r.sku ?? 'BRKT-200',
      lotId: r.lotId ?? `${run}-LOT-H`,
      workOrder: r.workOrder ?? `${run}-WO3`,
      result: r.fail ? 'fail' : 'pass',
      defects: (r.defects ?? (r.fail ? ['scratch'] : [])).map((c) => ({ class: c, score: 0.9 })),
      modelVersion: 'vision-1.0.0',
      recipeVersion: 'R-1',
      inspectedAt: new Date(r.at).toISOString(),
      payloadSha256: 'x'.repeat(64),
      mode: r.mode ?? 'production',
      ...(r.imageRef ? { imageRef: r.imageRef } : {}),
    };
  });
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await insertInspections(client, records);
    await client.query('COMMIT');
  } finally {
    client.release();
  }
  return records.map((r) => r.eventId);
}

async function get<T>(path: string, headers: Record<string, string> = admin) {
  const res = await fetch(`${baseUrl}${path}`, { headers });
  const bytes = Buffer.from(await res.arrayBuffer());
  return {
    status: res.status,
    contentType: res.headers.get('content-type') ?? '',
    bytes,
    json: () => JSON.parse(bytes.toString('utf8')) as T,
  };
}

// The heat map's plant: which lots each work order consumed, written here once for the aggregates
// (holdfast.work_order_lot, holdfast.material_lot) and once for the computation below.
const WORK_ORDER_LOTS: Record<string, { component: string[]; supplier: { lot: string; supplier: string | null }[] }> = {
  [`${run}-WO1`]: { component: [`${run}-C1`], supplier: [{ lot: `${run}-SL1`, supplier: `SUPA-${run}` }] },
  [`${run}-WO2`]: {
    component: [`${run}-C1`, `${run}-C2`],
    supplier: [
      { lot: `${run}-SL2`, supplier: `SUPB-${run}` },
      { lot: `${run}-SL3`, supplier: null },
    ],
  },
  [`${run}-WO3`]: { component: [], supplier: [] },
};

beforeAll(async () => {
  imageStore = createServer(serveImages);
  otherStore = createServer(serveImages);
  imageOrigin = await listen(imageStore);
  otherOrigin = await listen(otherStore);
  const base = loadConfig();
  const config: HoldfastConfig = {
    ...base,
    api: { ...base.api, dashboard: { ...base.api.dashboard, imageOrigins: [imageOrigin] } },
  };
  const gateway = new Proxy({} as WorkflowGateway, {
    get: (_, name) => () => Promise.reject(new Error(`reads must not call the gateway (${String(name)})`)),
  });
  const signingKey = await testSigningKey();
  app = await buildApp({ signingKey, pool, gateway, config, namespace: 'test' });
  await app.listen({ host: '127.0.0.1', port: 0 });
  baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  admin = await asAdmin(signingKey);

  for (const [workOrder, lots] of Object.entries(WORK_ORDER_LOTS)) {
    for (const lot of lots.component) {
      await pool.query(
        `INSERT INTO holdfast.work_order_lot (site, work_order, lot_kind, lot_key) VALUES ($1, $2, 'component', $3)`,
        [SITE, workOrder, lot],
      );
    }
    for (const { lot, supplier } of lots.supplier) {
      await pool.query(
        `INSERT INTO holdfast.work_order_lot (site, work_order, lot_kind, lot_key) VALUES ($1, $2, 'supplier', $3)`,
        [SITE, workOrder, lot],
      );
      await pool.query(
        `INSERT INTO holdfast.material_lot (lot_key, site, material, origin, supplier)
         VALUES ($1, $2, 'COIL', 'purchased', $3) ON CONFLICT DO NOTHING`,
        [lot, SITE, supplier],
      );
    }
  }
});

afterAll(async () => {
  await app?.close();
  imageStore?.closeAllConnections();
  imageStore?.close();
  otherStore?.close();
  await pool.query(`DELETE FROM holdfast.quality_escalation WHERE site = $1`, [SITE]);
  await pool.query(`DELETE FROM holdfast.quality_rule_state WHERE site = $1`, [SITE]);
  await pool.query(`DELETE FROM holdfast.quality_rule_cursor WHERE site = $1`, [SITE]);
  await pool.query(`DELETE FROM holdfast.quality_rule WHERE site = $1`, [SITE]);
  await pool.query(`DELETE FROM holdfast.inspection WHERE site = $1`, [SITE]);
  await pool.query(`DELETE FROM holdfast.work_order_lot WHERE site = $1`, [SITE]);
  await pool.query(`DELETE FROM holdfast.material_lot WHERE site = $1`, [SITE]);
  await pool.query(`DELETE FROM holdfast.quality_hourly WHERE site = $1`, [SITE]);
  await pool.query(`DELETE FROM holdfast.defect_hourly WHERE site = $1`, [SITE]);
  await pool.end();
});

describe('GET /v1/metrics/defect-heatmap', () => {
  const FROM = new Date(DAY0).toISOString();
  const TO = new Date(DAY0 + 3 * 24 * HOUR).toISOString();

  beforeAll(async () => {
    // Three days, two lines, two SKUs, three work orders; a few parts re-inspected later (not units again), shadow
    // results (never counted), and a part first inspected at two stations (a unit at each).
    let x = 7;
    const next = () => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648;
    const rows: Row[] = [];
    for (let i = 0; i < 150; i += 1) {
      const line = i % 3 === 0 ? 'L2' : 'L1';
      const at = DAY0 + Math.floor(next() * 3 * 24) * HOUR + Math.floor(next() * 3000) * 1000;
      const workOrder = `${run}-WO${1 + Math.floor(next() * 3)}`;
      const sku = next() < 0.6 ? 'BRKT-200' : 'BRKT-300';
      const fail = next() < 0.25;
      rows.push({ line, part: `H${i}`, sku, workOrder, fail, at });
      if (fail && i % 2 === 0) rows.push({ line, part: `H${i}`, sku, workOrder, fail: false, at: at + 60_000 });
      if (i % 10 === 0) rows.push({ line, station: 'S2', part: `H${i}`, sku, workOrder, fail: next() < 0.5, at });
      if (i % 7 === 0)
        rows.push({ line, station: 'S9', part: `H${i}`, sku, workOrder, fail: true, at, mode: 'shadow' });
    }
    await store(rows.slice(0, 100));
    await store(rows.slice(100));
  });

  /** The expected cells from the raw inspections: each part's first production inspection per station. */
  async function expected(by: string, from: string, to: string, line?: string) {
    const orders = Object.entries(WORK_ORDER_LOTS);
    const lotRows = orders.flatMap(([wo, lots]) => [
      ...lots.component.map((lot) => ['component', wo, lot]),
      ...lots.supplier.map((s) => ['supplier', wo, s.supplier ?? '(unknown)']),
    ]);
    const key = {
      product: 'f.sku',
      line: 'f.line',
      shift: `'all'`,
      'component-lot': 'l.key',
      supplier: 'l.key',
    }[by];
    const join =
      by === 'component-lot' || by === 'supplier'
        ? `JOIN unnest($5::text[], $6::text[], $7::text[]) AS l (kind, wo, key)
             ON l.wo = f.work_order AND l.kind = '${by === 'supplier' ? 'supplier' : 'component'}'`
        : '';
    const res = await pool.query<{ key: string; day: string; units: string; defective: string }>(
      `WITH f AS (
         SELECT DISTINCT ON (line, station, part_id) line, station, part_id, sku, work_order, result, inspected_at
           FROM holdfast.inspection
          WHERE site = $1 AND mode = 'production'
          ORDER BY line, station, part_id, inspected_at, event_id
       )
       SELECT ${key} AS key, to_char((f.inspected_at AT TIME ZONE 'UTC')::date, 'YYYY-MM-DD') AS day,
              count(*) AS units, count(*) FILTER (WHERE f.result = 'fail') AS defective
         FROM f ${join}
        WHERE date_trunc('hour', f.inspected_at) >= $2 AND date_trunc('hour', f.inspected_at) < $3
          AND ($4::text IS NULL OR f.line = $4)
        GROUP BY 1, 2 ORDER BY 1, 2`,
      [
        SITE,
        from,
        to,
        line ?? null,
        ...(join ? [lotRows.map((r) => r[0]), lotRows.map((r) => r[1]), lotRows.map((r) => r[2])] : []),
      ],
    );
    return res.rows.map((r) => ({
      key: r.key,
      day: r.day,
      units: Number(r.units),
      defective: Number(r.defective),
      rate: Number(r.defective) / Number(r.units),
    }));
  }

  const byKeyDay = (a: { key: string; day: string }, b: { key: string; day: string }) =>
    a.key < b.key ? -1 : a.key > b.key ? 1 : a.day < b.day ? -1 : a.day > b.day ? 1 : 0;

  test.each(['product', 'line', 'shift', 'component-lot', 'supplier'])(
    'by=%s: every cell equals the count over the raw inspections',
    async (by) => {
      const res = await get<DefectHeatmapResponse>(
        `/v1/metrics/defect-heatmap?site=${SITE}&by=${by}&from=${FROM}&to=${TO}`,
      );
      expect(res.status).toBe(200);
      const body = res.json();
      const want = await expected(by, FROM, TO);
      expect(want.length).toBeGreaterThan(2);
      expect([...body.cells].sort(byKeyDay)).toEqual(
        want.map((c) => ({ ...c, rate: expect.closeTo(c.rate, 12) as number })),
      );
      expect(body.totalKeys).toBe(new Set(want.map((c) => c.key)).size);
      expect(body.days).toEqual([...new Set(want.map((c) => c.day))].sort());
      // Keys by units over the range, most first.
      const units = (k: string) => want.filter((c) => c.key === k).reduce((a, c) => a + c.units, 0);
      expect(body.keys.map(units)).toEqual([...body.keys.map(units)].sort((a, b) => b - a));
    },
  );

  test('a narrower range and a line: only the hours and the line asked for', async () => {
    const from = new Date(DAY0 + 30 * HOUR).toISOString();
    const to = new Date(DAY0 + 60 * HOUR).toISOString();
    const res = await get<DefectHeatmapResponse>(
      `/v1/metrics/defect-heatmap?site=${SITE}&by=product&line=L2&from=${from}&to=${to}`,
    );
    expect(res.status).toBe(200);
    const want = await expected('product', from, to, 'L2');
    expect(want.length).toBeGreaterThan(0);
    expect([...res.json().cells].sort(byKeyDay)).toEqual(
      want.map((c) => ({ ...c, rate: expect.closeTo(c.rate, 12) as number })),
    );
  });

  test('the keys are capped: the ones with the most units, and totalKeys says how many there were', async () => {
    const capped = await defectHeatmap(pool, { site: SITE, by: 'component-lot', from: FROM, to: TO }, 1);
    const want = await expected('component-lot', FROM, TO);
    const units = new Map<string, number>();
    for (const c of want) units.set(c.key, (units.get(c.key) ?? 0) + c.units);
    const top = [...units.entries()].sort((a, b) => b[1] - a[1])[0]![0];
    expect(capped.keys).toEqual([top]);
    expect(capped.totalKeys).toBe(2);
    expect(new Set(capped.cells.map((c) => c.key))).toEqual(new Set([top]));
  });

  test('bad input is a 400 naming the field; another site’s reader is refused', async () => {
    const bad = await get<{ errors: { field: string }[] }>(`/v1/metrics/defect-heatmap?site=${SITE}&by=colour`);
    expect(bad.status).toBe(400);
    expect(bad.contentType).toContain('application/problem+json');
    expect(bad.json().errors.map((e) => e.field)).toContain('querystring.by');
    const wide = await get<{ errors: { field: string }[] }>(
      `/v1/metrics/defect-heatmap?site=${SITE}&by=line&from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z`,
    );
    expect(wide.status).toBe(400);
    expect(wide.json().errors.map((e) => e.field)).toEqual(['querystring.from']);
    const other = await bearerFor({ username: `op-${run}`, roles: ['operator'], sites: ['ELSEWHERE'] });
    expect((await get(`/v1/metrics/defect-heatmap?site=${SITE}&by=line`, other)).status).toBe(403);
  });
});

describe('GET /v1/quality-rules/{site}/{ruleId}/chart', () => {
  const LINE = 'LC';
  const T0 = Date.parse('2026-06-01T10:00:00.000Z');
  const CENTRE = 0.1;
  const LIMITS = {
    centre: CENTRE,
    baseline: { from: '2026-05-01T00:00:00Z', to: '2026-05-02T00:00:00Z', subgroups: 10, units: 50, count: 5 },
  };
  const rules = createPgQualityRuleStore(pool, createAuditTrail(pool));
  let evaluated = 0;

  /** One pass of the line's evaluator, as the activity runs it (decideBatch, escalation ids by escalationIdOf). */
  const pass = () =>
    rules.evaluateLine(SITE, LINE, 1000, decideBatch, (rule: QualityRuleVersion, trip: RuleTrip) => {
      const escalationId = escalationIdOf(rule, trip.firstPoint);
      return { escalationId, workflowId: `quality-escalation-${escalationId}`, policy: 'alert' };
    });

  beforeAll(async () => {
    const insertRule = (ruleId: string, kind: string, definition: unknown, limits: unknown) =>
      pool.query(
        `INSERT INTO holdfast.quality_rule (site, rule_id, version, line, station, kind, definition, limits, changed_by,
                                            reason)
         VALUES ($1, $2, 1, $3, 'S1', $4, $5, $6, 'test', 'dashboard chart test')`,
        [SITE, ruleId, LINE, kind, JSON.stringify(definition), limits === null ? null : JSON.stringify(limits)],
      );
    await insertRule(
      'pchart',
      'p-chart',
      { kind: 'p-chart', subgroup: { parts: 5 }, runRules: [1] },
      {
        centre: CENTRE,
        baseline: { from: '2026-05-01T00:00:00Z', to: '2026-05-02T00:00:00Z', subgroups: 10, units: 50, count: 5 },
      },
    );
    await insertRule('fpy', 'fpy-below', { kind: 'fpy-below', threshold: 0.9, window: { parts: 10 } }, null);
    // The first pass places the line's cursor at the present: the parts below come after it.
    expect((await pass()).initialised).toBe(true);
    // Four subgroups of five: 0, 1, 5 and 0 nonconforming.
    const fails = [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
    await store(fails.map((f, i) => ({ line: LINE, part: `C${i}`, fail: f === 1, at: T0 + i * 60_000 })));
    await eventually(
      'the evaluator judged the 20 parts',
      async () => {
        evaluated += (await pass()).parts;
        return evaluated;
      },
      (n) => n >= 20,
    );
  });

  test('a p-chart: the subgroups, the centre line and 3σ limits, and the subgroup that tripped rule 1', async () => {
    const from = new Date(T0 - HOUR).toISOString();
    const to = new Date(T0 + HOUR).toISOString();
    const res = await get<ControlChartResponse>(`/v1/quality-rules/${SITE}/pchart/chart?from=${from}&to=${to}`);
    expect(res.status).toBe(200);
    const chart = res.json();
    const escalations = await pool.query<{ escalation_id: string }>(
      `SELECT escalation_id FROM holdfast.quality_escalation WHERE site = $1 AND rule_id = 'pchart'`,
      [SITE],
    );
    expect(escalations.rows).toHaveLength(1);
    // By hand: σ = √(0.1 × 0.9 ÷ 5) = 0.134164…; UCL = 0.1 + 3σ = 0.502492…; LCL = max(0, 0.1 − 3σ) = 0.
    const ucl = 0.1 + 3 * Math.sqrt((0.1 * 0.9) / 5);
    expect(chart.centre).toBe(CENTRE);
    expect(chart.upperLimit).toBeCloseTo(ucl, 12);
    expect(chart.lowerLimit).toBe(0);
    expect(chart.points.map((p) => [p.value, p.n])).toEqual([
      [0, 5],
      [0.2, 5],
      [1, 5],
      [0, 5],
    ]);
    expect(chart.points.map((p) => p.at)).toEqual([4, 9, 14, 19].map((i) => new Date(T0 + i * 60_000).toISOString()));
    expect(chart.points.map((p) => p.tripped)).toEqual([[], [], ['beyond-3-sigma'], []]);
    expect(chart.points.map((p) => p.escalationId)).toEqual([null, null, escalations.rows[0]!.escalation_id, null]);
    expect(chart.points[2]!.z).toBeCloseTo((1 - 0.1) / Math.sqrt((0.1 * 0.9) / 5), 9);
    for (const p of chart.points) expect(p.upperLimit).toBeCloseTo(ucl, 12);
  });

  test('an FPY rule: first-pass yield per hour from the aggregates, the threshold as its lower limit, the trip', async () => {
    const from = new Date(T0 - HOUR).toISOString();
    const to = new Date(T0 + HOUR).toISOString();
    const res = await get<ControlChartResponse>(`/v1/quality-rules/${SITE}/fpy/chart?from=${from}&to=${to}`);
    expect(res.status).toBe(200);
    const chart = res.json();
    const trip = await pool.query<{ escalation_id: string }>(
      `SELECT escalation_id FROM holdfast.quality_escalation WHERE site = $1 AND rule_id = 'fpy'`,
      [SITE],
    );
    expect(trip.rows.length).toBeGreaterThan(0);
    expect(chart.lowerLimit).toBe(0.9);
    // The 20 parts fall in one UTC hour (10:00–10:19): 14 of 20 passed first time.
    expect(chart.points).toEqual([
      {
        at: new Date(T0).toISOString(),
        value: 14 / 20,
        n: 20,
        upperLimit: null,
        lowerLimit: null,
        z: null,
        tripped: ['fpy-below'],
        escalationId: trip.rows[0]!.escalation_id,
      },
    ]);
  });

  test('the subgroups drawn in SQL are the ones chartSubgroups forms from the same parts (random series)', async () => {
    const line = 'LR';
    const t0 = Date.parse('2026-06-02T00:00:00.000Z');
    let x = 3;
    const next = () => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648;
    const rows: Row[] = [];
    let at = t0;
    for (let i = 0; i < 400; i += 1) {
      at += 1_000 + Math.floor(next() * 40_000);
      const fail = next() < 0.15;
      const defects = fail ? Array.from({ length: 1 + Math.floor(next() * 3) }, () => 'scratch') : [];
      rows.push({ line, station: next() < 0.5 ? 'S1' : 'S2', part: `R${i}`, fail, at, defects });
      // Re-inspections and shadow results: never a chart's parts.
      if (i % 9 === 0) rows.push({ line, station: 'S1', part: `R${i}`, fail: false, at: at + 500 });
      if (i % 13 === 0) rows.push({ line, station: 'S9', part: `R${i}`, fail: true, at, mode: 'shadow' });
    }
    const ids = await store(rows);
    const range = { from: new Date(t0 + 600_000).toISOString(), to: new Date(at - 600_000).toISOString() };
    const scope = { site: SITE, line, station: null, limits: { ...LIMITS } };
    const parts = await baselinePoints(pool, scope, range.from, range.to);
    expect(parts.length).toBeGreaterThan(300);
    // Boundaries the evaluator would have kept: two parts in a row, and one later on.
    const starts = new Set([parts[20]!.id, parts[21]!.id, parts[150]!.id]);
    expect(ids).toEqual(expect.arrayContaining([...starts]));
    const defs: ChartDefinition[] = [
      { kind: 'p-chart', subgroup: { parts: 7 }, runRules: [1] },
      { kind: 'u-chart', subgroup: { parts: 5 }, runRules: [1] },
      { kind: 'p-chart', subgroup: { seconds: 600 }, runRules: [1] },
      { kind: 'u-chart', subgroup: { seconds: 3600 }, runRules: [1] },
    ];
    for (const until of [range.to, new Date(at - 1_200_000).toISOString()]) {
      for (const def of defs) {
        const sql = await drawnSubgroups(pool, scope, def, { ...range, until }, starts);
        const reference = chartSubgroups(def, scope.limits, parts, { starts, until });
        expect(sql.length).toBeGreaterThan(1);
        expect(sql).toEqual(reference);
      }
    }
    // The boundaries matter: without them the parts are cut elsewhere.
    const uncut = await drawnSubgroups(pool, scope, defs[0]!, { ...range, until: range.to });
    expect(uncut.map((g) => g.key)).not.toEqual(
      (await drawnSubgroups(pool, scope, defs[0]!, { ...range, until: range.to }, starts)).map((g) => g.key),
    );
    // Without limits: sizes and values only, the same.
    const bare = { ...scope, limits: null };
    const def = defs[0]!;
    expect(await drawnSubgroups(pool, bare, def, { ...range, until: range.to }, starts)).toEqual(
      chartSubgroups(def, null, parts, { starts, until: range.to }),
    );
  });

  test('an unknown rule is a 404, a range over 2 days a 400, another site’s reader a 403', async () => {
    expect((await get(`/v1/quality-rules/${SITE}/nosuch/chart`)).status).toBe(404);
    const wide = await get<{ errors: { field: string }[] }>(
      `/v1/quality-rules/${SITE}/pchart/chart?from=2026-05-01T00:00:00Z&to=2026-05-20T00:00:00Z`,
    );
    expect(wide.status).toBe(400);
    expect(wide.json().errors.map((e) => e.field)).toEqual(['querystring.from']);
    const other = await bearerFor({ username: `qe-${run}`, roles: ['quality-engineer'], sites: ['ELSEWHERE'] });
    expect((await get(`/v1/quality-rules/${SITE}/pchart/chart`, other)).status).toBe(403);
  });
});

describe('the MRB console: GET /v1/lots/{lotId}/defects and GET /v1/defects/{id}/image', () => {
  const LOT = `${run}-LOT-M`;
  const T0 = Date.parse('2026-07-01T08:00:00.000Z');
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    const named: [string, Row][] = [
      ['ok', { line: 'L1', part: 'M1', fail: true, at: T0, imageRef: `${imageOrigin}/frames/ok.png` }],
      ['moved', { line: 'L1', part: 'M2', fail: true, at: T0 + 1000, imageRef: `${imageOrigin}/frames/moved.png` }],
      ['page', { line: 'L1', part: 'M3', fail: true, at: T0 + 2000, imageRef: `${imageOrigin}/frames/page.png` }],
      ['svg', { line: 'L1', part: 'M4', fail: true, at: T0 + 3000, imageRef: `${imageOrigin}/frames/drawing.svg` }],
      ['slow', { line: 'L1', part: 'M10', fail: true, at: T0 - 2000, imageRef: `${imageOrigin}/frames/slow.png` }],
      ['huge', { line: 'L1', part: 'M11', fail: true, at: T0 - 1000, imageRef: `${imageOrigin}/frames/huge.png` }],
      ['other', { line: 'L1', part: 'M5', fail: true, at: T0 + 4000, imageRef: `${otherOrigin}/frames/ok.png` }],
      ['s3', { line: 'L1', part: 'M6', fail: true, at: T0 + 5000, imageRef: 's3://vision/PLANT1/L1/S1/img.png' }],
      ['none', { line: 'L1', part: 'M7', fail: true, at: T0 + 6000, defects: ['scratch', 'dent'] }],
      ['pass', { line: 'L1', part: 'M8', fail: false, at: T0 + 7000, imageRef: `${imageOrigin}/frames/ok.png` }],
      ['shadow', { line: 'L1', part: 'M9', fail: true, at: T0 + 8000, mode: 'shadow', station: 'S9' }],
    ];
    const stored = await store(named.map(([, r]) => ({ ...r, lotId: LOT })));
    named.forEach(([name], i) => (ids[name] = stored[i]!));
  });

  test("the lot's failed production inspections, newest first, with imageUrl only where the API may fetch", async () => {
    const res = await get<LotDefectsResponse>(`/v1/lots/${LOT}/defects?site=${SITE}`);
    expect(res.status).toBe(200);
    const body = res.json();
    expect(body.total).toBe(9);
    expect(body.limit).toBe(200);
    expect(body.defects.map((d) => d.eventId)).toEqual(
      ['none', 's3', 'other', 'svg', 'page', 'moved', 'ok', 'huge', 'slow'].map((n) => ids[n]),
    );
    const url = (n: string) => `/v1/defects/${ids[n]}/image`;
    expect(Object.fromEntries(body.defects.map((d) => [d.eventId, d.imageUrl]))).toEqual({
      [ids.none!]: null,
      [ids.s3!]: null,
      [ids.other!]: null,
      [ids.svg!]: url('svg'),
      [ids.page!]: url('page'),
      [ids.moved!]: url('moved'),
      [ids.ok!]: url('ok'),
      [ids.huge!]: url('huge'),
      [ids.slow!]: url('slow'),
    });
    const none = body.defects[0]!;
    expect(none).toMatchObject({ line: 'L1', station: 'S1', partId: `${run}-M7`, imageRef: null });
    expect(none.defects.map((d) => d.class)).toEqual(['scratch', 'dent']);
    expect(body.defects.find((d) => d.eventId === ids.other)!.imageRef).toBe(`${otherOrigin}/frames/ok.png`);
  });

  test('at most 200, the newest; total counts them all', async () => {
    const lot = `${run}-LOT-BIG`;
    await store(
      Array.from({ length: 205 }, (_, i) => ({ line: 'L1', part: `B${i}`, fail: true, at: T0 + i * 1000, lotId: lot })),
    );
    const body = (await get<LotDefectsResponse>(`/v1/lots/${lot}/defects`)).json();
    expect(body.total).toBe(205);
    expect(body.defects).toHaveLength(200);
    expect(body.defects[0]!.partId).toBe(`${run}-B204`);
    expect(body.defects[199]!.partId).toBe(`${run}-B5`);
  });

  test('the image from an allowed origin: its bytes and content type', async () => {
    const res = await get(`/v1/defects/${ids.ok}/image`);
    expect(res.status).toBe(200);
    expect(res.contentType).toBe('image/png');
    expect(res.bytes.equals(PNG)).toBe(true);
  });

  test.each([
    ['other', 404, 'an origin not allowed'],
    ['s3', 404, 'a reference that is no http(s) URL'],
    ['none', 404, 'no image reference'],
    ['moved', 502, 'a redirect (not followed)'],
    ['page', 502, 'a content type that is no image'],
    ['svg', 502, 'an SVG image'],
    ['huge', 502, 'an image over 5 MB'],
    ['slow', 502, 'no answer within 2 s'],
  ])('refused: %s → %i (%s)', async (name, status) => {
    const res = await get<{ status: number; detail: string }>(`/v1/defects/${ids[name]}/image`);
    expect(res.status).toBe(status);
    expect(res.contentType).toContain('application/problem+json');
    expect(res.json().status).toBe(status);
  });

  test('readers of another site are refused both routes', async () => {
    const other = await bearerFor({ username: `op3-${run}`, roles: ['operator'], sites: ['ELSEWHERE'] });
    expect((await get(`/v1/defects/${ids.ok}/image`, other)).status).toBe(403);
    expect((await get(`/v1/lots/${LOT}/defects?site=${SITE}`, other)).status).toBe(403);
    const own = await bearerFor({ username: `op4-${run}`, roles: ['operator'], sites: [SITE] });
    expect((await get(`/v1/defects/${ids.ok}/image`, own)).status).toBe(200);
  });
});

/**
 * The dashboard's Yield and defects and Supplier quality views in Debian's Chromium (playwright-core), against the
 * API on a real port and real PostgreSQL with a seeded plant history: the FPY each line shows equals the API's answer
 * and a count written here in SQL over holdfast.inspection (first inspection per part and station by time, production
 * mode, declared rework and re-inspections apart); the Pareto's top class equals SQL; the heat map changes its rows
 * through the URL; scorecards and open SCARs show, an overdue one marked; axe-core finds nothing serious.
 *
 * The SCARs' workflow state (their due dates) comes from a typed stand-in for the Temporal query: the rows are real,
 * the workflows are not started (no worker runs here).
 */
import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import type { Page } from 'playwright-core';
import { syncSiteShifts } from '../../infra/analytics/shift-calendar';
import { loadConfig } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import { type InspectionRecord, insertInspections } from '../../infra/ingest/inspection.repository';
import type { WorkflowGateway } from '../../infra/temporal/gateway';
import type { SupplierControl } from '../../infra/temporal/supplier-control';
import type { ScarState } from '../../workflows/contracts';
import {
  type DashboardRig,
  screenshot,
  seriousAccessibilityViolations,
  startDashboardRig,
} from '../support/dashboard-rig';
import { eventually } from '../support/eventually';
import { bearerFor, testSigningKey } from '../support/identity';

jest.setTimeout(90_000);

const run = randomUUID().replace(/-/g, '').slice(0, 8).toUpperCase();
const SITE = `DY${run}`;
const SUPPLIER = `VY${run}`;
const SUPPLIER_ON_TIME = `VZ${run}`;
const RULE = `fpy-l1-${run.toLowerCase()}`;
const ESCALATION = `${SITE}-L1-line-${RULE}-v1-test`;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

// --- The history: a deterministic generator (mulberry32), nothing from the product. ---------------------------------

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rnd = prng(19);
// Scratch clearly first, so the Pareto's top class is not a tie.
const CLASSES = ['scratch', 'scratch', 'scratch', 'dent', 'dent', 'burr', 'crack'];
const now = Date.now();

const records: InspectionRecord[] = [];
let seq = 0;
function add(r: {
  line: string;
  station: string;
  partId: string;
  at: number;
  fail: boolean;
  shadow?: boolean;
  declared?: 'after-rework' | 're-inspection';
}) {
  const eventId = `${run}-${String(seq++).padStart(5, '0')}`;
  records.push({
    eventId,
    site: SITE,
    line: r.line,
    station: r.station,
    partId: r.partId,
    sku: r.line === 'L1' ? 'BRKT-200' : 'HSG-310',
    lotId: `${run}-LOT-${r.line}`,
    workOrder: `${run}-WO-${r.line}`,
    result: r.fail ? 'fail' : 'pass',
    defects: r.fail
      ? Array.from({ length: 1 + Math.floor(rnd() * 2) }, () => ({
          class: CLASSES[Math.floor(rnd() * CLASSES.length)]!,
          score: 0.9,
        }))
      : [],
    modelVersion: 'model@1',
    recipeVersion: 'recipe-1',
    inspectedAt: new Date(r.at).toISOString(),
    payloadSha256: `sha-${eventId}`,
    mode: r.shadow ? 'shadow' : 'production',
    ...(r.declared ? { inspectionKind: r.declared } : {}),
  });
}

// Three days up to a few minutes ago, so "today" has parts; L1 with two stations and a shadow camera, L2 with one.
for (let i = 0; i < 360; i++) {
  const line = i % 3 === 2 ? 'L2' : 'L1';
  const partId = `P-${i}`;
  const t0 = now - 10 * 60_000 - Math.floor(rnd() * 3 * DAY);
  const s1Fail = rnd() < (line === 'L1' ? 0.08 : 0.25);
  add({ line, station: 'S1', partId, at: t0, fail: s1Fail });
  if (s1Fail) {
    if (rnd() < 0.5) add({ line, station: 'S1', partId, at: t0 + 2 * 60_000, fail: rnd() < 0.3 });
    else add({ line, station: 'S1', partId, at: t0 + 30 * 60_000, fail: false, declared: 'after-rework' });
  } else if (rnd() < 0.05) {
    add({ line, station: 'S1', partId, at: t0 + 60_000, fail: false, declared: 're-inspection' });
  }
  if (line === 'L1') {
    add({ line, station: 'S2', partId, at: t0 + 3 * 60_000, fail: rnd() < 0.05 });
    add({ line, station: 'S3', partId, at: t0 + 4 * 60_000, fail: rnd() < 0.3, shadow: true });
  }
}

// --- The independent computation, in SQL over the raw inspections. --------------------------------------------------

/** Units and first-pass good per line over inspections in [from, to): each part's first at each station. */
async function sqlFpyByLine(from: string, to: string): Promise<Map<string, { units: number; good: number }>> {
  const { rows } = await pool.query<{ line: string; units: string; good: string }>(
    `WITH candidates AS (
       SELECT line, station, part_id, result, inspected_at,
              row_number() OVER (PARTITION BY line, station, part_id ORDER BY inspected_at, event_id) AS nth
         FROM holdfast.inspection
        WHERE site = $1 AND mode = 'production'
          AND (declared_kind IS NULL OR declared_kind NOT IN ('after-rework', 're-inspection'))
     )
     SELECT line, count(*) AS units, count(*) FILTER (WHERE result = 'pass') AS good
       FROM candidates
      WHERE nth = 1 AND inspected_at >= $2 AND inspected_at < $3
      GROUP BY line`,
    [SITE, from, to],
  );
  return new Map(rows.map((r) => [r.line, { units: Number(r.units), good: Number(r.good) }]));
}

/** Defects per class over production inspections of every kind in [from, to), most first. */
async function sqlPareto(from: string, to: string): Promise<Array<{ defectClass: string; defects: number }>> {
  const { rows } = await pool.query<{ cls: string; n: string }>(
    `SELECT d->>'class' AS cls, count(*) AS n
       FROM holdfast.inspection i, jsonb_array_elements(i.defects) d
      WHERE i.site = $1 AND i.mode = 'production' AND i.inspected_at >= $2 AND i.inspected_at < $3
      GROUP BY 1 ORDER BY 2 DESC, 1`,
    [SITE, from, to],
  );
  return rows.map((r) => ({ defectClass: r.cls, defects: Number(r.n) }));
}

// --- The stack. ---------------------------------------------------------------------------------------------------

let rig: DashboardRig;
let pool: Pool;
let baseUrl: string;
let page: Page;
let token: string;
const scarIds: Record<string, string> = {};

/** The SCAR workflows' state as their query would answer: one response overdue since yesterday, one due tomorrow. */
const scarControl: SupplierControl = {
  startScar: () => Promise.reject(new Error('not started here')),
  recordResponse: () => Promise.reject(new Error('not here')),
  decide: () => Promise.reject(new Error('not here')),
  scarState: async (workflowId): Promise<ScarState | undefined> => {
    const supplier = workflowId.includes(SUPPLIER) ? SUPPLIER : SUPPLIER_ON_TIME;
    return {
      scarId: scarIds[supplier] ?? '',
      supplier,
      stage: 'awaiting-response',
      round: 1,
      reopened: 0,
      responseDue: new Date(supplier === SUPPLIER ? now - DAY : now + DAY).toISOString(),
      remindersSent: 0,
      escalated: false,
      responses: [],
      decisions: [],
      verification: { needed: 3, receipts: [] },
      notices: [],
    };
  },
};

async function api<T>(path: string): Promise<T> {
  const res = await fetch(`${baseUrl}${path}`, { headers: { authorization: token } });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

beforeAll(async () => {
  const base = loadConfig();
  const plant = base.sites[0]!;
  const config: HoldfastConfig = {
    ...base,
    sites: [
      {
        ...plant,
        id: SITE,
        timezone: 'UTC',
        shifts: [
          { id: 'A', start: '06:00', end: '14:00' },
          { id: 'B', start: '14:00', end: '22:00' },
          { id: 'C', start: '22:00', end: '06:00' },
        ],
        fpyTarget: 0.9,
        lines: plant.lines.map((l) => (l.id === 'L2' ? { ...l, fpyTarget: 0.8 } : { ...l, fpyTarget: undefined })),
      },
    ],
  };
  const gateway = new Proxy({} as WorkflowGateway, {
    get: (_, name) => () => Promise.reject(new Error(`the views must not start workflows (${String(name)})`)),
  });
  rig = await startDashboardRig({ config, gateway, suppliers: scarControl });
  ({ pool, baseUrl } = rig);
  await syncSiteShifts(pool, config);
  const signingKey = await testSigningKey();
  token = (await bearerFor({ username: `qm-${run}`, roles: ['quality-manager'], sites: [SITE] }, signingKey))
    .authorization;
  const engineer = await bearerFor({ username: `qe-${run}`, roles: ['quality-engineer'], sites: [SITE] }, signingKey);

  // Stored as ingest stores them, in batches: the aggregates' triggers count them.
  const ordered = [...records].sort((a, b) => a.inspectedAt.localeCompare(b.inspectedAt));
  for (let i = 0; i < ordered.length; i += 100) {
    await insertInspections(pool, ordered.slice(i, i + 100));
  }
  // A rule to draw as a chart.
  const put = await fetch(`${baseUrl}/v1/quality-rules/${SITE}/${RULE}`, {
    method: 'PUT',
    headers: { ...engineer, 'content-type': 'application/json' },
    body: JSON.stringify({
      line: 'L1',
      definition: { kind: 'fpy-below', threshold: 0.9, window: { parts: 50 } },
      reason: 'dashboard test',
      expectedVersion: 0,
    }),
  });
  if (!put.ok) throw new Error(`rule: HTTP ${put.status} ${await put.text()}`);
  // A trip of it at L1's latest inspection, as the evaluator records one (no evaluator runs here).
  const latest = records
    .filter((r) => r.line === 'L1' && r.mode === 'production')
    .reduce((a, b) => (a.inspectedAt > b.inspectedAt ? a : b));
  await pool.query(
    `INSERT INTO holdfast.quality_escalation (escalation_id, site, line, station, rule_id, version, kind, first_point,
                                              tripped_by, tripped_at, summary, evidence, work_order, lot_id, policy,
                                              workflow_id)
     VALUES ($1, $2, 'L1', NULL, $3, 1, 'fpy-below', $4, $4, $5, 'FPY below 90 % over 50 parts',
             '{"kind": "fpy-below"}', $6, $7, 'alert', $8)`,
    [
      ESCALATION,
      SITE,
      RULE,
      latest.eventId,
      latest.inspectedAt,
      latest.workOrder,
      latest.lotId,
      `quality-escalation-${ESCALATION}`,
    ],
  );
  // Receipts of two suppliers (one rejected of two for SUPPLIER) and an open SCAR each.
  const receipts = [
    { supplier: SUPPLIER, lot: `${run}-R1`, decision: 'rejected', inspected: 13, defective: 3 },
    { supplier: SUPPLIER, lot: `${run}-R2`, decision: 'accepted', inspected: 13, defective: 0 },
    { supplier: SUPPLIER_ON_TIME, lot: `${run}-R3`, decision: 'accepted', inspected: 13, defective: 0 },
  ];
  for (const r of receipts) {
    await pool.query(
      `INSERT INTO holdfast.incoming_receipt (site, lot_id, line, station, material, supplier, sample_size,
                                              acceptance_number, first_inspected_at, inspected, defective, defects,
                                              decision, decided_at, decided_recorded_at, dispatched_at)
       VALUES ($1, $2, 'L1', 'IN', 'STEEL-1', $3, 13, 0, $4, $5, $6, $7, $8, $4, now(), now())`,
      [
        SITE,
        r.lot,
        r.supplier,
        new Date(now - 2 * HOUR).toISOString(),
        r.inspected,
        r.defective,
        JSON.stringify(r.defective > 0 ? { crack: r.defective } : {}),
        r.decision,
      ],
    );
  }
  for (const supplier of [SUPPLIER, SUPPLIER_ON_TIME]) {
    const { rows } = await pool.query<{ id: string }>(
      `INSERT INTO holdfast.scar (supplier, workflow_id, trigger, request_key, reason, state)
       VALUES ($1, $2, 'threshold', $3, 'lots rejected at incoming inspection', 'awaiting-response')
       RETURNING id::text`,
      [supplier, `scar-${supplier}-${run}`, `threshold:${SITE}/${supplier}`],
    );
    scarIds[supplier] = rows[0]!.id;
  }

  page = await rig.signedInPage('quality-manager');
  watch(page);
}, 90_000);

afterAll(async () => {
  await pool?.query(`DELETE FROM holdfast.scar WHERE supplier IN ($1, $2)`, [SUPPLIER, SUPPLIER_ON_TIME]);
  await pool?.query(`DELETE FROM holdfast.quality_escalation WHERE escalation_id = $1`, [ESCALATION]);
  await rig?.close();
});

/** Script errors, policy refusals and failed reads on the pages of this file (reads cancelled by a redraw aside). */
const problems: string[] = [];
function watch(p: Page): Page {
  p.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(m.text());
  });
  p.on('pageerror', (e) => problems.push(e.message));
  p.on('requestfailed', (r) => {
    if (r.failure()?.errorText !== 'net::ERR_ABORTED') problems.push(`${r.url()} failed`);
  });
  p.on('response', (r) => {
    if (r.status() >= 400) problems.push(`${r.url()}: ${r.status()}`);
  });
  return p;
}

const today = () => new Date().toISOString().slice(0, 10);
const daysAgo = (n: number) => new Date(Date.now() - n * DAY).toISOString().slice(0, 10);

describe('Yield and defects', () => {
  let fpyUrl: URL;

  beforeAll(async () => {
    const asked = page.waitForResponse(
      (res) =>
        res.url().includes('/v1/metrics/fpy?') &&
        new URL(res.url()).searchParams.get('groupBy') === 'line' &&
        !new URL(res.url()).searchParams.has('bucket'),
    );
    await page.goto(`${baseUrl}/ui/yield?site=${SITE}&from=${daysAgo(3)}&to=${today()}`);
    fpyUrl = new URL((await asked).url());
    await page.locator('#fpy-by-line').waitFor();
  });

  test('each line shows the FPY the API answers and SQL over the raw inspections counts', async () => {
    const from = fpyUrl.searchParams.get('from')!;
    const to = fpyUrl.searchParams.get('to')!;
    const answer = await api<{
      rows: Array<{ group: { line: string }; units: number; firstPassGood: number; fpy: number }>;
    }>(fpyUrl.pathname + fpyUrl.search);
    const sql = await sqlFpyByLine(from, to);
    expect([...sql.keys()].sort()).toEqual(['L1', 'L2']);
    for (const line of ['L1', 'L2']) {
      const cell = page.locator(`[data-fpy-cell="period|${line}"]`);
      const shown = {
        units: Number(await cell.getAttribute('data-units')),
        good: Number(await cell.getAttribute('data-first-pass-good')),
        fpy: Number(await cell.getAttribute('data-fpy')),
        text: (await cell.textContent())!.trim(),
      };
      const row = answer.rows.find((r) => r.group.line === line)!;
      expect(shown.units).toBe(row.units);
      expect(shown.good).toBe(row.firstPassGood);
      expect(shown.fpy).toBe(row.fpy);
      expect(shown).toMatchObject({ units: sql.get(line)!.units, good: sql.get(line)!.good });
      expect(shown.text).toContain(`${((sql.get(line)!.good / sql.get(line)!.units) * 100).toFixed(1)} %`);
    }
    // The targets: L2 its own, L1 the site's, as /v1/me serves them from the configuration.
    const me = await api<{ sites: Array<{ id: string; fpyTarget?: number | null; lineFpyTargets?: object }> }>(
      '/v1/me',
    );
    expect(me.sites.find((x) => x.id === SITE)).toMatchObject({
      fpyTarget: 0.9,
      lineFpyTargets: { L1: 0.9, L2: 0.8, L3: 0.9 },
    });
    await expect(page.locator('#fpy-by-line tbody tr', { hasText: 'L2' }).first().textContent()).resolves.toContain(
      '80.0 %',
    );
    await expect(page.locator('#fpy-by-line tbody tr', { hasText: 'L1' }).first().textContent()).resolves.toContain(
      '90.0 %',
    );
    // A line links to the same view filtered by it.
    const link = await page.locator('#fpy-by-line a[data-line="L2"]').getAttribute('href');
    expect(new URL(link!, baseUrl).searchParams.get('line')).toBe('L2');
  });

  test("the Pareto's top class and its count equal SQL", async () => {
    const from = fpyUrl.searchParams.get('from')!;
    const to = fpyUrl.searchParams.get('to')!;
    const [top] = await sqlPareto(from, to);
    expect(top).toBeDefined();
    const first = page.locator('#pareto-table tbody tr').first();
    await expect(first.locator('[data-class]').getAttribute('data-class')).resolves.toBe(top!.defectClass);
    await expect(first.locator('[data-defects]').getAttribute('data-defects')).resolves.toBe(String(top!.defects));
  });

  test('new inspections refresh the figures live, a burst in one refresh', async () => {
    const cell = page.locator('[data-fpy-cell="period|L1"]');
    const before = Number(await cell.getAttribute('data-units'));
    let refreshes = 0;
    const count = (req: { url(): string }) => {
      const u = new URL(req.url());
      if (u.pathname === '/v1/metrics/fpy' && u.searchParams.get('groupBy') === 'line' && !u.searchParams.has('bucket'))
        refreshes += 1;
    };
    page.on('request', count);
    // Three statements in quick succession: 3 × 5 new L1 parts, each failing its first inspection at S1.
    const burst = Array.from({ length: 15 }, (_, i) => i);
    const startedAt = Date.now();
    for (const chunk of [burst.slice(0, 5), burst.slice(5, 10), burst.slice(10)]) {
      const at = Date.now() - 60_000;
      await insertInspections(
        pool,
        chunk.map((i) => ({
          ...records.find((r) => r.line === 'L1' && r.station === 'S1' && r.mode === 'production')!,
          eventId: `${run}-live-${i}`,
          partId: `P-live-${i}`,
          result: 'fail' as const,
          defects: [{ class: 'dent', score: 0.9 }],
          inspectedAt: new Date(at).toISOString(),
          payloadSha256: `sha-live-${i}`,
          inspectionKind: undefined,
        })),
      );
    }
    await eventually(
      'the page shows the 15 new parts',
      async () => Number(await cell.getAttribute('data-units')),
      (units) => units === before + 15,
      { timeoutMs: 10_000 },
    );
    const tookMs = Date.now() - startedAt;
    page.off('request', count);
    // Debounced: at least 2 s after the first event, and the burst read once (a later event may add one more).
    expect(tookMs).toBeGreaterThanOrEqual(2000);
    expect(refreshes).toBeGreaterThanOrEqual(1);
    expect(refreshes).toBeLessThanOrEqual(2);
  });

  test("the site's rule is drawn as a control chart, its trips counted", async () => {
    const section = page.locator(`[data-rule="${RULE}"]`);
    await section.waitFor();
    // Drawn (not an error): the chart, and the one trip in a table linking its escalation's workflow.
    await expect(section.locator(`[data-figure="rule-${RULE}-tripped"]`).textContent({ timeout: 5000 })).resolves.toBe(
      '1',
    );
    await expect(section.locator('canvas').count()).resolves.toBeGreaterThan(0);
    const link = section.locator(`a[data-escalation="${ESCALATION}"]`);
    await expect(link.getAttribute('href')).resolves.toContain(`/workflows/quality-escalation-${ESCALATION}`);
  });

  test('the heat map changes its rows through the URL', async () => {
    await page.locator('#heatmap-by').selectOption('shift');
    await page.waitForURL((u) => u.searchParams.get('by') === 'shift');
    await page
      .locator('#heatmap > div[data-by="shift"] #heatmap-table')
      .waitFor({ state: 'attached', timeout: 10_000 });
    const keys = await page.locator('#heatmap-table [data-key]').allTextContents();
    expect(keys.length).toBeGreaterThan(0);
    expect(new Set(keys).size).toBeLessThanOrEqual(3);
    for (const k of keys) expect(['A', 'B', 'C']).toContain(k);
    // The keyboard stays on the selector after the view is drawn again.
    await expect(page.evaluate('document.activeElement && document.activeElement.id')).resolves.toBe('heatmap-by');
    // The same URL opened afresh draws the same rows.
    await page.reload();
    await expect(page.locator('#heatmap-by').inputValue()).resolves.toBe('shift');
  });

  test('axe-core finds no serious or critical violation', async () => {
    await page.locator('#fpy-by-line').waitFor();
    expect(await seriousAccessibilityViolations(page)).toEqual([]);
    await screenshot(page, 'yield');
  });
});

describe('Supplier quality', () => {
  beforeAll(async () => {
    await page.goto(`${baseUrl}/ui/suppliers?site=${SITE}&from=${daysAgo(3)}&to=${today()}&supplier=${SUPPLIER}`);
    await page.locator('#scorecard-table').waitFor();
  });

  test('scorecards show, with the selected supplier in detail', async () => {
    await expect(page.locator(`#scorecard-table [data-supplier="${SUPPLIER}"]`).count()).resolves.toBe(1);
    await expect(page.locator(`#scorecard-table [data-supplier="${SUPPLIER_ON_TIME}"]`).count()).resolves.toBe(1);
    await expect(page.locator('#supplier-detail').getAttribute('data-supplier')).resolves.toBe(SUPPLIER);
    // One of two receipts rejected.
    await expect(page.locator('[data-figure="supplier-lot-rejection"]').textContent()).resolves.toBe('50.0 %');
  });

  test('open SCARs show their due dates, the late one marked overdue', async () => {
    const row = (supplier: string) => page.locator('#scars #scar-table tbody tr', { hasText: supplier });
    await expect(row(SUPPLIER).locator('[data-overdue]').getAttribute('data-overdue')).resolves.toBe('true');
    await expect(row(SUPPLIER).textContent()).resolves.toContain('(overdue)');
    await expect(row(SUPPLIER_ON_TIME).locator('[data-overdue]').getAttribute('data-overdue')).resolves.toBe('false');
  });

  test('axe-core finds no serious or critical violation', async () => {
    expect(await seriousAccessibilityViolations(page)).toEqual([]);
    await screenshot(page, 'suppliers');
  });
});

describe('both views', () => {
  test('on a tablet at the line they reflow without sideways scrolling', async () => {
    const tablet = watch(await rig.signedInPage('quality-manager', { width: 820, height: 1180 }));
    for (const [path, ready] of [
      [`yield?site=${SITE}`, '[data-figure="fpy-site"]'],
      [`suppliers?site=${SITE}&supplier=${SUPPLIER}`, '#supplier-detail'],
    ] as const) {
      await tablet.goto(`${baseUrl}/ui/${path}`);
      await tablet.locator(ready).waitFor();
      const overflow = await tablet.evaluate(
        'document.documentElement.scrollWidth - document.documentElement.clientWidth',
      );
      expect({ path, overflow }).toEqual({ path, overflow: 0 });
    }
    await tablet.close();
  });

  test('no script failed, no resource was refused and no read failed on any page of this file', () => {
    expect(problems).toEqual([]);
  });
});

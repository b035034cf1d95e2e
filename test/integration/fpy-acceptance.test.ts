/**
 * First-pass yield acceptance against real PostgreSQL (docs/analytics.md#first-pass-yield): a plant history in
 * America/Chicago with three shifts (the night shift across midnight) over both daylight-saving changes, with
 * failures that are re-inspected or reworked, producer-declared re-inspections, a shadow station, first inspections
 * that arrive after their re-inspections, re-sent events and a work order whose material arrives late, stored through
 * the ingest repository in batches. Every figure the metrics routes answer is checked against a computation written
 * here from the raw history, with its own shift calendar (Intl, not the product's SQL).
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import type { LotInput, MovementInput } from '../../activities/ports';
import { buildApp } from '../../api/app';
import { syncSiteShifts } from '../../infra/analytics/shift-calendar';
import { createAuditTrail } from '../../infra/audit/audit-trail';
import { loadConfig } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import { createPool } from '../../infra/db/pool';
import { lotKey, lotNode, workOrderNode } from '../../infra/genealogy/genealogy-keys';
import { type GenealogyStore, createGenealogyStore } from '../../infra/genealogy/genealogy-store';
import { type InspectionRecord, insertInspections } from '../../infra/ingest/inspection.repository';
import type { WorkflowGateway } from '../../infra/temporal/gateway';
import { bearerFor, testSigningKey } from '../support/identity';
import { readTestEnv } from '../support/test-env';

const run = randomUUID().replace(/-/g, '').slice(0, 8).toUpperCase();
const SITE = `FP${run}`;
const PLANT = `F${run.slice(0, 3)}`;
const ZONE = 'America/Chicago';
const source = { source: `fpy-acceptance-${run}` };

// ---------------------------------------------------------------------------------------------------------------
// The history: a deterministic generator (mulberry32), nothing from the product.

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
const rnd = prng(18);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;

type Kind = 'first' | 're-inspection' | 'after-rework';
interface Raw {
  eventId: string;
  line: string;
  station: string;
  partId: string;
  sku: string;
  workOrder: string;
  result: 'pass' | 'fail';
  defects: { class: string; score: number }[];
  at: number;
  shadow: boolean;
  declared?: Kind;
}

const CLASSES = ['scratch', 'dent', 'burr', 'crack', 'porosity'];
const WORK_ORDERS = [
  { id: `${run}-WOA`, sku: 'BRKT-200' },
  { id: `${run}-WOB`, sku: 'HSG-310' },
  { id: `${run}-WOC`, sku: 'BRKT-200' },
];
// Local noon before each change to 07:00 local the day after: the night shift across midnight, the change inside it.
const WINDOWS = [
  { from: Date.parse('2026-10-31T17:00:00Z'), to: Date.parse('2026-11-02T13:00:00Z') },
  { from: Date.parse('2027-03-13T18:00:00Z'), to: Date.parse('2027-03-15T12:00:00Z') },
];
const MIN = 60_000;

function defectsFor(result: 'pass' | 'fail') {
  if (result === 'pass') return [];
  const n = 1 + Math.floor(rnd() * 3);
  return Array.from({ length: n }, () => ({ class: pick(CLASSES), score: 0.5 + rnd() / 2 }));
}

const raws: Raw[] = [];
let seq = 0;
const add = (r: Omit<Raw, 'eventId' | 'defects'>) => {
  const eventId = `${run}-${String(seq++).padStart(5, '0')}`;
  raws.push({ ...r, eventId, defects: defectsFor(r.result) });
};

for (const [w, window] of WINDOWS.entries()) {
  const parts = 240;
  const step = (window.to - window.from) / parts;
  for (let i = 0; i < parts; i++) {
    const partId = `P${w}-${String(i).padStart(4, '0')}`;
    const wo = WORK_ORDERS[i % WORK_ORDERS.length]!;
    const line = i % 5 === 4 ? 'L2' : 'L1';
    const t0 = Math.round(window.from + i * step + rnd() * step * 0.5);
    const base = { line, partId, sku: wo.sku, workOrder: wo.id, shadow: false };
    // S1: first inspection; a failed part is re-inspected or reworked, some passed ones are checked again.
    const s1 = rnd() < 0.2 ? 'fail' : 'pass';
    add({ ...base, station: 'S1', result: s1, at: t0 });
    if (s1 === 'fail') {
      if (rnd() < 0.5) {
        add({ ...base, station: 'S1', result: rnd() < 0.6 ? 'pass' : 'fail', at: t0 + 3 * MIN });
      } else {
        add({
          ...base,
          station: 'S1',
          result: rnd() < 0.8 ? 'pass' : 'fail',
          at: t0 + 40 * MIN,
          declared: 'after-rework',
        });
      }
    } else if (rnd() < 0.06) {
      // The operator says it is a re-inspection: counted so, never first.
      add({ ...base, station: 'S1', result: 'pass', at: t0 + 2 * MIN, declared: 're-inspection' });
    }
    if (line === 'L1') {
      const s2 = rnd() < 0.1 ? 'fail' : 'pass';
      add({ ...base, station: 'S2', result: s2, at: t0 + 5 * MIN, ...(rnd() < 0.1 ? { declared: 'first' } : {}) });
      if (s2 === 'fail' && rnd() < 0.7) add({ ...base, station: 'S2', result: 'pass', at: t0 + 9 * MIN });
      // The camera under validation (shadow mode in temporal.yaml): counted apart, sometimes twice.
      add({ ...base, station: 'S3', result: rnd() < 0.15 ? 'fail' : 'pass', at: t0 + 6 * MIN, shadow: true });
      if (rnd() < 0.1) add({ ...base, station: 'S3', result: 'pass', at: t0 + 7 * MIN, shadow: true });
    }
  }
}

// Delivery: by inspection time in batches of 30, except that some first inspections arrive after their
// re-inspection (held back to a later batch), and a few events are sent twice.
const byPart = new Map<string, Raw[]>();
for (const r of raws) {
  const k = `${r.line}/${r.station}/${r.partId}/${r.shadow}`;
  byPart.set(k, [...(byPart.get(k) ?? []), r]);
}
const heldBack = new Set<string>();
for (const rows of byPart.values()) {
  const sorted = [...rows].sort((a, b) => a.at - b.at);
  if (sorted.length > 1 && !sorted[0]!.declared && rnd() < 0.35) heldBack.add(sorted[0]!.eventId);
}
const ordered = [...raws].sort((a, b) => a.at - b.at || (a.eventId < b.eventId ? -1 : 1));
const onTime = ordered.filter((r) => !heldBack.has(r.eventId));
const late = ordered.filter((r) => heldBack.has(r.eventId));
const batches: Raw[][] = [];
for (let i = 0; i < onTime.length; i += 30) batches.push(onTime.slice(i, i + 30));
// Half the late ones come in a batch of their own, the other half mixed into a batch with new events and re-sends.
batches.push(late.filter((_, i) => i % 2 === 0));
batches.push([...late.filter((_, i) => i % 2 === 1), ...ordered.filter((_, i) => i % 41 === 0)]);

// The material: WOA consumes supplier lot A1, WOB lots B1 and B2 of another supplier, WOC lot A2, whose consumption
// is recorded only after every inspection is stored.
const SUPPLIER_LOTS = [
  { batch: `${run}A1`, supplier: 'V-ALPHA', material: 'STEEL-1' },
  { batch: `${run}A2`, supplier: 'V-ALPHA', material: 'STEEL-1' },
  { batch: `${run}B1`, supplier: 'V-BETA', material: 'SEAL-2' },
  { batch: `${run}B2`, supplier: 'V-BETA', material: 'SEAL-2' },
];
const keyOfBatch = (b: string) => {
  const l = SUPPLIER_LOTS.find((s) => s.batch === b)!;
  return lotKey({ erp: { plant: PLANT, material: l.material, batch: l.batch } });
};
const CONSUMES: Record<string, string[]> = {
  [WORK_ORDERS[0]!.id]: [`${run}A1`],
  [WORK_ORDERS[1]!.id]: [`${run}B1`, `${run}B2`],
  [WORK_ORDERS[2]!.id]: [`${run}A2`],
};
const LATE_ORDER = WORK_ORDERS[2]!.id;

// ---------------------------------------------------------------------------------------------------------------
// The independent computation.

const localParts = new Intl.DateTimeFormat('en-CA', {
  timeZone: ZONE,
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  hourCycle: 'h23',
});

/** The shift and shift date of an instant: A 06–14, B 14–22, C 22–06 local, C before 06:00 dated the day before. */
function shiftOf(at: number): { shift: string; shiftDate: string } {
  const p = Object.fromEntries(localParts.formatToParts(new Date(at)).map((x) => [x.type, x.value]));
  const minutes = Number(p.hour) * 60 + Number(p.minute);
  const date = `${p.year}-${p.month}-${p.day}`;
  if (minutes >= 6 * 60 && minutes < 14 * 60) return { shift: 'A', shiftDate: date };
  if (minutes >= 14 * 60 && minutes < 22 * 60) return { shift: 'B', shiftDate: date };
  if (minutes >= 22 * 60) return { shift: 'C', shiftDate: date };
  const previous = new Date(Date.parse(`${date}T00:00:00Z`) - 86_400_000).toISOString().slice(0, 10);
  return { shift: 'C', shiftDate: previous };
}

/** Each event's kind: declared after-rework / re-inspection as said; else first by (time, event id) per part. */
const kindOf = new Map<string, Kind>();
for (const rows of byPart.values()) {
  const candidates = rows
    .filter((r) => r.declared !== 'after-rework' && r.declared !== 're-inspection')
    .sort((a, b) => a.at - b.at || (a.eventId < b.eventId ? -1 : 1));
  for (const r of rows) {
    kindOf.set(
      r.eventId,
      r.declared === 'after-rework' || r.declared === 're-inspection' ? r.declared : 're-inspection',
    );
  }
  if (candidates[0]) kindOf.set(candidates[0].eventId, 'first');
}

interface Enriched extends Raw {
  kind: Kind;
  shift: string;
  shiftDate: string;
  hour: string;
}
const history: Enriched[] = raws.map((r) => ({
  ...r,
  kind: kindOf.get(r.eventId)!,
  ...shiftOf(r.at),
  hour: new Date(Math.floor(r.at / 3_600_000) * 3_600_000).toISOString().replace('.000Z', 'Z'),
}));

type Dim = 'site' | 'line' | 'station' | 'sku' | 'workOrder' | 'shift' | 'shiftDate';
type Bucket = 'hour' | 'shift' | 'day' | 'week' | 'none';

function mondayOf(date: string): string {
  const d = new Date(`${date}T00:00:00Z`);
  return new Date(d.getTime() - ((d.getUTCDay() + 6) % 7) * 86_400_000).toISOString().slice(0, 10);
}
function bucketOf(r: Enriched, bucket: Bucket): string | null {
  switch (bucket) {
    case 'hour':
      return r.hour;
    case 'shift':
      return `${r.shiftDate}/${r.shift}`;
    case 'day':
      return r.shiftDate;
    case 'week':
      return mondayOf(r.shiftDate);
    case 'none':
      return null;
  }
}
const dimOf = (r: Enriched, d: Dim): string => (d === 'site' ? SITE : r[d]);

interface Filter {
  line?: string;
  station?: string;
  sku?: string;
  workOrder?: string;
  from?: string;
  to?: string;
}
const inFilter = (r: Enriched, f: Filter) =>
  (f.line === undefined || r.line === f.line) &&
  (f.station === undefined || r.station === f.station) &&
  (f.sku === undefined || r.sku === f.sku) &&
  (f.workOrder === undefined || r.workOrder === f.workOrder) &&
  (f.from === undefined || Date.parse(r.hour) >= Date.parse(f.from)) &&
  (f.to === undefined || Date.parse(r.hour) < Date.parse(f.to));

interface Figures {
  units: number;
  firstPassGood: number;
  fpy: number | null;
  reInspections: { inspections: number; passed: number };
  afterRework: { inspections: number; passed: number };
  shadow: { inspections: number; failed: number };
}
function figuresOf(rows: Enriched[]): Figures {
  const prod = rows.filter((r) => !r.shadow);
  const count = (k: Kind) => prod.filter((r) => r.kind === k);
  const firsts = count('first');
  const units = firsts.length;
  const firstPassGood = firsts.filter((r) => r.result === 'pass').length;
  return {
    units,
    firstPassGood,
    fpy: units === 0 ? null : firstPassGood / units,
    reInspections: {
      inspections: count('re-inspection').length,
      passed: count('re-inspection').filter((r) => r.result === 'pass').length,
    },
    afterRework: {
      inspections: count('after-rework').length,
      passed: count('after-rework').filter((r) => r.result === 'pass').length,
    },
    shadow: {
      inspections: rows.filter((r) => r.shadow).length,
      failed: rows.filter((r) => r.shadow && r.result === 'fail').length,
    },
  };
}

function groupRows<T>(rows: Enriched[], dims: Dim[], bucket: Bucket, f: (rows: Enriched[]) => T) {
  const groups = new Map<string, { group: Record<string, string>; bucket: string | null; rows: Enriched[] }>();
  for (const r of rows) {
    const group = Object.fromEntries(dims.map((d) => [d, dimOf(r, d)]));
    const b = bucketOf(r, bucket);
    const key = JSON.stringify([group, b]);
    const g = groups.get(key) ?? { group, bucket: b, rows: [] };
    g.rows.push(r);
    groups.set(key, g);
  }
  return new Map([...groups].map(([k, g]) => [k, { group: g.group, bucket: g.bucket, value: f(g.rows) }]));
}

function expectedFpy(dims: Dim[], bucket: Bucket, filter: Filter = {}) {
  const rows = history.filter((r) => inFilter(r, filter));
  return { rows: groupRows(rows, dims, bucket, figuresOf), total: figuresOf(rows) };
}

interface ParetoClass {
  defectClass: string;
  defects: number;
  parts: number;
  share: number;
  cumulativeShare: number;
}
function paretoOf(rows: Enriched[]): { defects: number; classes: ParetoClass[] } {
  const by = new Map<string, { defects: number; parts: number }>();
  for (const r of rows.filter((x) => !x.shadow)) {
    const seen = new Set<string>();
    for (const d of r.defects) {
      const c = by.get(d.class) ?? { defects: 0, parts: 0 };
      c.defects += 1;
      if (!seen.has(d.class)) c.parts += 1;
      seen.add(d.class);
      by.set(d.class, c);
    }
  }
  const total = [...by.values()].reduce((s, c) => s + c.defects, 0);
  let running = 0;
  const classes = [...by]
    .sort(([a, x], [b, y]) => y.defects - x.defects || (a < b ? -1 : 1))
    .map(([defectClass, c]) => {
      running += c.defects;
      return { defectClass, ...c, share: c.defects / total, cumulativeShare: running / total };
    });
  return { defects: total, classes };
}

// ---------------------------------------------------------------------------------------------------------------

let pool: Pool;
let store: GenealogyStore;
let config: HoldfastConfig;
let app: FastifyInstance;
let reader: { authorization: string };

async function get(url: string, headers = reader) {
  return app.inject({ method: 'GET', url, headers });
}

function record(r: Raw): InspectionRecord {
  return {
    eventId: r.eventId,
    site: SITE,
    line: r.line,
    station: r.station,
    partId: r.partId,
    sku: r.sku,
    lotId: `${r.workOrder}-LOT`,
    workOrder: r.workOrder,
    result: r.result,
    defects: r.defects,
    modelVersion: 'model@1',
    recipeVersion: 'recipe-1',
    inspectedAt: new Date(r.at).toISOString(),
    payloadSha256: `sha-${r.eventId}`,
    mode: r.shadow ? 'shadow' : 'production',
    ...(r.declared ? { inspectionKind: r.declared } : {}),
  };
}

function consumption(order: string): MovementInput[] {
  return CONSUMES[order]!.map((batch) => ({
    edgeKey: `${run}-consume-${order}-${batch}`,
    kind: 'consumed',
    from: lotNode(keyOfBatch(batch)),
    to: workOrderNode(SITE, order),
    occurredAt: '2026-10-30T12:00:00Z',
    site: SITE,
    sourceSystem: 'mes',
    document: `${run}-consume-${order}-${batch}`,
  }));
}

beforeAll(async () => {
  pool = createPool(readTestEnv().databaseUrl, { max: 4 });
  store = createGenealogyStore(createAuditTrail(pool));
  const base = loadConfig();
  config = {
    ...base,
    sites: [
      {
        ...base.sites[0]!,
        id: SITE,
        erpPlant: PLANT,
        timezone: ZONE,
        shifts: [
          { id: 'A', start: '06:00', end: '14:00' },
          { id: 'B', start: '14:00', end: '22:00' },
          { id: 'C', start: '22:00', end: '06:00' },
        ],
      },
    ],
  };
  expect(config.sites[0]!.lines.find((l) => l.id === 'L1')!.stations.find((s) => s.id === 'S3')!.mode).toBe('shadow');
  await syncSiteShifts(pool, config);
  const gateway = new Proxy({} as WorkflowGateway, {
    get: (_, name) => () => Promise.reject(new Error(`reads must not call the gateway (${String(name)})`)),
  });
  const signingKey = await testSigningKey();
  app = await buildApp({ signingKey, pool, gateway, config, namespace: 'test' });
  reader = await bearerFor({ username: `op-${run}`, roles: ['operator'], sites: [SITE] }, signingKey);

  const purchased: LotInput[] = SUPPLIER_LOTS.map((l) => ({
    lotKey: keyOfBatch(l.batch),
    site: SITE,
    material: l.material,
    origin: 'purchased',
    erp: { plant: PLANT, material: l.material, batch: l.batch },
    purchased: { supplier: l.supplier, supplierBatch: `SB-${l.batch}` },
    sourceSystem: 'erp',
    document: `gr-${l.batch}`,
  }));
  await store.recordLots(source, purchased);
  await store.recordMovements(source, [...consumption(WORK_ORDERS[0]!.id), ...consumption(WORK_ORDERS[1]!.id)]);

  for (const batch of batches) {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await insertInspections(client, batch.map(record));
      await client.query('COMMIT');
    } finally {
      client.release();
    }
  }
}, 60_000);

afterAll(async () => {
  await app?.close();
  await pool?.end();
});

/** Route rows as a map keyed like groupRows. */
function routeMap<T extends { group: Record<string, string | null>; bucket: string | null }>(rows: T[]) {
  return new Map(rows.map((r) => [JSON.stringify([r.group, r.bucket]), r]));
}

describe('first-pass yield, computed right', () => {
  test('the history has what the acceptance asks for', () => {
    const kinds = history.map((r) => r.kind);
    expect(kinds.filter((k) => k === 're-inspection').length).toBeGreaterThan(20);
    expect(kinds.filter((k) => k === 'after-rework').length).toBeGreaterThan(10);
    expect(heldBack.size).toBeGreaterThan(10);
    expect(history.filter((r) => r.shadow).length).toBeGreaterThan(50);
    // Night shifts that cross midnight and hold a clock change: 2026-10-31 C (fall back), 2027-03-13 C (spring).
    const night = (d: string) => history.filter((r) => r.shiftDate === d && r.shift === 'C');
    expect(night('2026-10-31').some((r) => r.at < Date.parse('2026-11-01T05:00:00Z'))).toBe(true); // before midnight
    expect(night('2026-10-31').some((r) => r.at >= Date.parse('2026-11-01T07:00:00Z'))).toBe(true); // after the change
    expect(night('2027-03-13').some((r) => r.at >= Date.parse('2027-03-14T08:00:00Z'))).toBe(true);
    // 22:00 CDT to 06:00 CST is nine hours; 22:00 CST to 06:00 CDT seven.
    const nightLength = (start: string, end: string) => (Date.parse(end) - Date.parse(start)) / 3_600_000;
    expect(shiftOf(Date.parse('2026-11-01T11:59:00Z'))).toEqual({ shift: 'C', shiftDate: '2026-10-31' });
    expect(shiftOf(Date.parse('2026-11-01T12:00:00Z'))).toEqual({ shift: 'A', shiftDate: '2026-11-01' });
    expect(nightLength('2026-11-01T03:00:00Z', '2026-11-01T12:00:00Z')).toBe(9);
    expect(shiftOf(Date.parse('2027-03-14T10:59:00Z'))).toEqual({ shift: 'C', shiftDate: '2027-03-13' });
    expect(shiftOf(Date.parse('2027-03-14T11:00:00Z'))).toEqual({ shift: 'A', shiftDate: '2027-03-14' });
  });

  test('each stored inspection carries the kind and shift the history says, the displaced firsts included', async () => {
    const { rows } = await pool.query<{
      event_id: string;
      inspection_kind: string;
      declared_kind: string | null;
      shift: string;
      shift_date: string;
    }>(
      `SELECT event_id, inspection_kind, declared_kind, shift, to_char(shift_date, 'YYYY-MM-DD') AS shift_date
         FROM holdfast.inspection WHERE site = $1`,
      [SITE],
    );
    expect(rows).toHaveLength(history.length);
    const stored = new Map(rows.map((r) => [r.event_id, r]));
    for (const h of history) {
      const s = stored.get(h.eventId)!;
      expect({ id: h.eventId, kind: s.inspection_kind, shift: s.shift, date: s.shift_date }).toEqual({
        id: h.eventId,
        kind: h.kind,
        shift: h.shift,
        date: h.shiftDate,
      });
      expect(s.declared_kind).toBe(h.declared ?? null);
    }
    // The late arrivals were counted first when they came, and the re-inspections stored before them moved.
    expect([...heldBack].every((id) => stored.get(id)!.inspection_kind === 'first')).toBe(true);
  });

  test.each<[string, Dim[], Bucket, Filter]>([
    ['line, station, shift date and shift', ['line', 'station', 'shiftDate', 'shift'], 'none', {}],
    ['work order and SKU per hour', ['workOrder', 'sku'], 'hour', {}],
    ['site per shift', ['site'], 'shift', {}],
    ['line per day', ['line'], 'day', {}],
    ['station per week', ['station'], 'week', {}],
    [
      'shift across the fall-back night, line L1',
      ['shift'],
      'hour',
      {
        line: 'L1',
        from: '2026-11-01T03:00:00Z',
        to: '2026-11-01T12:00:00Z',
      },
    ],
    ['one station and SKU, no grouping', [], 'none', { line: 'L1', station: 'S1', sku: 'BRKT-200' }],
    ['one work order by shift', ['shift', 'shiftDate'], 'none', { workOrder: WORK_ORDERS[1]!.id }],
  ])('GET /v1/metrics/fpy by %s: every figure equals the independent count', async (_, dims, bucket, filter) => {
    const qs = new URLSearchParams({ site: SITE, bucket, ...(dims.length ? { groupBy: dims.join(',') } : {}) });
    for (const [k, v] of Object.entries(filter)) qs.set(k, v as string);
    const res = await get(`/v1/metrics/fpy?${qs.toString()}`);
    expect(res.statusCode).toBe(200);
    const body = res.json<{
      rows: (Figures & { group: Record<string, string>; bucket: string | null })[];
      total: Figures;
    }>();
    const expected = expectedFpy(dims, bucket, filter);
    const got = routeMap(body.rows);
    expect([...got.keys()].sort()).toEqual([...expected.rows.keys()].sort());
    for (const [key, e] of expected.rows) {
      const { group, bucket: b, ...figures } = got.get(key)!;
      expect({ key, group, bucket: b, ...figures }).toEqual({ key, group: e.group, bucket: e.bucket, ...e.value });
    }
    expect(body.total).toEqual(expected.total);
    expect(body.total.units).toBeGreaterThan(0);
  });

  test.each<[string, Dim[], Bucket, Filter, Kind[] | undefined]>([
    ['line and shift', ['line', 'shift'], 'none', {}, undefined],
    ['site per shift, first inspections only', ['site'], 'shift', {}, ['first']],
    [
      'station per day, after rework and re-inspections',
      ['station'],
      'day',
      { line: 'L1' },
      ['after-rework', 're-inspection'],
    ],
  ])(
    'GET /v1/metrics/defects by %s: the Pareto equals the independent count',
    async (_, dims, bucket, filter, kinds) => {
      const qs = new URLSearchParams({ site: SITE, bucket, ...(dims.length ? { groupBy: dims.join(',') } : {}) });
      for (const [k, v] of Object.entries(filter)) qs.set(k, v as string);
      if (kinds) qs.set('inspectionKind', kinds.join(','));
      const res = await get(`/v1/metrics/defects?${qs.toString()}`);
      expect(res.statusCode).toBe(200);
      const body = res.json<{
        groups: { group: Record<string, string>; bucket: string | null; defects: number; classes: ParetoClass[] }[];
      }>();
      const rows = history.filter((r) => inFilter(r, filter) && (!kinds || kinds.includes(r.kind)));
      const expected = groupRows(rows, dims, bucket, paretoOf);
      for (const [k, e] of expected) if (e.value.defects === 0) expected.delete(k);
      const got = routeMap(body.groups);
      expect([...got.keys()].sort()).toEqual([...expected.keys()].sort());
      for (const [key, e] of expected) {
        const g = got.get(key)!;
        expect({ key, defects: g.defects }).toEqual({ key, defects: e.value.defects });
        expect(g.classes.map((c) => c.defectClass)).toEqual(e.value.classes.map((c) => c.defectClass));
        g.classes.forEach((c, i) => {
          const x = e.value.classes[i]!;
          expect({ key, ...c, share: c.share.toFixed(12), cumulativeShare: c.cumulativeShare.toFixed(12) }).toEqual({
            key,
            ...x,
            share: x.share.toFixed(12),
            cumulativeShare: x.cumulativeShare.toFixed(12),
          });
        });
        expect(g.classes.at(-1)!.cumulativeShare).toBeCloseTo(1, 12);
      }
    },
  );

  /** Per lot (or supplier) from the history: first inspections and defects of the parts of orders that consumed it. */
  function expectedLots(
    by: 'component-lot' | 'supplier-lot' | 'supplier',
    orders: string[],
    dims: ('shiftDate' | 'line')[],
  ) {
    const out = new Map<string, { units: number; firstPassGood: number; defects: number }>();
    for (const r of history.filter((x) => !x.shadow && orders.includes(x.workOrder))) {
      for (const batch of CONSUMES[r.workOrder]!) {
        const lot = SUPPLIER_LOTS.find((l) => l.batch === batch)!;
        const key = by === 'supplier' ? lot.supplier : keyOfBatch(batch);
        const k = JSON.stringify([key, Object.fromEntries(dims.map((d) => [d, r[d]]))]);
        const e = out.get(k) ?? { units: 0, firstPassGood: 0, defects: 0 };
        if (r.kind === 'first') {
          e.units += 1;
          if (r.result === 'pass') e.firstPassGood += 1;
        }
        e.defects += r.defects.length;
        out.set(k, e);
      }
    }
    return out;
  }

  async function lotRoute(by: string, groupBy: string[]) {
    const qs = new URLSearchParams({ site: SITE, by, ...(groupBy.length ? { groupBy: groupBy.join(',') } : {}) });
    const res = await get(`/v1/metrics/lot-quality?${qs.toString()}`);
    expect(res.statusCode).toBe(200);
    const rows = res.json<{
      rows: {
        key: string;
        group: Record<string, string>;
        units: number;
        firstPassGood: number;
        fpy: number | null;
        defects: number;
        supplier: string | null;
      }[];
    }>().rows;
    return new Map(rows.map((r) => [JSON.stringify([r.key, r.group]), r]));
  }

  function expectLots(got: Awaited<ReturnType<typeof lotRoute>>, expected: ReturnType<typeof expectedLots>) {
    expect([...got.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [k, e] of expected) {
      const g = got.get(k)!;
      expect({ k, units: g.units, firstPassGood: g.firstPassGood, defects: g.defects, fpy: g.fpy }).toEqual({
        k,
        ...e,
        fpy: e.units === 0 ? null : e.firstPassGood / e.units,
      });
    }
  }

  test('GET /v1/metrics/lot-quality counts the lots known at ingest, and the late order once its material arrives', async () => {
    const known = [WORK_ORDERS[0]!.id, WORK_ORDERS[1]!.id];
    expectLots(await lotRoute('component-lot', []), expectedLots('component-lot', known, []));
    expectLots(await lotRoute('supplier', ['shiftDate']), expectedLots('supplier', known, ['shiftDate']));

    // The late order's consumption: the genealogy store completes its inspections' context, and the lot counts follow.
    await store.recordMovements(source, consumption(LATE_ORDER));
    const all = WORK_ORDERS.map((w) => w.id);
    expectLots(await lotRoute('component-lot', []), expectedLots('component-lot', all, []));
    expectLots(
      await lotRoute('supplier-lot', ['line', 'shiftDate']),
      expectedLots('supplier-lot', all, ['line', 'shiftDate']),
    );
    const suppliers = await lotRoute('supplier', []);
    expectLots(suppliers, expectedLots('supplier', all, []));
    expect([...suppliers.values()].map((r) => r.supplier).sort()).toEqual(['V-ALPHA', 'V-BETA']);
  });

  /** The site's counts and the inspections' stamps, comparable across a recount. */
  const snapshot = async () => {
    const q = (sql: string) => pool.query(sql, [SITE]).then((r) => r.rows.map((x) => JSON.stringify(x)).sort());
    return [
      await q(`SELECT * FROM holdfast.quality_hourly WHERE site = $1
                AND units + reinspections + reworked + shadow_inspections <> 0`),
      await q(`SELECT * FROM holdfast.defect_hourly WHERE site = $1 AND parts <> 0`),
      await q(`SELECT * FROM holdfast.lot_quality_daily WHERE site = $1 AND (units <> 0 OR defects <> 0)`),
      await q(`SELECT event_id, inspection_kind, shift, shift_date FROM holdfast.inspection WHERE site = $1`),
    ];
  };

  test('holdfast.recount_quality rebuilds from the stored inspections exactly what the triggers kept', async () => {
    const kept = await snapshot();
    await pool.query(`SELECT holdfast.recount_quality($1)`, [SITE]);
    expect(await snapshot()).toEqual(kept);
  });

  test('inspections stored before the aggregates existed are counted at the first calendar sync, once', async () => {
    const kept = await snapshot();
    // The site as migration 0020 finds an older database: inspections unstamped, nothing counted, the site listed.
    const client = await pool.connect();
    try {
      await client.query(`SET session_replication_role = replica`); // no triggers on this connection
      await client.query(
        `UPDATE holdfast.inspection SET inspection_kind = NULL, shift = NULL, shift_date = NULL WHERE site = $1`,
        [SITE],
      );
      for (const table of ['station_part_first', 'quality_hourly', 'defect_hourly', 'work_order_lot']) {
        await client.query(`DELETE FROM holdfast.${table} WHERE site = $1`, [SITE]);
      }
      await client.query(`INSERT INTO holdfast.quality_recount_pending (site) VALUES ($1)`, [SITE]);
    } finally {
      await client.query(`RESET session_replication_role`);
      client.release();
    }
    expect((await snapshot())[0]).toEqual([]);

    await syncSiteShifts(pool, config);
    expect(await snapshot()).toEqual(kept);
    const pending = await pool.query(`SELECT 1 FROM holdfast.quality_recount_pending WHERE site = $1`, [SITE]);
    expect(pending.rowCount).toBe(0);
  });

  test('bad input is a 400 problem naming the field; another site’s reader is refused', async () => {
    const cases: [string, string][] = [
      [`/v1/metrics/fpy?site=${SITE}&from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z`, 'to'],
      [`/v1/metrics/fpy?site=${SITE}&groupBy=line,colour`, 'groupBy'],
      [`/v1/metrics/fpy?site=${SITE}&bucket=month`, 'bucket'],
      [`/v1/metrics/fpy?groupBy=line`, 'site'],
      [`/v1/metrics/defects?site=${SITE}&inspectionKind=second`, 'inspectionKind'],
      [`/v1/metrics/lot-quality?site=${SITE}&by=plant`, 'by'],
      [
        `/v1/metrics/lot-quality?site=${SITE}&by=supplier&fromShiftDate=2026-11-02&toShiftDate=2026-11-01`,
        'toShiftDate',
      ],
    ];
    for (const [url, field] of cases) {
      const res = await get(url);
      expect({ url, status: res.statusCode, type: res.headers['content-type'] }).toEqual({
        url,
        status: 400,
        type: expect.stringContaining('application/problem+json'),
      });
      expect({ url, body: JSON.stringify(res.json()) }).toEqual({ url, body: expect.stringContaining(field) });
    }
    const other = await bearerFor({ username: `op2-${run}`, roles: ['operator'], sites: ['ELSEWHERE'] });
    expect((await get(`/v1/metrics/fpy?site=${SITE}`, other)).statusCode).toBe(403);
    expect((await app.inject({ method: 'GET', url: `/v1/metrics/fpy?site=${SITE}` })).statusCode).toBe(401);
  });
});

/**
 * The plant behind bench:analytics: three sites in different time zones with their shift calendars (one shift across
 * midnight at each of two sites), ten lines of three to five stations (one line with a shadow camera), SKUs, work
 * orders that change a few times a shift, the purchased lots they consume (coil through an in-house blank, fasteners,
 * paint) and the inspections of every part at every station: about 3 % of inspections fail, the defect classes are
 * skewed and differ by line, some parts are re-inspected at once, some come back from rework, a few results arrive an
 * hour late, and supplier lots differ in quality (a few bad lots, one weaker supplier), so that every aggregate has
 * something to tell.
 *
 * Everything follows from the seed: the same options give the same plant, genealogy and inspections, whatever order
 * the sites' streams are read in (each site has a random stream of its own).
 */
import { createHash } from 'node:crypto';
import type { GenealogyFacts, LotInput, MovementInput } from '../activities/ports';
import { erpMovementKey, lotKey, lotNode, workOrderNode } from '../infra/genealogy/genealogy-keys';
import type { InspectionRecord } from '../infra/ingest/inspection.repository';
import type { DetectedDefect, StationMode } from '../workflows/contracts';

export interface PlantShift {
  id: string;
  start: string;
  end: string;
}

export interface PlantStation {
  id: string;
  mode: StationMode;
  /** This station's share of the line's fail rate (1 = the line's rate). */
  failFactor: number;
}

export interface PlantLine {
  id: string;
  stations: PlantStation[];
  skus: string[];
  /** Probability that a production station fails a part, before the SKU and material factors. */
  failRate: number;
  /** The defect class this line finds more often than others. */
  signatureClass: string;
  paint: boolean;
}

export interface PlantSite {
  id: string;
  timezone: string;
  erpPlant: string;
  shifts: PlantShift[];
  lines: PlantLine[];
}

/** Defect classes and their weights: a few classes make most defects (a Pareto worth drawing). */
export const DEFECT_CLASSES: readonly [string, number][] = [
  ['scratch', 38],
  ['dent', 20],
  ['burr', 13],
  ['crack', 9],
  ['porosity', 7],
  ['misalignment', 5],
  ['stain', 4],
  ['missing-feature', 2.5],
  ['contamination', 1.5],
];

const station = (id: string, failFactor = 1, mode: StationMode = 'production'): PlantStation => ({
  id,
  mode,
  failFactor,
});
const stations = (n: number): PlantStation[] =>
  Array.from({ length: n }, (_, i) => station(`S${i + 1}`, [1.2, 0.8, 1.0, 0.7, 1.3][i]));

export const PLANT_SITES: readonly PlantSite[] = [
  {
    id: 'DE1',
    timezone: 'Europe/Berlin',
    erpPlant: '1100',
    shifts: [
      { id: 'early', start: '06:00', end: '14:00' },
      { id: 'late', start: '14:00', end: '22:00' },
      { id: 'night', start: '22:00', end: '06:00' },
    ],
    lines: [
      {
        id: 'L1',
        stations: stations(3),
        skus: ['BRK-100', 'BRK-110'],
        failRate: 0.012,
        signatureClass: 'burr',
        paint: false,
      },
      {
        id: 'L2',
        stations: [...stations(4), station('S9', 1.5, 'shadow')],
        skus: ['BRK-200', 'BRK-210', 'BRK-220'],
        failRate: 0.015,
        signatureClass: 'scratch',
        paint: true,
      },
      {
        id: 'L3',
        stations: stations(5),
        skus: ['HSG-300', 'HSG-310'],
        failRate: 0.01,
        signatureClass: 'porosity',
        paint: true,
      },
      { id: 'L4', stations: stations(3), skus: ['HSG-400'], failRate: 0.019, signatureClass: 'dent', paint: false },
    ],
  },
  {
    id: 'US1',
    timezone: 'America/Chicago',
    erpPlant: '2100',
    shifts: [
      { id: 'A', start: '06:00', end: '14:30' },
      { id: 'B', start: '14:30', end: '23:00' },
      { id: 'C', start: '23:00', end: '06:00' },
    ],
    lines: [
      {
        id: 'L1',
        stations: stations(4),
        skus: ['BRK-100', 'BRK-500'],
        failRate: 0.014,
        signatureClass: 'crack',
        paint: true,
      },
      {
        id: 'L2',
        stations: stations(5),
        skus: ['HSG-300', 'HSG-510', 'HSG-520'],
        failRate: 0.011,
        signatureClass: 'dent',
        paint: false,
      },
      { id: 'L3', stations: stations(3), skus: ['BRK-530'], failRate: 0.017, signatureClass: 'stain', paint: true },
    ],
  },
  {
    id: 'CN1',
    timezone: 'Asia/Shanghai',
    erpPlant: '3100',
    shifts: [
      { id: 'day', start: '08:00', end: '20:00' },
      { id: 'night', start: '20:00', end: '08:00' },
    ],
    lines: [
      {
        id: 'L1',
        stations: stations(4),
        skus: ['BRK-100', 'BRK-600'],
        failRate: 0.013,
        signatureClass: 'misalignment',
        paint: false,
      },
      {
        id: 'L2',
        stations: stations(5),
        skus: ['HSG-610', 'HSG-620'],
        failRate: 0.012,
        signatureClass: 'scratch',
        paint: true,
      },
      {
        id: 'L3',
        stations: stations(3),
        skus: ['BRK-630', 'BRK-640'],
        failRate: 0.018,
        signatureClass: 'burr',
        paint: false,
      },
    ],
  },
];

/** Purchased materials, each from a few suppliers; one supplier of coil is weaker than the others. */
const PURCHASED: Record<'COIL' | 'FASTENER' | 'PAINT', { supplier: string; share: number; factor: number }[]> = {
  COIL: [
    { supplier: 'SUP-NORDSTAHL', share: 0.5, factor: 1 },
    { supplier: 'SUP-LAKESTEEL', share: 0.3, factor: 1.5 },
    { supplier: 'SUP-EASTMETAL', share: 0.2, factor: 0.9 },
  ],
  FASTENER: [
    { supplier: 'SUP-BOLTWERK', share: 0.7, factor: 1 },
    { supplier: 'SUP-FIXPRO', share: 0.3, factor: 1.1 },
  ],
  PAINT: [
    { supplier: 'SUP-COLORA', share: 0.6, factor: 1 },
    { supplier: 'SUP-PIGMENTA', share: 0.4, factor: 1.05 },
  ],
};
type Purchased = keyof typeof PURCHASED;

export const HOUR = 3_600_000;
const MINUTE = 60_000;

/** mulberry32: small, fast and seedable; one per site so that the sites' streams do not depend on each other. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const between = (random: () => number, lo: number, hi: number) => lo + random() * (hi - lo);

function weighted<T>(random: () => number, items: readonly T[], weight: (item: T) => number): T {
  const total = items.reduce((s, i) => s + weight(i), 0);
  let x = random() * total;
  for (const item of items) {
    x -= weight(item);
    if (x < 0) return item;
  }
  return items[items.length - 1]!;
}

interface MaterialLot {
  key: string;
  start: number;
  /** Defect factor this lot brings to parts made from it. */
  factor: number;
}

interface WorkOrder {
  id: string;
  sku: string;
  lotId: string;
  start: number;
  factor: number;
}

interface LineSchedule {
  site: PlantSite;
  line: PlantLine;
  orders: WorkOrder[];
}

export interface PlantOptions {
  seed: number;
  /** First instant of the history (UTC ms). */
  start: number;
  /** Days of history, and the days after it that the ingest measurements use. */
  days: number;
  horizonDays: number;
}

/** The last index whose start is at or before t, in an array sorted by start. */
function at<T extends { start: number }>(items: readonly T[], t: number): T {
  let lo = 0;
  let hi = items.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (items[mid]!.start <= t) lo = mid;
    else hi = mid - 1;
  }
  return items[lo]!;
}

/** Local wall-clock hour and weekday of a UTC instant in a time zone. */
function localClock(timezone: string): (t: number) => { hour: number; weekday: string } {
  const format = new Intl.DateTimeFormat('en-GB', {
    timeZone: timezone,
    hour: '2-digit',
    weekday: 'short',
    hourCycle: 'h23',
  });
  return (t) => {
    const parts = format.formatToParts(t);
    return {
      hour: Number(parts.find((p) => p.type === 'hour')!.value),
      weekday: parts.find((p) => p.type === 'weekday')!.value,
    };
  };
}

export interface Plant {
  sites: readonly PlantSite[];
  options: PlantOptions;
  /** Every purchased and in-house lot with the movements that consumed and made them, in pages for the store. */
  genealogyPages(pageSize: number): GenealogyFacts[];
  counts: {
    workOrders: number;
    purchasedLots: number;
    blankLots: number;
    suppliers: number;
    lines: number;
    stations: number;
  };
  /** Relative production volume of each UTC hour of a site (fewer parts at night and at the weekend). */
  hourWeight(site: PlantSite, hourStart: number): number;
  schedule(site: PlantSite, line: PlantLine): LineSchedule;
}

/** The plant, its work orders and its genealogy over the whole horizon. */
export function buildPlant(options: PlantOptions): Plant {
  const { start, horizonDays } = options;
  const end = start + horizonDays * 24 * HOUR;
  const random = seededRandom(options.seed * 31 + 7);
  const lots: LotInput[] = [];
  const movements: MovementInput[] = [];
  let documents = 0;
  const movement = (kind: MovementInput['kind'], from: string, to: string, t: number, site: string) => {
    const doc = String(4_900_000_000 + ++documents);
    movements.push({
      edgeKey: erpMovementKey('2026', doc, '0001'),
      kind,
      from,
      to,
      occurredAt: new Date(t).toISOString(),
      site,
      sourceSystem: 'erp',
      document: doc,
    });
  };

  const purchasedLots = new Map<string, MaterialLot[]>();
  const blanks = new Map<string, MaterialLot[]>();
  const schedules = new Map<string, LineSchedule>();
  for (const site of PLANT_SITES) {
    for (const material of Object.keys(PURCHASED) as Purchased[]) {
      const series: MaterialLot[] = [];
      let seq = 0;
      // Each material's lot in use changes every one to three days; the first was received before the history starts.
      for (let t = start - 24 * HOUR; t < end; t += between(random, 24, 72) * HOUR) {
        const source = weighted(random, PURCHASED[material], (s) => s.share);
        const batch = `${material.slice(0, 2)}${site.erpPlant}${String(++seq).padStart(4, '0')}`;
        const key = lotKey({ erp: { plant: site.erpPlant, material, batch } });
        // One lot in ten is bad: it makes parts fail two and a half times as often.
        const factor = source.factor * (random() < 0.1 ? 2.5 : 1);
        series.push({ key, start: t, factor });
        lots.push({
          lotKey: key,
          site: site.id,
          material,
          quantity: 1000,
          unit: 'PC',
          origin: 'purchased',
          erp: { plant: site.erpPlant, material, batch },
          purchased: { supplier: source.supplier, supplierBatch: `${source.supplier.slice(4, 8)}-${batch}` },
          sourceSystem: 'erp',
          document: `GR-${batch}`,
          occurredAt: new Date(t - 2 * HOUR).toISOString(),
        });
      }
      purchasedLots.set(`${site.id}/${material}`, series);
    }
    // In-house blanks: a press order every eight hours cuts the coil in use into a blank lot.
    const blankSeries: MaterialLot[] = [];
    let seq = 0;
    for (let t = start - 8 * HOUR; t < end; t += 8 * HOUR) {
      const coil = at(purchasedLots.get(`${site.id}/COIL`)!, t);
      const batch = `BL${site.erpPlant}${String(++seq).padStart(5, '0')}`;
      const key = lotKey({ erp: { plant: site.erpPlant, material: 'BLANK', batch } });
      const press = `${site.id}-PRESS-${String(seq).padStart(5, '0')}`;
      blankSeries.push({ key, start: t, factor: coil.factor });
      lots.push({
        lotKey: key,
        site: site.id,
        material: 'BLANK',
        origin: 'produced',
        erp: { plant: site.erpPlant, material: 'BLANK', batch },
        produced: { workOrder: press },
        sourceSystem: 'erp',
        document: `PR-${batch}`,
        occurredAt: new Date(t).toISOString(),
      });
      movement('consumed', lotNode(coil.key), workOrderNode(site.id, press), t, site.id);
      movement('produced', workOrderNode(site.id, press), lotNode(key), t, site.id);
    }
    blanks.set(site.id, blankSeries);

    for (const line of site.lines) {
      const orders: WorkOrder[] = [];
      let seq = 0;
      // A work order runs 1.5 to 4 hours: two to five of them a shift.
      for (let t = start - HOUR; t < end; t += between(random, 1.5, 4) * HOUR) {
        const id = `${site.id}-${line.id}-${String(++seq).padStart(5, '0')}`;
        const sku = weighted(random, line.skus, (s) => (s === line.skus[0] ? 3 : 1));
        const node = workOrderNode(site.id, id);
        const consumed = [
          at(blanks.get(site.id)!, t),
          at(purchasedLots.get(`${site.id}/FASTENER`)!, t),
          ...(line.paint ? [at(purchasedLots.get(`${site.id}/PAINT`)!, t)] : []),
        ];
        for (const lot of consumed) movement('consumed', lotNode(lot.key), node, t, site.id);
        const skuFactor = sku === line.skus[0] ? 1 : 1.15;
        orders.push({
          id,
          sku,
          lotId: `${id}-01`,
          start: t,
          factor: skuFactor * consumed.reduce((f, l) => f * l.factor, 1),
        });
      }
      schedules.set(`${site.id}/${line.id}`, { site, line, orders });
    }
  }

  const clocks = new Map(PLANT_SITES.map((s) => [s.id, localClock(s.timezone)]));
  const weights = new Map<string, number>();
  const suppliers = new Set(Object.values(PURCHASED).flatMap((list) => list.map((s) => s.supplier)));
  return {
    sites: PLANT_SITES,
    options,
    counts: {
      workOrders: [...schedules.values()].reduce((n, s) => n + s.orders.length, 0),
      purchasedLots: [...purchasedLots.values()].reduce((n, s) => n + s.length, 0),
      blankLots: [...blanks.values()].reduce((n, s) => n + s.length, 0),
      suppliers: suppliers.size,
      lines: PLANT_SITES.reduce((n, s) => n + s.lines.length, 0),
      stations: PLANT_SITES.reduce((n, s) => n + s.lines.reduce((m, l) => m + l.stations.length, 0), 0),
    },
    genealogyPages(pageSize) {
      // Lots first, so that every movement's lot is known when the movement arrives.
      const facts = [
        ...lots.map((l) => ({ lots: [l], movements: [] })),
        ...movements.map((m) => ({ lots: [], movements: [m] })),
      ];
      const pages: GenealogyFacts[] = [];
      for (let i = 0; i < facts.length; i += pageSize) {
        const slice = facts.slice(i, i + pageSize);
        pages.push({
          lots: slice.flatMap((f) => f.lots),
          movements: slice.flatMap((f) => f.movements),
          deliveries: [],
          parts: [],
        });
      }
      return pages;
    },
    hourWeight(site, hourStart) {
      const key = `${site.id}/${hourStart}`;
      let w = weights.get(key);
      if (w === undefined) {
        const { hour, weekday } = clocks.get(site.id)!(hourStart);
        w = (hour >= 22 || hour < 6 ? 0.65 : 1) * (weekday === 'Sun' ? 0.4 : weekday === 'Sat' ? 0.8 : 1);
        weights.set(key, w);
      }
      return w;
    },
    schedule(site, line) {
      return schedules.get(`${site.id}/${line.id}`)!;
    },
  };
}

/** An inspection as the benchmark stores it: `inspectionKind` is set where the producer says the part was reworked. */
export type PlantInspection = InspectionRecord;

export interface StreamOptions {
  /** Prepended to event and part ids: the same stream under another prefix is the same work on other parts. */
  prefix: string;
  seed: number;
  from: number;
  /** Parts entering each line per hour at weight 1 (PlantStream.partsPerHour). */
  partsPerHour: Map<string, number>;
}

/** Expected inspections per part on a line: every station once, plus re-inspections and rework returns. */
export function inspectionsPerPart(line: PlantLine): number {
  const production = line.stations.filter((s) => s.mode === 'production');
  const shadow = line.stations.length - production.length;
  return production.length * (1 + line.failRate * 1.15 + 0.004) + shadow;
}

/**
 * Parts per line and hour (at weight 1) so that `inspections` spread evenly over the lines fill `days` from `start`,
 * a little more so that the count is reached just before the end rather than just after it.
 */
export function partsPerHour(plant: Plant, inspections: number, start: number, days: number): Map<string, number> {
  const rates = new Map<string, number>();
  const perLine = inspections / plant.counts.lines;
  for (const site of plant.sites) {
    let weight = 0;
    for (let h = 0; h < days * 24; h++) weight += plant.hourWeight(site, start + h * HOUR);
    for (const line of site.lines)
      rates.set(`${site.id}/${line.id}`, (1.005 * perLine) / (weight * inspectionsPerPart(line)));
  }
  return rates;
}

/**
 * One site's inspections in the order they arrive, an hour at a time (each array is what reached ingest in one hour):
 * ordered by inspection time, except that one result in a thousand arrives an hour late.
 */
export function* siteInspections(plant: Plant, site: PlantSite, opts: StreamOptions): Generator<PlantInspection[]> {
  const siteIndex = plant.sites.indexOf(site);
  const random = seededRandom(opts.seed * 1_000_003 + siteIndex * 7919 + 1);
  let seq = 0;
  let pending: { t: number; rec: PlantInspection }[] = [];
  let late: PlantInspection[] = [];
  const partSeq = new Map<string, number>();

  const defects = (line: PlantLine, like?: string): DetectedDefect[] => {
    const pick = () =>
      like !== undefined && random() < 0.8
        ? like
        : random() < 0.25
          ? line.signatureClass
          : weighted(random, DEFECT_CLASSES, ([, w]) => w)[0];
    const first = pick();
    const found: DetectedDefect[] = [{ class: first, score: Math.round(between(random, 0.6, 0.99) * 1000) / 1000 }];
    if (random() < 0.12) {
      const second = weighted(random, DEFECT_CLASSES, ([, w]) => w)[0];
      if (second !== first) found.push({ class: second, score: Math.round(between(random, 0.5, 0.95) * 1000) / 1000 });
    }
    return found;
  };

  for (let hourStart = opts.from; ; hourStart += HOUR) {
    for (const line of site.lines) {
      const { orders } = plant.schedule(site, line);
      const rate = opts.partsPerHour.get(`${site.id}/${line.id}`)! * plant.hourWeight(site, hourStart);
      const parts = Math.floor(rate) + (random() < rate - Math.floor(rate) ? 1 : 0);
      const production = line.stations.filter((s) => s.mode === 'production');
      const shadow = line.stations.filter((s) => s.mode === 'shadow');
      for (let p = 0; p < parts; p++) {
        const enters = hourStart + random() * HOUR;
        const order = at(orders, enters);
        const n = (partSeq.get(line.id) ?? 0) + 1;
        partSeq.set(line.id, n);
        const partId = `${opts.prefix}${site.id}-${line.id}-${n.toString(36).padStart(6, '0')}`;
        const emit = (st: PlantStation, t: number, found: DetectedDefect[], kind?: 'after-rework'): PlantInspection => {
          const eventId = `${opts.prefix}${site.id}-${(++seq).toString(36).padStart(7, '0')}`;
          const result = found.length === 0 ? 'pass' : 'fail';
          const rec: PlantInspection = {
            eventId,
            site: site.id,
            line: line.id,
            station: st.id,
            partId,
            sku: order.sku,
            lotId: order.lotId,
            workOrder: order.id,
            result,
            defects: found,
            modelVersion: 'surface-2.4.0',
            recipeVersion: `${order.sku}@3`,
            inspectedAt: new Date(Math.floor(t)).toISOString(),
            payloadSha256: createHash('sha256').update(`${eventId}|${result}|${t}`).digest('hex'),
            mode: st.mode,
            ...(kind ? { inspectionKind: kind } : {}),
          };
          pending.push({ t, rec });
          return rec;
        };
        let t = enters;
        let scrapped = false;
        for (const st of production) {
          t += between(random, 60, 150) * 1000;
          const p = line.failRate * st.failFactor * order.factor;
          if (random() >= p) {
            emit(st, t, []);
            // An audit re-check of a good part now and then.
            if (random() < 0.004) emit(st, t + between(random, 2, 10) * MINUTE, []);
            continue;
          }
          const found = defects(line);
          emit(st, t, found);
          const next = random();
          let rework = next >= 0.35 && next < 0.8;
          if (next < 0.35) {
            // Re-inspected at once: often a false call.
            t += between(random, 30, 300) * 1000;
            const passed = random() < 0.55;
            emit(st, t, passed ? [] : defects(line, found[0]!.class));
            if (passed) continue;
            rework = random() < 0.5;
          }
          if (!rework) {
            scrapped = true;
            break;
          }
          t += between(random, 20, 180) * MINUTE;
          const repaired = random() < 0.85;
          emit(st, t, repaired ? [] : defects(line, found[0]!.class), 'after-rework');
          if (!repaired) {
            scrapped = true;
            break;
          }
        }
        if (!scrapped) {
          for (const st of shadow) {
            t += 60_000;
            emit(st, t, random() < line.failRate * st.failFactor ? defects(line) : []);
          }
        }
      }
    }
    // What was inspected before the end of this hour arrives now, in inspection order; one in a thousand an hour late.
    const until = hourStart + HOUR;
    const due = pending.filter((r) => r.t < until).sort((a, b) => a.t - b.t);
    pending = pending.filter((r) => r.t >= until);
    const arriving = late;
    late = [];
    for (const { rec } of due) (random() < 0.001 ? late : arriving).push(rec);
    yield arriving;
  }
}

import type { HistoryMaterialDocument, HistoryOutboundDelivery, HistoryStock } from '../sap-s4/history';
import type { MaterialActual, ProductionPerformanceEvent } from '../mes/production-event.schema';

/**
 * A seeded plant history for genealogy tests and benchmarks: supplier lots received on purchase orders, work orders
 * that consume lots and produce lots over three levels (components, sub-assemblies, finished goods), splits and
 * merges, serialised parts with inspections, and deliveries to customers. It yields the documents each system would
 * hold (SAP material documents, outbound deliveries and final stock; MES production events; the inspection bodies
 * `POST /v1/inspections` takes) and the ground truth to check every trace against, with the gaps put in on purpose.
 *
 * Deterministic: the same options give the same history, byte for byte (no clock, no Math.random). Lots and edges
 * are held in memory (about 100 bytes each); parts, inspections, documents and events are produced on demand, so a
 * million parts need no million objects.
 */

export interface PlantHistoryOptions {
  seed: number;
  /** Serialised parts over all produced lots (each produced lot holds at least one). */
  parts: number;
  /** Produced lots (components, sub-assemblies, finished), before splits and merges. */
  lots: number;
  supplierLots: number;
  /** Length of the history in days, from `start`. */
  days: number;
  /** ISO instant the history starts at; default 2026-01-05T00:00:00Z. */
  start?: string;
  site?: string;
  /** ERP plant (4 characters) and storage location of every batch. */
  erpPlant?: string;
  storageLocation?: string;
  /** Lines and their inspection stations; they must exist in temporal.yaml for the inspections to be taken. */
  lines?: { area: string; line: string; stations: string[] }[];
  /**
   * The first outbound delivery's number (default 80000001). Holdfast keys deliveries by number, unique in one ERP:
   * histories loaded into one genealogy (tests sharing a database) need ranges of their own.
   */
  firstDelivery?: number;
  /** Share of inspected parts that fail; default 0.01. */
  defectRate?: number;
  /**
   * Share of finished lots never shipped (still in stock at the history's end); default 0.05. A benchmark of
   * containment raises it, so that a recall finds a thousand lots still in the plant's hands.
   */
  unshippedShare?: number;
  /** Share of produced lots split in two or three; default 0.02. Merges: pairs of lots, share default 0.01. */
  splitRate?: number;
  mergeRate?: number;
  /** Gaps put in on purpose, each a count; all recorded in the ground truth's expectedGaps. */
  gaps?: Partial<Record<GapKind, number>>;
  /** MES events published out of order (moved later in the stream) and published twice, each a count. */
  outOfOrderEvents?: number;
  replayedEvents?: number;
}

export type GapKind =
  'batch-never-received' | 'lot-without-source' | 'part-without-inspection' | 'shipped-lot-will-be-held';

export type LotLevel = 'supplier' | 'component' | 'subassembly' | 'finished';
export type LotOrigin = 'receipt' | 'production' | 'split' | 'merge';

export interface TruthEdge {
  lotId: string;
  quantity: number;
  via: 'consumption' | 'split' | 'merge';
}

export interface TruthLot {
  lotId: string;
  material: string;
  level: LotLevel;
  origin: LotOrigin;
  quantity: number;
  unit: string;
  /** The work order that made it (for a split or merge, the work order of its source lot). */
  workOrder?: string;
  supplier?: string;
  purchaseOrder?: string;
  supplierBatch?: string;
  parents: TruthEdge[];
  children: TruthEdge[];
  deliveries: { delivery: string; item: string; quantity: number }[];
}

export interface ExpectedGap {
  kind: GapKind | 'event-out-of-order' | 'event-replayed';
  lotId?: string;
  partId?: string;
  eventId?: string;
  deliveries?: string[];
}

export interface GroundTruth {
  lots: TruthLot[];
  /** For each supplier lot, every finished lot it reached (through any path) and the deliveries that shipped them. */
  supplierReach: { supplierLot: string; finishedLots: string[]; deliveries: string[] }[];
  deliveries: { delivery: string; soldToParty: string; shipToParty: string; lots: string[] }[];
  expectedGaps: ExpectedGap[];
  counts: { parts: number; producedLots: number; supplierLots: number; deliveries: number; inspections: number };
}

export interface InspectionBody {
  eventId: string;
  site: string;
  line: string;
  station: string;
  partId: string;
  sku: string;
  lotId: string;
  workOrder: string;
  result: 'pass' | 'fail';
  defects: { class: string; score: number }[];
  modelVersion: string;
  recipeVersion: string;
  inspectedAt: string;
}

export interface PlantHistory {
  options: Required<Omit<PlantHistoryOptions, 'gaps'>> & { gaps: Record<GapKind, number> };
  groundTruth(): GroundTruth;
  /** SAP material documents in posting order (load them in this order: numbers then follow time). */
  materialDocuments(): Generator<HistoryMaterialDocument>;
  outboundDeliveries(): Generator<HistoryOutboundDelivery>;
  /** Unrestricted stock of every batch at the end (received, produced, split and merged batches). */
  stock(): HistoryStock[];
  /** MES events in publication order: time order, less the ones moved later, plus the replays. */
  productionEvents(): Generator<ProductionPerformanceEvent>;
  inspections(): Generator<InspectionBody>;
}

// --------------------------------------------------------------------------------------------------------------
// Seeded randomness

/** mulberry32: small, fast, good enough for test data; the whole history comes from one seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const mix = (seed: number, n: number) =>
  (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(n + 1, 0xc2b2ae35)) >>> 0;

// --------------------------------------------------------------------------------------------------------------
// The model, compact

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const LEVELS: LotLevel[] = ['supplier', 'component', 'subassembly', 'finished'];
const LOT_PREFIX = ['R', 'C', 'A', 'F'];
const MATERIAL_PREFIX = ['RM', 'CMP', 'SUB', 'FIN'];
const DEFECT_CLASSES = ['scratch', 'dent', 'crack', 'burr'];

interface Lot {
  id: string;
  level: number;
  material: string;
  origin: LotOrigin;
  quantity: number;
  unit: string;
  at: number;
  line: number;
  workOrder: string;
  /** Produced lots: their part serials are `${id}-${n}`, n = 1…parts. */
  parts: number;
  supplier?: string;
  purchaseOrder?: string;
  supplierBatch?: string;
  /** Indexes of edges into and out of the lot. */
  in: number[];
  out: number[];
  delivered: { delivery: number; item: number; quantity: number }[];
}

interface Edge {
  from: number;
  to: number;
  quantity: number;
  via: 'consumption' | 'split' | 'merge';
}

interface Delivery {
  number: string;
  soldTo: string;
  shipTo: string;
  at: number;
  items: { lot: number; quantity: number }[];
}

type EventRef = { kind: 'production' | 'split' | 'merge'; lot: number };

const pad = (n: number, width: number) => String(n).padStart(width, '0');

export function generatePlantHistory(input: PlantHistoryOptions): PlantHistory {
  const options = {
    start: '2026-01-05T00:00:00Z',
    site: 'PLANT1',
    erpPlant: '1010',
    storageLocation: '0001',
    lines: [
      { area: 'STAMPING', line: 'L1', stations: ['S1', 'S2'] },
      { area: 'STAMPING', line: 'L2', stations: ['S1'] },
      { area: 'ASSEMBLY', line: 'L3', stations: ['S1'] },
    ],
    firstDelivery: 80000001,
    defectRate: 0.01,
    unshippedShare: 0.05,
    splitRate: 0.02,
    mergeRate: 0.01,
    outOfOrderEvents: 0,
    replayedEvents: 0,
    ...input,
    gaps: {
      'batch-never-received': 0,
      'lot-without-source': 0,
      'part-without-inspection': 0,
      'shipped-lot-will-be-held': 0,
      ...input.gaps,
    },
  };
  const { seed, parts: totalParts, lots: producedLots, supplierLots, days } = options;
  if (!(producedLots >= 3)) throw new Error('plant history: lots must be at least 3');
  if (!(supplierLots >= 1)) throw new Error('plant history: supplier lots must be at least 1');
  if (!(totalParts >= producedLots)) throw new Error('plant history: parts must be at least lots (one part per lot)');
  if (!(days > 0)) throw new Error('plant history: days must be positive');
  const random = rng(seed);
  const between = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  const start = Date.parse(options.start);
  const span = days * DAY;

  const lots: Lot[] = [];
  const edges: Edge[] = [];
  const serial = [0, 0, 0, 0, 0];
  const newLot = (l: Omit<Lot, 'id' | 'in' | 'out' | 'delivered'>, prefix = LOT_PREFIX[l.level]!): number => {
    const kind = prefix === 'X' ? 4 : l.level;
    serial[kind] = serial[kind]! + 1;
    lots.push({ ...l, id: `${prefix}${pad(serial[kind], 7)}`, in: [], out: [], delivered: [] });
    return lots.length - 1;
  };
  const link = (from: number, to: number, quantity: number, via: Edge['via']) => {
    edges.push({ from, to, quantity, via });
    lots[from]!.out.push(edges.length - 1);
    lots[to]!.in.push(edges.length - 1);
  };

  // Materials per level, and which lower materials each one is made of (every lower material has a consumer).
  const lotsPerLevel = [supplierLots, 0, 0, 0];
  lotsPerLevel[1] = Math.max(1, Math.round(producedLots * 0.4));
  lotsPerLevel[2] = Math.max(1, Math.round(producedLots * 0.3));
  lotsPerLevel[3] = producedLots - lotsPerLevel[1] - lotsPerLevel[2];
  const materialCount = lotsPerLevel.map((n, level) =>
    Math.max(1, Math.min([60, 200, 150, 100][level]!, Math.round(n / [200, 400, 400, 300][level]!))),
  );
  const materials = materialCount.map((count, level) =>
    Array.from({ length: count }, (_, i) => `${MATERIAL_PREFIX[level]}-${pad(i + 1, 4)}`),
  );
  const materialIndex = new Map(materials.flatMap((names) => names.map((name, i) => [name, i] as const)));
  const inputs: number[][][] = [[]];
  for (let level = 1; level <= 3; level++) {
    const lower = materialCount[level - 1]!;
    const own = materialCount[level]!;
    const sets = Array.from({ length: own }, (_, j) => new Set<number>([j % lower]));
    for (let i = 0; i < lower; i++) sets[i % own]!.add(i);
    for (const set of sets) if (random() < 0.3) set.add(between(0, lower - 1));
    inputs.push(sets.map((set) => [...set].sort((a, b) => a - b)));
  }

  // Suppliers, purchase orders, customers.
  const suppliers = Array.from({ length: Math.max(2, Math.min(200, Math.round(supplierLots / 50))) }, (_, i) =>
    String(17300001 + i),
  );
  const customers = Array.from({ length: Math.max(3, Math.min(50, Math.round(producedLots / 2000))) }, (_, i) =>
    String(10000001 + i),
  );

  // Level 0: supplier lots, received over the first 60 % of the history.
  const byMaterial: number[][][] = [materials[0]!.map(() => [])];
  for (let i = 0; i < supplierLots; i++) {
    const material = i < materialCount[0]! ? i : between(0, materialCount[0]! - 1);
    const supplier = suppliers[material % suppliers.length]!;
    const lot = newLot({
      level: 0,
      material: materials[0]![material]!,
      origin: 'receipt',
      quantity: between(200, 2000),
      unit: 'KG',
      at: start + Math.floor(random() * span * 0.6),
      line: 0,
      workOrder: '',
      parts: 0,
      supplier,
      purchaseOrder: String(4500000001 + i),
      supplierBatch: `V${supplier.slice(-3)}-${pad(between(1, 999999), 6)}`,
    });
    byMaterial[0]![material]!.push(lot);
  }

  // Parts over the produced levels: each lot at least one, the rest by random weight.
  const partsPerLevel = [0, Math.round(totalParts * 0.4), Math.round(totalParts * 0.33), 0];
  partsPerLevel[3] = totalParts - partsPerLevel[1]! - partsPerLevel[2]!;
  const split = (total: number, n: number): number[] => {
    const weights = Array.from({ length: n }, () => 0.3 + random());
    const sum = weights.reduce((a, b) => a + b, 0);
    const extra = total - n;
    let given = 0;
    let cumulative = 0;
    return weights.map((w, i) => {
      cumulative += w;
      // The last share takes what float rounding left, so the shares add up exactly.
      const upTo = i === n - 1 ? extra : Math.floor((extra * cumulative) / sum);
      const share = upTo - given;
      given = upTo;
      return 1 + share;
    });
  };
  for (let level = 1; level <= 3; level++) {
    if (partsPerLevel[level]! < lotsPerLevel[level]!) partsPerLevel[level] = lotsPerLevel[level]!;
  }

  const events: EventRef[] = [];
  let workOrderNumber = 2000000;
  for (let level = 1; level <= 3; level++) {
    const count = lotsPerLevel[level]!;
    const quantities = split(partsPerLevel[level]!, count);
    const windowStart = start + span * (0.1 * level);
    const made: number[] = [];
    for (let i = 0; i < count; i++) {
      const material = i < materialCount[level]! ? i : between(0, materialCount[level]! - 1);
      const lot = newLot({
        level,
        material: materials[level]![material]!,
        origin: 'production',
        quantity: quantities[i]!,
        unit: 'PC',
        at: windowStart + Math.floor(random() * span * 0.6),
        line: between(0, options.lines.length - 1),
        workOrder: String(++workOrderNumber),
        parts: quantities[i]!,
      });
      made.push(lot);
    }
    made.sort((a, b) => lots[a]!.at - lots[b]!.at || a - b);
    const consumersOf: number[][] = materials[level - 1]!.map(() => []);
    for (const lot of made) {
      for (const m of inputs[level]![materialIndex.get(lots[lot]!.material)!]!) consumersOf[m]!.push(lot);
    }

    // Consumption: each input material's supply (lots in time order) is sliced among its consumers (in time order)
    // in proportion to what they make; a slice across two lots is fan-in, a lot across two slices fan-out.
    for (let m = 0; m < materialCount[level - 1]!; m++) {
      const supply = byMaterial[level - 1]![m]!;
      if (supply.length === 0) continue;
      supply.sort((a, b) => lots[a]!.at - lots[b]!.at || a - b);
      const consumers = consumersOf[m]!;
      if (consumers.length === 0) continue;
      const available = supply.reduce((sum, lot) => sum + lots[lot]!.quantity, 0);
      const usable = Math.max(Math.min(available, consumers.length), Math.floor(available * (0.85 + random() * 0.12)));
      if (usable < consumers.length) {
        throw new Error(`plant history: too few ${materials[level - 1]![m]} for its consumers; use more supplier lots`);
      }
      const demand = consumers.reduce((sum, lot) => sum + lots[lot]!.quantity, 0);
      let cursor = 0;
      let supplyIndex = 0;
      let usedOfSupply = 0;
      let cumulative = 0;
      for (const consumer of consumers) {
        cumulative += lots[consumer]!.quantity;
        const upTo = consumers.length + Math.floor(((usable - consumers.length) * cumulative) / demand);
        let need = upTo - cursor;
        cursor = upTo;
        let latest = 0;
        while (need > 0) {
          const source = supply[supplyIndex]!;
          const left = lots[source]!.quantity - usedOfSupply;
          const quantity = Math.min(left, need);
          link(source, consumer, quantity, 'consumption');
          latest = Math.max(latest, lots[source]!.at);
          need -= quantity;
          usedOfSupply += quantity;
          if (usedOfSupply === lots[source]!.quantity) {
            supplyIndex++;
            usedOfSupply = 0;
          }
        }
        // A work order starts after what it consumes was made.
        if (lots[consumer]!.at <= latest) lots[consumer]!.at = latest + between(1, 8) * HOUR;
      }
    }
    for (const lot of made) events.push({ kind: 'production', lot });

    // Splits and merges: the new lots take the place of their sources for the level above and for shipping.
    const terminal = new Set(made);
    const splitCount = Math.floor(count * options.splitRate);
    for (let k = 0; k < splitCount; k++) {
      const source = made[between(0, made.length - 1)]!;
      const src = lots[source]!;
      if (!terminal.has(source) || src.quantity < 2) continue;
      terminal.delete(source);
      const pieces = Math.min(src.quantity, between(2, 3));
      const sizes = split(src.quantity, pieces);
      for (const size of sizes) {
        const child = newLot(
          { ...src, origin: 'split', quantity: size, at: src.at + between(1, 4) * HOUR, parts: 0 },
          'X',
        );
        link(source, child, size, 'split');
        terminal.add(child);
        events.push({ kind: 'split', lot: child });
      }
    }
    const mergeCount = Math.floor(count * options.mergeRate);
    for (let k = 0; k < mergeCount; k++) {
      const a = made[between(0, made.length - 1)]!;
      const partner = made.find((b) => b !== a && terminal.has(b) && lots[b]!.material === lots[a]!.material);
      if (!terminal.has(a) || partner === undefined) continue;
      terminal.delete(a);
      terminal.delete(partner);
      const first = lots[a]!;
      const merged = newLot(
        {
          ...first,
          origin: 'merge',
          quantity: first.quantity + lots[partner]!.quantity,
          at: Math.max(first.at, lots[partner]!.at) + between(1, 4) * HOUR,
          parts: 0,
        },
        'X',
      );
      link(a, merged, first.quantity, 'merge');
      link(partner, merged, lots[partner]!.quantity, 'merge');
      terminal.add(merged);
      events.push({ kind: 'merge', lot: merged });
    }
    byMaterial[level] = materials[level]!.map(() => []);
    for (const lot of [...terminal].sort((a, b) => a - b)) {
      byMaterial[level]![materialIndex.get(lots[lot]!.material)!]!.push(lot);
    }
  }

  // Deliveries: finished lots in time order, one to four per delivery; some shipped in two parts, some not shipped.
  const shippable = byMaterial[3]!.flat().sort((a, b) => lots[a]!.at - lots[b]!.at || a - b);
  const deliveries: Delivery[] = [];
  let open: Delivery | undefined;
  for (const lot of shippable) {
    const l = lots[lot]!;
    const roll = random();
    if (roll < options.unshippedShare) continue;
    const portions =
      roll < options.unshippedShare + 0.1 && l.quantity >= 2
        ? [Math.floor(l.quantity / 2), l.quantity - Math.floor(l.quantity / 2)]
        : [l.quantity];
    for (const quantity of portions) {
      if (!open || open.items.length >= between(1, 4)) {
        const customer = customers[between(0, customers.length - 1)]!;
        open = {
          number: String(options.firstDelivery + deliveries.length),
          soldTo: customer,
          // Most customers receive at their own address; some at a separate ship-to party.
          shipTo: random() < 0.7 ? customer : String(20000001 + customers.indexOf(customer)),
          at: 0,
          items: [],
        };
        deliveries.push(open);
      }
      open.items.push({ lot, quantity });
      open.at = Math.max(open.at, l.at + between(24, 96) * HOUR);
      l.delivered.push({ delivery: deliveries.length - 1, item: open.items.length, quantity });
    }
  }

  // Gaps on purpose.
  const gaps: ExpectedGap[] = [];
  const pick = <T>(from: T[], n: number): T[] => {
    const chosen = new Set<number>();
    while (chosen.size < Math.min(n, from.length)) chosen.add(between(0, from.length - 1));
    return [...chosen].sort((a, b) => a - b).map((i) => from[i]!);
  };
  const receivedLots = lots.map((_, i) => i).filter((i) => lots[i]!.level === 0 && lots[i]!.out.length > 0);
  const unreceived = new Set(pick(receivedLots, options.gaps['batch-never-received']));
  for (const lot of unreceived) gaps.push({ kind: 'batch-never-received', lotId: lots[lot]!.id });
  const producedIndexes = lots.map((_, i) => i).filter((i) => lots[i]!.origin === 'production');
  const sourceless = new Set(pick(producedIndexes, options.gaps['lot-without-source']));
  for (const lot of sourceless) gaps.push({ kind: 'lot-without-source', lotId: lots[lot]!.id });
  const uninspected = new Set<string>();
  for (const lot of pick(producedIndexes, options.gaps['part-without-inspection'])) {
    const partId = `${lots[lot]!.id}-${pad(between(1, lots[lot]!.parts), 4)}`;
    if (uninspected.has(partId)) continue;
    uninspected.add(partId);
    gaps.push({ kind: 'part-without-inspection', lotId: lots[lot]!.id, partId });
  }
  const shippedFinished = producedIndexes.filter((i) => lots[i]!.level === 3 && lots[i]!.delivered.length > 0);
  const toHold = new Set(pick(shippedFinished, options.gaps['shipped-lot-will-be-held']));
  for (const lot of toHold) {
    gaps.push({
      kind: 'shipped-lot-will-be-held',
      lotId: lots[lot]!.id,
      deliveries: lots[lot]!.delivered.map((d) => deliveries[d.delivery]!.number),
    });
  }

  // MES publication order: by time, then some events moved later and some published twice.
  events.sort((a, b) => lots[a.lot]!.at - lots[b.lot]!.at || a.lot - b.lot);
  const eventId = (e: EventRef) => `PR-${lots[e.lot]!.id}`;
  const published: EventRef[] = [...events];
  for (let k = 0; k < Math.min(options.outOfOrderEvents, published.length - 1); k++) {
    const from = between(0, published.length - 2);
    const [moved] = published.splice(from, 1);
    const to = Math.min(published.length, from + between(1, 50));
    published.splice(to, 0, moved!);
    gaps.push({ kind: 'event-out-of-order', eventId: eventId(moved!) });
  }
  for (let k = 0; k < Math.min(options.replayedEvents, events.length); k++) {
    // A replay comes after the original: a publisher's retry, or a broker's redelivery.
    const original = between(0, published.length - 1);
    const replay = published[original]!;
    published.splice(between(original + 1, published.length), 0, replay);
    gaps.push({ kind: 'event-replayed', eventId: eventId(replay) });
  }

  const iso = (ms: number) => new Date(ms).toISOString();
  const odataDate = (ms: number) =>
    `/Date(${Date.UTC(new Date(ms).getUTCFullYear(), new Date(ms).getUTCMonth(), new Date(ms).getUTCDate())})/`;
  const scope = (lot: Lot) => {
    const line = options.lines[lot.line]!;
    return { site: options.site, area: line.area, line: line.line };
  };
  const sourceOf = (lot: Lot): Lot =>
    lot.origin === 'production' || lot.origin === 'receipt' ? lot : sourceOf(lots[edges[lot.in[0]!]!.from]!);
  const place = { Plant: options.erpPlant, StorageLocation: options.storageLocation };

  function groundTruth(): GroundTruth {
    const truthLots = lots.map((l): TruthLot => ({
      lotId: l.id,
      material: l.material,
      level: LEVELS[l.level]!,
      origin: l.origin,
      quantity: l.quantity,
      unit: l.unit,
      ...(l.level > 0 ? { workOrder: sourceOf(l).workOrder } : {}),
      ...(l.supplier ? { supplier: l.supplier, purchaseOrder: l.purchaseOrder!, supplierBatch: l.supplierBatch! } : {}),
      parents: l.in.map((e) => ({ lotId: lots[edges[e]!.from]!.id, quantity: edges[e]!.quantity, via: edges[e]!.via })),
      children: l.out.map((e) => ({ lotId: lots[edges[e]!.to]!.id, quantity: edges[e]!.quantity, via: edges[e]!.via })),
      deliveries: l.delivered.map((d) => ({
        delivery: deliveries[d.delivery]!.number,
        item: pad(d.item * 10, 6),
        quantity: d.quantity,
      })),
    }));
    // Reach by a walk from each supplier lot, with a stamp per walk instead of a fresh visited set.
    const stamp = new Int32Array(lots.length);
    const supplierReach = lots
      .map((l, index) => ({ l, index }))
      .filter(({ l }) => l.level === 0)
      .map(({ l, index }) => {
        const finished: string[] = [];
        const shipped = new Set<string>();
        const stack = [index];
        stamp[index] = index + 1;
        while (stack.length > 0) {
          const at = lots[stack.pop()!]!;
          if (at.level === 3) {
            finished.push(at.id);
            for (const d of at.delivered) shipped.add(deliveries[d.delivery]!.number);
          }
          for (const e of at.out) {
            const to = edges[e]!.to;
            if (stamp[to] !== index + 1) {
              stamp[to] = index + 1;
              stack.push(to);
            }
          }
        }
        return { supplierLot: l.id, finishedLots: finished.sort(), deliveries: [...shipped].sort() };
      });
    return {
      lots: truthLots,
      supplierReach,
      deliveries: deliveries.map((d) => ({
        delivery: d.number,
        soldToParty: d.soldTo,
        shipToParty: d.shipTo,
        lots: [...new Set(d.items.map((i) => lots[i.lot]!.id))],
      })),
      expectedGaps: gaps,
      counts: {
        parts: lots.reduce((sum, l) => sum + l.parts, 0),
        producedLots: producedIndexes.length,
        supplierLots,
        deliveries: deliveries.length,
        inspections: lots.reduce((sum, l) => sum + l.parts, 0) - uninspected.size,
      },
    };
  }

  function* materialDocuments(): Generator<HistoryMaterialDocument> {
    type Doc = { at: number; order: number; doc: HistoryMaterialDocument };
    const docs: Doc[] = [];
    const header = (at: number, code: string) => ({
      PostingDate: odataDate(at),
      DocumentDate: odataDate(at),
      GoodsMovementCode: code,
    });
    const created = (at: number) => iso(at + 10 * 60_000);
    lots.forEach((l, index) => {
      if (l.origin === 'receipt') {
        if (unreceived.has(index)) return;
        docs.push({
          at: l.at,
          order: index,
          doc: {
            createdAt: created(l.at),
            header: header(l.at, '01'),
            items: [
              {
                Material: l.material,
                ...place,
                Batch: l.id,
                GoodsMovementType: '101',
                QuantityInEntryUnit: String(l.quantity),
                EntryUnit: l.unit,
                Supplier: l.supplier!,
                PurchaseOrder: l.purchaseOrder!,
                PurchaseOrderItem: '00010',
                GoodsMovementRefDocType: 'B',
              },
            ],
          },
        });
      } else if (l.origin === 'production') {
        const issues = sourceless.has(index)
          ? []
          : l.in.map((e) => {
              const source = lots[edges[e]!.from]!;
              return {
                Material: source.material,
                ...place,
                Batch: source.id,
                GoodsMovementType: '261',
                QuantityInEntryUnit: String(edges[e]!.quantity),
                EntryUnit: source.unit,
                ManufacturingOrder: l.workOrder,
              };
            });
        if (issues.length > 0) {
          docs.push({
            at: l.at - HOUR,
            order: index,
            doc: { createdAt: created(l.at - HOUR), header: header(l.at - HOUR, '03'), items: issues },
          });
        }
        docs.push({
          at: l.at,
          order: index,
          doc: {
            createdAt: created(l.at),
            header: header(l.at, '02'),
            items: [
              {
                Material: l.material,
                ...place,
                Batch: l.id,
                GoodsMovementType: '101',
                QuantityInEntryUnit: String(l.quantity),
                EntryUnit: l.unit,
                ManufacturingOrder: l.workOrder,
                GoodsMovementRefDocType: 'F',
              },
            ],
          },
        });
      } else {
        // A split or merge is a batch-to-batch transfer posting (309): one item per source batch.
        docs.push({
          at: l.at,
          order: index,
          doc: {
            createdAt: created(l.at),
            header: header(l.at, '04'),
            items: l.in.map((e) => {
              const source = lots[edges[e]!.from]!;
              return {
                Material: source.material,
                ...place,
                Batch: source.id,
                GoodsMovementType: '309',
                QuantityInEntryUnit: String(edges[e]!.quantity),
                EntryUnit: source.unit,
                IssgOrRcvgMaterial: l.material,
                IssgOrRcvgBatch: l.id,
              };
            }),
          },
        });
      }
    });
    deliveries.forEach((d, index) => {
      docs.push({
        at: d.at,
        order: lots.length + index,
        doc: {
          createdAt: created(d.at),
          header: header(d.at, '01'),
          items: d.items.map((item, i) => ({
            Material: lots[item.lot]!.material,
            ...place,
            Batch: lots[item.lot]!.id,
            GoodsMovementType: '601',
            QuantityInEntryUnit: String(item.quantity),
            EntryUnit: lots[item.lot]!.unit,
            Delivery: d.number,
            DeliveryItem: pad((i + 1) * 10, 6),
            Customer: d.soldTo,
          })),
        },
      });
    });
    docs.sort((a, b) => a.at - b.at || a.order - b.order);
    for (const d of docs) yield d.doc;
  }

  function* outboundDeliveries(): Generator<HistoryOutboundDelivery> {
    for (const d of deliveries) {
      yield {
        createdAt: iso(d.at - DAY),
        header: {
          DeliveryDocument: d.number,
          DeliveryDocumentType: 'LF',
          SoldToParty: d.soldTo,
          ShipToParty: d.shipTo,
          ShippingPoint: options.erpPlant,
          DeliveryDate: odataDate(d.at + DAY),
          ActualGoodsMovementDate: odataDate(d.at),
        },
        items: d.items.map((item, i) => ({
          DeliveryDocumentItem: pad((i + 1) * 10, 6),
          Material: lots[item.lot]!.material,
          ...place,
          Batch: lots[item.lot]!.id,
          ActualDeliveryQuantity: String(item.quantity),
          DeliveryQuantityUnit: lots[item.lot]!.unit,
        })),
      };
    }
  }

  function stock(): HistoryStock[] {
    return lots.map((l, index) => {
      const left =
        l.quantity -
        l.out.reduce((sum, e) => sum + edges[e]!.quantity, 0) -
        l.delivered.reduce((sum, d) => sum + d.quantity, 0);
      return {
        material: l.material,
        plant: options.erpPlant,
        storageLocation: options.storageLocation,
        batch: l.id,
        quantity: left,
        unit: l.unit,
        ...(l.supplier && !unreceived.has(index)
          ? { receipt: { purchaseOrder: l.purchaseOrder!, purchaseOrderItem: '00010', supplier: l.supplier } }
          : {}),
      };
    });
  }

  function event(e: EventRef): ProductionPerformanceEvent {
    const l = lots[e.lot]!;
    const quantity = (n: number, unit: string) => ({ quantityString: String(n), unitOfMeasure: unit });
    const consumed: MaterialActual[] = sourceless.has(e.lot)
      ? []
      : l.in.map((edge) => {
          const source = lots[edges[edge]!.from]!;
          return {
            materialUse: 'Consumed',
            materialDefinitionId: source.material,
            materialLotId: source.id,
            quantity: quantity(edges[edge]!.quantity, source.unit),
            ...(source.supplierBatch ? { supplierLotId: source.supplierBatch } : {}),
          };
        });
    const serials = Array.from({ length: l.parts }, (_, i) => `${l.id}-${pad(i + 1, 4)}`);
    const produced: MaterialActual = {
      materialUse: 'Produced',
      materialDefinitionId: l.material,
      materialLotId: l.id,
      quantity: quantity(l.quantity, l.unit),
      ...(serials.length > 0 ? { materialSubLotIds: serials } : {}),
    };
    // A split is one event per new lot; it names its source as consumed with the quantity that moved.
    const started = e.kind === 'production' ? l.at - HOUR : l.at - 10 * 60_000;
    return {
      eventId: `PR-${l.id}`,
      eventType: e.kind,
      publishedDate: iso(l.at + 60_000),
      hierarchyScope: scope(l),
      productionRequestId: sourceOf(l).workOrder,
      segmentResponse: {
        id: `SR-${l.id}`,
        processSegmentId: e.kind === 'production' ? `MAKE-${l.material}` : e.kind.toUpperCase(),
        actualStartTime: iso(started),
        actualEndTime: iso(l.at),
        materialActuals: [...consumed, produced],
      },
    };
  }

  function* productionEvents(): Generator<ProductionPerformanceEvent> {
    for (const e of published) yield event(e);
  }

  function* inspections(): Generator<InspectionBody> {
    const held = new Set([...toHold].map((i) => lots[i]!.id));
    for (const [index, l] of lots.entries()) {
      if (l.parts === 0) continue;
      const line = options.lines[l.line]!;
      const partRandom = rng(mix(seed, index));
      const forcedFail = held.has(l.id) ? Math.floor(partRandom() * l.parts) + 1 : 0;
      for (let n = 1; n <= l.parts; n++) {
        const partId = `${l.id}-${pad(n, 4)}`;
        const roll = partRandom();
        const station = line.stations[Math.floor(partRandom() * line.stations.length)]!;
        if (uninspected.has(partId)) continue;
        const fail = n === forcedFail || roll < options.defectRate;
        yield {
          eventId: `insp-${partId}`,
          site: options.site,
          line: line.line,
          station,
          partId,
          sku: l.material,
          lotId: l.id,
          workOrder: l.workOrder,
          result: fail ? 'fail' : 'pass',
          defects: fail
            ? [{ class: DEFECT_CLASSES[Math.floor(roll * 1000) % DEFECT_CLASSES.length]!, score: 0.9 }]
            : [],
          modelVersion: 'vision-1.0.0',
          recipeVersion: `${l.material}@1`,
          inspectedAt: iso(l.at - HOUR + Math.floor((n / (l.parts + 1)) * HOUR)),
        };
      }
    }
  }

  return {
    options,
    groundTruth,
    materialDocuments,
    outboundDeliveries,
    stock,
    productionEvents,
    inspections,
  };
}

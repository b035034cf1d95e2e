import { createHash } from 'node:crypto';
import { generatePlantHistory, type PlantHistoryOptions } from '../../infra/simulators/plant-history/plant-history';
import { loadConfig } from '../../infra/config/load';
import { inspectionResultSchema } from '../../infra/ingest/inspection.schema';
import { ProductionPerformanceEvent } from '../../infra/simulators/mes/production-event.schema';

// The plant history generator: the same seed gives the same history, and its ground truth agrees with itself.
const OPTIONS: PlantHistoryOptions = {
  seed: 42,
  parts: 3000,
  lots: 300,
  supplierLots: 40,
  days: 60,
  gaps: {
    'batch-never-received': 2,
    'lot-without-source': 2,
    'part-without-inspection': 3,
    'shipped-lot-will-be-held': 2,
  },
  outOfOrderEvents: 4,
  replayedEvents: 3,
};

function digest(options: PlantHistoryOptions): string {
  const h = generatePlantHistory(options);
  const hash = createHash('sha256');
  hash.update(JSON.stringify(h.groundTruth()));
  for (const d of h.materialDocuments()) hash.update(JSON.stringify(d));
  for (const d of h.outboundDeliveries()) hash.update(JSON.stringify(d));
  hash.update(JSON.stringify(h.stock()));
  for (const e of h.productionEvents()) hash.update(JSON.stringify(e));
  for (const i of h.inspections()) hash.update(JSON.stringify(i));
  return hash.digest('hex');
}

test('the same seed gives the same history byte for byte; another seed another one', () => {
  expect(digest(OPTIONS)).toBe(digest(OPTIONS));
  expect(digest({ ...OPTIONS, seed: 43 })).not.toBe(digest(OPTIONS));
});

describe('ground truth', () => {
  const history = generatePlantHistory(OPTIONS);
  const truth = history.groundTruth();
  const byId = new Map(truth.lots.map((l) => [l.lotId, l]));

  test('has the lots, parts and levels asked for', () => {
    expect(truth.counts).toMatchObject({ parts: 3000, producedLots: 300, supplierLots: 40 });
    const levels = new Set(truth.lots.map((l) => l.level));
    expect([...levels].sort()).toEqual(['component', 'finished', 'subassembly', 'supplier']);
    expect(truth.lots.some((l) => l.origin === 'split')).toBe(true);
    expect(truth.lots.some((l) => l.origin === 'merge')).toBe(true);
  });

  test('every produced lot has its consumptions, from the level below, and no lot gives more than it has', () => {
    const below = { component: 'supplier', subassembly: 'component', finished: 'subassembly' } as const;
    for (const lot of truth.lots) {
      if (lot.origin === 'production') {
        expect(lot.parents.length).toBeGreaterThan(0);
        for (const p of lot.parents) {
          expect(p.via).toBe('consumption');
          expect(byId.get(p.lotId)!.level).toBe(below[lot.level as keyof typeof below]);
        }
      }
      const given =
        lot.children.reduce((s, c) => s + c.quantity, 0) + lot.deliveries.reduce((s, d) => s + d.quantity, 0);
      expect(given).toBeLessThanOrEqual(lot.quantity);
      // Parents and children are the two ends of the same edges.
      for (const c of lot.children) {
        expect(byId.get(c.lotId)!.parents).toContainEqual({ lotId: lot.lotId, quantity: c.quantity, via: c.via });
      }
    }
    // Fan-in and fan-out both happen.
    expect(truth.lots.some((l) => l.origin === 'production' && l.parents.length > 1)).toBe(true);
    expect(truth.lots.some((l) => l.children.filter((c) => c.via === 'consumption').length > 1)).toBe(true);
  });

  test('a split hands on its whole lot, and a merge holds the whole of its sources', () => {
    for (const lot of truth.lots) {
      const splits = lot.children.filter((c) => c.via === 'split');
      if (splits.length > 0) expect(splits.reduce((s, c) => s + c.quantity, 0)).toBe(lot.quantity);
      if (lot.origin === 'merge') {
        expect(lot.parents.length).toBe(2);
        expect(lot.parents.reduce((s, p) => s + p.quantity, 0)).toBe(lot.quantity);
        for (const p of lot.parents) expect(p.quantity).toBe(byId.get(p.lotId)!.quantity);
      }
    }
  });

  test('supplier reach is what a walk down the children finds', () => {
    for (const reach of truth.supplierReach.slice(0, 10)) {
      const seen = new Set<string>();
      const stack = [reach.supplierLot];
      while (stack.length > 0) {
        const lot = byId.get(stack.pop()!)!;
        for (const c of lot.children) if (!seen.has(c.lotId)) stack.push((seen.add(c.lotId), c.lotId));
      }
      const finished = [...seen].filter((id) => byId.get(id)!.level === 'finished').sort();
      expect(reach.finishedLots).toEqual(finished);
      const shipped = new Set(finished.flatMap((id) => byId.get(id)!.deliveries.map((d) => d.delivery)));
      expect(reach.deliveries).toEqual([...shipped].sort());
    }
    expect(truth.supplierReach.some((r) => r.deliveries.length > 0)).toBe(true);
  });

  test('the gaps put in are recorded and show in the documents, events and inspections', () => {
    const kinds = truth.expectedGaps.map((g) => g.kind);
    for (const [kind, count] of Object.entries(OPTIONS.gaps!)) {
      expect(kinds.filter((k) => k === kind)).toHaveLength(count);
    }
    expect(kinds.filter((k) => k === 'event-out-of-order')).toHaveLength(4);
    expect(kinds.filter((k) => k === 'event-replayed')).toHaveLength(3);

    const docs = [...history.materialDocuments()];
    const items = docs.flatMap((d) => d.items);
    const inspections = [...history.inspections()];
    const events = [...history.productionEvents()];
    for (const gap of truth.expectedGaps) {
      if (gap.kind === 'batch-never-received') {
        expect(items.filter((i) => i.Batch === gap.lotId && i.GoodsMovementType === '101')).toEqual([]);
        expect(items.some((i) => i.Batch === gap.lotId && i.GoodsMovementType === '261')).toBe(true);
      }
      if (gap.kind === 'lot-without-source') {
        const order = byId.get(gap.lotId!)!.workOrder;
        expect(items.filter((i) => i.ManufacturingOrder === order && i.GoodsMovementType === '261')).toEqual([]);
        const event = events.find((e) => e.eventId === `PR-${gap.lotId}`)!;
        expect(event.segmentResponse.materialActuals.every((m) => m.materialUse === 'Produced')).toBe(true);
      }
      if (gap.kind === 'part-without-inspection') {
        expect(inspections.filter((i) => i.partId === gap.partId)).toEqual([]);
      }
      if (gap.kind === 'shipped-lot-will-be-held') {
        expect(gap.deliveries!.length).toBeGreaterThan(0);
        expect(inspections.some((i) => i.lotId === gap.lotId && i.result === 'fail')).toBe(true);
      }
    }
    expect(inspections).toHaveLength(truth.counts.inspections);
    // Replays reuse the event id; every event matches the MES's published schema.
    expect(events.length).toBe(new Set(events.map((e) => e.eventId)).size + 3);
    for (const e of events) expect(ProductionPerformanceEvent.safeParse(e).success).toBe(true);
  });

  test('every produced part is a serial on its lot’s production event', () => {
    const events = [...history.productionEvents()].filter((e) => e.eventType === 'production');
    const serials = events.flatMap(
      (e) => e.segmentResponse.materialActuals.find((m) => m.materialUse === 'Produced')!.materialSubLotIds ?? [],
    );
    expect(new Set(serials).size).toBe(3000);
  });
});

test('every inspection is a body POST /v1/inspections takes for the configured plant', () => {
  const schema = inspectionResultSchema(loadConfig());
  const inspections = [...generatePlantHistory(OPTIONS).inspections()];
  const refused = inspections
    .map((body) => schema.safeParse(body))
    .filter((r) => !r.success)
    .map((r) => r.error.issues[0]);
  expect(refused).toEqual([]);
  const failed = inspections.filter((i) => i.result === 'fail').length / inspections.length;
  expect(failed).toBeGreaterThan(0.002);
  expect(failed).toBeLessThan(0.03);
});

test('refuses options it cannot honour, naming them', () => {
  expect(() => generatePlantHistory({ ...OPTIONS, parts: 10 })).toThrow(/parts must be at least lots/);
  expect(() => generatePlantHistory({ ...OPTIONS, days: 0 })).toThrow(/days/);
});

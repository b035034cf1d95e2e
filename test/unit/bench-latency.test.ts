/**
 * bench:latency's arithmetic, without timing: latency from the due instant, missing steps as failures, and the lots and
 * work orders its defects fall on.
 */
import { complete, latencyOutcome, type SentPart } from '../../bench/latency-report';
import { DEMO_PLANT_LINES, inspectionBody, planRun } from '../../bench/plant-data';
import { dueAt, latencyFromDue, latestOf, openLoop } from '../../bench/schedule';
import { percentiles } from '../../bench/stats';

describe('latency by the schedule', () => {
  it('counts from the due instant: a late send does not shorten the latency', () => {
    const t0 = Date.parse('2026-12-06T10:00:00Z');
    const due = dueAt(t0, 10, 20); // the 11th of 20/s: 500 ms after t0
    expect(due).toBe(t0 + 500);
    expect(dueAt(t0, 10, 20, 25)).toBe(t0 + 525);
    const sentLate = due + 300; // the generator got to it 300 ms late
    const holdAt = sentLate + 100; // the system then took 100 ms
    expect(latencyFromDue(due, holdAt)).toBe(400);
    expect(latencyFromDue(due, holdAt)).toBeGreaterThan(holdAt - sentLate);
    expect(latencyFromDue(due, undefined)).toBe(Infinity);
  });

  it('takes the last of several steps, and none when one is missing', () => {
    expect(latestOf(5, 9, 7)).toBe(9);
    expect(latestOf(5, undefined, 7)).toBeUndefined();
  });

  it('open loop: hands each call its due instant and records how late it started, without waiting for slow calls', async () => {
    const t0 = Date.now();
    const dues: number[] = [];
    let settled = 0;
    const { sendLagMs } = await openLoop(
      5,
      100,
      t0,
      async (i, due) => {
        dues.push(due);
        // Slower than the period: an open loop does not wait for it before the next call.
        await new Promise((r) => setTimeout(r, 50));
        settled += 1;
      },
      3,
    );
    expect(dues).toEqual([0, 1, 2, 3, 4].map((i) => t0 + 3 + i * 10));
    expect(settled).toBe(5);
    expect(sendLagMs).toHaveLength(5);
    sendLagMs.forEach((lag) => expect(lag).toBeGreaterThanOrEqual(0));
  });
});

describe('latencyOutcome', () => {
  const part = (i: number, lotId: string, dueMs: number): SentPart => ({
    eventId: `e${i}`,
    partId: `p${i}`,
    lotId,
    dueMs,
  });

  it('measures each lot from its first part, and each part to the last of its steps', () => {
    const parts = [part(1, 'A', 1000), part(2, 'A', 1100), part(3, 'B', 1200)];
    const outcome = latencyOutcome(parts, {
      holdAt: new Map([
        ['A', 1300],
        ['B', 1500],
      ]),
      qualityEventAt: new Map([
        ['p1', 1250],
        ['p2', 1400],
        ['p3', 1450],
      ]),
      containedAt: new Map([
        ['e1', 1600],
        ['e2', 1700],
        ['e3', 1550],
      ]),
    });
    expect(outcome.holdMs).toEqual([300, 300]);
    expect(outcome.allStepsMs).toEqual([600, 600, 350]);
    expect(outcome.missingHolds).toEqual([]);
    expect(complete(outcome)).toBe(true);
  });

  it('counts a lot whose hold never appeared as a failure: listed, and +Infinity in the percentiles', () => {
    const parts = Array.from({ length: 100 }, (_, i) => part(i, `L${i}`, 1000 + i));
    const holdAt = new Map(parts.filter((_, i) => i !== 42).map((p) => [p.lotId, p.dueMs + 50]));
    const outcome = latencyOutcome(parts, { holdAt, qualityEventAt: new Map(), containedAt: new Map() });
    expect(outcome.missingHolds).toEqual(['L42']);
    expect(outcome.holdMs).toHaveLength(100); // never left out
    expect(percentiles(outcome.holdMs).p99).toBe(50);
    expect(percentiles(outcome.holdMs).max).toBe(Infinity);
    // No quality events or containment recorded: every part misses all steps.
    expect(outcome.missingAllSteps).toHaveLength(100);
    expect(percentiles(outcome.allStepsMs).p50).toBe(Infinity);
    expect(complete(outcome)).toBe(false);
  });

  it('a part missing one step fails all steps even when its lot is held', () => {
    const parts = [part(1, 'A', 0), part(2, 'A', 10)];
    const outcome = latencyOutcome(parts, {
      holdAt: new Map([['A', 100]]),
      qualityEventAt: new Map([
        ['p1', 120],
        ['p2', 130],
      ]),
      containedAt: new Map([['e1', 150]]),
    });
    expect(outcome.missingHolds).toEqual([]);
    expect(outcome.missingAllSteps).toEqual(['e2']);
    expect(outcome.allStepsMs).toEqual([150, Infinity]);
  });
});

describe('planRun', () => {
  it('spreads lots over lines and fills a work order per line with lotsPerWorkOrder lots, then the next', () => {
    const plan = planRun({ tag: 'T1', defects: 300, partsPerLot: 1, lotsPerWorkOrder: 40 });
    expect(plan.lots).toHaveLength(300);
    expect(new Set(plan.lots.map((l) => l.lotId)).size).toBe(300);
    const lotsPerOrder = new Map<string, number>();
    for (const lot of plan.lots) {
      lotsPerOrder.set(lot.workOrder, (lotsPerOrder.get(lot.workOrder) ?? 0) + 1);
      expect(plan.workOrders.get(lot.workOrder)).toBe(lot.line);
      const line = DEMO_PLANT_LINES.find((l) => l.line === lot.line)!;
      expect(line.stations).toContain(lot.station);
      expect(lot.sku).toBe(line.sku);
      expect(lot.batch.length).toBeLessThanOrEqual(10);
    }
    // 100 lots per line: work orders of 40, 40 and 20 on each of the three lines.
    expect([...lotsPerOrder.values()].sort((a, b) => b - a)).toEqual([40, 40, 40, 40, 40, 40, 20, 20, 20]);
    expect(new Set(plan.lots.map((l) => l.batch)).size).toBe(300);
    // Both stations of line 1 are used.
    expect(new Set(plan.lots.filter((l) => l.line === 'L1').map((l) => l.station))).toEqual(new Set(['S1', 'S2']));
  });

  it('puts partsPerLot consecutive parts on each lot, every part with ids of its own', () => {
    const plan = planRun({ tag: 'T2', defects: 25, partsPerLot: 10, lotsPerWorkOrder: 40 });
    expect(plan.lots).toHaveLength(3);
    expect(plan.parts.map((p) => p.lot.lotId)).toEqual([
      ...Array(10).fill(plan.lots[0]!.lotId),
      ...Array(10).fill(plan.lots[1]!.lotId),
      ...Array(5).fill(plan.lots[2]!.lotId),
    ]);
    expect(new Set(plan.parts.map((p) => p.eventId)).size).toBe(25);
    expect(new Set(plan.parts.map((p) => p.partId)).size).toBe(25);
  });

  it('refuses a tag that would not fit SAP batch numbers or ids', () => {
    expect(() => planRun({ tag: 'T-1', defects: 1, partsPerLot: 1, lotsPerWorkOrder: 1 })).toThrow(
      /letters and digits/,
    );
    expect(() => planRun({ tag: 'LONGTAG', defects: 1, partsPerLot: 1, lotsPerWorkOrder: 1 })).toThrow(/batch/);
  });

  it('reports each inspection as captured at its due instant', () => {
    const [part] = planRun({ tag: 'T3', defects: 1, partsPerLot: 1, lotsPerWorkOrder: 40 }).parts;
    const body = inspectionBody(part!, Date.parse('2026-12-06T10:00:00.250Z'));
    expect(body.inspectedAt).toBe('2026-12-06T10:00:00.250Z');
    expect(body).toMatchObject({ lotId: part!.lot.lotId, workOrder: part!.lot.workOrder, result: 'fail' });
  });
});

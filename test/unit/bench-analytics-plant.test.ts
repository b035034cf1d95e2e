/**
 * The plant history bench:analytics loads: seeded, shaped as the issue asks (three time zones, shifts across midnight,
 * about 3 % of inspections failing with a skewed class mix, re-inspections and reworked parts at the same station,
 * late arrivals) and with every work order's material in the genealogy it writes.
 */
import { lotNode, workOrderNode } from '../../infra/genealogy/genealogy-keys';
import {
  buildPlant,
  HOUR,
  partsPerHour,
  siteInspections,
  type PlantInspection,
  type PlantSite,
} from '../../bench/analytics-plant';

const START = Date.parse('2026-09-01T00:00:00Z');
const DAYS = 10;

function take(site: PlantSite, n: number, seed = 1, prefix = 'h-'): PlantInspection[][] {
  const plant = buildPlant({ seed, start: START, days: DAYS, horizonDays: DAYS + 2 });
  const rates = partsPerHour(plant, 60_000, START, DAYS);
  const hours: PlantInspection[][] = [];
  let count = 0;
  for (const arriving of siteInspections(plant, site, { prefix, seed, from: START, partsPerHour: rates })) {
    hours.push(arriving);
    count += arriving.length;
    if (count >= n) break;
  }
  return hours;
}

const plant = buildPlant({ seed: 1, start: START, days: DAYS, horizonDays: DAYS + 2 });
const de1 = plant.sites.find((s) => s.id === 'DE1')!;

describe('bench:analytics plant', () => {
  it('has three sites in different time zones, ten lines, and a shift across midnight', () => {
    expect(new Set(plant.sites.map((s) => s.timezone)).size).toBe(3);
    expect(plant.counts.lines).toBe(10);
    const acrossMidnight = plant.sites.flatMap((s) => s.shifts.filter((sh) => sh.end <= sh.start));
    expect(acrossMidnight.length).toBeGreaterThanOrEqual(1);
  });

  it('gives the same inspections for the same seed and other ones for another seed', () => {
    const a = take(de1, 5000).flat();
    const b = take(de1, 5000).flat();
    const c = take(de1, 5000, 2).flat();
    expect(a.length).toBeGreaterThanOrEqual(5000);
    expect(b).toEqual(a);
    expect(c.map((r) => r.result)).not.toEqual(a.map((r) => r.result));
  });

  const hours = take(de1, 15_000);
  const all = hours.flat();
  const plantWide = [...all, ...plant.sites.filter((s) => s !== de1).flatMap((s) => take(s, 15_000).flat())];

  it('fails 2 to 5 % of inspections over the plant, the most frequent class several times the rarest', () => {
    const failed = plantWide.filter((r) => r.result === 'fail');
    expect(failed.length / plantWide.length).toBeGreaterThan(0.02);
    expect(failed.length / plantWide.length).toBeLessThan(0.05);
    expect(failed.every((r) => r.defects.length > 0)).toBe(true);
    expect(plantWide.filter((r) => r.result === 'pass').every((r) => r.defects.length === 0)).toBe(true);
    const byClass = new Map<string, number>();
    for (const r of failed) for (const d of r.defects) byClass.set(d.class, (byClass.get(d.class) ?? 0) + 1);
    const counts = [...byClass.values()].sort((x, y) => y - x);
    expect(counts[0]! / counts[counts.length - 1]!).toBeGreaterThan(5);
  });

  it('inspects some parts again at the same station, and reworked parts come back declared', () => {
    const seen = new Map<string, number>();
    for (const r of all) seen.set(`${r.partId}/${r.station}`, (seen.get(`${r.partId}/${r.station}`) ?? 0) + 1);
    const again = [...seen.values()].filter((n) => n > 1).length;
    expect(again).toBeGreaterThan(20);
    const reworked = all.filter((r) => r.inspectionKind === 'after-rework');
    expect(reworked.length).toBeGreaterThan(10);
    // Each reworked inspection follows an earlier failed one of the same part at the same station.
    const firstFail = new Map<string, number>();
    for (const r of all) {
      const key = `${r.partId}/${r.station}`;
      if (r.result === 'fail' && !firstFail.has(key)) firstFail.set(key, Date.parse(r.inspectedAt));
    }
    const explained = reworked.filter(
      (r) => (firstFail.get(`${r.partId}/${r.station}`) ?? Infinity) < Date.parse(r.inspectedAt),
    );
    expect(explained.length).toBe(reworked.length);
  });

  it('delivers each hour in inspection order, a few results an hour late, never early', () => {
    let late = 0;
    let early = 0;
    hours.forEach((arriving, h) => {
      const until = START + (h + 1) * HOUR;
      for (const r of arriving) {
        const t = Date.parse(r.inspectedAt);
        if (t >= until) early++;
        if (t < until - HOUR) late++;
      }
    });
    expect(early).toBe(0);
    expect(late).toBeGreaterThan(0);
    expect(late / all.length).toBeLessThan(0.005);
  });

  it('records a shadow station apart and never marks its results reworked', () => {
    const shadow = all.filter((r) => r.mode === 'shadow');
    expect(shadow.length).toBeGreaterThan(0);
    expect(new Set(shadow.map((r) => `${r.line}/${r.station}`))).toEqual(new Set(['L2/S9']));
  });

  it('states the material of every work order it inspects: consumed lots, and purchased lots with suppliers', () => {
    const pages = plant.genealogyPages(500);
    const lots = new Map(pages.flatMap((p) => p.lots).map((l) => [l.lotKey, l]));
    const consumedBy = new Map<string, string[]>();
    for (const m of pages.flatMap((p) => p.movements)) {
      if (m.kind === 'consumed') consumedBy.set(m.to, [...(consumedBy.get(m.to) ?? []), m.from]);
    }
    const orders = new Set(all.map((r) => workOrderNode(r.site, r.workOrder)));
    for (const order of orders) {
      const consumed = consumedBy.get(order) ?? [];
      expect(consumed.length).toBeGreaterThanOrEqual(2);
      for (const node of consumed) expect(lots.has(node.slice('lot:'.length))).toBe(true);
    }
    const purchased = [...lots.values()].filter((l) => l.origin === 'purchased');
    expect(purchased.every((l) => l.purchased?.supplier)).toBe(true);
    // Blanks are made in-house from a purchased coil: one level between a work order and that supplier lot.
    const blank = [...lots.values()].find((l) => l.material === 'BLANK')!;
    const press = workOrderNode(blank.site, blank.produced!.workOrder);
    const coil = consumedBy.get(press)![0]!;
    expect(lots.get(coil.slice('lot:'.length))?.origin).toBe('purchased');
    expect(lotNode(blank.lotKey)).toMatch(/^lot:erp:/);
  });
});

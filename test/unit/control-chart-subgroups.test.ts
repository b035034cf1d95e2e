/**
 * The dashboard's drawing of a p- or u-chart (chartSubgroups, docs/dashboard.md#control-charts): subgroups and limits
 * by hand for parts and time subgroups, the evaluator's boundaries kept where it closed subgroups, and, over seeded
 * random series, every subgroup the evaluator judged in a trip drawn with the very values it judged.
 */
import {
  type ChartDefinition,
  type ChartLimits,
  type PartPoint,
  type RuleState,
  type SubgroupPoint,
  chartSubgroups,
  evaluateRule,
} from '../../activities/quality-rules/rules';

const T0 = Date.parse('2026-03-01T06:00:00.000Z');
const LIMITS: ChartLimits = {
  centre: 0.1,
  baseline: { from: '2026-02-01T00:00:00Z', to: '2026-02-02T00:00:00Z', subgroups: 10, units: 50, count: 5 },
};

function part(i: number, nc: boolean, atMs = T0 + i * 1000, defects = nc ? 1 : 0): PartPoint {
  return {
    id: `E${String(i).padStart(5, '0')}`,
    at: new Date(atMs).toISOString(),
    station: 'S1',
    workOrder: 'WO1',
    lotId: 'LOT1',
    nonconforming: nc,
    defects: defects > 0 ? { scratch: defects } : {},
  };
}

describe('chartSubgroups', () => {
  const pChart: ChartDefinition = { kind: 'p-chart', subgroup: { parts: 4 }, runRules: [1, 2, 3, 4] };

  it('parts subgroups: each nth part closes one, with x, limits and z from its size; an unfinished one is left out', () => {
    const fails = [1, 0, 0, 0, 1, 1, 0, 0, 0, 0];
    const drawn = chartSubgroups(
      pChart,
      LIMITS,
      fails.map((f, i) => part(i, f === 1)),
    );
    // By hand: σ = √(0.1 × 0.9 ÷ 4) = 0.15; UCL = 0.1 + 0.45 = 0.55; LCL = max(0, 0.1 − 0.45) = 0.
    expect(drawn.map((g) => [g.key, g.n, g.count, g.x])).toEqual([
      ['E00000', 4, 1, 0.25],
      ['E00004', 4, 2, 0.5],
    ]);
    for (const g of drawn) {
      expect(g.sigma).toBeCloseTo(0.15, 12);
      expect(g.ucl).toBeCloseTo(0.55, 12);
      expect(g.lcl).toBe(0);
    }
    expect(drawn[1]!.z).toBeCloseTo((0.5 - 0.1) / 0.15, 12);
  });

  it('without limits: sizes and values only', () => {
    const drawn = chartSubgroups(
      pChart,
      null,
      [0, 1, 2, 3].map((i) => part(i, i === 0)),
    );
    expect(drawn).toHaveLength(1);
    expect(drawn[0]).toMatchObject({ n: 4, count: 1, x: 0.25 });
    expect(drawn[0]!.z).toBeUndefined();
  });

  it("keeps the evaluator's boundaries: a subgroup starts afresh at a known first part", () => {
    const parts = Array.from({ length: 12 }, (_, i) => part(i, false));
    const drawn = chartSubgroups(pChart, LIMITS, parts, { starts: new Set(['E00003']) });
    // E00000–E00002 never filled a subgroup before the evaluator's boundary at E00003.
    expect(drawn.map((g) => [g.firstId, g.lastId])).toEqual([
      ['E00003', 'E00006'],
      ['E00007', 'E00010'],
    ]);
  });

  it('time subgroups: UTC buckets; the last one only once its end is not after `until`', () => {
    const uChart: ChartDefinition = { kind: 'u-chart', subgroup: { seconds: 60 }, runRules: [1] };
    const parts = [
      part(0, true, T0 + 5_000, 2),
      part(1, false, T0 + 50_000),
      part(2, true, T0 + 61_000, 3),
      part(3, false, T0 + 130_000),
    ];
    const limits: ChartLimits = { ...LIMITS, centre: 0.5 };
    const open = chartSubgroups(uChart, limits, parts, { until: new Date(T0 + 150_000).toISOString() });
    expect(open.map((g) => [g.key, g.n, g.count, g.x])).toEqual([
      [new Date(T0).toISOString(), 2, 2, 1],
      [new Date(T0 + 60_000).toISOString(), 1, 3, 3],
    ]);
    // σ = √(ū ÷ n): √(0.5 ÷ 2) = 0.5 and √(0.5 ÷ 1).
    expect(open[0]!.sigma).toBeCloseTo(0.5, 12);
    expect(open[1]!.sigma).toBeCloseTo(Math.sqrt(0.5), 12);
    const ended = chartSubgroups(uChart, limits, parts, { until: new Date(T0 + 180_000).toISOString() });
    expect(ended.map((g) => g.n)).toEqual([2, 1, 1]);
  });

  it('draws every subgroup the evaluator judged in a trip with the values it judged (seeded random series)', () => {
    let seed = 11;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (const def of [
      pChart,
      { kind: 'u-chart', subgroup: { parts: 3 }, runRules: [1, 2, 3, 4] } as ChartDefinition,
      { kind: 'p-chart', subgroup: { seconds: 10 }, runRules: [1, 2, 3, 4] } as ChartDefinition,
    ]) {
      // Drifting quality so that every run rule gets its chance.
      const parts = Array.from({ length: 600 }, (_, i) => {
        const rate = i % 200 < 100 ? 0.05 : 0.3;
        const nc = random() < rate;
        return part(i, nc, T0 + i * 2_000, nc ? 1 + Math.floor(random() * 3) : 0);
      });
      let state: RuleState = {};
      const judged: SubgroupPoint[] = [];
      for (let i = 0; i < parts.length; i += 37) {
        const step = evaluateRule(def, LIMITS, state, parts.slice(i, i + 37));
        state = JSON.parse(JSON.stringify(step.state)) as RuleState;
        for (const t of step.trips) {
          if (t.evidence.kind === 'p-chart' || t.evidence.kind === 'u-chart') judged.push(...t.evidence.subgroups);
        }
      }
      expect(judged.length).toBeGreaterThan(5);
      const drawn = new Map(chartSubgroups(def, LIMITS, parts).map((g) => [g.key, g]));
      for (const g of judged) expect(drawn.get(g.key)).toEqual(g);
    }
  });
});

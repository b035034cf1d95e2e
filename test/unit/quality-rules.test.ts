/**
 * The escalation rules (docs/analytics.md#statistical-escalation), each against an independent implementation written
 * here from the rule's definition: recomputed from scratch over the parts since the last trip at every point, with no
 * state carried between points. Scripted series pin the edges (exactly N, window boundaries, varying subgroup sizes,
 * each Western Electric rule); seeded random series, fed in batches of varying size, check that the engine trips
 * exactly where the independent one does and nowhere else.
 */
import {
  type ChartLimits,
  type PartPoint,
  type RuleDefinition,
  type RuleState,
  type RunRule,
  baselineLimits,
  emptyState,
  evaluateRule,
} from '../../activities/quality-rules/rules';
import { decideBatch, escalationIdOf } from '../../activities/quality-rules/quality-rules.activities';

const T0 = Date.parse('2026-03-01T06:00:00.000Z');

function part(i: number, opts: { nc?: boolean; defects?: Record<string, number>; atMs?: number } = {}): PartPoint {
  return {
    id: `E${String(i).padStart(5, '0')}`,
    at: new Date(opts.atMs ?? T0 + i * 1000).toISOString(),
    station: 'S1',
    workOrder: 'WO1',
    lotId: 'LOT1',
    nonconforming: opts.nc ?? false,
    defects: opts.defects ?? (opts.nc ? { scratch: 1 } : {}),
  };
}

/** Feeds the series in batches of the given sizes (cycled), as the evaluator does across passes; the trip indices. */
function engineTrips(
  def: RuleDefinition,
  limits: ChartLimits | null,
  points: readonly PartPoint[],
  batches: readonly number[] = [1],
): { index: number; firstPoint: string }[] {
  let state: RuleState = emptyState();
  const out: { index: number; firstPoint: string }[] = [];
  const indexOf = new Map(points.map((p, i) => [p.id, i]));
  for (let i = 0, b = 0; i < points.length; b += 1) {
    const size = batches[b % batches.length]!;
    const step = evaluateRule(def, limits, state, points.slice(i, i + size));
    // Persisted between passes as JSON, like the evaluator's state row.
    state = JSON.parse(JSON.stringify(step.state)) as RuleState;
    for (const t of step.trips) out.push({ index: indexOf.get(t.trippedBy)!, firstPoint: t.firstPoint });
    i += size;
  }
  return out;
}

// The independent implementation -----------------------------------------------------------------------------------

const ms = (p: PartPoint) => Date.parse(p.at);
const classCount = (p: PartPoint, c: string) => p.defects[c] ?? 0;
const allDefects = (p: PartPoint) => Object.values(p.defects).reduce((a, b) => a + b, 0);

/** The parts a window holds over `since` (the parts since the last trip, the newest last). */
function windowOf(w: { parts: number } | { seconds: number }, since: PartPoint[]): PartPoint[] {
  if ('parts' in w) return since.slice(-w.parts);
  const latest = Math.max(...since.map(ms));
  return since.filter((p) => ms(p) > latest - w.seconds * 1000);
}

interface Subgroup {
  first: PartPoint;
  n: number;
  c: number;
}

/** Subgroups closed by each part, from scratch: which subgroup (if any) the part at index i completes. */
function subgroupsClosedAt(def: Extract<RuleDefinition, { kind: 'p-chart' | 'u-chart' }>, points: PartPoint[]) {
  const closedAt = new Map<number, Subgroup>();
  const value = (p: PartPoint) => (def.kind === 'p-chart' ? (p.nonconforming ? 1 : 0) : allDefects(p));
  if ('parts' in def.subgroup) {
    const k = def.subgroup.parts;
    for (let end = k - 1; end < points.length; end += k) {
      const g = points.slice(end - k + 1, end + 1);
      closedAt.set(end, { first: g[0]!, n: g.length, c: g.reduce((a, p) => a + value(p), 0) });
    }
    return closedAt;
  }
  const size = def.subgroup.seconds * 1000;
  const bucket = (p: PartPoint) => Math.floor(ms(p) / size);
  // The open bucket is the newest bucket seen; a part of an older bucket is left out; a newer one closes it.
  let open: number | undefined;
  let members: PartPoint[] = [];
  points.forEach((p, i) => {
    const b = bucket(p);
    if (open === undefined) {
      open = b;
      members = [p];
    } else if (b === open) members.push(p);
    else if (b > open) {
      closedAt.set(i, { first: members[0]!, n: members.length, c: members.reduce((a, q) => a + value(q), 0) });
      open = b;
      members = [p];
    }
  });
  return closedAt;
}

function zOf(kind: 'p-chart' | 'u-chart', centre: number, g: Subgroup): number {
  const sd = kind === 'p-chart' ? Math.sqrt((centre * (1 - centre)) / g.n) : Math.sqrt(centre / g.n);
  const x = g.c / g.n;
  if (sd === 0) return x === centre ? 0 : x > centre ? 1e6 : -1e6;
  return (x - centre) / sd;
}

function weRule(rule: RunRule, zs: number[]): boolean {
  const tail = (k: number) => zs.slice(Math.max(0, zs.length - k));
  const side = (xs: number[], beyond: number, need: number) =>
    xs.filter((z) => z > beyond).length >= need || xs.filter((z) => z < -beyond).length >= need;
  switch (rule) {
    case 1:
      return Math.abs(zs[zs.length - 1]!) > 3;
    case 2:
      return side(tail(3), 2, 2);
    case 3:
      return side(tail(5), 1, 4);
    case 4:
      return zs.length >= 8 && (tail(8).every((z) => z > 0) || tail(8).every((z) => z < 0));
  }
}

/** Where the rule trips, recomputing its condition from the parts (or subgroups) since the last trip at each point. */
function independentTrips(def: RuleDefinition, limits: ChartLimits | null, points: PartPoint[]): number[] {
  const trips: number[] = [];
  if (def.kind === 'p-chart' || def.kind === 'u-chart') {
    if (!limits) return trips;
    const closed = subgroupsClosedAt(def, points);
    let zs: number[] = [];
    points.forEach((_, i) => {
      const g = closed.get(i);
      if (!g) return;
      zs.push(zOf(def.kind, limits.centre, g));
      if (def.runRules.some((r) => weRule(r, zs))) {
        trips.push(i);
        zs = [];
      }
    });
    return trips;
  }
  const rule = def as Exclude<RuleDefinition, { kind: 'p-chart' | 'u-chart' }>;
  let start = 0;
  points.forEach((_, i) => {
    const since = points.slice(start, i + 1);
    let hit = false;
    if (rule.kind === 'consecutive-nc') {
      hit = since.length >= rule.count && since.slice(-rule.count).every((p) => p.nonconforming);
    } else if (rule.kind === 'defect-class-window') {
      hit = windowOf(rule.window, since).reduce((a, p) => a + classCount(p, rule.defectClass), 0) >= rule.defects;
    } else {
      const w = windowOf(rule.window, since);
      const enough = 'parts' in rule.window ? w.length >= rule.window.parts : w.length >= (rule.minParts ?? 1);
      hit = enough && w.filter((p) => !p.nonconforming).length / w.length < rule.threshold;
    }
    if (hit) {
      trips.push(i);
      start = i + 1;
    }
  });
  return trips;
}

/** Mulberry32: a small seeded generator, so a failing series can be reproduced from its seed. */
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomSeries(seed: number, length: number, opts: { pNc: number; jitterMs?: number; gapMs?: number }) {
  const r = rng(seed);
  let t = T0;
  return Array.from({ length }, (_, i) => {
    t += 1 + Math.floor(r() * (opts.gapMs ?? 2000));
    const nc = r() < opts.pNc;
    const defects: Record<string, number> = {};
    if (nc) defects[r() < 0.6 ? 'scratch' : 'dent'] = 1 + Math.floor(r() * 2);
    if (!nc && r() < 0.05) defects.scratch = 1; // a cosmetic defect on a conforming part
    const jitter = opts.jitterMs ? Math.floor((r() - 0.7) * opts.jitterMs) : 0;
    return part(i, { nc, defects, atMs: t + jitter });
  });
}

const limitsOf = (centre: number): ChartLimits => ({
  centre,
  baseline: { from: '2026-02-01T00:00:00Z', to: '2026-02-02T00:00:00Z', subgroups: 20, units: 2000, count: 0 },
});

// Scripted series --------------------------------------------------------------------------------------------------

describe('N consecutive nonconforming parts', () => {
  const def: RuleDefinition = { kind: 'consecutive-nc', count: 3 };

  it('trips on exactly the Nth nonconforming part in a row, naming the run’s first part, and not before', () => {
    const pts = [part(0), part(1, { nc: true }), part(2, { nc: true }), part(3, { nc: true }), part(4)];
    expect(engineTrips(def, null, pts.slice(0, 3))).toEqual([]);
    expect(engineTrips(def, null, pts)).toEqual([{ index: 3, firstPoint: 'E00001' }]);
  });

  it('a conforming part breaks the run; after a trip the run starts afresh (N more needed)', () => {
    const nc = (i: number) => part(i, { nc: true });
    const pts = [nc(0), nc(1), part(2), nc(3), nc(4), nc(5), nc(6), nc(7), nc(8), nc(9)];
    expect(engineTrips(def, null, pts)).toEqual([
      { index: 5, firstPoint: 'E00003' },
      { index: 8, firstPoint: 'E00006' },
    ]);
  });

  it('keeps its evidence: the N parts, in order', () => {
    const pts = [0, 1, 2].map((i) => part(i, { nc: true }));
    const { trips } = evaluateRule(def, null, emptyState(), pts);
    expect(trips).toHaveLength(1);
    expect(trips[0]!.evidence).toEqual({ kind: 'consecutive-nc', count: 3, points: pts });
  });
});

describe('k defects of a class within a window', () => {
  it('parts window: the kth defect within the last W parts trips; one outside the window does not count', () => {
    const def: RuleDefinition = {
      kind: 'defect-class-window',
      defectClass: 'scratch',
      defects: 2,
      window: { parts: 3 },
    };
    const s = (i: number) => part(i, { nc: true, defects: { scratch: 1 } });
    const d = (i: number) => part(i, { nc: true, defects: { dent: 5 } });
    // scratches at 0 and 3: three parts apart, so never two within a window of 3; 3 and 5 are.
    const pts = [s(0), part(1), d(2), s(3), part(4), s(5)];
    expect(engineTrips(def, null, pts.slice(0, 5))).toEqual([]);
    expect(engineTrips(def, null, pts)).toEqual([{ index: 5, firstPoint: 'E00003' }]);
  });

  it('time window: a defect exactly `seconds` before the latest is outside; a millisecond later is inside', () => {
    const def: RuleDefinition = {
      kind: 'defect-class-window',
      defectClass: 'scratch',
      defects: 2,
      window: { seconds: 60 },
    };
    const at = (i: number, msOff: number) => part(i, { nc: true, defects: { scratch: 1 }, atMs: T0 + msOff });
    expect(engineTrips(def, null, [at(0, 0), at(1, 60_000)])).toEqual([]);
    expect(engineTrips(def, null, [at(0, 1), at(1, 60_000)])).toEqual([{ index: 1, firstPoint: 'E00000' }]);
  });

  it('counts the defects, not the parts: one part with k defects of the class trips alone', () => {
    const def: RuleDefinition = {
      kind: 'defect-class-window',
      defectClass: 'scratch',
      defects: 3,
      window: { parts: 10 },
    };
    expect(engineTrips(def, null, [part(0), part(1, { nc: true, defects: { scratch: 3 } })])).toEqual([
      { index: 1, firstPoint: 'E00001' },
    ]);
  });
});

describe('FPY below a threshold over a window', () => {
  it('parts window: judged only once the window is full; trips when FPY < threshold (equal does not)', () => {
    const def: RuleDefinition = { kind: 'fpy-below', threshold: 0.75, window: { parts: 4 } };
    const nc = (i: number) => part(i, { nc: true });
    // 3 good of 4 = 0.75: not below. Then 2 good of 4 in the window [2..5] → trips at 5.
    const pts = [nc(0), part(1), part(2), part(3), part(4), nc(5)];
    expect(engineTrips(def, null, pts.slice(0, 3))).toEqual([]);
    expect(engineTrips(def, null, [part(0), part(1), part(2), nc(3)])).toEqual([]);
    expect(engineTrips(def, null, [nc(0), nc(1), part(2)])).toEqual([]); // not full yet
    expect(engineTrips(def, null, pts)).toEqual([]); // windows: 3/4, 3/4, 3/4
    expect(engineTrips(def, null, [...pts, nc(6)])).toEqual([{ index: 6, firstPoint: 'E00003' }]);
  });

  it('time window with minParts: no judgement on fewer parts', () => {
    const def: RuleDefinition = { kind: 'fpy-below', threshold: 0.9, window: { seconds: 3600 }, minParts: 3 };
    const nc = (i: number) => part(i, { nc: true });
    expect(engineTrips(def, null, [nc(0), nc(1)])).toEqual([]);
    expect(engineTrips(def, null, [nc(0), nc(1), part(2)])).toEqual([{ index: 2, firstPoint: 'E00000' }]);
  });
});

describe('p-chart and u-chart with the Western Electric rules', () => {
  const centre = 0.1;
  /** A p-chart subgroup of n parts with c nonconforming, starting at part index i0. */
  function group(i0: number, n: number, c: number): PartPoint[] {
    return Array.from({ length: n }, (_, k) => part(i0 + k, { nc: k < c }));
  }
  function series(groups: [number, number][]): PartPoint[] {
    const out: PartPoint[] = [];
    for (const [n, c] of groups) out.push(...group(out.length, n, c));
    return out;
  }
  const pDef = (runRules: RunRule[], parts = 100): RuleDefinition => ({
    kind: 'p-chart',
    subgroup: { parts },
    runRules,
  });
  // n = 100, p̄ = 0.1: σ = 0.03; zones at 0.13 / 0.16 / 0.19 above and 0.07 / 0.04 / 0.01 below.

  it('rule 1: 20 of 100 (z = 3.33) trips; 18 of 100 (z = 2.67) does not', () => {
    expect(engineTrips(pDef([1]), limitsOf(centre), series([[100, 18]]))).toEqual([]);
    expect(
      engineTrips(
        pDef([1]),
        limitsOf(centre),
        series([
          [100, 10],
          [100, 20],
        ]),
      ),
    ).toEqual([{ index: 199, firstPoint: 'E00100' }]);
  });

  it('rule 2: two of three beyond 2σ on the same side; on opposite sides it does not', () => {
    const upper = 17; // z = 2.33
    expect(
      engineTrips(
        pDef([2]),
        limitsOf(centre),
        series([
          [100, upper],
          [100, 10],
          [100, upper],
        ]),
      ),
    ).toEqual([{ index: 299, firstPoint: 'E00000' }]);
    expect(
      engineTrips(
        pDef([2]),
        limitsOf(centre),
        series([
          [100, upper],
          [100, 3],
          [100, 10],
        ]),
      ),
    ).toEqual([]);
    // Three apart (the first leaves the window of three before the second arrives).
    expect(
      engineTrips(
        pDef([2]),
        limitsOf(centre),
        series([
          [100, upper],
          [100, 10],
          [100, 10],
          [100, upper],
        ]),
      ),
    ).toEqual([]);
  });

  it('rule 3: four of five beyond 1σ on the same side trips on the fourth', () => {
    const one = 15; // z = 1.67
    const g = series([
      [100, one],
      [100, one],
      [100, 10],
      [100, one],
      [100, one],
    ]);
    expect(engineTrips(pDef([3]), limitsOf(centre), g.slice(0, 400))).toEqual([]);
    expect(engineTrips(pDef([3]), limitsOf(centre), g)).toEqual([{ index: 499, firstPoint: 'E00000' }]);
  });

  it('rule 4: eight on one side trips on the eighth; a point on the centre line breaks the run', () => {
    const above = Array.from({ length: 8 }, () => [100, 11] as [number, number]);
    expect(engineTrips(pDef([4]), limitsOf(centre), series(above.slice(0, 7)))).toEqual([]);
    expect(engineTrips(pDef([4]), limitsOf(centre), series(above))).toEqual([{ index: 799, firstPoint: 'E00000' }]);
    const broken: [number, number][] = [...above.slice(0, 4), [100, 10], ...above.slice(0, 4)];
    expect(engineTrips(pDef([4]), limitsOf(centre), series(broken))).toEqual([]);
  });

  it('varying subgroup sizes: the same fraction is beyond 3σ in a large subgroup and inside in a small one', () => {
    // 0.16: z = 0.06/√(0.09/n): n = 25 → 1.0; n = 400 → 4.0.
    const def: RuleDefinition = { kind: 'p-chart', subgroup: { seconds: 60 }, runRules: [1] };
    const minute = (m: number, n: number, c: number, i0: number) =>
      Array.from({ length: n }, (_, k) =>
        part(i0 + k, { nc: k < c, atMs: T0 + m * 60_000 + Math.floor((k * 59_000) / n) }),
      );
    const small = minute(0, 25, 4, 0);
    const large = minute(1, 400, 64, 25);
    const closer = minute(2, 1, 0, 425);
    const trips = engineTrips(def, limitsOf(centre), [...small, ...large, ...closer]);
    // The large minute is judged when the first part of the next minute arrives.
    expect(trips).toEqual([{ index: 425, firstPoint: 'E00025' }]);
    const { trips: full } = evaluateRule(def, limitsOf(centre), emptyState(), [...small, ...large, ...closer]);
    const sg = full[0]!.evidence.kind === 'p-chart' ? full[0]!.evidence.subgroups : [];
    expect(sg[0]).toMatchObject({ n: 400, count: 64, x: 0.16, centre: 0.1 });
    expect(sg[0]!.z).toBeCloseTo(4, 10);
    expect(sg[0]!.ucl).toBeCloseTo(0.1 + 3 * 0.015, 10);
  });

  it('u-chart: defects per unit, limits from ū', () => {
    // ū = 0.5, n = 50: σ = 0.1; 41 defects → u = 0.82, z = 3.2.
    const def: RuleDefinition = { kind: 'u-chart', subgroup: { parts: 50 }, runRules: [1] };
    const g = Array.from({ length: 50 }, (_, k) =>
      part(k, { nc: k < 21, defects: k < 21 ? { scratch: k < 20 ? 2 : 1 } : {} }),
    );
    expect(engineTrips(def, limitsOf(0.5), g)).toEqual([{ index: 49, firstPoint: 'E00000' }]);
    // 39 defects: u = 0.78, z = 2.8.
    const g39 = g.map((p, k) => (k < 2 ? { ...p, defects: { scratch: 1 } } : p));
    expect(engineTrips(def, limitsOf(0.5), g39)).toEqual([]);
  });

  it('a chart without limits only counts its parts', () => {
    expect(engineTrips(pDef([1, 2, 3, 4]), null, series([[100, 90]]))).toEqual([]);
  });

  it('the baseline centre is Σ nonconforming ÷ Σ parts over the complete subgroups only', () => {
    const pts = series([
      [100, 10],
      [50, 10],
      [30, 30],
    ]);
    const limits = baselineLimits({ kind: 'p-chart', subgroup: { parts: 50 }, runRules: [1] }, pts, {
      from: 'a',
      to: 'b',
    });
    // Subgroups of 50: [0..49] 10, [50..99] 0, [100..149] 10, the last 30 incomplete.
    expect(limits).toEqual({ centre: 20 / 150, baseline: { from: 'a', to: 'b', subgroups: 3, units: 150, count: 20 } });
  });
});

// Random series against the independent implementation -------------------------------------------------------------

describe('random series: the engine trips exactly where the independent implementation does', () => {
  const defs: [string, RuleDefinition, ChartLimits | null][] = [
    ['consecutive-nc 1', { kind: 'consecutive-nc', count: 1 }, null],
    ['consecutive-nc 4', { kind: 'consecutive-nc', count: 4 }, null],
    [
      'scratch 3 in 20 parts',
      { kind: 'defect-class-window', defectClass: 'scratch', defects: 3, window: { parts: 20 } },
      null,
    ],
    [
      'scratch 3 in 30 s',
      { kind: 'defect-class-window', defectClass: 'scratch', defects: 3, window: { seconds: 30 } },
      null,
    ],
    ['fpy < 0.8 over 25 parts', { kind: 'fpy-below', threshold: 0.8, window: { parts: 25 } }, null],
    ['fpy < 0.8 over 60 s', { kind: 'fpy-below', threshold: 0.8, window: { seconds: 60 }, minParts: 10 }, null],
    ['p-chart n=20', { kind: 'p-chart', subgroup: { parts: 20 }, runRules: [1, 2, 3, 4] }, limitsOf(0.15)],
    ['p-chart 45 s buckets', { kind: 'p-chart', subgroup: { seconds: 45 }, runRules: [1, 2, 3, 4] }, limitsOf(0.15)],
    ['u-chart n=10', { kind: 'u-chart', subgroup: { parts: 10 }, runRules: [1, 2, 3, 4] }, limitsOf(0.3)],
    ['u-chart 30 s buckets', { kind: 'u-chart', subgroup: { seconds: 30 }, runRules: [2, 4] }, limitsOf(0.3)],
    ['p-chart centre 0', { kind: 'p-chart', subgroup: { parts: 5 }, runRules: [1] }, limitsOf(0)],
  ];
  const seeds = [1, 2, 3, 4, 5, 6, 7, 8];

  it.each(defs)('%s', (_name, def, limits) => {
    let compared = 0;
    for (const seed of seeds) {
      for (const [pNc, jitter] of [
        [0.08, 0],
        [0.22, 0],
        [0.2, 20_000],
      ] as const) {
        const pts = randomSeries(seed * 97 + Math.round(pNc * 100), 600, { pNc, jitterMs: jitter });
        const expected = independentTrips(def, limits, pts);
        expect(engineTrips(def, limits, pts, [1]).map((t) => t.index)).toEqual(expected);
        expect(engineTrips(def, limits, pts, [7, 1, 50, 3, 600]).map((t) => t.index)).toEqual(expected);
        compared += expected.length;
      }
    }
    // The series are not trivial: the rule trips in them.
    expect(compared).toBeGreaterThan(0);
  });
});

describe('one pass over a line', () => {
  const rule = (ruleId: string, station: string | null, count: number) => ({
    site: 'P1',
    ruleId,
    version: 3,
    line: 'L1',
    station,
    definition: { kind: 'consecutive-nc' as const, count },
    limits: null,
    active: true,
    changedBy: 'qe',
    reason: 'r',
    changedAt: '2026-03-01T00:00:00Z',
  });

  it('feeds each rule the parts of its scope only, and skips a rule with none', () => {
    const nc = (i: number, station: string) => ({ ...part(i, { nc: true }), station });
    const result = decideBatch({
      rules: [
        { rule: rule('s1', 'S1', 2), state: {} },
        { rule: rule('line', null, 3), state: {} },
        { rule: rule('s9', 'S9', 1), state: {} },
      ],
      points: [nc(0, 'S1'), nc(1, 'S2'), nc(2, 'S1')],
    });
    expect(result.states.map((s) => [s.ruleId, s.parts, s.trips])).toEqual([
      ['s1', 2, 1],
      ['line', 3, 1],
    ]);
    expect(result.trips.map((t) => [t.rule.ruleId, t.trip.firstPoint])).toEqual([
      ['s1', 'E00000'],
      ['line', 'E00000'],
    ]);
  });

  it('names an escalation by site, scope, rule, version and first point, the same every time', () => {
    const id = escalationIdOf(rule('nc3', 'S1', 3), 'evt:1/2');
    expect(id).toMatch(/^P1-L1-S1-nc3-v3-[0-9a-f]{16}$/);
    expect(escalationIdOf(rule('nc3', 'S1', 3), 'evt:1/2')).toBe(id);
    expect(escalationIdOf(rule('nc3', 'S1', 3), 'evt:1/3')).not.toBe(id);
    expect(escalationIdOf(rule('nc3', null, 3), 'evt:1/2')).toMatch(/^P1-L1-line-nc3-v3-/);
  });
});

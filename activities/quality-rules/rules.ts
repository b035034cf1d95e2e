/**
 * Statistical escalation rules (docs/analytics.md#statistical-escalation) as pure, deterministic functions: a rule's
 * definition, its evaluation state (plain JSON, stored between evaluations) and the points it is fed, in order, give
 * the next state and the trips. Nothing here reads a clock or a database, so every rule can be tested point by point.
 *
 * Points are parts: a production first inspection at a station of the rule's scope. A rule trips once, when its
 * condition becomes true; the points that made it trip are then spent, and the rule starts afresh with the next point
 * (or subgroup), so one run of bad parts makes one trip, not one per part.
 */

/** One part as the rules see it: its first production inspection at a station. */
export interface PartPoint {
  /** The inspection's event id. */
  id: string;
  /** Inspection time, ISO 8601. */
  at: string;
  station: string;
  workOrder: string;
  lotId: string;
  nonconforming: boolean;
  /** Defects found, by class (a class absent: none). */
  defects: Record<string, number>;
}

/** A window over the latest parts or the latest span of inspection time. */
export type RuleWindow = { parts: number } | { seconds: number };

/** Subgroups of a chart: each `parts` consecutive parts, or each `seconds` of inspection time (UTC buckets). */
export type Subgroup = { parts: number } | { seconds: number };

/** The Western Electric run rules (Western Electric Statistical Quality Control Handbook, 1956). */
export type RunRule = 1 | 2 | 3 | 4;
export const ALL_RUN_RULES: readonly RunRule[] = [1, 2, 3, 4];
/** Rule 4's run length: the Handbook's 8 (Nelson's rule 2 uses 9). */
export const RUN_RULE_4_LENGTH = 8;

export type RuleDefinition =
  | { kind: 'consecutive-nc'; count: number }
  | { kind: 'defect-class-window'; defectClass: string; defects: number; window: RuleWindow }
  | { kind: 'fpy-below'; threshold: number; window: RuleWindow; minParts?: number }
  | { kind: 'p-chart' | 'u-chart'; subgroup: Subgroup; runRules: RunRule[] };

export type RuleKind = RuleDefinition['kind'];
export type ChartDefinition = Extract<RuleDefinition, { kind: 'p-chart' | 'u-chart' }>;

/**
 * A chart's centre line, from its baseline period: p̄ = Σ nonconforming ÷ Σ parts (p-chart) or ū = Σ defects ÷ Σ
 * parts (u-chart) over the baseline's complete subgroups. The 3σ limits follow per subgroup from its size.
 */
export interface ChartLimits {
  centre: number;
  baseline: { from: string; to: string; subgroups: number; units: number; count: number };
}

/** A part in a trip's evidence. */
export interface EvidencePoint {
  id: string;
  at: string;
  station: string;
  workOrder: string;
  lotId: string;
  nonconforming: boolean;
  defects: Record<string, number>;
}

/** A closed subgroup of a chart, standardised: z = (x − centre) ÷ σᵢ, with σᵢ from the subgroup's own size. */
export interface SubgroupPoint {
  /** The subgroup's first part (event id), or its time bucket's start for time subgroups. */
  key: string;
  firstId: string;
  lastId: string;
  from: string;
  to: string;
  /** Parts in the subgroup. */
  n: number;
  /** Nonconforming parts (p-chart) or defects (u-chart). */
  count: number;
  /** count ÷ n. */
  x: number;
  centre: number;
  sigma: number;
  lcl: number;
  ucl: number;
  /** Clamped to ±1e6 where σ is 0 (a centre of 0 or 1): any departure is then beyond every limit. */
  z: number;
  /** The last part of the subgroup: where a hold-order escalation points. */
  workOrder: string;
  lotId: string;
  station: string;
}

export interface RuleTrip {
  /** The evidence's first point: with the rule and version, it names the escalation (one per trip). */
  firstPoint: string;
  /** The evidence's last point. */
  lastPoint: string;
  /** The part whose arrival tripped the rule (for a time subgroup, the first part of the next bucket). */
  trippedBy: string;
  at: string;
  /** The work order, lot and station of the point that tripped it. */
  workOrder: string;
  lotId: string;
  station: string;
  summary: string;
  evidence: TripEvidence;
}

export type TripEvidence =
  | { kind: 'consecutive-nc'; count: number; points: EvidencePoint[] }
  | {
      kind: 'defect-class-window';
      defectClass: string;
      defects: number;
      window: RuleWindow;
      found: number;
      windowParts: number;
      points: EvidencePoint[];
    }
  | {
      kind: 'fpy-below';
      threshold: number;
      window: RuleWindow;
      parts: number;
      firstPassGood: number;
      fpy: number;
      from: string;
      to: string;
      points: EvidencePoint[];
    }
  | {
      kind: 'p-chart' | 'u-chart';
      limits: ChartLimits;
      violations: { rule: RunRule; description: string; subgroups: string[] }[];
      subgroups: SubgroupPoint[];
    };

// State -----------------------------------------------------------------------------------------------------------

interface WindowPart {
  id: string;
  at: string;
  ms: number;
  nc: boolean;
  /** Defects of the rule's class (defect-class-window); 0 otherwise. */
  d: number;
}

interface OpenSubgroup {
  key: string;
  bucket: number | null;
  firstId: string;
  lastId: string;
  from: string;
  to: string;
  n: number;
  count: number;
  workOrder: string;
  lotId: string;
  station: string;
}

export interface RuleState {
  /** consecutive-nc: the current run of nonconforming parts. */
  run?: EvidencePoint[];
  /** Window rules: the parts in the window. */
  window?: WindowPart[];
  /** Window rules with a defect class: the parts of the window that had one, for the evidence. */
  hits?: EvidencePoint[];
  /** Charts: the subgroup being filled, the closed ones since the last trip (at most 8), late parts left out. */
  open?: OpenSubgroup | null;
  history?: SubgroupPoint[];
  late?: number;
  /** Parts fed to the rule since its version began. */
  parts?: number;
}

export const emptyState = (): RuleState => ({});

// Evaluation ------------------------------------------------------------------------------------------------------

export interface RuleStep {
  state: RuleState;
  trips: RuleTrip[];
}

/**
 * Feeds parts to a rule in order. A chart without limits (none computed yet) only counts its parts: it cannot say what
 * is out of control before it knows what is in control.
 */
export function evaluateRule(
  def: RuleDefinition,
  limits: ChartLimits | null,
  state: RuleState,
  points: readonly PartPoint[],
): RuleStep {
  // A copy: the caller's state is what was stored, and stays as it was.
  const s = JSON.parse(JSON.stringify(state)) as RuleState;
  const trips: RuleTrip[] = [];
  for (const p of points) {
    s.parts = (s.parts ?? 0) + 1;
    const trip = step(def, limits, s, p);
    if (trip) trips.push({ ...trip, trippedBy: p.id });
  }
  return { state: s, trips };
}

const evidenceOf = (p: PartPoint): EvidencePoint => ({
  id: p.id,
  at: p.at,
  station: p.station,
  workOrder: p.workOrder,
  lotId: p.lotId,
  nonconforming: p.nonconforming,
  defects: p.defects,
});

const where = (p: PartPoint) => ({ workOrder: p.workOrder, lotId: p.lotId, station: p.station });

/** A subgroup opened by part `p` (keyed by the part for subgroups of N parts, by the bucket's start for time ones). */
function newSubgroup(p: PartPoint, count: number, bucket: number | null): OpenSubgroup {
  return {
    key: bucket === null ? p.id : new Date(bucket).toISOString(),
    bucket,
    firstId: p.id,
    lastId: p.id,
    from: p.at,
    to: p.at,
    n: 1,
    count,
    ...where(p),
  };
}

type Tripped = Omit<RuleTrip, 'trippedBy'>;

function step(def: RuleDefinition, limits: ChartLimits | null, s: RuleState, p: PartPoint): Tripped | undefined {
  switch (def.kind) {
    case 'consecutive-nc':
      return consecutive(def, s, p);
    case 'defect-class-window':
      return defectWindow(def, s, p);
    case 'fpy-below':
      return fpyWindow(def, s, p);
    case 'p-chart':
    case 'u-chart':
      return chart(def, limits, s, p);
  }
}

function consecutive(def: Extract<RuleDefinition, { kind: 'consecutive-nc' }>, s: RuleState, p: PartPoint) {
  if (!p.nonconforming) {
    s.run = [];
    return undefined;
  }
  const run = [...(s.run ?? []), evidenceOf(p)];
  if (run.length < def.count) {
    s.run = run;
    return undefined;
  }
  s.run = [];
  return {
    firstPoint: run[0]!.id,
    lastPoint: p.id,
    at: p.at,
    ...where(p),
    summary: `${def.count} consecutive nonconforming parts`,
    evidence: { kind: 'consecutive-nc' as const, count: def.count, points: run },
  };
}

/**
 * Slides the window to take `p`: a parts window keeps the latest N parts; a time window keeps the parts inspected
 * within `seconds` before the latest inspection time seen (a part inspected earlier than that, arriving late, falls
 * outside at once).
 */
function slide(window: RuleWindow, parts: WindowPart[], p: WindowPart): WindowPart[] {
  const next = [...parts, p];
  if ('parts' in window) return next.slice(Math.max(0, next.length - window.parts));
  const latest = Math.max(...next.map((w) => w.ms));
  return next.filter((w) => w.ms > latest - window.seconds * 1000);
}

function defectWindow(def: Extract<RuleDefinition, { kind: 'defect-class-window' }>, s: RuleState, p: PartPoint) {
  const d = p.defects[def.defectClass] ?? 0;
  const window = slide(def.window, s.window ?? [], {
    id: p.id,
    at: p.at,
    ms: Date.parse(p.at),
    nc: p.nonconforming,
    d,
  });
  const inWindow = new Set(window.map((w) => w.id));
  const hits = [...(s.hits ?? []), ...(d > 0 ? [evidenceOf(p)] : [])].filter((h) => inWindow.has(h.id));
  const found = window.reduce((sum, w) => sum + w.d, 0);
  if (found < def.defects) {
    s.window = window;
    s.hits = hits;
    return undefined;
  }
  s.window = [];
  s.hits = [];
  const ordered = hits.sort((a, b) => a.at.localeCompare(b.at) || a.id.localeCompare(b.id));
  return {
    firstPoint: ordered[0]!.id,
    lastPoint: p.id,
    at: p.at,
    ...where(p),
    summary: `${found} ${def.defectClass} defect(s) within ${windowText(def.window)} (limit ${def.defects})`,
    evidence: {
      kind: 'defect-class-window' as const,
      defectClass: def.defectClass,
      defects: def.defects,
      window: def.window,
      found,
      windowParts: window.length,
      points: ordered,
    },
  };
}

function fpyWindow(def: Extract<RuleDefinition, { kind: 'fpy-below' }>, s: RuleState, p: PartPoint) {
  const window = slide(def.window, s.window ?? [], {
    id: p.id,
    at: p.at,
    ms: Date.parse(p.at),
    nc: p.nonconforming,
    d: 0,
  });
  const hits = [...(s.hits ?? []), ...(p.nonconforming ? [evidenceOf(p)] : [])];
  const inWindow = new Set(window.map((w) => w.id));
  const ncHits = hits.filter((h) => inWindow.has(h.id));
  // A parts window judges only a full window; a time window needs minParts (default 1) in it.
  const enough = 'parts' in def.window ? window.length >= def.window.parts : window.length >= (def.minParts ?? 1);
  const good = window.filter((w) => !w.nc).length;
  const fpy = good / window.length;
  if (!enough || fpy >= def.threshold) {
    s.window = window;
    s.hits = ncHits;
    return undefined;
  }
  s.window = [];
  s.hits = [];
  const byTime = [...window].sort((a, b) => a.ms - b.ms || a.id.localeCompare(b.id));
  return {
    firstPoint: byTime[0]!.id,
    lastPoint: p.id,
    at: p.at,
    ...where(p),
    summary: `first-pass yield ${(fpy * 100).toFixed(2)} % over ${window.length} part(s) within ${windowText(def.window)}, below ${(def.threshold * 100).toFixed(2)} %`,
    evidence: {
      kind: 'fpy-below' as const,
      threshold: def.threshold,
      window: def.window,
      parts: window.length,
      firstPassGood: good,
      fpy,
      from: byTime[0]!.at,
      to: byTime[byTime.length - 1]!.at,
      points: ncHits,
    },
  };
}

function windowText(w: RuleWindow): string {
  return 'parts' in w ? `the last ${w.parts} part(s)` : `${w.seconds} s`;
}

// Charts ----------------------------------------------------------------------------------------------------------

const Z_CLAMP = 1e6;

/** σ of one subgroup of n parts around the centre: √(p̄(1−p̄)/n) for p, √(ū/n) for u. */
export function subgroupSigma(kind: 'p-chart' | 'u-chart', centre: number, n: number): number {
  return kind === 'p-chart' ? Math.sqrt((centre * (1 - centre)) / n) : Math.sqrt(centre / n);
}

/** The subgroup standardised against the limits: zones and run rules read z, so varying sizes need nothing else. */
export function standardise(
  kind: 'p-chart' | 'u-chart',
  limits: ChartLimits,
  g: Omit<SubgroupPoint, 'x' | 'centre' | 'sigma' | 'lcl' | 'ucl' | 'z'>,
): SubgroupPoint {
  const x = g.count / g.n;
  const centre = limits.centre;
  const sigma = subgroupSigma(kind, centre, g.n);
  const raw = sigma > 0 ? (x - centre) / sigma : x === centre ? 0 : x > centre ? Z_CLAMP : -Z_CLAMP;
  const z = Math.max(-Z_CLAMP, Math.min(Z_CLAMP, raw));
  const ucl = centre + 3 * sigma;
  const lcl = Math.max(0, centre - 3 * sigma);
  return { ...g, x, centre, sigma, lcl, ucl: kind === 'p-chart' ? Math.min(1, ucl) : ucl, z };
}

/** What a part adds to its subgroup's count: 1 when nonconforming (p-chart), its defects (u-chart). */
const chartCount = (def: ChartDefinition, p: PartPoint): number =>
  def.kind === 'p-chart' ? (p.nonconforming ? 1 : 0) : Object.values(p.defects).reduce((a, b) => a + b, 0);

function chart(def: ChartDefinition, limits: ChartLimits | null, s: RuleState, p: PartPoint): Tripped | undefined {
  const count = chartCount(def, p);
  const ms = Date.parse(p.at);
  const open = s.open ?? null;
  let closed: OpenSubgroup | null = null;
  let next: OpenSubgroup | null = open;
  const fresh = (bucket: number | null) => newSubgroup(p, count, bucket);
  const add = (g: OpenSubgroup): OpenSubgroup => ({
    ...g,
    lastId: p.id,
    from: p.at < g.from ? p.at : g.from,
    to: p.at > g.to ? p.at : g.to,
    n: g.n + 1,
    count: g.count + count,
    ...where(p),
  });
  if ('parts' in def.subgroup) {
    next = open ? add(open) : fresh(null);
    if (next.n >= def.subgroup.parts) {
      closed = next;
      next = null;
    }
  } else {
    const size = def.subgroup.seconds * 1000;
    const bucket = Math.floor(ms / size) * size;
    if (!open) next = fresh(bucket);
    else if (bucket === open.bucket) next = add(open);
    else if (bucket > (open.bucket ?? 0)) {
      // A part of a later bucket closes the open one: its subgroup is complete once time has moved past it.
      closed = open;
      next = fresh(bucket);
    } else {
      // A part of a bucket already closed: the chart has judged that subgroup and leaves the part out.
      s.late = (s.late ?? 0) + 1;
      next = open;
    }
  }
  s.open = next;
  if (!closed || !limits) return undefined;
  const { bucket: _bucket, ...g } = closed;
  const point = standardise(def.kind, limits, g);
  const history = [...(s.history ?? []), point].slice(-RUN_RULE_4_LENGTH);
  const violations = runRuleViolations(def.runRules, history);
  if (violations.length === 0) {
    s.history = history;
    return undefined;
  }
  s.history = [];
  const involved = new Set(violations.flatMap((v) => v.subgroups));
  const subgroups = history.filter((h) => involved.has(h.key));
  return {
    firstPoint: subgroups[0]!.firstId,
    lastPoint: point.lastId,
    at: point.to,
    workOrder: point.workOrder,
    lotId: point.lotId,
    station: point.station,
    summary: `${def.kind}: ${violations.map((v) => `rule ${v.rule} (${v.description})`).join('; ')}`,
    evidence: { kind: def.kind, limits, violations, subgroups },
  };
}

/**
 * The run rules on the subgroups since the last trip, newest last (zones in σ of each subgroup, from z):
 * 1. the newest point beyond 3σ;
 * 2. two of the newest three (fewer, if fewer exist since the last trip) beyond 2σ on the same side;
 * 3. four of the newest five beyond 1σ on the same side;
 * 4. the newest eight on the same side of the centre line (a point on it breaks the run).
 * Each names the subgroups it looked at.
 */
export function runRuleViolations(
  rules: readonly RunRule[],
  history: readonly SubgroupPoint[],
): { rule: RunRule; description: string; subgroups: string[] }[] {
  const out: { rule: RunRule; description: string; subgroups: string[] }[] = [];
  const last = (k: number) => history.slice(Math.max(0, history.length - k));
  const newest = history[history.length - 1];
  if (!newest) return out;
  const sameSide = (pts: readonly SubgroupPoint[], beyond: number, atLeast: number) =>
    pts.filter((h) => h.z > beyond).length >= atLeast || pts.filter((h) => h.z < -beyond).length >= atLeast;
  if (rules.includes(1) && Math.abs(newest.z) > 3) {
    out.push({ rule: 1, description: 'one point beyond 3σ', subgroups: [newest.key] });
  }
  if (rules.includes(2) && sameSide(last(3), 2, 2)) {
    out.push({ rule: 2, description: '2 of 3 consecutive points beyond 2σ, same side', subgroups: keys(last(3)) });
  }
  if (rules.includes(3) && sameSide(last(5), 1, 4)) {
    out.push({ rule: 3, description: '4 of 5 consecutive points beyond 1σ, same side', subgroups: keys(last(5)) });
  }
  const run = last(RUN_RULE_4_LENGTH);
  if (
    rules.includes(4) &&
    run.length === RUN_RULE_4_LENGTH &&
    (run.every((h) => h.z > 0) || run.every((h) => h.z < 0))
  ) {
    out.push({
      rule: 4,
      description: `${RUN_RULE_4_LENGTH} consecutive points on one side of the centre line`,
      subgroups: keys(run),
    });
  }
  return out;
}

const keys = (pts: readonly SubgroupPoint[]) => pts.map((h) => h.key);

/**
 * A chart's centre line from a baseline period's parts (in order): the complete subgroups only (a parts subgroup
 * short of its size at the end, or the time bucket still open at the end, is left out). undefined: no complete
 * subgroup, or no parts.
 */
export function baselineLimits(
  def: ChartDefinition,
  points: readonly PartPoint[],
  period: { from: string; to: string },
): ChartLimits | undefined {
  const groups: { n: number; count: number }[] = [];
  type Open = { bucket: number | null; n: number; count: number };
  const cur: { open: Open | null } = { open: null };
  for (const p of points) {
    const count = chartCount(def, p);
    const open = cur.open;
    if ('parts' in def.subgroup) {
      const next = open ? { ...open, n: open.n + 1, count: open.count + count } : { bucket: null, n: 1, count };
      if (next.n >= def.subgroup.parts) {
        groups.push(next);
        cur.open = null;
      } else cur.open = next;
    } else {
      const size = def.subgroup.seconds * 1000;
      const bucket = Math.floor(Date.parse(p.at) / size) * size;
      if (open && open.bucket === bucket) cur.open = { ...open, n: open.n + 1, count: open.count + count };
      else {
        if (open) groups.push(open);
        cur.open = { bucket, n: 1, count };
      }
    }
  }
  // A time bucket that ended within the period is complete even though no later part closed it.
  const last = cur.open;
  if (last && 'seconds' in def.subgroup && (last.bucket ?? 0) + def.subgroup.seconds * 1000 <= Date.parse(period.to)) {
    groups.push(last);
  }
  const units = groups.reduce((a, g) => a + g.n, 0);
  if (units === 0) return undefined;
  const count = groups.reduce((a, g) => a + g.count, 0);
  return { centre: count / units, baseline: { ...period, subgroups: groups.length, units, count } };
}

/** A chart's subgroup for display: standardised when the chart has limits, else only its size and statistic. */
export type ChartSubgroup = Omit<SubgroupPoint, 'centre' | 'sigma' | 'lcl' | 'ucl' | 'z'> &
  Partial<Pick<SubgroupPoint, 'centre' | 'sigma' | 'lcl' | 'ucl' | 'z'>>;

/**
 * The closed subgroups of a chart over parts in inspection-time order, as the dashboard draws it
 * (docs/dashboard.md#control-charts; infra/quality-rules/control-chart.ts forms the same subgroups in SQL, and the tests
 * hold it to this): the subgrouping and the standardisation the evaluator uses (`chart`, `standardise`). A time subgroup is its UTC bucket
 * (complete when a later part arrived, or when its end is not after `until`); a parts subgroup closes at each nth part,
 * counted from the first part, or afresh from any part in `starts` (the first parts of subgroups the evaluator closed,
 * so the drawing keeps its boundaries); parts before such a restart that did not fill a subgroup are left out.
 */
export function chartSubgroups(
  def: ChartDefinition,
  limits: ChartLimits | null,
  points: readonly PartPoint[],
  opts: { starts?: ReadonlySet<string>; until?: string } = {},
): ChartSubgroup[] {
  const out: ChartSubgroup[] = [];
  const cur: { open: OpenSubgroup | null } = { open: null };
  const close = (g: OpenSubgroup) => {
    const { bucket: _bucket, ...rest } = g;
    const x = rest.count / rest.n;
    out.push(limits ? standardise(def.kind, limits, rest) : { ...rest, x });
  };
  for (const p of points) {
    const count = chartCount(def, p);
    const fresh = (bucket: number | null) => newSubgroup(p, count, bucket);
    const open = cur.open;
    const add = (g: OpenSubgroup): OpenSubgroup => ({
      ...g,
      lastId: p.id,
      to: p.at,
      n: g.n + 1,
      count: g.count + count,
      ...where(p),
    });
    if ('parts' in def.subgroup) {
      const next = open === null || opts.starts?.has(p.id) ? fresh(null) : add(open);
      if (next.n >= def.subgroup.parts) {
        close(next);
        cur.open = null;
      } else cur.open = next;
    } else {
      const size = def.subgroup.seconds * 1000;
      const bucket = Math.floor(Date.parse(p.at) / size) * size;
      if (open !== null && open.bucket === bucket) cur.open = add(open);
      else {
        if (open !== null) close(open);
        cur.open = fresh(bucket);
      }
    }
  }
  const last = cur.open;
  if (
    last !== null &&
    'seconds' in def.subgroup &&
    opts.until !== undefined &&
    (last.bucket ?? 0) + def.subgroup.seconds * 1000 <= Date.parse(opts.until)
  ) {
    close(last);
  }
  return out;
}

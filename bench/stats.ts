/** The p-th percentile (nearest rank) of ascending `sorted`; NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** p50, p95, p99 and max of `samples` (any order); +Infinity samples count as the slowest. */
export function percentiles(samples: readonly number[]): Percentiles {
  const s = [...samples].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p95: percentile(s, 95), p99: percentile(s, 99), max: s[s.length - 1] ?? NaN };
}

/** One figure over several runs of a benchmark. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

/**
 * Median (of an even count: the mean of the middle two), min and max of one figure over runs. A run without the figure
 * (NaN: nothing to measure) is left out; an infinite one (a missing hold) is kept and sorts last.
 */
export function spread(values: readonly number[]): Spread {
  const s = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (s.length === 0) return { median: NaN, min: NaN, max: NaN };
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]! };
}

/** Every key's spread over runs that report the same flat figures. */
export function spreadByKey(runs: readonly Record<string, number>[]): Record<string, Spread> {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r)))];
  return Object.fromEntries(keys.map((k) => [k, spread(runs.map((r) => r[k] ?? NaN))]));
}

/**
 * A figure for the JSON summary: rounded to `digits` decimals; +Infinity (a percentile that falls on a missing event)
 * as the string "inf", so that it can neither pass for a number nor vanish; NaN (nothing measured) as null.
 */
export function jsonFigure(value: number, digits = 1): number | 'inf' | null {
  if (Number.isNaN(value)) return null;
  if (value === Infinity) return 'inf';
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** `jsonFigure` applied to every number of a spread or percentile record. */
export function jsonFigures<K extends string>(
  figures: Record<K, number>,
  digits = 1,
): Record<K, ReturnType<typeof jsonFigure>> {
  return Object.fromEntries(Object.entries<number>(figures).map(([k, v]) => [k, jsonFigure(v, digits)])) as Record<
    K,
    ReturnType<typeof jsonFigure>
  >;
}

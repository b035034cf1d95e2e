/**
 * The statistical test behind scheduling advice (docs/changeover.md#scheduling-advice): a one-sided exact binomial
 * test of H0: p ≤ p0 against H1: p > p0, for `defective` failures among `parts` independent parts. The p-value is the
 * upper tail P(X ≥ k) of Binomial(n, p0), summed exactly term by term (no normal approximation, which is poor for
 * the small rates and counts a lot has).
 */

export interface BinomialTestInput {
  /** n: parts inspected. */
  parts: number;
  /** k: parts that failed. */
  defective: number;
  /** p0: the rate H0 allows. */
  threshold: number;
}

/**
 * P(X ≥ k) for X ~ Binomial(n, p). The first term is built in log space (n and k may be large), the rest by the
 * ratio of successive terms, P(i+1)/P(i) = (n−i)/(i+1) · p/(1−p), stopping once a term no longer changes the sum.
 */
export function binomialUpperTail(n: number, k: number, p: number): number {
  if (!Number.isInteger(n) || !Number.isInteger(k) || n < 0) throw new RangeError('n and k must be integers, n ≥ 0');
  if (!(p >= 0 && p <= 1)) throw new RangeError('p must be in [0, 1]');
  if (k <= 0) return 1;
  if (k > n) return 0;
  if (p === 0) return 0;
  if (p === 1) return 1;
  // log C(n, k) = Σ_{j=1..k} log((n − k + j) / j), exact up to rounding, with no factorial overflow.
  let logTerm = k * Math.log(p) + (n - k) * Math.log1p(-p);
  for (let j = 1; j <= k; j++) logTerm += Math.log((n - k + j) / j);
  let term = Math.exp(logTerm);
  let sum = term;
  const ratio = p / (1 - p);
  for (let i = k; i < n; i++) {
    term *= ((n - i) / (i + 1)) * ratio;
    const next = sum + term;
    // Past the mode the terms only shrink: once one adds nothing, the rest add nothing either.
    if (next === sum && i + 1 > n * p) break;
    sum = next;
  }
  return Math.min(1, sum);
}

export interface BinomialTestResult {
  rate: number;
  pValue: number;
}

export function oneSidedBinomialTest({ parts, defective, threshold }: BinomialTestInput): BinomialTestResult {
  return { rate: parts === 0 ? 0 : defective / parts, pValue: binomialUpperTail(parts, defective, threshold) };
}

export interface TripRule {
  thresholdRate: number;
  minParts: number;
  significance: number;
}

/**
 * A lot trips when it has at least `minParts` parts, its observed rate is above the threshold and H0 is rejected at
 * `significance` (p-value ≤ α). The minimum keeps a handful of early parts from deciding anything even when the
 * test alone would (one failure in two parts at p0 = 0.001).
 */
export function trips(
  counts: { parts: number; defective: number },
  rule: TripRule,
): BinomialTestResult & { tripped: boolean } {
  const result = oneSidedBinomialTest({ ...counts, threshold: rule.thresholdRate });
  return {
    ...result,
    tripped: counts.parts >= rule.minParts && result.rate > rule.thresholdRate && result.pValue <= rule.significance,
  };
}

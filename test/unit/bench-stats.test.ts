/** What the benchmarks publish: percentiles, a figure over N runs, and how a missing event reads in the JSON. */
import { jsonFigure, jsonFigures, percentile, percentiles, spread, spreadByKey } from '../../bench/stats';

describe('benchmark statistics', () => {
  it('percentile by nearest rank; +Infinity sorts last', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 99)).toBe(99);
    expect(percentile([], 99)).toBeNaN();
    expect(percentiles([3, Infinity, 1, 2])).toEqual({ p50: 2, p95: Infinity, p99: Infinity, max: Infinity });
  });

  it('median, min and max over runs: odd and even counts, a run without the figure left out', () => {
    expect(spread([300, 120, 200])).toEqual({ median: 200, min: 120, max: 300 });
    expect(spread([4, 1, 3, 2])).toEqual({ median: 2.5, min: 1, max: 4 });
    expect(spread([NaN, 5])).toEqual({ median: 5, min: 5, max: 5 });
    expect(spread([NaN])).toEqual({ median: NaN, min: NaN, max: NaN });
  });

  it('a run with a missing hold keeps its infinite figure: it is the max, and the median when it is the middle', () => {
    expect(spread([100, Infinity, 200])).toEqual({ median: 200, min: 100, max: Infinity });
    expect(spread([Infinity, Infinity, 200])).toEqual({ median: Infinity, min: 200, max: Infinity });
  });

  it('spreads every key of the runs', () => {
    const runs = [
      { p99: 10, drain: 60 },
      { p99: 30, drain: 61 },
      { p99: 20, drain: 62 },
    ];
    expect(spreadByKey(runs)).toEqual({
      p99: { median: 20, min: 10, max: 30 },
      drain: { median: 61, min: 60, max: 62 },
    });
  });

  it('writes +Infinity as "inf" and nothing measured as null, never as a number', () => {
    expect(jsonFigure(12.345)).toBe(12.3);
    expect(jsonFigure(12.345, 2)).toBe(12.35);
    expect(jsonFigure(Infinity)).toBe('inf');
    expect(jsonFigure(NaN)).toBeNull();
    expect(JSON.parse(JSON.stringify(jsonFigures({ median: Infinity, min: 1, max: NaN })))).toEqual({
      median: 'inf',
      min: 1,
      max: null,
    });
  });
});

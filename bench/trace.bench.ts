/**
 * `npm run bench:trace`: forward and backward trace over a plant history of a million parts, against the same traces
 * walked through the ERP's raw goods movements.
 *
 *   npm run bench:trace -- --parts 1000000 --lots 100000 --supplier-lots 10000 --traces 200 --runs 3
 *
 * 1. Generates a seeded plant history (infra/simulators/plant-history: supplier lots → components → sub-assemblies →
 *    finished lots → deliveries, with splits and merges) and loads it into the SAP and MES simulators (in this process,
 *    on their own database of a PostgreSQL started here).
 * 2. Syncs it into Holdfast's genealogy: the ERP feed, then the MES feed, page by page through the genealogy store, as
 *    the sync activity does (activities/traceability/genealogy.activities.ts) but driven here in a loop: Temporal is
 *    not in the measured path.
 * 3. Each run: `--traces` random finished lots backward and as many random supplier lots forward, each what
 *    `GET /v1/trace/backward|forward?by=erp-batch` does (resolveStart, then traceGenealogy: the walk and the first
 *    page of lot details), called as functions (no HTTP, no JSON), at depth MAX_DEPTH so that every answer is whole.
 *    Then the baseline on the same starts (the first `--baseline-traces` of each direction): the ERP walk of
 *    bench/erp-walk.ts over the SAP simulator's OData API.
 * 4. Every answer (Holdfast's and the baseline's) of the first `--check` traces of each direction is compared with the
 *    generator's ground truth: lots reached and, forward, deliveries. A difference fails the run.
 */
import { cpus, loadavg, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { loadConfig } from '../infra/config/load';
import { lotKey, lotNode, nodeKind } from '../infra/genealogy/genealogy-keys';
import {
  MAX_DEPTH,
  resolveStart,
  traceGenealogy,
  walkGenealogy,
  type TraceDirection,
} from '../infra/genealogy/trace-queries';
import type { TruthLot } from '../infra/simulators/plant-history/plant-history';
import { createErpWalk } from './erp-walk';
import { integerOption, runBenchmark } from './harness';
import { PLANT, SITE, preparePlantGenealogy, syncFigures } from './plant-genealogy';
import { jsonFigure, jsonFigures, percentiles, spreadByKey } from './stats';

const { values: args } = parseArgs({
  options: {
    parts: { type: 'string', default: '1000000' },
    lots: { type: 'string', default: '100000' },
    'supplier-lots': { type: 'string', default: '10000' },
    days: { type: 'string', default: '365' },
    seed: { type: 'string', default: '1' },
    runs: { type: 'string', default: process.env.BENCH_RUNS ?? '3' },
    traces: { type: 'string', default: '200' },
    'baseline-traces': { type: 'string' },
    check: { type: 'string', default: '20' },
    'page-size': { type: 'string' },
  },
});

const count = (name: string, min: number) => integerOption(args, name, min);

/** Seeded choice of `n` distinct items (mulberry32, so a run's starts follow from --seed and the run number). */
function pick<T>(from: readonly T[], n: number, seed: number): T[] {
  let a = seed >>> 0;
  const random = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const copy = [...from];
  const k = Math.min(n, copy.length);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(random() * (copy.length - i));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy.slice(0, k);
}

const ms = (since: number) => performance.now() - since;
const perSecond = (n: number, millis: number) => (millis > 0 ? (n * 1000) / millis : NaN);

runBenchmark('trace', async (bench) => {
  const { say } = bench;
  const parts = count('parts', 1);
  const lots = count('lots', 3);
  const supplierLots = count('supplier-lots', 1);
  const days = count('days', 1);
  const seed = count('seed', 0);
  const runs = count('runs', 1);
  const traces = count('traces', 1);
  const baselineTraces = args['baseline-traces'] === undefined ? traces : Math.min(traces, count('baseline-traces', 0));
  const checked = Math.min(traces, count('check', 0));
  const base = loadConfig();
  const pageSize = args['page-size'] === undefined ? base.traceability.sync.pageSize : count('page-size', 1);
  const production = base.traceability.sync.production;
  say(
    `${parts} parts in ${lots} lots from ${supplierLots} supplier lots; ${runs} run(s) of ${traces} traces each way ` +
      `(baseline: ${baselineTraces}); sync pages of ${pageSize}, production from the ${production}`,
  );

  const loadBefore = loadavg()[0]!;
  const plant = await preparePlantGenealogy(bench, {
    base,
    history: { parts, lots, supplierLots, seed, days },
    pageSize,
    production,
    name: 'trace',
  });
  const { holdfast, sapUrl, sapCredentials, truth, sync, generatedRows, generationMs, loadMs } = plant;

  // The ground truth's closures: every lot above (backward) or below (forward) a lot, and deliveries below.
  const byId = new Map(truth.lots.map((l) => [l.lotId, l]));
  const closure = (start: TruthLot, direction: TraceDirection): { lots: Set<string>; deliveries: Set<string> } => {
    const seen = new Set([start.lotId]);
    const deliveries = new Set<string>();
    const stack = [start];
    while (stack.length > 0) {
      const at = stack.pop()!;
      if (direction === 'forward') for (const d of at.deliveries) deliveries.add(d.delivery);
      for (const e of direction === 'forward' ? at.children : at.parents) {
        if (seen.has(e.lotId)) continue;
        seen.add(e.lotId);
        stack.push(byId.get(e.lotId)!);
      }
    }
    return { lots: seen, deliveries };
  };
  const batchOfNode = (node: string) => node.slice(node.lastIndexOf('/') + 1);
  const sameSet = (a: Set<string>, b: Set<string>) => a.size === b.size && [...a].every((x) => b.has(x));

  const finished = truth.lots.filter((l) => l.level === 'finished');
  const supplier = truth.lots.filter((l) => l.level === 'supplier');
  const erpWalk = createErpWalk({ url: sapUrl, ...sapCredentials, plant: PLANT });
  const wrong: string[] = [];
  const perRun: Record<string, number>[] = [];
  const sizes = { backward: [] as number[], forward: [] as number[], forwardDeliveries: [] as number[] };

  for (let run = 1; run <= runs; run++) {
    const starts: Record<TraceDirection, TruthLot[]> = {
      backward: pick(finished, traces, seed * 7919 + run),
      forward: pick(supplier, traces, seed * 104729 + run),
    };
    const figures: Record<string, number> = {};
    for (const direction of ['backward', 'forward'] as const) {
      const latencies: number[] = [];
      let failed = 0;
      for (const [i, lot] of starts[direction].entries()) {
        const t0 = performance.now();
        try {
          const start = await resolveStart(holdfast.pool, {
            kind: 'erp-batch',
            plant: PLANT,
            material: lot.material,
            batch: lot.lotId,
          });
          if (start.length === 0) throw new Error(`${lot.lotId} not in the genealogy`);
          await traceGenealogy(holdfast.pool, start, {
            direction,
            depth: MAX_DEPTH,
            limit: 100,
            maySee: () => true,
          });
          latencies.push(ms(t0));
        } catch (err) {
          failed++;
          latencies.push(Infinity);
          wrong.push(`${direction} ${lot.lotId}: ${err instanceof Error ? err.message : String(err)}`);
          continue;
        }
        // The answer's size (and, for the first traces, its check) from the walk again, outside the measure.
        const node = lotNode(lotKey({ erp: { plant: PLANT, material: lot.material, batch: lot.lotId } }));
        const walk = await walkGenealogy(holdfast.pool, [{ node, site: SITE }], direction, MAX_DEPTH);
        const reached = [...walk.depthOf.keys()];
        const got = {
          lots: new Set(reached.filter((n) => nodeKind(n) === 'lot').map(batchOfNode)),
          deliveries: new Set(reached.filter((n) => nodeKind(n) === 'delivery').map((n) => n.split(/[:/]/)[1]!)),
        };
        if (run === 1) {
          sizes[direction].push(got.lots.size);
          if (direction === 'forward') sizes.forwardDeliveries.push(got.deliveries.size);
        }
        if (run === 1 && i < checked) {
          const want = closure(lot, direction);
          if (!sameSet(got.lots, want.lots) || (direction === 'forward' && !sameSet(got.deliveries, want.deliveries))) {
            wrong.push(
              `holdfast ${direction} ${lot.lotId}: ${got.lots.size} lots, ${got.deliveries.size} deliveries; ` +
                `truth ${want.lots.size} lots, ${want.deliveries.size} deliveries`,
            );
          }
        }
      }
      const p = percentiles(latencies);
      figures[`${direction}_p50_ms`] = p.p50;
      figures[`${direction}_p99_ms`] = p.p99;
      figures[`${direction}_max_ms`] = p.max;
      figures[`${direction}_failed`] = failed;
      say(
        `run ${run} ${direction}: p50 ${p.p50.toFixed(1)} ms, p99 ${p.p99.toFixed(1)} ms, max ${p.max.toFixed(1)} ms`,
      );

      // The baseline, on the same starts.
      const baseline: number[] = [];
      let requests = 0;
      for (const [i, lot] of starts[direction].slice(0, baselineTraces).entries()) {
        const t0 = performance.now();
        try {
          const answer = await erpWalk[direction](lot.material, lot.lotId);
          baseline.push(ms(t0));
          requests += answer.requests;
          if (run === 1 && i < checked) {
            const want = closure(lot, direction);
            if (
              !sameSet(answer.batches, want.lots) ||
              (direction === 'forward' && !sameSet(answer.deliveries, want.deliveries))
            ) {
              wrong.push(
                `baseline ${direction} ${lot.lotId}: ${answer.batches.size} lots, ${answer.deliveries.size} ` +
                  `deliveries; truth ${want.lots.size} lots, ${want.deliveries.size} deliveries`,
              );
            }
          }
        } catch (err) {
          baseline.push(Infinity);
          wrong.push(`baseline ${direction} ${lot.lotId}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      const b = percentiles(baseline);
      figures[`baseline_${direction}_p50_ms`] = b.p50;
      figures[`baseline_${direction}_p99_ms`] = b.p99;
      figures[`baseline_${direction}_max_ms`] = b.max;
      figures[`baseline_${direction}_requests_per_trace`] = baseline.length > 0 ? requests / baseline.length : NaN;
      say(`run ${run} baseline ${direction}: p50 ${b.p50.toFixed(1)} ms, p99 ${b.p99.toFixed(1)} ms`);
    }
    figures.baseline_p99_ms = Math.max(figures.baseline_backward_p99_ms!, figures.baseline_forward_p99_ms!);
    perRun.push(figures);
  }

  const spreads = spreadByKey(perRun);
  const sizeFigures = (values: number[]) => jsonFigures(percentiles(values), 0);
  const syncFacts = sync.erp.facts + sync.mes.facts;
  const syncMs = sync.erp.ms + sync.mes.ms;
  const ok = wrong.length === 0;
  return {
    exitCode: ok ? 0 : 1,
    summary: {
      bench: 'trace',
      ok,
      wrong: wrong.slice(0, 20),
      machine: {
        cpus: cpus().length,
        memory_gb: Math.round(totalmem() / 2 ** 30),
        loadavg_1m_before: jsonFigure(loadBefore, 2),
        loadavg_1m_after: jsonFigure(loadavg()[0]!, 2),
      },
      runs,
      traces,
      baseline_traces: baselineTraces,
      checked_traces: checked,
      page_size: pageSize,
      production,
      depth: MAX_DEPTH,
      parts: truth.counts.parts,
      lots: truth.counts.producedLots,
      supplier_lots: truth.counts.supplierLots,
      deliveries: truth.counts.deliveries,
      generation_ms: jsonFigure(generationMs, 0),
      generation_rows_per_s: jsonFigure(perSecond(generatedRows, generationMs), 0),
      load_ms: jsonFigure(loadMs, 0),
      load_rows_per_s: jsonFigure(perSecond(generatedRows, loadMs), 0),
      sync_erp: syncFigures(sync.erp),
      sync_mes: syncFigures(sync.mes),
      sync_ms: jsonFigure(syncMs, 0),
      answer_lots_backward: sizeFigures(sizes.backward),
      answer_lots_forward: sizeFigures(sizes.forward),
      answer_deliveries_forward: sizeFigures(sizes.forwardDeliveries),
      spread: Object.fromEntries(Object.entries(spreads).map(([k, s]) => [k, jsonFigures({ ...s })])),
      backward_p50_ms: jsonFigure(spreads.backward_p50_ms!.median),
      backward_p99_ms: jsonFigure(spreads.backward_p99_ms!.median),
      forward_p50_ms: jsonFigure(spreads.forward_p50_ms!.median),
      forward_p99_ms: jsonFigure(spreads.forward_p99_ms!.median),
      baseline_p99_ms: jsonFigure(spreads.baseline_p99_ms!.median),
      sync_rows_per_s: jsonFigure(perSecond(syncFacts, syncMs), 0),
      // This process: the generator, both simulators and the load; PostgreSQL apart.
      peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
    },
  };
});

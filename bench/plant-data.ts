/**
 * The lots and work orders bench:latency's defects fall on, laid out as a plant has them: each line runs a work order
 * per shift with tens of lots on it, so no work order (and no MES query over its lots) grows through the run.
 */

export interface BenchLine {
  line: string;
  /** Production stations of the line (temporal.yaml), used in turn. */
  stations: string[];
  sku: string;
}

/** The demo plant's production stations (temporal.yaml; L1/S3 is in parallel monitoring and holds nothing). */
export const DEMO_PLANT_LINES: readonly BenchLine[] = [
  { line: 'L1', stations: ['S1', 'S2'], sku: 'BRKT-200' },
  { line: 'L2', stations: ['S1'], sku: 'HSG-310' },
  { line: 'L3', stations: ['S1'], sku: 'CVR-120' },
];

export interface PlannedLot {
  lotId: string;
  workOrder: string;
  line: string;
  station: string;
  sku: string;
  /** SAP batch (CHAR 10), unique per lot. */
  batch: string;
}

export interface PlannedPart {
  eventId: string;
  partId: string;
  lot: PlannedLot;
}

export interface RunPlan {
  lots: PlannedLot[];
  /** In the order they are due. */
  parts: PlannedPart[];
  /** Work order → line. */
  workOrders: Map<string, string>;
}

const SAP_BATCH_CHARS = 10;

/**
 * `defects` parts, `partsPerLot` consecutive parts on each lot (1: every defect on a new lot, the worst case). Lots go
 * to the lines in turn; each line's lots fill a work order of `lotsPerWorkOrder` lots (a shift's) before the next.
 * `tag` (letters and digits, e.g. T2 for the second measured run) keeps every id unique within a benchmark.
 */
export function planRun(opts: {
  tag: string;
  defects: number;
  partsPerLot: number;
  lotsPerWorkOrder: number;
  lines?: readonly BenchLine[];
}): RunPlan {
  const { tag, defects } = opts;
  const lines = opts.lines ?? DEMO_PLANT_LINES;
  const partsPerLot = Math.max(1, Math.floor(opts.partsPerLot));
  const lotsPerWorkOrder = Math.max(1, Math.floor(opts.lotsPerWorkOrder));
  if (!/^[A-Za-z0-9]+$/.test(tag)) throw new Error(`run tag must be letters and digits, got "${tag}"`);
  if (lines.length === 0) throw new Error('no lines to put lots on');
  const lotCount = Math.ceil(defects / partsPerLot);
  const digits = Math.max(4, String(Math.max(0, lotCount - 1)).length);
  if (tag.length + digits > SAP_BATCH_CHARS) {
    throw new Error(`${lotCount} lots with tag ${tag} do not fit SAP's ${SAP_BATCH_CHARS}-character batch`);
  }

  const lots: PlannedLot[] = [];
  const workOrders = new Map<string, string>();
  for (let k = 0; k < lotCount; k++) {
    const line = lines[k % lines.length]!;
    // The lot's place among its own line's lots: which shift's work order, which station.
    const onLine = Math.floor(k / lines.length);
    const workOrder = `WO-${tag}-${line.line}-${Math.floor(onLine / lotsPerWorkOrder) + 1}`;
    workOrders.set(workOrder, line.line);
    const seq = String(k).padStart(digits, '0');
    lots.push({
      lotId: `${tag}-${line.line}-${seq}`,
      workOrder,
      line: line.line,
      station: line.stations[onLine % line.stations.length]!,
      sku: line.sku,
      batch: `${tag}${seq}`,
    });
  }
  const parts = Array.from({ length: defects }, (_, i) => {
    const seq = String(i).padStart(6, '0');
    return { eventId: `bench-${tag}-${seq}`, partId: `P-${tag}-${seq}`, lot: lots[Math.floor(i / partsPerLot)]! };
  });
  return { lots, parts, workOrders };
}

/** The failed inspection a camera reports for `part`, captured at `dueMs`: the instant its latency is measured from. */
export function inspectionBody(part: PlannedPart, dueMs: number, site = 'PLANT1') {
  return {
    eventId: part.eventId,
    site,
    line: part.lot.line,
    station: part.lot.station,
    partId: part.partId,
    sku: part.lot.sku,
    lotId: part.lot.lotId,
    workOrder: part.lot.workOrder,
    result: 'fail' as const,
    defects: [{ class: 'scratch', score: 0.91 }],
    modelVersion: 'bench-1',
    recipeVersion: `${part.lot.sku}@1`,
    inspectedAt: new Date(dueMs).toISOString(),
  };
}

/**
 * Forward and backward trace through the genealogy (docs/traceability.md#trace). A trace is two statements whatever
 * its size: the walk (one recursive CTE over the covering edge indexes, from the start nodes, each step once per
 * depth, bounded by the depth limit), then the enrichment of the page of lots the caller sees (one batched
 * statement: inspections, trace documents, lot cases, deliveries).
 */
import type { TraceStart } from '../../workflows/contracts';
import type pg from 'pg';
import { deliveryNode, lotKey, lotKeyOfNode, lotNode, nodeKind, workOrderNode } from './genealogy-keys';
import type { EdgeKind, LotInput } from './genealogy-store';

type Db = Pick<pg.Pool, 'query'>;

export type TraceDirection = 'forward' | 'backward';

/** Where a trace starts: one identifier of one kind (the recall's scope is the same, less a delivery). */
export type { TraceStart };

export const DEFAULT_DEPTH = 10;
export const MAX_DEPTH = 20;
/**
 * Steps (an edge at a depth) the walk may take before it stops and says it was cut short: far above any
 * plant-shaped trace (docs/traceability.md#limits).
 */
export const MAX_STEPS = 500_000;

/** A node the start resolved to, and the site that decides who may trace from it. */
export interface StartNode {
  node: string;
  site: string;
}

/** One movement the walk went through, in the direction of the walk (from is nearer the start). */
export interface TracedEdge {
  edgeKey: string;
  kind: EdgeKind;
  from: string;
  to: string;
  quantity: number | null;
  unit: string | null;
  /** Fewest steps from a start node to this edge's far end. */
  depth: number;
}

export interface TraceWalk {
  start: StartNode[];
  edges: TracedEdge[];
  /** Each node reached (start nodes at depth 0) with its fewest steps. */
  depthOf: Map<string, number>;
  /** Closed loops in the data: the path up to and including the node that closed it. */
  cycles: string[][];
  /** The walk met MAX_STEPS before it finished. */
  truncated: boolean;
}

/** The nodes a start identifier names; empty when nothing in the genealogy matches it. */
export async function resolveStart(db: Db, start: TraceStart): Promise<StartNode[]> {
  const lots = async (where: string, params: unknown[]): Promise<StartNode[]> => {
    const res = await db.query<{ lot_key: string; site: string }>(
      `SELECT lot_key, site FROM holdfast.material_lot WHERE ${where} ORDER BY lot_key`,
      params,
    );
    return res.rows.map((r) => ({ node: lotNode(r.lot_key), site: r.site }));
  };
  switch (start.kind) {
    case 'lot-key':
      return lots('lot_key = $1', [start.lotKey]);
    case 'mes-lot':
      return lots('mes_site = $1 AND mes_lot_id = $2', [start.site, start.lotId]);
    case 'erp-batch':
      return lots('lot_key = $1 OR (erp_plant = $2 AND erp_material = $3 AND erp_batch = $4)', [
        lotKey({ erp: { plant: start.plant, material: start.material, batch: start.batch } }),
        start.plant,
        start.material,
        start.batch,
      ]);
    case 'supplier-lot':
      return lots('supplier = $1 AND supplier_batch = $2', [start.supplier, start.supplierBatch]);
    case 'part':
    case 'serial': {
      // A part's lot from the MES's production record, else from the camera's inspection of it.
      const res = await db.query<{ lot_key: string; site: string }>(
        start.kind === 'part'
          ? `SELECT l.lot_key, l.site FROM holdfast.produced_part p JOIN holdfast.material_lot l USING (lot_key)
              WHERE p.site = $1 AND p.part_id = $2
             UNION
             SELECT l.lot_key, l.site FROM holdfast.inspection i
               JOIN holdfast.material_lot l ON l.mes_site = i.site AND l.mes_lot_id = i.lot_id
              WHERE i.site = $1 AND i.part_id = $2
             ORDER BY 1`
          : `SELECT DISTINCT l.lot_key, l.site FROM holdfast.produced_part p JOIN holdfast.material_lot l USING (lot_key)
              WHERE p.serial = $1 ORDER BY 1`,
        start.kind === 'part' ? [start.site, start.partId] : [start.serial],
      );
      return res.rows.map((r) => ({ node: lotNode(r.lot_key), site: r.site }));
    }
    case 'work-order': {
      const node = workOrderNode(start.site, start.order);
      const res = await db.query(`SELECT 1 FROM holdfast.genealogy_edge WHERE from_node = $1 OR to_node = $1 LIMIT 1`, [
        node,
      ]);
      return res.rowCount ? [{ node, site: start.site }] : [];
    }
    case 'delivery': {
      const res = await db.query<{ site: string }>(
        `SELECT site FROM holdfast.delivery WHERE delivery = $1 AND item = $2`,
        [start.delivery, start.item],
      );
      return res.rows.map((r) => ({ node: deliveryNode(start.delivery, start.item), site: r.site }));
    }
    case 'model-version': {
      const res = await db.query<{ lot_key: string; site: string }>(
        `SELECT DISTINCT l.lot_key, l.site
           FROM (SELECT DISTINCT site, lot_id FROM holdfast.inspection
                  WHERE model_version = $1 AND ($2::text IS NULL OR site = $2)
                    AND ($3::timestamptz IS NULL OR inspected_at >= $3)
                    AND ($4::timestamptz IS NULL OR inspected_at <= $4)) i
           JOIN holdfast.material_lot l ON l.mes_site = i.site AND l.mes_lot_id = i.lot_id
          ORDER BY 1`,
        [start.modelVersion, start.site ?? null, start.from ?? null, start.to ?? null],
      );
      return res.rows.map((r) => ({ node: lotNode(r.lot_key), site: r.site }));
    }
    case 'sku':
      // Made or received in the range: a lot's occurred_at is its production or its goods receipt.
      return lots(
        'material = $1 AND ($2::text IS NULL OR site = $2) AND occurred_at BETWEEN $3::timestamptz AND $4::timestamptz',
        [start.material, start.site ?? null, start.from, start.to],
      );
  }
}

/**
 * The walk: each step of the trace once per depth it is reached at. UNION (not UNION ALL) drops a step already
 * found, so a lot reached along many routes is expanded once per depth, not once per route, and a loop in the data
 * ends at the depth limit; the loops themselves are found afterwards, in the steps (findCycles).
 */
function walkSql(direction: TraceDirection): string {
  const [near, far] = direction === 'forward' ? ['from_node', 'to_node'] : ['to_node', 'from_node'];
  return `
    WITH RECURSIVE walk (node, depth, edge_key, kind, quantity, unit, prev) AS (
      SELECT n, 0, NULL::text, NULL::text, NULL::numeric, NULL::text, NULL::text
        FROM unnest($1::text[]) AS n
      UNION
      SELECT e.${far}, w.depth + 1, e.edge_key, e.kind, e.quantity, e.unit, w.node
        FROM walk w
        JOIN holdfast.genealogy_edge e ON e.${near} = w.node
       WHERE w.depth < $2
    ),
    capped AS (SELECT * FROM walk WHERE depth > 0 LIMIT $3)
    SELECT edge_key, kind, prev, node, quantity, unit, min(depth) AS depth, (SELECT count(*) FROM capped) AS total
      FROM capped
     GROUP BY edge_key, kind, prev, node, quantity, unit`;
}

/**
 * The loops among the steps of a walk (depth-first, iterative): each as the path from the node that starts it back
 * to that node, e.g. [x, y, x]. A plant's genealogy has none; one found is bad data.
 */
export function findCycles(start: readonly string[], edges: readonly Pick<TracedEdge, 'from' | 'to'>[]): string[][] {
  const next = new Map<string, string[]>();
  for (const e of edges) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[][] = [];
  for (const root of start) {
    if (state.has(root)) continue;
    const path: string[] = [root];
    const pending: string[][] = [[...(next.get(root) ?? [])]];
    state.set(root, 'open');
    while (path.length > 0) {
      const todo = pending[pending.length - 1] as string[];
      const node = todo.pop();
      if (node === undefined) {
        state.set(path.pop() as string, 'done');
        pending.pop();
        continue;
      }
      const seen = state.get(node);
      if (seen === 'open') cycles.push([...path.slice(path.indexOf(node)), node]);
      if (seen !== undefined) continue;
      state.set(node, 'open');
      path.push(node);
      pending.push([...(next.get(node) ?? [])]);
    }
  }
  return cycles;
}

export async function walkGenealogy(
  db: Db,
  start: readonly StartNode[],
  direction: TraceDirection,
  depth: number,
): Promise<TraceWalk> {
  const res = await db.query<{
    edge_key: string;
    kind: EdgeKind;
    prev: string;
    node: string;
    quantity: string | null;
    unit: string | null;
    depth: number;
    total: string;
  }>(walkSql(direction), [start.map((s) => s.node), depth, MAX_STEPS]);

  const depthOf = new Map<string, number>(start.map((s) => [s.node, 0]));
  const edges: TracedEdge[] = [];
  for (const r of res.rows) {
    edges.push({
      edgeKey: r.edge_key,
      kind: r.kind,
      from: r.prev,
      to: r.node,
      quantity: r.quantity === null ? null : Number(r.quantity),
      unit: r.unit,
      depth: r.depth,
    });
    const known = depthOf.get(r.node);
    if (known === undefined || r.depth < known) depthOf.set(r.node, r.depth);
  }
  edges.sort((a, b) => a.depth - b.depth || a.edgeKey.localeCompare(b.edgeKey));
  const total = Number(res.rows[0]?.total ?? 0);
  const cycles = findCycles(
    start.map((s) => s.node),
    edges,
  );
  return { start: [...start], edges, depthOf, cycles, truncated: total >= MAX_STEPS };
}

export interface InspectionSummary {
  pass: number;
  fail: number;
  /** Failed parts per defect class. */
  defects: Record<string, number>;
  modelVersions: string[];
}

export interface LotDetail {
  lotKey: string;
  site: string;
  material: string | null;
  quantity: number | null;
  unit: string | null;
  origin: LotInput['origin'] | 'unknown';
  mes: { site: string; lotId: string } | null;
  erp: { plant: string; material: string; batch: string } | null;
  supplier: string | null;
  supplierBatch: string | null;
  purchaseOrder: string | null;
  purchaseOrderItem: string | null;
  goodsReceipt: string | null;
  workOrder: string | null;
  line: string | null;
  inspections: InspectionSummary;
  /** Documents linked to the lot by its cases (hold, notification, material documents: holdfast.trace_link). */
  documents: { relation: string; kind: string; id: string; system: string | null }[];
  /** Its lot cases: what was decided about it. */
  cases: {
    workflowId: string;
    stage: string;
    holdId: string | null;
    notification: string | null;
    decision: string | null;
    openedAt: string;
    closedAt: string | null;
  }[];
  deliveries: DeliveryDetail[];
}

export interface DeliveryDetail {
  delivery: string;
  item: string;
  site: string;
  customer: string;
  shipTo: string;
  material: string | null;
  quantity: number | null;
  unit: string | null;
  shippedAt: string | null;
}

const num = (v: string | null): number | null => (v === null ? null : Number(v));

/**
 * Everything known about a set of lots, in one statement: the lots, their inspections (by MES site and lot id),
 * their trace documents and cases, and their deliveries. Lots are returned in the order asked.
 */
export async function lotDetails(db: Db, lotKeys: readonly string[]): Promise<LotDetail[]> {
  if (lotKeys.length === 0) return [];
  const res = await db.query<{
    lot_key: string;
    site: string;
    material: string | null;
    quantity: string | null;
    unit: string | null;
    origin: LotDetail['origin'];
    mes_site: string | null;
    mes_lot_id: string | null;
    erp_plant: string | null;
    erp_material: string | null;
    erp_batch: string | null;
    supplier: string | null;
    supplier_batch: string | null;
    purchase_order: string | null;
    purchase_order_item: string | null;
    goods_receipt: string | null;
    work_order: string | null;
    line: string | null;
    inspections: { pass: number; fail: number; defects: Record<string, number> | null; models: string[] | null };
    documents: LotDetail['documents'] | null;
    cases: LotDetail['cases'] | null;
    deliveries: (Omit<DeliveryDetail, 'quantity'> & { quantity: string | null })[] | null;
  }>(
    `SELECT l.*,
            (SELECT json_build_object(
                      'pass', count(*) FILTER (WHERE i.result = 'pass'),
                      'fail', count(*) FILTER (WHERE i.result = 'fail'),
                      'models', array_agg(DISTINCT i.model_version),
                      'defects', (SELECT json_object_agg(c, n) FROM (
                                   SELECT d ->> 'class' AS c, count(*) AS n
                                     FROM holdfast.inspection j, jsonb_array_elements(j.defects) d
                                    WHERE j.site = l.mes_site AND j.lot_id = l.mes_lot_id AND j.result = 'fail'
                                    GROUP BY 1) dc))
               FROM holdfast.inspection i WHERE i.site = l.mes_site AND i.lot_id = l.mes_lot_id) AS inspections,
            (SELECT json_agg(json_build_object('relation', t.relation, 'kind', t.to_kind, 'id', t.to_id,
                                               'system', t.system) ORDER BY t.id)
               FROM holdfast.trace_link t
              WHERE t.from_kind = 'lot' AND t.from_id = l.mes_site || '/' || l.mes_lot_id) AS documents,
            (SELECT json_agg(json_build_object('workflowId', c.workflow_id, 'stage', c.stage, 'holdId', c.hold_id,
                                               'notification', c.notification,
                                               'decision', c.state -> 'disposition' ->> 'decision',
                                               'openedAt', c.opened_at, 'closedAt', c.closed_at) ORDER BY c.opened_at)
               FROM holdfast.lot_case c WHERE c.site = l.mes_site AND c.lot_id = l.mes_lot_id) AS cases,
            (SELECT json_agg(json_build_object('delivery', d.delivery, 'item', d.item, 'site', d.site,
                                               'customer', d.customer, 'shipTo', d.ship_to, 'material', d.material,
                                               'quantity', d.quantity, 'unit', d.unit, 'shippedAt', d.shipped_at)
                             ORDER BY d.delivery, d.item)
               FROM holdfast.delivery d WHERE d.lot_key = l.lot_key) AS deliveries
       FROM unnest($1::text[]) WITH ORDINALITY AS k (lot_key, n)
       JOIN holdfast.material_lot l USING (lot_key)
      ORDER BY k.n`,
    [lotKeys],
  );
  return res.rows.map((r) => ({
    lotKey: r.lot_key,
    site: r.site,
    material: r.material,
    quantity: num(r.quantity),
    unit: r.unit,
    origin: r.origin,
    mes: r.mes_site !== null && r.mes_lot_id !== null ? { site: r.mes_site, lotId: r.mes_lot_id } : null,
    erp:
      r.erp_plant !== null && r.erp_material !== null && r.erp_batch !== null
        ? { plant: r.erp_plant, material: r.erp_material, batch: r.erp_batch }
        : null,
    supplier: r.supplier,
    supplierBatch: r.supplier_batch,
    purchaseOrder: r.purchase_order,
    purchaseOrderItem: r.purchase_order_item,
    goodsReceipt: r.goods_receipt,
    workOrder: r.work_order,
    line: r.line,
    inspections: {
      pass: Number(r.inspections.pass),
      fail: Number(r.inspections.fail),
      defects: Object.fromEntries(Object.entries(r.inspections.defects ?? {}).map(([c, n]) => [c, Number(n)])),
      modelVersions: (r.inspections.models ?? []).filter((m): m is string => m !== null),
    },
    documents: r.documents ?? [],
    cases: (r.cases ?? []).map((c) => ({
      ...c,
      openedAt: new Date(c.openedAt).toISOString(),
      closedAt: c.closedAt ? new Date(c.closedAt).toISOString() : null,
    })),
    deliveries: (r.deliveries ?? []).map((d) => ({
      ...d,
      quantity: num(d.quantity),
      shippedAt: d.shippedAt ? new Date(d.shippedAt).toISOString() : null,
    })),
  }));
}

/** The sites of lot nodes. */
export async function lotSites(db: Db, nodes: readonly string[]): Promise<Map<string, string>> {
  const keys = nodes.filter((n) => nodeKind(n) === 'lot').map(lotKeyOfNode);
  if (keys.length === 0) return new Map();
  const res = await db.query<{ lot_key: string; site: string }>(
    `SELECT lot_key, site FROM holdfast.material_lot WHERE lot_key = ANY($1::text[])`,
    [keys],
  );
  return new Map(res.rows.map((r) => [lotNode(r.lot_key), r.site]));
}

export interface TraceGapView {
  /** Where the next page starts after this gap (opaque to callers). */
  cursor: string;
  kind: string;
  subject: string;
  site: string;
  detail: unknown;
  foundAt: string;
  resolvedAt: string | null;
  resolvedBy: string | null;
}

/**
 * Cycles a trace met: recorded as `cycle` gaps (keyed by the smallest node of the loop, so one loop found from any
 * of its nodes is one gap), so they are reported with the other gaps until the data is corrected.
 */
export async function recordCycles(db: Db, cycles: readonly string[][], siteOf: Map<string, string>): Promise<void> {
  const loops = cycles.map((path) => {
    const closing = path[path.length - 1] as string;
    return path.slice(path.indexOf(closing));
  });
  const unique = new Map(loops.map((loop) => [[...loop.slice(1)].sort()[0] as string, loop]));
  if (unique.size === 0) return;
  const subjects = [...unique.keys()];
  await db.query(
    `INSERT INTO holdfast.trace_gap (kind, subject, site, detail)
     SELECT 'cycle', subject, site, detail::jsonb FROM unnest($1::text[], $2::text[], $3::text[]) AS g (subject, site, detail)
     ON CONFLICT (kind, subject) DO NOTHING`,
    [
      subjects,
      subjects.map((s) => siteOf.get(s) ?? 'unknown'),
      subjects.map((s) => JSON.stringify({ loop: unique.get(s) })),
    ],
  );
}

/** Gaps of the given sites, open ones only unless `all`, oldest first, keyset-paged after (foundAt, kind, subject). */
export async function listGaps(
  db: Db,
  opts: { sites: readonly string[] | null; open: boolean; kind?: string; after?: string; limit: number },
): Promise<TraceGapView[]> {
  const after = opts.after === undefined ? undefined : parseGapCursor(opts.after);
  const res = await db.query<{
    kind: string;
    subject: string;
    site: string;
    detail: unknown;
    found_at: Date;
    resolved_at: Date | null;
    resolved_by: string | null;
    found_at_text: string;
  }>(
    `SELECT kind, subject, site, detail, found_at, resolved_at, resolved_by,
            to_char(found_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS found_at_text
       FROM holdfast.trace_gap
      WHERE ($1::text[] IS NULL OR site = ANY($1::text[]))
        AND (NOT $2 OR resolved_at IS NULL)
        AND ($3::text IS NULL OR kind = $3)
        AND ($4::timestamptz IS NULL OR (found_at, kind, subject) > ($4::timestamptz, $5::text, $6::text))
      ORDER BY found_at, kind, subject
      LIMIT $7`,
    [opts.sites, opts.open, opts.kind ?? null, ...(after ?? [null, null, null]), opts.limit],
  );
  return res.rows.map((r) => ({
    cursor: encodeCursor([r.found_at_text, r.kind, r.subject]),
    kind: r.kind,
    subject: r.subject,
    site: r.site,
    detail: r.detail,
    foundAt: r.found_at.toISOString(),
    resolvedAt: r.resolved_at ? r.resolved_at.toISOString() : null,
    resolvedBy: r.resolved_by,
  }));
}

const encodeCursor = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
const decodeCursor = (cursor: string): unknown => JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));

/** The site of a `wo:<site>/<order>` node. */
const workOrderSite = (node: string): string => decodeURIComponent(node.slice('wo:'.length, node.indexOf('/')));

/** PostgreSQL refuses NUL in text, and no key of ours holds a control character. */
const CONTROL = /\p{Cc}/u;

export class TraceCursorError extends Error {
  override readonly name = 'TraceCursorError';
}

function parseGapCursor(cursor: string): [string, string, string] {
  try {
    const parsed = decodeCursor(cursor);
    if (
      Array.isArray(parsed) &&
      parsed.length === 3 &&
      parsed.every((p) => typeof p === 'string' && !CONTROL.test(p)) &&
      /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/.test(parsed[0] as string)
    ) {
      return parsed as [string, string, string];
    }
  } catch {
    // reported below
  }
  throw new TraceCursorError('not a cursor this route gave out');
}

export interface TracedLot extends LotDetail {
  depth: number;
  /** The movements that reached the lot, in the walk's direction (from is nearer the start). */
  reachedVia: { edgeKey: string; kind: EdgeKind; from: string; quantity: number | null; unit: string | null }[];
}

export interface TraceOptions {
  direction: TraceDirection;
  depth: number;
  limit: number;
  /** The cursor of the previous page (TracePage.next). */
  after?: string;
  /** Whether the caller may see a site's lots: the others are counted, never shown. */
  maySee: (site: string) => boolean;
}

export interface TracePage {
  direction: TraceDirection;
  depth: number;
  start: StartNode[];
  /** This page of the lots reached, nearest first (start lots at depth 0), then by lot key. */
  lots: TracedLot[];
  /** Visible lots reached, all pages together. */
  totalLots: number;
  /** Lots reached at sites the caller may not see. */
  hiddenLots: number;
  /** Work orders the walk went through. */
  workOrders: string[];
  cycles: string[][];
  truncated: boolean;
  next: string | null;
}

/**
 * A trace from resolved start nodes: the walk, the visible lots in (depth, lot key) order, and the details of one
 * page of them. Each page walks again (the walk is the cheap part); the cursor is the last lot's (depth, key).
 */
export async function traceGenealogy(db: Db, start: readonly StartNode[], opts: TraceOptions): Promise<TracePage> {
  const walk = await walkGenealogy(db, start, opts.direction, opts.depth);
  const reached = [...walk.depthOf.keys()];
  const siteOf = await lotSites(db, reached);
  for (const s of start) siteOf.set(s.node, s.site);
  if (walk.cycles.length > 0) await recordCycles(db, walk.cycles, siteOf);

  const lotNodes = reached.filter((n) => nodeKind(n) === 'lot');
  const visible = lotNodes.filter((n) => opts.maySee(siteOf.get(n) ?? ''));
  const visibleSet = new Set(visible);
  const ordered = visible
    .map((node) => ({ node, depth: walk.depthOf.get(node) ?? 0, key: lotKeyOfNode(node) }))
    .sort((a, b) => a.depth - b.depth || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const after = opts.after === undefined ? undefined : parseLotCursor(opts.after);
  const from = after ? ordered.findIndex((l) => l.depth > after[0] || (l.depth === after[0] && l.key > after[1])) : 0;
  const page = from < 0 ? [] : ordered.slice(from, from + opts.limit);
  const last = page[page.length - 1];
  const hasMore = from >= 0 && from + opts.limit < ordered.length;

  const details = await lotDetails(
    db,
    page.map((l) => l.key),
  );
  const detailOf = new Map(details.map((d) => [d.lotKey, d]));
  const into = new Map<string, TracedEdge[]>();
  for (const e of walk.edges) into.set(e.to, [...(into.get(e.to) ?? []), e]);
  // A movement from a lot the caller may not see is left out, so the page names no lot of another site.
  const shown = (node: string) => nodeKind(node) !== 'lot' || visibleSet.has(node);

  return {
    direction: opts.direction,
    depth: opts.depth,
    start: walk.start.filter((s) => opts.maySee(s.site)),
    lots: page.flatMap((l) => {
      const detail = detailOf.get(l.key);
      if (!detail) return [];
      return [
        {
          ...detail,
          deliveries: detail.deliveries.filter((d) => opts.maySee(d.site)),
          depth: l.depth,
          reachedVia: (into.get(l.node) ?? [])
            .filter((e) => shown(e.from))
            .map((e) => ({ edgeKey: e.edgeKey, kind: e.kind, from: e.from, quantity: e.quantity, unit: e.unit })),
        },
      ];
    }),
    totalLots: visible.length,
    hiddenLots: lotNodes.length - visible.length,
    workOrders: reached.filter((n) => nodeKind(n) === 'wo' && opts.maySee(workOrderSite(n))).sort(),
    cycles: walk.cycles.filter((c) => c.every(shown)),
    truncated: walk.truncated,
    next: hasMore && last ? encodeCursor([last.depth, last.key]) : null,
  };
}

function parseLotCursor(cursor: string): [number, string] {
  try {
    const parsed = decodeCursor(cursor);
    if (
      Array.isArray(parsed) &&
      parsed.length === 2 &&
      typeof parsed[0] === 'number' &&
      typeof parsed[1] === 'string'
    ) {
      return [parsed[0], parsed[1]];
    }
  } catch {
    // reported below
  }
  throw new TraceCursorError('not a cursor this route gave out');
}

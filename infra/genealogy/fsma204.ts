import type { Pool } from 'pg';

/**
 * The FSMA 204 electronic sortable spreadsheet (21 CFR 1.1455(c)(3)(ii)) built from the genealogy: one row per
 * critical tracking event, a transformation one row per input lot (the rows of one event share `event_id`), each with
 * the key data elements of its event. docs/fsma-204.md says which columns come from which rule and which are not
 * confirmed against the FDA's own template.
 */

export type CriticalTrackingEvent = 'receiving' | 'transformation' | 'shipping';

export const FSMA204_COLUMNS = [
  'event_id',
  'critical_tracking_event',
  'event_date',
  'event_time',
  'traceability_lot_code',
  'tlc_source_location',
  'tlc_source_reference',
  'product_description',
  'quantity',
  'unit_of_measure',
  'event_location',
  'immediate_previous_source',
  'ship_from_location',
  'ship_to_location',
  'input_traceability_lot_code',
  'input_product_description',
  'input_quantity',
  'input_unit_of_measure',
  'reference_document_type',
  'reference_document_number',
  'holdfast_lot_key',
] as const;

export type Fsma204Row = Record<(typeof FSMA204_COLUMNS)[number], string>;

/** A material_lot row, as much of it as the sheet needs. */
export interface Fsma204Lot {
  lotKey: string;
  site: string;
  material: string | null;
  quantity: string | null;
  unit: string | null;
  origin: 'purchased' | 'produced' | 'unknown';
  mesLotId: string | null;
  erpPlant: string | null;
  erpBatch: string | null;
  supplier: string | null;
  supplierBatch: string | null;
  purchaseOrder: string | null;
  purchaseOrderItem: string | null;
  goodsReceipt: string | null;
  workOrder: string | null;
  occurredAt: Date | null;
}

export interface Fsma204Edge {
  fromNode: string;
  toNode: string;
  kind: string;
  quantity: string | null;
  unit: string | null;
  occurredAt: Date;
  site: string;
}

export interface Fsma204Delivery {
  delivery: string;
  item: string;
  site: string;
  shipTo: string;
  lotKey: string;
  quantity: string | null;
  unit: string | null;
  shippedAt: Date | null;
}

export interface Fsma204Facts {
  lots: Fsma204Lot[];
  edges: Fsma204Edge[];
  deliveries: Fsma204Delivery[];
}

export interface Fsma204Filter {
  site: string;
  /** First instant included. */
  from: Date;
  /** First instant excluded. */
  to: Date;
  /** Traceability lot codes or Holdfast lot keys; a row matches when its own or its input lot is named. */
  lots?: readonly string[];
  /** Products (materials); a row matches when its own or its input product is named. */
  products?: readonly string[];
}

/**
 * The traceability lot code of a lot. A bought lot keeps the code its supplier gave it (the rule lets only a
 * transformation assign a new one), so its supplier batch wins; a lot the plant made, or one received without a
 * supplier batch (the receiver then assigns the code), is named by its ERP batch: that is what labels, delivery notes
 * and SAP documents print, while the lot key is Holdfast's own. A lot no ERP knows falls back to its MES lot id.
 */
export function traceabilityLotCode(lot: Fsma204Lot): string {
  if (lot.origin === 'purchased' && lot.supplierBatch) return lot.supplierBatch;
  return lot.erpBatch ?? lot.mesLotId ?? lot.lotKey;
}

/** Where the lot's code was assigned: the supplier for a code kept from it, otherwise the plant. */
function tlcSource(lot: Fsma204Lot): { location: string; reference: string } {
  if (lot.origin === 'purchased' && lot.supplierBatch && lot.supplier) {
    return { location: '', reference: `supplier ${lot.supplier}` };
  }
  return { location: plantOf(lot), reference: '' };
}

const plantOf = (lot: Fsma204Lot): string => (lot.erpPlant ? `${lot.site} (plant ${lot.erpPlant})` : lot.site);

/** Decimals as the database spells them, without trailing zeros ("12.500" → "12.5"). */
const decimal = (value: string | null): string =>
  value === null ? '' : value.includes('.') ? value.replace(/\.?0+$/, '') : value;

const blank = (): Fsma204Row => Object.fromEntries(FSMA204_COLUMNS.map((c) => [c, ''])) as Fsma204Row;

/** The sheet's rows for the filter, in event time order (then event id and input lot code), from facts already read. */
export function buildFsma204Rows(facts: Fsma204Facts, filter: Fsma204Filter): Fsma204Row[] {
  const lots = new Map(facts.lots.map((l) => [l.lotKey, l]));
  const inRange = (at: Date | null): at is Date =>
    at !== null && at.getTime() >= filter.from.getTime() && at.getTime() < filter.to.getTime();
  const rows: Fsma204Row[] = [];
  const event = (cte: CriticalTrackingEvent, id: string, at: Date, lot: Fsma204Lot) => {
    const source = tlcSource(lot);
    return {
      ...blank(),
      event_id: `${cte}:${id}`,
      critical_tracking_event: cte,
      event_date: at.toISOString().slice(0, 10),
      event_time: at.toISOString(),
      traceability_lot_code: traceabilityLotCode(lot),
      tlc_source_location: source.location,
      tlc_source_reference: source.reference,
      product_description: lot.material ?? '',
      holdfast_lot_key: lot.lotKey,
    };
  };

  for (const lot of facts.lots) {
    if (lot.site !== filter.site || lot.origin !== 'purchased' || !lot.goodsReceipt || !inRange(lot.occurredAt)) {
      continue;
    }
    rows.push({
      ...event('receiving', lot.lotKey, lot.occurredAt, lot),
      quantity: decimal(lot.quantity),
      unit_of_measure: lot.unit ?? '',
      event_location: plantOf(lot),
      immediate_previous_source: lot.supplier ? `supplier ${lot.supplier}` : '',
      // The purchase order, not the goods receipt: the document the supplier also holds (the receipt's number is the
      // plant's own, and the genealogy keeps it as lot.goodsReceipt for the trace).
      reference_document_type: 'purchase order',
      reference_document_number: [lot.purchaseOrder, lot.purchaseOrderItem].filter(Boolean).join('/'),
    });
  }

  // Both the ERP and the MES state most movements, each under its own document: one fact per (from, to, kind), at
  // the earliest instant either system gives it.
  const edges = new Map<string, Fsma204Edge>();
  for (const e of facts.edges) {
    const key = `${e.kind}\u0000${e.fromNode}\u0000${e.toNode}`;
    const seen = edges.get(key);
    if (!seen || e.occurredAt < seen.occurredAt) edges.set(key, e);
  }
  const into = new Map<string, Fsma204Edge[]>();
  for (const e of edges.values()) into.set(e.toNode, [...(into.get(e.toNode) ?? []), e]);

  const lotOfNode = (node: string) => (node.startsWith('lot:') ? lots.get(node.slice('lot:'.length)) : undefined);
  const inputRow = (base: Fsma204Row, input: Fsma204Edge): Fsma204Row => {
    const source = lotOfNode(input.fromNode);
    return {
      ...base,
      input_traceability_lot_code: source ? traceabilityLotCode(source) : input.fromNode,
      input_product_description: source?.material ?? '',
      input_quantity: decimal(input.quantity),
      input_unit_of_measure: input.unit ?? source?.unit ?? '',
    };
  };

  for (const [node, incoming] of into) {
    const output = lotOfNode(node);
    if (!output || output.site !== filter.site) continue;
    const produced = incoming.filter((e) => e.kind === 'produced' && e.fromNode.startsWith('wo:'));
    const rearranged = incoming.filter((e) => e.kind !== 'produced' && e.kind !== 'delivered');
    const inputs = [
      ...produced.flatMap((p) => (into.get(p.fromNode) ?? []).filter((c) => c.kind === 'consumed')),
      ...rearranged,
    ];
    const at = [...produced, ...rearranged].reduce<Date | null>(
      (min, e) => (min === null || e.occurredAt < min ? e.occurredAt : min),
      null,
    );
    if (!inRange(at) || (produced.length === 0 && rearranged.length === 0)) continue;
    const base: Fsma204Row = {
      ...event('transformation', output.lotKey, at, output),
      quantity: decimal(output.quantity),
      unit_of_measure: output.unit ?? '',
      event_location: plantOf(output),
      reference_document_type: 'work order',
      reference_document_number: output.workOrder ?? '',
    };
    // A lot made from nothing the systems stated is still a transformation the plant must show: one row, no input.
    rows.push(...(inputs.length > 0 ? inputs.map((input) => inputRow(base, input)) : [base]));
  }

  for (const d of facts.deliveries) {
    const lot = lots.get(d.lotKey);
    if (d.site !== filter.site || !lot || !inRange(d.shippedAt)) continue;
    rows.push({
      ...event('shipping', `${d.delivery}/${d.item}`, d.shippedAt, lot),
      quantity: decimal(d.quantity),
      unit_of_measure: d.unit ?? lot.unit ?? '',
      event_location: plantOf(lot),
      ship_from_location: plantOf(lot),
      ship_to_location: `ship-to ${d.shipTo}`,
      reference_document_type: 'outbound delivery',
      reference_document_number: `${d.delivery}/${d.item}`,
    });
  }

  const wanted = (names: readonly string[] | undefined, ...values: string[]) =>
    names === undefined || names.length === 0 || values.some((v) => v !== '' && names.includes(v));
  const inputKey = (r: Fsma204Row) => r.input_traceability_lot_code;
  return rows
    .filter(
      (r) =>
        wanted(filter.lots, r.traceability_lot_code, r.holdfast_lot_key, inputKey(r)) &&
        wanted(filter.products, r.product_description, r.input_product_description),
    )
    .sort(
      (a, b) =>
        a.event_time.localeCompare(b.event_time) ||
        a.event_id.localeCompare(b.event_id) ||
        a.input_traceability_lot_code.localeCompare(b.input_traceability_lot_code),
    );
}

const EDGE_COLUMNS = `from_node AS "fromNode", to_node AS "toNode", kind, quantity::text AS quantity, unit,
  occurred_at AS "occurredAt", site`;
const DELIVERY_COLUMNS = `delivery, item, site, ship_to AS "shipTo", lot_key AS "lotKey", quantity::text AS quantity,
  unit, shipped_at AS "shippedAt"`;
const LOT_COLUMNS = `lot_key AS "lotKey", site, material, quantity::text AS quantity, unit, origin,
  mes_lot_id AS "mesLotId", erp_plant AS "erpPlant", erp_batch AS "erpBatch", supplier,
  supplier_batch AS "supplierBatch", purchase_order AS "purchaseOrder", purchase_order_item AS "purchaseOrderItem",
  goods_receipt AS "goodsReceipt", work_order AS "workOrder", occurred_at AS "occurredAt"`;

/**
 * What the sheet of a site needs from the genealogy: the site's lots and the lots its movements name, its movements in
 * the range (a transformation's consumption may precede its production, so from a day before), its deliveries.
 */
export async function readFsma204Facts(pool: Pool, filter: Fsma204Filter): Promise<Fsma204Facts> {
  const range = [filter.site, new Date(filter.from.getTime() - 7 * 86_400_000), filter.to];
  const { rows: edges } = await pool.query<Fsma204Edge>(
    `SELECT ${EDGE_COLUMNS}
       FROM holdfast.genealogy_edge
      WHERE site = $1 AND occurred_at >= $2 AND occurred_at < $3 AND kind <> 'delivered'`,
    range,
  );
  const { rows: deliveries } = await pool.query<Fsma204Delivery>(
    `SELECT ${DELIVERY_COLUMNS}
       FROM holdfast.delivery
      WHERE site = $1 AND shipped_at >= $2 AND shipped_at < $3`,
    [filter.site, filter.from, filter.to],
  );
  const named = new Set<string>();
  for (const e of edges) {
    for (const node of [e.fromNode, e.toNode]) if (node.startsWith('lot:')) named.add(node.slice('lot:'.length));
  }
  for (const d of deliveries) named.add(d.lotKey);
  const { rows: lots } = await pool.query<Fsma204Lot>(
    `SELECT ${LOT_COLUMNS}
       FROM holdfast.material_lot
      WHERE (site = $1 AND origin = 'purchased' AND occurred_at >= $2 AND occurred_at < $3) OR lot_key = ANY($4)`,
    [filter.site, filter.from, filter.to, [...named]],
  );
  return { lots, edges, deliveries };
}

/**
 * The facts of a set of lots, whatever their dates (a recall's, docs/recall.md#records): the lots' movements and those
 * of the work orders that made or consumed them (a transformation's other inputs), their deliveries, the lots named.
 * Read by the edge indexes, so a recall of a thousand lots does not read the site's whole history.
 */
export async function readFsma204FactsOfLots(pool: Pool, lotKeys: readonly string[]): Promise<Fsma204Facts> {
  const { rows: edges } = await pool.query<Fsma204Edge>(
    `WITH lot_nodes AS (SELECT 'lot:' || k AS node FROM unnest($1::text[]) k),
          touching AS (
            SELECT e.* FROM holdfast.genealogy_edge e JOIN lot_nodes n ON e.from_node = n.node
            UNION SELECT e.* FROM holdfast.genealogy_edge e JOIN lot_nodes n ON e.to_node = n.node),
          orders AS (
            SELECT from_node AS node FROM touching WHERE from_node LIKE 'wo:%'
            UNION SELECT to_node FROM touching WHERE to_node LIKE 'wo:%')
     SELECT ${EDGE_COLUMNS} FROM touching WHERE kind <> 'delivered'
     UNION SELECT ${EDGE_COLUMNS} FROM holdfast.genealogy_edge e JOIN orders o ON e.to_node = o.node
     UNION SELECT ${EDGE_COLUMNS} FROM holdfast.genealogy_edge e JOIN orders o ON e.from_node = o.node`,
    [lotKeys],
  );
  const { rows: deliveries } = await pool.query<Fsma204Delivery>(
    `SELECT ${DELIVERY_COLUMNS}
       FROM holdfast.delivery WHERE lot_key = ANY($1::text[])`,
    [lotKeys],
  );
  const named = new Set<string>(lotKeys);
  for (const e of edges) {
    for (const node of [e.fromNode, e.toNode]) if (node.startsWith('lot:')) named.add(node.slice('lot:'.length));
  }
  const { rows: lots } = await pool.query<Fsma204Lot>(
    `SELECT ${LOT_COLUMNS}
       FROM holdfast.material_lot WHERE lot_key = ANY($1::text[])`,
    [[...named]],
  );
  return { lots, edges, deliveries };
}

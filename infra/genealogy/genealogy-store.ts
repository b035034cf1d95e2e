/**
 * Writing the genealogy (docs/traceability.md): lots, the movements between lots, work orders and deliveries, the
 * delivery items and the parts produced. Only the ERP and MES sync writes here. Every call takes a batch, applies it
 * in one transaction keyed by business documents (a replay changes nothing), finds and resolves gaps in that same
 * transaction, and leaves one audit record for the batch when it changed anything.
 */
import type pg from 'pg';
import type {
  DeliveryInput,
  EdgeKind,
  GenealogyFacts,
  LotInput,
  MovementInput,
  PartInput,
} from '../../activities/ports';
import type { AuditActor, AuditEntry } from '../audit/audit-record';
import type { AuditTrail } from '../audit/audit-trail';
import { deliveryEdgeKey, deliveryNode, lotKeyOfNode, lotNode, nodeKind } from './genealogy-keys';
import { completeMaterialContext, completePendingMaterialContext } from './material-context';

export type { DeliveryInput, EdgeKind, LotInput, MovementInput, PartInput } from '../../activities/ports';

export type GapKind =
  | 'consumption-without-receipt'
  | 'lot-without-source'
  | 'part-without-inspection'
  | 'shipment-of-held-lot'
  | 'cycle'
  | 'unknown-reference';

export interface BatchContext {
  /** What is syncing, e.g. `erp-sync`, `mes-events`: recorded in the batch's audit record. */
  source: string;
  /** Who to name in the audit record; a system actor named after `source` by default. */
  actor?: AuditActor;
}

export interface BatchResult {
  /** Rows this batch created. */
  added: number;
  /** Rows this batch completed (a lot first seen only as a reference, identifiers another system adds). */
  updated: number;
  /** Rows already known as stated: a replay is all unchanged. */
  unchanged: number;
  gapsOpened: number;
  gapsResolved: number;
}

export class GenealogyInputError extends Error {
  override readonly name = 'GenealogyInputError';
}

export interface GenealogyStore {
  recordLots(batch: BatchContext, lots: readonly LotInput[]): Promise<BatchResult>;
  recordMovements(batch: BatchContext, movements: readonly MovementInput[]): Promise<BatchResult>;
  recordDeliveries(batch: BatchContext, deliveries: readonly DeliveryInput[]): Promise<BatchResult>;
  recordParts(batch: BatchContext, parts: readonly PartInput[]): Promise<BatchResult>;
  /**
   * Resolves the gaps whose missing side arrived by another way than this store (a part's inspection, stored by
   * ingest): for a periodic sweep; every record* call already resolves what its own batch explains.
   */
  reconcile(batch: BatchContext): Promise<BatchResult>;
  /**
   * A page of one system's facts in one transaction, lots first, then movements, deliveries and parts, and only then
   * the check for produced lots without a source: a lot and the movement that made it, read together, open no gap.
   * One audit record for the page.
   */
  recordPage(batch: BatchContext, facts: GenealogyFacts): Promise<BatchResult>;
}

/** Which node kinds each edge kind joins: anything else is refused before it is stored. */
const EDGE_ENDS: Record<EdgeKind, [string, string]> = {
  consumed: ['lot', 'wo'],
  produced: ['wo', 'lot'],
  split: ['lot', 'lot'],
  merged: ['lot', 'lot'],
  reworked: ['lot', 'lot'],
  repacked: ['lot', 'lot'],
  delivered: ['lot', 'delivery'],
};

/** Edge kinds that make a lot: one of them into a produced lot is its source. */
const SOURCE_KINDS: EdgeKind[] = ['produced', 'split', 'merged', 'reworked', 'repacked'];

const ZERO: BatchResult = { added: 0, updated: 0, unchanged: 0, gapsOpened: 0, gapsResolved: 0 };

const sum = (a: BatchResult, b: Partial<BatchResult>): BatchResult => ({
  added: a.added + (b.added ?? 0),
  updated: a.updated + (b.updated ?? 0),
  unchanged: a.unchanged + (b.unchanged ?? 0),
  gapsOpened: a.gapsOpened + (b.gapsOpened ?? 0),
  gapsResolved: a.gapsResolved + (b.gapsResolved ?? 0),
});

/** The first row per key: a key twice in one batch is one statement of it (ON CONFLICT cannot touch a row twice). */
function firstPerKey<T>(rows: readonly T[], key: (row: T) => string): T[] {
  const seen = new Set<string>();
  return rows.filter((row) => {
    const k = key(row);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

// Columns a later statement may complete: an unknown lot takes every value, a known one only fills what is missing.
const LOT_COLUMNS = [
  'site',
  'material',
  'quantity',
  'unit',
  'origin',
  'mes_site',
  'mes_lot_id',
  'erp_plant',
  'erp_material',
  'erp_batch',
  'supplier',
  'supplier_batch',
  'purchase_order',
  'purchase_order_item',
  'goods_receipt',
  'work_order',
  'line',
  'source_system',
  'document',
  'occurred_at',
] as const;
const LOT_TYPES: Record<(typeof LOT_COLUMNS)[number], string> = {
  site: 'text',
  material: 'text',
  quantity: 'numeric',
  unit: 'text',
  origin: 'text',
  mes_site: 'text',
  mes_lot_id: 'text',
  erp_plant: 'text',
  erp_material: 'text',
  erp_batch: 'text',
  supplier: 'text',
  supplier_batch: 'text',
  purchase_order: 'text',
  purchase_order_item: 'text',
  goods_receipt: 'text',
  work_order: 'text',
  line: 'text',
  source_system: 'text',
  document: 'text',
  occurred_at: 'timestamptz',
};
const LOT_UPSERT_SQL = `
  INSERT INTO holdfast.material_lot AS l (lot_key, ${LOT_COLUMNS.join(', ')})
  SELECT * FROM unnest($1::text[], ${LOT_COLUMNS.map((c, i) => `$${i + 2}::${LOT_TYPES[c]}[]`).join(', ')})
  ON CONFLICT (lot_key) DO UPDATE SET
    ${LOT_COLUMNS.map(
      (c) => `${c} = CASE WHEN l.origin = 'unknown' THEN EXCLUDED.${c} ELSE COALESCE(l.${c}, EXCLUDED.${c}) END`,
    ).join(',\n    ')},
    updated_at = now()
  WHERE l.origin = 'unknown'
     OR ${LOT_COLUMNS.filter((c) => c !== 'origin')
       .map((c) => `(l.${c} IS NULL AND EXCLUDED.${c} IS NOT NULL)`)
       .join('\n     OR ')}
  RETURNING lot_key, (xmax = 0) AS inserted`;

function lotRow(lot: LotInput): Record<(typeof LOT_COLUMNS)[number], string | number | null> {
  return {
    site: lot.site,
    material: lot.material,
    quantity: lot.quantity ?? null,
    unit: lot.unit ?? null,
    origin: lot.origin,
    mes_site: lot.mes?.site ?? null,
    mes_lot_id: lot.mes?.lotId ?? null,
    erp_plant: lot.erp?.plant ?? null,
    erp_material: lot.erp?.material ?? null,
    erp_batch: lot.erp?.batch ?? null,
    supplier: lot.purchased?.supplier ?? null,
    supplier_batch: lot.purchased?.supplierBatch ?? null,
    purchase_order: lot.purchased?.purchaseOrder ?? null,
    purchase_order_item: lot.purchased?.purchaseOrderItem ?? null,
    goods_receipt: lot.purchased?.goodsReceipt ?? null,
    work_order: lot.produced?.workOrder ?? null,
    line: lot.produced?.line ?? null,
    source_system: lot.sourceSystem,
    document: lot.document,
    occurred_at: lot.occurredAt ?? null,
  };
}

/**
 * A MES lot id or ERP batch already stored under another lot key: two keys for one physical lot, which no later
 * record could merge without rewriting the edges of both. The sync must key the lot the same way every time
 * (lotKey: the ERP batch whenever the lot has one).
 */
function identityTaken(err: unknown): never {
  const e = err as { code?: string; constraint?: string; detail?: string };
  if (e.code === '23505' && (e.constraint === 'material_lot_mes_idx' || e.constraint === 'material_lot_erp_idx')) {
    throw new GenealogyInputError(`a lot of this batch is already stored under another lot key: ${e.detail ?? ''}`);
  }
  throw err;
}

function checkMovement(m: MovementInput): void {
  const ends = EDGE_ENDS[m.kind];
  if (!ends) throw new GenealogyInputError(`movement ${m.edgeKey}: unknown kind ${String(m.kind)}`);
  if (nodeKind(m.from) !== ends[0] || nodeKind(m.to) !== ends[1]) {
    throw new GenealogyInputError(
      `movement ${m.edgeKey}: a ${m.kind} edge goes from a ${ends[0]} node to a ${ends[1]} node, not ${m.from} → ${m.to}`,
    );
  }
  if (m.from === m.to) throw new GenealogyInputError(`movement ${m.edgeKey}: from and to are the same node`);
}

/** Opens gaps (ON CONFLICT: a gap already known, open or resolved, is not opened twice) and counts the new ones. */
async function openGaps(
  client: pg.PoolClient,
  gaps: readonly { kind: GapKind; subject: string; site: string; detail: unknown }[],
): Promise<number> {
  if (gaps.length === 0) return 0;
  const res = await client.query(
    `INSERT INTO holdfast.trace_gap (kind, subject, site, detail)
     SELECT kind, subject, site, detail::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
            AS g (kind, subject, site, detail)
     ON CONFLICT (kind, subject) DO NOTHING`,
    [
      gaps.map((g) => g.kind),
      gaps.map((g) => g.subject),
      gaps.map((g) => g.site),
      gaps.map((g) => JSON.stringify(g.detail)),
    ],
  );
  return res.rowCount ?? 0;
}

/** SQL for a key part escaped as genealogy-keys.ts escapes it ('%' → '%25', '/' → '%2F'). */
const escapedKeyPart = (column: string) => `replace(replace(${column}, '%', '%25'), '/', '%2F')`;

/** Resolves the open gaps of `kinds` about each subject, naming the document that explains it. */
async function resolveGaps(
  client: pg.PoolClient,
  kinds: readonly GapKind[],
  explained: readonly { subject: string; by: string }[],
): Promise<number> {
  const unique = firstPerKey(explained, (e) => e.subject);
  if (unique.length === 0) return 0;
  const res = await client.query(
    `UPDATE holdfast.trace_gap g SET resolved_at = now(), resolved_by = e.by
       FROM unnest($2::text[], $3::text[]) AS e (subject, by)
      WHERE g.kind = ANY($1::text[]) AND g.subject = e.subject AND g.resolved_at IS NULL`,
    [kinds, unique.map((e) => e.subject), unique.map((e) => e.by)],
  );
  return res.rowCount ?? 0;
}

interface LotReference {
  lotKey: string;
  site: string;
  document: string;
  sourceSystem: string;
  /** The gap to open when nobody has described the lot yet. */
  gap: GapKind;
}

/**
 * Makes sure every referenced lot exists: a lot nobody described yet is stored with origin `unknown` and a gap that
 * the lot's own record resolves later (events arrive out of order; the reference is kept, never dropped).
 */
async function ensureLots(client: pg.PoolClient, refs: readonly LotReference[]): Promise<number> {
  const unique = firstPerKey(refs, (r) => r.lotKey);
  if (unique.length === 0) return 0;
  const res = await client.query<{ lot_key: string }>(
    `INSERT INTO holdfast.material_lot (lot_key, site, origin, source_system, document)
     SELECT lot_key, site, 'unknown', source_system, document
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS r (lot_key, site, source_system, document)
     ON CONFLICT (lot_key) DO NOTHING
     RETURNING lot_key`,
    [
      unique.map((r) => r.lotKey),
      unique.map((r) => r.site),
      unique.map((r) => r.sourceSystem),
      unique.map((r) => r.document),
    ],
  );
  const created = new Set(res.rows.map((r) => r.lot_key));
  return openGaps(
    client,
    unique
      .filter((r) => created.has(r.lotKey))
      .map((r) => ({
        kind: r.gap,
        subject: lotNode(r.lotKey),
        site: r.site,
        detail: { lotKey: r.lotKey, referencedBy: r.document, sourceSystem: r.sourceSystem },
      })),
  );
}

/** Inserts edges (already checked) and does their gap work; shared by movements and deliveries. */
async function insertEdges(client: pg.PoolClient, edges: readonly MovementInput[]): Promise<BatchResult> {
  const unique = firstPerKey(edges, (e) => e.edgeKey);
  if (unique.length === 0) return { ...ZERO, unchanged: edges.length };
  const res = await client.query<{ edge_key: string }>(
    `INSERT INTO holdfast.genealogy_edge
            (edge_key, from_node, to_node, kind, quantity, unit, occurred_at, site, source_system, document)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[], $6::text[],
                          $7::timestamptz[], $8::text[], $9::text[], $10::text[])
     ON CONFLICT (edge_key) DO NOTHING
     RETURNING edge_key`,
    [
      unique.map((e) => e.edgeKey),
      unique.map((e) => e.from),
      unique.map((e) => e.to),
      unique.map((e) => e.kind),
      unique.map((e) => e.quantity ?? null),
      unique.map((e) => e.unit ?? null),
      unique.map((e) => e.occurredAt),
      unique.map((e) => e.site),
      unique.map((e) => e.sourceSystem),
      unique.map((e) => e.document),
    ],
  );
  const added = new Set(res.rows.map((r) => r.edge_key));
  const fresh = unique.filter((e) => added.has(e.edgeKey));

  const refs = fresh.flatMap((e) =>
    [e.from, e.to]
      .filter((node) => nodeKind(node) === 'lot')
      .map((node): LotReference => ({
        lotKey: lotKeyOfNode(node),
        site: e.site,
        document: e.edgeKey,
        sourceSystem: e.sourceSystem,
        gap: e.kind === 'consumed' && node === e.from ? 'consumption-without-receipt' : 'unknown-reference',
      })),
  );
  const gapsOpened = await ensureLots(client, refs);
  // A movement that makes a lot explains it; so does the first material a work order consumed, for the lots that
  // work order produced (they were made from nothing until then).
  const consumedBy = fresh.filter((e) => e.kind === 'consumed');
  const producedFrom =
    consumedBy.length === 0
      ? []
      : (
          await client.query<{ lot: string; by: string }>(
            `SELECT p.to_node AS lot, c.by FROM unnest($1::text[], $2::text[]) AS c (wo, by)
               JOIN holdfast.genealogy_edge p ON p.from_node = c.wo AND p.kind = 'produced'`,
            [consumedBy.map((e) => e.to), consumedBy.map((e) => e.edgeKey)],
          )
        ).rows.map((r) => ({ subject: r.lot, by: r.by }));
  // What the new edges lead into may now be made of more (a consumption recorded after the work order's parts were
  // inspected): their inspections' material context is joined again (docs/changeover.md#material-lot-context).
  await completeMaterialContext(
    client,
    fresh.filter((e) => e.kind !== 'delivered').map((e) => e.to),
  );
  const gapsResolved = await resolveGaps(
    client,
    ['lot-without-source'],
    [
      ...fresh.filter((e) => SOURCE_KINDS.includes(e.kind)).map((e) => ({ subject: e.to, by: e.edgeKey })),
      ...producedFrom,
    ],
  );
  return { added: fresh.length, updated: 0, unchanged: edges.length - fresh.length, gapsOpened, gapsResolved };
}

function auditEntry(batch: BatchContext, what: string, keys: readonly string[], result: BatchResult): AuditEntry[] {
  if (result.added + result.updated + result.gapsOpened + result.gapsResolved === 0) return [];
  const first = keys[0] ?? '';
  const last = keys[keys.length - 1] ?? '';
  return [
    {
      actor: batch.actor ?? { kind: 'system', id: batch.source },
      action: 'genealogy.sync',
      recordType: 'genealogy-batch',
      recordId: `${batch.source}:${what}:${first}..${last}`,
      old: null,
      new: { source: batch.source, records: what, rows: keys.length, firstKey: first, lastKey: last, ...result },
      reason: null,
      outcome: 'done',
      detail: null,
    },
  ];
}

/** Lots upserted; `described`: the ones this call created or completed (they resolve the references to them). */
async function upsertLots(
  client: pg.PoolClient,
  lots: readonly LotInput[],
): Promise<{ result: BatchResult; described: LotInput[] }> {
  const unique = firstPerKey(lots, (l) => l.lotKey);
  if (unique.length === 0) return { result: ZERO, described: [] };
  const rows = unique.map(lotRow);
  const res = await client
    .query<{ lot_key: string; inserted: boolean }>(LOT_UPSERT_SQL, [
      unique.map((l) => l.lotKey),
      ...LOT_COLUMNS.map((c) => rows.map((r) => r[c])),
    ])
    .catch(identityTaken);
  const added = res.rows.filter((r) => r.inserted).length;
  const changed = new Set(res.rows.map((r) => r.lot_key));
  const described = unique.filter((l) => changed.has(l.lotKey));
  // A lot now known to be purchased becomes a supplier lot of every work order it reached.
  await completeMaterialContext(
    client,
    described.filter((l) => l.origin === 'purchased').map((l) => lotNode(l.lotKey)),
  );
  const gapsResolved = await resolveGaps(
    client,
    ['consumption-without-receipt', 'unknown-reference'],
    described.map((l) => ({ subject: lotNode(l.lotKey), by: l.document })),
  );
  return {
    result: sum(ZERO, {
      added,
      updated: res.rows.length - added,
      unchanged: lots.length - res.rows.length,
      gapsResolved,
    }),
    described,
  };
}

/**
 * A produced lot with no movement that made it, or made by a work order that consumed nothing, is a lot without a
 * source until that movement or consumption arrives. Checked after
 * the movements of the same page (recordPage), so a lot and the movement that made it, stated together, open no gap.
 */
async function openSourceGaps(client: pg.PoolClient, described: readonly LotInput[]): Promise<number> {
  const produced = described.filter((l) => l.origin === 'produced').map((l) => lotNode(l.lotKey));
  if (produced.length === 0) return 0;
  // No movement made it, or the work order that made it consumed nothing (a bill of material never booked).
  const orphans = await client.query<{ node: string }>(
    `SELECT n.node FROM unnest($1::text[]) AS n (node)
      WHERE NOT EXISTS (SELECT 1 FROM holdfast.genealogy_edge e
                         WHERE e.to_node = n.node AND e.kind = ANY($2::text[]))
         OR EXISTS (SELECT 1 FROM holdfast.genealogy_edge p
                     WHERE p.to_node = n.node AND p.kind = 'produced'
                       AND NOT EXISTS (SELECT 1 FROM holdfast.genealogy_edge c
                                        WHERE c.to_node = p.from_node AND c.kind = 'consumed'))`,
    [produced, SOURCE_KINDS],
  );
  const orphaned = new Set(orphans.rows.map((r) => r.node));
  return openGaps(
    client,
    described
      .filter((l) => orphaned.has(lotNode(l.lotKey)))
      .map((l) => ({
        kind: 'lot-without-source' as const,
        subject: lotNode(l.lotKey),
        site: l.site,
        detail: { lotKey: l.lotKey, workOrder: l.produced?.workOrder ?? null, document: l.document },
      })),
  );
}

/** Delivery items, their `delivered` edges, and a gap for each shipped while its lot case is open. */
async function insertDeliveries(client: pg.PoolClient, deliveries: readonly DeliveryInput[]): Promise<BatchResult> {
  const unique = firstPerKey(deliveries, (d) => deliveryEdgeKey(d.delivery, d.item));
  if (unique.length === 0) return ZERO;
  const res = await client.query<{ delivery: string; item: string }>(
    `INSERT INTO holdfast.delivery (delivery, item, site, customer, ship_to, material, lot_key, quantity, unit,
                                      shipped_at, source_system)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                            $8::numeric[], $9::text[], $10::timestamptz[], $11::text[])
       ON CONFLICT (delivery, item) DO NOTHING
       RETURNING delivery, item`,
    [
      unique.map((d) => d.delivery),
      unique.map((d) => d.item),
      unique.map((d) => d.site),
      unique.map((d) => d.customer),
      unique.map((d) => d.shipTo),
      unique.map((d) => d.material ?? null),
      unique.map((d) => d.lotKey),
      unique.map((d) => d.quantity ?? null),
      unique.map((d) => d.unit ?? null),
      unique.map((d) => d.shippedAt),
      unique.map((d) => d.sourceSystem),
    ],
  );
  const edges = await insertEdges(
    client,
    unique.map((d) => ({
      edgeKey: deliveryEdgeKey(d.delivery, d.item),
      kind: 'delivered' as const,
      from: lotNode(d.lotKey),
      to: deliveryNode(d.delivery, d.item),
      ...(d.quantity !== undefined ? { quantity: d.quantity } : {}),
      ...(d.unit !== undefined ? { unit: d.unit } : {}),
      occurredAt: d.shippedAt,
      site: d.site,
      sourceSystem: d.sourceSystem,
      document: deliveryEdgeKey(d.delivery, d.item),
    })),
  );
  const fresh = new Set(res.rows.map((r) => deliveryNode(r.delivery, r.item)));
  // A lot shipped while its lot case is open (held, awaiting or executing a disposition) left under a hold.
  const held = await client.query<{ node: string; site: string; lot_key: string; workflow_id: string }>(
    `SELECT DISTINCT ON (n.node) n.node, l.site, l.lot_key, c.workflow_id
         FROM unnest($1::text[], $2::text[]) AS n (node, lot_key)
         JOIN holdfast.material_lot l ON l.lot_key = n.lot_key
         JOIN holdfast.lot_case c ON c.lot_id = l.mes_lot_id AND c.site = l.mes_site AND c.closed_at IS NULL
        ORDER BY n.node, c.opened_at`,
    [
      unique.map((d) => deliveryNode(d.delivery, d.item)).filter((n) => fresh.has(n)),
      unique.filter((d) => fresh.has(deliveryNode(d.delivery, d.item))).map((d) => d.lotKey),
    ],
  );
  const gapsOpened = await openGaps(
    client,
    held.rows.map((r) => ({
      kind: 'shipment-of-held-lot' as const,
      subject: r.node,
      site: r.site,
      detail: { lotKey: r.lot_key, lotCase: r.workflow_id },
    })),
  );
  return {
    added: fresh.size,
    updated: 0,
    unchanged: deliveries.length - fresh.size,
    gapsOpened: edges.gapsOpened + gapsOpened,
    gapsResolved: edges.gapsResolved,
  };
}

/** Produced parts, and a gap for each with no inspection. */
async function insertParts(client: pg.PoolClient, parts: readonly PartInput[]): Promise<BatchResult> {
  const unique = firstPerKey(parts, (p) => `${p.site}/${p.partId}`);
  if (unique.length === 0) return ZERO;
  const res = await client.query<{ site: string; part_id: string; inspected: boolean }>(
    `WITH added AS (
         INSERT INTO holdfast.produced_part (site, part_id, serial, lot_key, work_order, line, produced_at,
                                             source_system)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                              $7::timestamptz[], $8::text[])
         ON CONFLICT (site, part_id) DO NOTHING
         RETURNING site, part_id)
       SELECT a.site, a.part_id,
              EXISTS (SELECT 1 FROM holdfast.inspection i WHERE i.site = a.site AND i.part_id = a.part_id)
                AS inspected
         FROM added a`,
    [
      unique.map((p) => p.site),
      unique.map((p) => p.partId),
      unique.map((p) => p.serial ?? null),
      unique.map((p) => p.lotKey),
      unique.map((p) => p.workOrder ?? null),
      unique.map((p) => p.line ?? null),
      unique.map((p) => p.producedAt ?? null),
      unique.map((p) => p.sourceSystem),
    ],
  );
  const fresh = new Set(res.rows.map((r) => `${r.site}/${r.part_id}`));
  const freshParts = unique.filter((p) => fresh.has(`${p.site}/${p.partId}`));
  let gapsOpened = await ensureLots(
    client,
    freshParts.map((p) => ({
      lotKey: p.lotKey,
      site: p.site,
      document: `part:${p.site}/${p.partId}`,
      sourceSystem: p.sourceSystem,
      gap: 'unknown-reference' as const,
    })),
  );
  const lotOf = new Map(freshParts.map((p) => [`${p.site}/${p.partId}`, p.lotKey]));
  gapsOpened += await openGaps(
    client,
    res.rows
      .filter((r) => !r.inspected)
      .map((r) => ({
        kind: 'part-without-inspection' as const,
        subject: `part:${r.site}/${r.part_id}`,
        site: r.site,
        detail: { partId: r.part_id, lotKey: lotOf.get(`${r.site}/${r.part_id}`) ?? null },
      })),
  );
  return { added: fresh.size, updated: 0, unchanged: parts.length - fresh.size, gapsOpened, gapsResolved: 0 };
}

export function createGenealogyStore(audit: AuditTrail): GenealogyStore {
  const applyBatch = (
    batch: BatchContext,
    what: string,
    keys: readonly string[],
    work: (client: pg.PoolClient) => Promise<BatchResult>,
  ): Promise<BatchResult> =>
    audit.inTransaction(async (client) => {
      const result = await work(client);
      return { result, audit: auditEntry(batch, what, keys, result) };
    });

  return {
    recordLots(batch, lots) {
      const keys = lots.map((l) => l.lotKey);
      return applyBatch(batch, 'lots', keys, async (client) => {
        const { result, described } = await upsertLots(client, lots);
        return sum(result, { gapsOpened: await openSourceGaps(client, described) });
      });
    },

    recordMovements(batch, movements) {
      movements.forEach(checkMovement);
      return applyBatch(
        batch,
        'movements',
        movements.map((m) => m.edgeKey),
        (client) => insertEdges(client, movements),
      );
    },

    recordDeliveries(batch, deliveries) {
      const keys = deliveries.map((d) => deliveryEdgeKey(d.delivery, d.item));
      return applyBatch(batch, 'deliveries', keys, (client) => insertDeliveries(client, deliveries));
    },

    recordParts(batch, parts) {
      const keys = parts.map((p) => `${p.site}/${p.partId}`);
      return applyBatch(batch, 'parts', keys, (client) => insertParts(client, parts));
    },

    recordPage(batch, facts) {
      facts.movements.forEach(checkMovement);
      const keys = [
        ...facts.lots.map((l) => l.document),
        ...facts.movements.map((m) => m.edgeKey),
        ...facts.deliveries.map((d) => deliveryEdgeKey(d.delivery, d.item)),
        ...facts.parts.map((p) => `${p.site}/${p.partId}`),
      ];
      return applyBatch(batch, 'page', keys, async (client) => {
        const lots = await upsertLots(client, facts.lots);
        let result = lots.result;
        result = sum(result, await insertEdges(client, facts.movements));
        result = sum(result, await insertDeliveries(client, facts.deliveries));
        result = sum(result, await insertParts(client, facts.parts));
        return sum(result, { gapsOpened: await openSourceGaps(client, lots.described) });
      });
    },

    reconcile(batch) {
      return applyBatch(batch, 'reconcile', [], async (client) => {
        const res = await client.query(
          `UPDATE holdfast.trace_gap g SET resolved_at = now(), resolved_by = 'inspection:' || i.event_id
             FROM holdfast.produced_part p
             JOIN LATERAL (SELECT event_id FROM holdfast.inspection i
                            WHERE i.site = p.site AND i.part_id = p.part_id LIMIT 1) i ON true
            WHERE g.kind = 'part-without-inspection' AND g.resolved_at IS NULL
              AND g.subject = 'part:' || p.site || '/' || p.part_id`,
        );
        // A delivery recorded before its lot's MES identity (the ERP sync ahead of the MES one) could not be matched
        // to the lot's open case then; it can now.
        const held = await client.query(
          `INSERT INTO holdfast.trace_gap (kind, subject, site, detail)
           SELECT DISTINCT ON (d.delivery, d.item) 'shipment-of-held-lot', 'delivery:' || ${escapedKeyPart('d.delivery')} || '/' || ${escapedKeyPart('d.item')},
                  l.site, jsonb_build_object('lotKey', l.lot_key, 'lotCase', c.workflow_id)
             FROM holdfast.delivery d
             JOIN holdfast.material_lot l ON l.lot_key = d.lot_key
             JOIN holdfast.lot_case c ON c.lot_id = l.mes_lot_id AND c.site = l.mes_site AND c.closed_at IS NULL
            ORDER BY d.delivery, d.item, c.opened_at
           ON CONFLICT (kind, subject) DO NOTHING`,
        );
        await completePendingMaterialContext(client);
        return { ...ZERO, gapsOpened: held.rowCount ?? 0, gapsResolved: res.rowCount ?? 0 };
      });
    },
  };
}

import { z } from 'zod';
import { Identifier } from '../../infra/ingest/inspection.schema';
import { fromNotAfterTo, Instant } from './recall.schema';
import { DEFAULT_DEPTH, MAX_DEPTH, type TraceStart } from '../../infra/genealogy/trace-queries';

export const TRACE_PAGE_MAX = 500;

/** What each way of naming a start needs, besides `by`. */
const START_FIELDS = {
  lot: ['lot'],
  'mes-lot': ['site', 'lotId'],
  'erp-batch': ['plant', 'material', 'batch'],
  'supplier-lot': ['supplier', 'supplierBatch'],
  part: ['site', 'partId'],
  serial: ['serial'],
  'work-order': ['site', 'workOrder'],
  delivery: ['delivery', 'item'],
  'model-version': ['modelVersion'],
  sku: ['material', 'from', 'to'],
} as const;

const Cursor = z
  .string()
  .min(1)
  .max(1000)
  .regex(/^[A-Za-z0-9_-]+$/, 'the `next` of the previous page');

export const TraceQuerySchema = z
  .strictObject({
    by: z
      .enum(Object.keys(START_FIELDS) as [keyof typeof START_FIELDS, ...(keyof typeof START_FIELDS)[]])
      .describe(
        'what names the start: lot (Holdfast lot key), mes-lot (site + lotId), erp-batch (plant + material + batch), ' +
          'supplier-lot (supplier + supplierBatch), part (site + partId), serial, work-order (site + workOrder), ' +
          'delivery (delivery + item), model-version (modelVersion, optionally site, from, to), ' +
          'sku (material + from + to, optionally site)',
      ),
    lot: z
      .string()
      .min(1)
      .max(600)
      .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters')
      .optional()
      .describe('a lot key, e.g. erp:1010/BRKT-200/B000123'),
    site: Identifier.optional(),
    lotId: Identifier.optional(),
    plant: Identifier.optional(),
    material: Identifier.optional(),
    batch: Identifier.optional(),
    supplier: Identifier.optional(),
    supplierBatch: Identifier.optional(),
    partId: Identifier.optional(),
    serial: Identifier.optional(),
    workOrder: Identifier.optional(),
    delivery: Identifier.optional(),
    item: Identifier.optional(),
    modelVersion: Identifier.optional(),
    from: Instant.optional().describe('model-version, sku: start of the window (ISO 8601 with offset), included'),
    to: Instant.optional().describe('model-version, sku: end of the window (ISO 8601 with offset), included'),
    depth: z.coerce.number().int().min(1).max(MAX_DEPTH).default(DEFAULT_DEPTH),
    limit: z.coerce.number().int().min(1).max(TRACE_PAGE_MAX).default(100),
    cursor: Cursor.optional().describe('the `next` of the previous page'),
    format: z.enum(['json', 'csv']).optional().describe('over the Accept header'),
  })
  .superRefine((q, ctx) => {
    for (const field of START_FIELDS[q.by]) {
      if (q[field] === undefined) ctx.addIssue({ code: 'custom', path: [field], message: `required with by=${q.by}` });
    }
    fromNotAfterTo(q, ctx);
  });
export type TraceQuery = z.infer<typeof TraceQuerySchema>;

/** The start a validated query names (its fields are there: the schema checked them). */
export function traceStartOf(q: TraceQuery): TraceStart {
  const v = (field: keyof TraceQuery): string => String(q[field]);
  switch (q.by) {
    case 'lot':
      return { kind: 'lot-key', lotKey: v('lot') };
    case 'mes-lot':
      return { kind: 'mes-lot', site: v('site'), lotId: v('lotId') };
    case 'erp-batch':
      return { kind: 'erp-batch', plant: v('plant'), material: v('material'), batch: v('batch') };
    case 'supplier-lot':
      return { kind: 'supplier-lot', supplier: v('supplier'), supplierBatch: v('supplierBatch') };
    case 'part':
      return { kind: 'part', site: v('site'), partId: v('partId') };
    case 'serial':
      return { kind: 'serial', serial: v('serial') };
    case 'work-order':
      return { kind: 'work-order', site: v('site'), order: v('workOrder') };
    case 'delivery':
      return { kind: 'delivery', delivery: v('delivery'), item: v('item') };
    case 'model-version':
      return {
        kind: 'model-version',
        modelVersion: v('modelVersion'),
        ...(q.site ? { site: q.site } : {}),
        ...(q.from ? { from: q.from } : {}),
        ...(q.to ? { to: q.to } : {}),
      };
    case 'sku':
      return {
        kind: 'sku',
        material: v('material'),
        ...(q.site ? { site: q.site } : {}),
        from: v('from'),
        to: v('to'),
      };
  }
}

const EdgeKindSchema = z.enum(['consumed', 'produced', 'split', 'merged', 'reworked', 'repacked', 'delivered']);

const DeliverySchema = z.object({
  delivery: z.string(),
  item: z.string(),
  site: z.string(),
  customer: z.string(),
  shipTo: z.string(),
  material: z.string().nullable(),
  quantity: z.number().nullable(),
  unit: z.string().nullable(),
  shippedAt: z.string().nullable(),
});

export const LotDetailSchema = z.object({
  lotKey: z.string(),
  site: z.string(),
  material: z.string().nullable(),
  quantity: z.number().nullable(),
  unit: z.string().nullable(),
  origin: z.enum(['purchased', 'produced', 'unknown']),
  mes: z.object({ site: z.string(), lotId: z.string() }).nullable(),
  erp: z.object({ plant: z.string(), material: z.string(), batch: z.string() }).nullable(),
  supplier: z.string().nullable(),
  supplierBatch: z.string().nullable(),
  purchaseOrder: z.string().nullable(),
  purchaseOrderItem: z.string().nullable(),
  goodsReceipt: z.string().nullable(),
  workOrder: z.string().nullable(),
  line: z.string().nullable(),
  inspections: z.object({
    pass: z.number().int(),
    fail: z.number().int(),
    defects: z.record(z.string(), z.number().int()).describe('failed parts per defect class'),
    modelVersions: z.array(z.string()),
  }),
  documents: z.array(
    z.object({ relation: z.string(), kind: z.string(), id: z.string(), system: z.string().nullable() }),
  ),
  cases: z.array(
    z.object({
      workflowId: z.string(),
      stage: z.string(),
      holdId: z.string().nullable(),
      notification: z.string().nullable(),
      decision: z.string().nullable(),
      openedAt: z.string(),
      closedAt: z.string().nullable(),
    }),
  ),
  deliveries: z.array(DeliverySchema),
});

export const TracedLotSchema = LotDetailSchema.extend({
  depth: z.number().int(),
  reachedVia: z.array(
    z.object({
      edgeKey: z.string().describe('the document that states the movement'),
      kind: EdgeKindSchema,
      from: z.string().describe('the node nearer the start: lot:…, wo:…'),
      quantity: z.number().nullable(),
      unit: z.string().nullable(),
    }),
  ),
});

export const TracePageSchema = z.object({
  direction: z.enum(['forward', 'backward']),
  depth: z.number().int(),
  start: z.array(z.object({ node: z.string(), site: z.string() })),
  lots: z.array(TracedLotSchema),
  totalLots: z.number().int(),
  hiddenLots: z.number().int().describe('lots reached at sites the caller may not see'),
  workOrders: z.array(z.string()),
  cycles: z.array(z.array(z.string())).describe('loops in the data: each is also a `cycle` gap'),
  truncated: z.boolean().describe('the walk stopped at its step limit before it finished'),
  next: z.string().nullable().describe('pass as `cursor` for the next page; null on the last'),
});

export const GapQuerySchema = z.strictObject({
  site: Identifier,
  kind: z
    .enum([
      'consumption-without-receipt',
      'lot-without-source',
      'part-without-inspection',
      'shipment-of-held-lot',
      'cycle',
      'unknown-reference',
    ])
    .optional(),
  state: z.enum(['open', 'all']).default('open'),
  limit: z.coerce.number().int().min(1).max(TRACE_PAGE_MAX).default(100),
  cursor: Cursor.optional().describe('the `next` of the previous page'),
});

export const GapPageSchema = z.object({
  gaps: z.array(
    z.object({
      kind: z.string(),
      subject: z.string(),
      site: z.string(),
      detail: z.unknown(),
      foundAt: z.string(),
      resolvedAt: z.string().nullable(),
      resolvedBy: z.string().nullable(),
    }),
  ),
  next: z.string().nullable(),
});

export const LotGenealogyParamsSchema = z.strictObject({ lotId: Identifier });
export const LotGenealogyQuerySchema = z.strictObject({
  site: Identifier.optional().describe('needed only when the lot id has been seen at more than one site'),
  depth: z.coerce.number().int().min(1).max(MAX_DEPTH).default(DEFAULT_DEPTH),
});

const TraceSummarySchema = TracePageSchema.pick({
  lots: true,
  totalLots: true,
  hiddenLots: true,
  workOrders: true,
  cycles: true,
  truncated: true,
});

export const LotGenealogySchema = z.object({
  lot: LotDetailSchema.describe('the lot: what the cameras saw (inspections) and what was decided (cases)'),
  cameFrom: TraceSummarySchema.describe('backward: the first page of lots it was made from'),
  wentInto: TraceSummarySchema.describe('forward: the first page of lots made from it, with their deliveries'),
});

import { z } from 'zod';
import { Identifier } from '../../infra/ingest/inspection.schema';
import { Instant, fromNotAfterTo } from './recall.schema';

export const ErpFeedParamsSchema = z.strictObject({ site: Identifier });

const IntervalSchema = z.object({ from: z.string(), to: z.string() });

export const ErpFeedStatusSchema = z.object({
  site: z.string(),
  every: z.string(),
  settle: z.string(),
  /** The newest interval whose confirmations and cost of quality were all posted. */
  lastPosted: IntervalSchema.extend({ postedAt: z.string() }).nullable(),
  /** Intervals due (ended `settle` ago) and not yet posted. */
  pending: z.number().int(),
  oldestPending: IntervalSchema.nullable(),
  /** How long the oldest pending interval has been due; 0 when the feed is caught up. */
  lagSeconds: z.number().int(),
});

/** The dimensions a cost-of-quality report groups by. */
export const COST_DIMENSIONS = ['line', 'sku', 'workOrder', 'supplier', 'supplierLot', 'category', 'period'] as const;

export const CostOfQualityQuerySchema = z
  .strictObject({
    site: Identifier,
    from: Instant,
    to: Instant,
    /** Comma-separated, e.g. `line,category`. Default: category. */
    groupBy: z
      .string()
      .default('category')
      .transform((v) => v.split(',').map((d) => d.trim()))
      .pipe(z.array(z.enum(COST_DIMENSIONS)).min(1).max(COST_DIMENSIONS.length)),
    /** The period buckets, in the site's time zone (with groupBy=period). */
    period: z.enum(['hour', 'day', 'week', 'month']).default('day'),
  })
  .superRefine(fromNotAfterTo);

export const CostOfQualitySchema = z.object({
  site: z.string(),
  from: z.string(),
  to: z.string(),
  currency: z.string().nullable(),
  groupBy: z.array(z.enum(COST_DIMENSIONS)),
  groups: z.array(
    z.object({
      line: z.string().nullable().optional(),
      sku: z.string().nullable().optional(),
      workOrder: z.string().nullable().optional(),
      supplier: z.string().nullable().optional(),
      supplierLot: z.string().nullable().optional(),
      category: z.string().optional(),
      period: z.string().optional(),
      quantity: z.number(),
      amount: z.number(),
    }),
  ),
  total: z.number(),
});

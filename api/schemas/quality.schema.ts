import { z } from 'zod';
import { Identifier } from '../../infra/ingest/inspection.schema';
import { Instant, fromNotAfterTo } from './recall.schema';

export const DefectRateQuerySchema = z
  .strictObject({
    site: Identifier,
    line: Identifier.optional(),
    by: z.enum(['component-lot', 'supplier-lot', 'supplier']),
    from: Instant,
    to: Instant,
  })
  .superRefine(fromNotAfterTo);

export const DefectRateRowSchema = z.object({
  /** The lot key (component-lot, supplier-lot) or the supplier's id (supplier). */
  key: z.string(),
  material: z.string().nullable(),
  supplier: z.string().nullable(),
  supplierBatch: z.string().nullable(),
  parts: z.number().int(),
  defective: z.number().int(),
  rate: z.number(),
});

export const DefectRatesSchema = z.object({
  site: z.string(),
  line: z.string().nullable(),
  by: z.enum(['component-lot', 'supplier-lot', 'supplier']),
  from: z.string(),
  to: z.string(),
  rows: z.array(DefectRateRowSchema),
  /** Parts in the range whose material context is still pending (the work order's consumption is not known yet). */
  pendingParts: z.number().int(),
  /** Parts in the range stored before material context was recorded. */
  unrecordedParts: z.number().int(),
});

const ContextLotSchema = z.object({
  lotKey: z.string(),
  material: z.string().nullable(),
  origin: z.string().nullable(),
  supplier: z.string().nullable(),
  supplierBatch: z.string().nullable(),
});

/** An inspection's component and supplier lots (docs/changeover.md#material-lot-context). */
export const MaterialContextSchema = z.object({
  /** at-ingest, pending, completed-later; not-recorded: stored before material context existed. */
  state: z.enum(['at-ingest', 'pending', 'completed-later', 'not-recorded']),
  joinedAt: z.string().nullable(),
  componentLots: z.array(ContextLotSchema),
  supplierLots: z.array(ContextLotSchema),
});

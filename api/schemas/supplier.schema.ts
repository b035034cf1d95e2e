import { z } from 'zod';
import { Identifier } from '../../infra/ingest/inspection.schema';
import { SignatureInputSchema, SignatureViewSchema } from './disposition.schema';

const Text = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters');
const Instant = z.iso.datetime({ offset: true });

export const SupplierParamsSchema = z.strictObject({ supplier: Identifier.max(40) });
export const ScarParamsSchema = z.strictObject({ id: z.string().regex(/^\d{1,18}$/, 'a SCAR id: digits') });

/** Default: the 90 days to now. */
export const PeriodQuerySchema = z.strictObject({
  from: Instant.optional(),
  to: Instant.optional(),
});
export const ScorecardQuerySchema = PeriodQuerySchema.extend({
  material: Identifier.max(40).optional(),
  bucket: z.enum(['day', 'week', 'month']).default('month'),
});

const Nullable = z.number().nullable();
const FiguresShape = {
  receipts: z.number().int(),
  rejectedReceipts: z.number().int(),
  lotRejectionRate: Nullable,
  inspectedParts: z.number().int(),
  defectiveParts: z.number().int(),
  incomingPpm: Nullable,
  productionUnits: z.number().int(),
  productionFailed: z.number().int(),
  productionDefects: z.number().int(),
  productionPpm: Nullable,
};
const DefectClassesSchema = z.array(z.object({ class: z.string(), defects: z.number().int() }));
const SupplierScoreSchema = z.object({
  supplier: z.string(),
  material: z.string(),
  ...FiguresShape,
  qualityScore: z.number(),
  ppm: z.number(),
  defectClasses: DefectClassesSchema,
});

export const SupplierListSchema = z.object({
  from: z.string(),
  to: z.string(),
  suppliers: z.array(SupplierScoreSchema),
});

export const ScorecardSchema = z.object({
  supplier: z.string(),
  from: z.string(),
  to: z.string(),
  bucket: z.enum(['day', 'week', 'month']),
  ...FiguresShape,
  qualityScore: z.number(),
  byMaterial: z.array(SupplierScoreSchema),
  defectClasses: DefectClassesSchema,
  series: z.array(z.object({ period: z.string(), ...FiguresShape })),
  trend: z.enum(['improving', 'worsening', 'steady', 'insufficient-data']),
});

export const ScarRequestBodySchema = z.strictObject({
  reason: Text(1000),
  material: Identifier.max(40).optional(),
  /** The requester's electronic signature; the requester is the signed-in person. */
  signature: SignatureInputSchema,
});

export const ScarResponseBodySchema = z.strictObject({
  /** The supplier's own id for this response: a re-sent one is recorded once. */
  responseId: Identifier.max(100),
  /** The 8D disciplines answered, D1 to D8. */
  disciplines: z.partialRecord(z.enum(['D1', 'D2', 'D3', 'D4', 'D5', 'D6', 'D7', 'D8']), Text(4000)),
  rootCause: Text(4000),
  correctiveAction: Text(4000),
  attachments: z.array(z.url().max(2000)).max(20).optional(),
});

export const ScarDecisionBodySchema = z.strictObject({
  reason: Text(1000),
  signature: SignatureInputSchema,
});

export const ScarListQuerySchema = z.strictObject({
  supplier: Identifier.max(40).optional(),
  state: z.enum(['requested', 'awaiting-response', 'response-received', 'verifying', 'closed', 'cancelled']).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

export const ScarViewSchema = z.object({
  id: z.string(),
  supplier: z.string(),
  workflowId: z.string(),
  trigger: z.enum(['threshold', 'engineer']),
  reason: z.string(),
  requestedBy: z.string().nullable(),
  material: z.string().nullable(),
  state: z.string(),
  rounds: z.number().int(),
  openedAt: z.string(),
  closedAt: z.string().nullable(),
  signatures: z.array(SignatureViewSchema),
  /** The workflow's live state (due date, responses, verification), when Temporal answered. */
  live: z.unknown().optional(),
  links: z.object({ temporalUi: z.string() }),
});
export const ScarListSchema = z.object({ scars: z.array(ScarViewSchema) });
export type ScarView = z.infer<typeof ScarViewSchema>;

import { z } from 'zod';
import { Identifier } from '../../infra/ingest/inspection.schema';
import { SignatureInputSchema, SignatureViewSchema } from './disposition.schema';

export const LineParamsSchema = z.strictObject({ site: Identifier, line: Identifier });
export const AdviceParamsSchema = z.strictObject({ site: Identifier, line: Identifier, id: z.uuid() });

export const AdviceListQuerySchema = z.strictObject({
  state: z.enum(['open', 'accepted', 'rejected', 'sent']).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

export const AdviceDecisionBodySchema = z.strictObject({
  reason: z
    .string()
    .min(1)
    .max(1000)
    .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters'),
  /** The decider's electronic signature; the decider is the signed-in person. */
  signature: SignatureInputSchema,
});

const EvidenceSchema = z.object({
  parts: z.number().int(),
  defective: z.number().int(),
  rate: z.number(),
  pValue: z.number(),
  test: z.string(),
  thresholdRate: z.number(),
  significance: z.number(),
  minParts: z.number().int(),
  window: z.object({ from: z.string(), to: z.string() }),
});

export const AdviceViewSchema = z.object({
  adviceId: z.string(),
  site: z.string(),
  line: z.string(),
  componentLot: z.string(),
  lotId: z.string(),
  material: z.string().nullable(),
  action: z.enum(['hold-remaining', 'use-on-less-critical']),
  orders: z.array(z.string()),
  currentOrder: z.object({ workOrder: z.string(), customerCriticality: z.number() }).nullable(),
  evidence: EvidenceSchema,
  proposedBy: z.string(),
  state: z.enum(['open', 'accepted', 'rejected', 'sent']),
  createdAt: z.string(),
  decidedAt: z.string().nullable(),
  decidedBy: z.string().nullable(),
  decisionReason: z.string().nullable(),
  signatures: z.array(SignatureViewSchema),
  /** The MES's read-back of the resequencing request, once sent. */
  resequencing: z
    .object({
      requestId: z.string(),
      externalReference: z.string(),
      status: z.enum(['PENDING', 'ACCEPTED', 'REJECTED']),
      createdAt: z.string(),
      line: z.string(),
      componentLot: z.string(),
      action: z.enum(['hold-remaining', 'use-on-less-critical']),
      orders: z.array(z.string()).optional(),
      reason: z.string(),
    })
    .nullable(),
  sentAt: z.string().nullable(),
});
export type AdviceView = z.infer<typeof AdviceViewSchema>;

export const AdviceListSchema = z.object({ advice: z.array(AdviceViewSchema) });

import { z } from 'zod';
import { DISPOSITION_DECISIONS } from '../../workflows/contracts';
import { MaterialDocumentSchema } from './common.schema';
import { Identifier, IsoInstant } from '../../infra/ingest/inspection.schema';

export const DispositionHeadersSchema = z.object({
  'idempotency-key': z
    .string({ error: 'the Idempotency-Key header is required' })
    .min(1, 'the Idempotency-Key header must not be empty')
    .max(200, 'the Idempotency-Key header is at most 200 characters'),
});

export const DispositionBodySchema = z.strictObject({
  decision: z.enum(DISPOSITION_DECISIONS),
  reason: z.string().min(1).max(1000),
  decidedBy: Identifier,
  /** Needed only when the lot id exists at more than one site. */
  site: Identifier.optional(),
  signature: z.strictObject({ meaning: z.string().min(1).max(200), signedAt: IsoInstant }).optional(),
});
export type DispositionBody = z.infer<typeof DispositionBodySchema>;

export const DispositionOutcomeSchema = z.object({
  /** completed: every follow-up ran; needs-attention: a follow-up failed for good and waits for a retry. */
  status: z.enum(['completed', 'needs-attention']),
  decision: z.enum(DISPOSITION_DECISIONS),
  decidedBy: z.string(),
  reason: z.string(),
  requestId: z.string(),
  materialDocuments: z.array(MaterialDocumentSchema),
  lotStatus: z.string(),
  notificationClosed: z.boolean(),
});

export const RetryStepBodySchema = z.strictObject({
  /** Who fixed the cause and asks for the retry; kept in the workflow's history. */
  requestedBy: Identifier,
  /** Needed only when the lot id exists at more than one site. */
  site: Identifier.optional(),
});

export const RetryStepResultSchema = z.object({
  /** Every step that runs again: steps that run side by side (notification and block) can be parked together. */
  steps: z.array(z.string()),
});

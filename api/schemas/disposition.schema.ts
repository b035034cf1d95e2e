import { z } from 'zod';
import { DISPOSITION_DECISIONS, SIGNATURE_MEANINGS } from '../../workflows/contracts';
import { MaterialDocumentSchema } from './common.schema';
import { Identifier } from '../../infra/ingest/inspection.schema';

export const DispositionHeadersSchema = z.object({
  'idempotency-key': z
    .string({ error: 'the Idempotency-Key header is required' })
    .min(1, 'the Idempotency-Key header must not be empty')
    .max(200, 'the Idempotency-Key header is at most 200 characters'),
});

/**
 * What the signer gives at signing (docs/e-signatures.md): the meaning of the signature, and for a local account the
 * password re-entered (Part 11 §11.200(a)). A person signed in at the plant's OpenID provider sends no password: a
 * recent sign-in there (`auth_time`) is their re-authentication.
 */
export const SignatureInputSchema = z.strictObject({
  meaning: z.enum(SIGNATURE_MEANINGS),
  password: z.string().min(1).max(1024).optional(),
});
export type SignatureInput = z.infer<typeof SignatureInputSchema>;

export const DispositionBodySchema = z.strictObject({
  decision: z.enum(DISPOSITION_DECISIONS),
  reason: z.string().min(1).max(1000),
  /** Needed only when the lot id exists at more than one site. */
  site: Identifier.optional(),
  /** The decider's electronic signature; the decider is the signed-in person, never a name in the body. */
  signature: SignatureInputSchema,
});
export type DispositionBody = z.infer<typeof DispositionBodySchema>;

export const CountersignBodySchema = z.strictObject({
  /** Needed only when the lot id exists at more than one site. */
  site: Identifier.optional(),
  /** A quality manager's signature of the pending use-as-is, other than its first signer's. */
  signature: SignatureInputSchema,
});
export type CountersignBody = z.infer<typeof CountersignBodySchema>;

/** A signature as a record shows it: its manifestation, and whether it verifies against the record as it is now. */
export const SignatureViewSchema = z.object({
  signatureId: z.string(),
  signer: z.object({ id: z.string(), name: z.string(), roles: z.array(z.string()) }),
  /** approval, review or responsibility; shown as stored, so a record altered by hand shows what it says. */
  meaning: z.string(),
  signedAt: z.string(),
  /** password (re-entered) or recent-sign-in (at the OpenID provider). */
  method: z.string(),
  contentSha256: z.string(),
  seal: z.string(),
  /** Checked on this read: false when the record or the manifestation changed after signing. */
  valid: z.boolean(),
  /** Why it does not verify. */
  problem: z.string().optional(),
});
export type SignatureView = z.infer<typeof SignatureViewSchema>;

export const DispositionOutcomeSchema = z.object({
  /**
   * completed: every follow-up ran; needs-attention: a follow-up failed for good and waits for a retry;
   * awaiting-second-signature: a use-as-is signed once, waiting for a quality manager's countersignature.
   */
  status: z.enum(['completed', 'needs-attention', 'awaiting-second-signature']),
  decision: z.enum(DISPOSITION_DECISIONS),
  decidedBy: z.string(),
  reason: z.string(),
  requestId: z.string(),
  signatures: z.array(SignatureViewSchema),
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

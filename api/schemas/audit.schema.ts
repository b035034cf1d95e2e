import { z } from 'zod';
import { Identifier, IsoInstant } from '../../infra/ingest/inspection.schema';

export const AUDIT_PAGE_MAX = 500;

export const AuditQuerySchema = z
  .strictObject({
    recordType: Identifier.optional().describe('e.g. lot-case, deferred-frame, station-verdict'),
    recordId: z.string().min(1).max(512).optional().describe('the record, e.g. lot-PLANT1-L-0001'),
    actor: Identifier.optional().describe("the actor's id (until sign-in exists: the name the request claimed)"),
    from: IsoInstant.optional().describe('records at or after this instant (ISO 8601 with offset)'),
    to: IsoInstant.optional().describe('records before this instant (ISO 8601 with offset)'),
    after: z
      .string()
      .regex(/^\d{1,15}$/, 'a record number: the `next` of the previous page')
      .optional()
      .describe('the `next` of the previous page'),
    limit: z.coerce.number().int().min(1).max(AUDIT_PAGE_MAX).default(100),
    format: z.enum(['json', 'csv']).optional().describe('over the Accept header'),
  })
  .refine((q) => q.from === undefined || q.to === undefined || Date.parse(q.from) < Date.parse(q.to), {
    path: ['to'],
    message: 'must be later than from',
  });
export type AuditQuery = z.infer<typeof AuditQuerySchema>;

const AuditActorSchema = z.object({
  kind: z.enum(['user', 'api-key', 'system', 'unauthenticated']),
  /** unauthenticated: the name the request claimed, unverified. */
  id: z.string(),
  displayName: z.string().optional(),
  address: z.string().optional(),
});

/** One record exactly as stored: its hashed content plus prevHash and hash (docs/audit-trail.md#exports). */
export const AuditRecordSchema = z.object({
  seq: z.number().int(),
  at: z.string().describe("PostgreSQL's clock when the record joined the chain, UTC"),
  actor: AuditActorSchema,
  action: z.string(),
  recordType: z.string(),
  recordId: z.string(),
  old: z.unknown(),
  new: z.unknown(),
  reason: z.string().nullable(),
  outcome: z.enum(['done', 'accepted', 'refused']),
  detail: z.unknown(),
  prevHash: z.string(),
  hash: z.string().describe('sha256(prevHash + canonical JSON of the record without prevHash and hash)'),
});

export const AuditPageSchema = z.object({
  records: z.array(AuditRecordSchema),
  /** Pass as `after` for the next page; null on the last. */
  next: z.string().nullable(),
});

import { z } from 'zod';
import { Identifier } from '../../infra/ingest/inspection.schema';
import { SignatureInputSchema, SignatureViewSchema } from './disposition.schema';

const Text = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters');

/** A time window's end: an ISO 8601 instant with its offset (or Z), so it names one moment wherever it is read. */
export const Instant = z.iso.datetime({
  offset: true,
  error: (issue) => (issue.input === undefined ? 'required' : 'must be an ISO 8601 instant with an offset or Z'),
});

/** A window that ends before it starts is refused, naming `to`. */
export function fromNotAfterTo(w: { from?: string | undefined; to?: string | undefined }, ctx: z.RefinementCtx): void {
  if (w.from !== undefined && w.to !== undefined && Date.parse(w.from) > Date.parse(w.to)) {
    ctx.addIssue({ code: 'custom', path: ['to'], message: 'must not be before `from`' });
  }
}

/** What a recall starts from: the genealogy's trace starts (docs/recall.md). */
export const RecallScopeSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('mes-lot'), site: Identifier, lotId: Text }),
  z.strictObject({ kind: z.literal('erp-batch'), plant: Text, material: Text, batch: Text }),
  z.strictObject({ kind: z.literal('supplier-lot'), supplier: Text, supplierBatch: Text }),
  z.strictObject({ kind: z.literal('part'), site: Identifier, partId: Text }),
  z.strictObject({ kind: z.literal('serial'), serial: Text }),
  z.strictObject({ kind: z.literal('work-order'), site: Identifier, order: Text }),
  z
    .strictObject({
      kind: z.literal('model-version'),
      modelVersion: Text,
      site: Identifier.optional(),
      from: Instant.optional(),
      to: Instant.optional(),
    })
    .superRefine(fromNotAfterTo),
  z
    .strictObject({ kind: z.literal('sku'), material: Text, site: Identifier.optional(), from: Instant, to: Instant })
    .superRefine(fromNotAfterTo),
]);

export const RecallBodySchema = z.strictObject({
  site: Identifier,
  kind: z.enum(['mock', 'real']),
  scope: RecallScopeSchema,
  reason: z.string().min(1).max(1000),
  /**
   * A model recall (scope `model-version`): the corrected model (name@version) its reinspect stage runs on the stored
   * images. Absent: each station's active recipe's model.
   */
  correctedModelVersion: Text.optional(),
  /** A real recall's requester signs it; a mock recall needs none. */
  signature: SignatureInputSchema.optional(),
});

export const RecallStartedSchema = z.object({
  recallId: z.string(),
  workflowId: z.string(),
  state: z.string(),
  links: z.object({ self: z.string() }),
});

export const RecallParamsSchema = z.strictObject({ recallId: Identifier });

const Stage = z.object({
  name: z.string(),
  state: z.string(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
  durationMs: z.number().optional(),
  counts: z.record(z.string(), z.number()).optional(),
});

const Summary = z.object({
  recallId: z.string(),
  site: z.string(),
  kind: z.enum(['mock', 'real']),
  scope: z.record(z.string(), z.unknown()),
  reason: z.string(),
  requestedBy: z.string(),
  state: z.string(),
  createdAt: z.string(),
  completedAt: z.string().nullable(),
  score: z
    .object({
      traceMs: z.number(),
      traceWithinMs: z.number(),
      traceOnTime: z.boolean(),
      reconciliation: z.number(),
      reconciliationAtLeast: z.number(),
      reconciled: z.boolean(),
      passed: z.boolean(),
    })
    .nullable(),
  /** `drill`: opened by the site's drill schedule (docs/recall.md#drills); `request`: by POST /v1/recalls. */
  origin: z.enum(['drill', 'request']),
  drill: z
    .object({
      drillId: z.string(),
      scheduleId: z.string(),
      scheduledAt: z.string(),
      state: z.enum(['running', 'passed', 'overdue', 'failed']),
      completeWithinMs: z.number(),
      durationMs: z.number().nullable(),
      escalations: z.array(z.object({ reason: z.enum(['missed', 'overdue', 'failed']), at: z.string() })),
    })
    .nullable(),
  stages: z.array(Stage),
});

export const RecallViewSchema = Summary.extend({
  workflowId: z.string(),
  lots: z.object({
    byClass: z.record(z.string(), z.number()),
    byReach: z.record(z.string(), z.number()),
  }),
  deliveries: z.array(
    z.object({ delivery: z.string(), item: z.string(), customer: z.string(), shipTo: z.string(), lotKey: z.string() }),
  ),
  findings: z.array(z.object({ kind: z.string(), subject: z.string(), detail: z.record(z.string(), z.unknown()) })),
  /** A real recall's containment (docs/recall.md#contain): lots by outcome, and the first 1000 lots by key. */
  containment: z
    .object({
      byState: z.record(z.string(), z.number()),
      blocked: z.number(),
      lots: z.array(
        z.object({
          lotKey: z.string(),
          state: z.string(),
          mesState: z.string(),
          holdId: z.string().nullable(),
          erpState: z.string(),
          blocks: z.array(
            z.object({
              storageLocation: z.string(),
              quantity: z.number(),
              unit: z.string(),
              materialDocument: z.string().optional(),
              materialDocumentYear: z.string().optional(),
            }),
          ),
          error: z.string().nullable(),
          containedAt: z.string().nullable(),
        }),
      ),
    })
    .nullable(),
  /** A real recall's requester's signature, verified against the recall as it is stored now. */
  signatures: z.array(SignatureViewSchema),
});

export const RecallCancelBodySchema = z.strictObject({ reason: z.string().min(1).max(1000) });

export const RecallCancelledSchema = z.object({ recallId: z.string(), workflowId: z.string(), state: z.string() });

export const RecallListQuerySchema = z.strictObject({
  site: Identifier,
  kind: z.enum(['mock', 'real']).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z
    .string()
    .max(300)
    .regex(/^[A-Za-z0-9_-]+$/, 'the `next` of the previous page')
    .optional(),
});

export const RecallPageSchema = z.object({ recalls: z.array(Summary), next: z.string().nullable() });

export const ReinspectionQuerySchema = z.strictObject({
  outcome: z.enum(['now-fails', 'still-passes', 'no-image']).optional().describe('only the parts with this outcome'),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z
    .string()
    .max(300)
    .regex(/^[A-Za-z0-9._:-]+$/, 'the `next` of the previous page')
    .optional(),
});

export const ReinspectionViewSchema = z.object({
  recallId: z.string(),
  /** Null: each station's active recipe's model. */
  correctedModelVersion: z.string().nullable(),
  /** Parts per outcome: now-fails, still-passes, no-image (manual re-inspection). */
  parts: z.record(z.string(), z.number()),
  /** Every lot of the recall with the re-inspection's decision for the contain stage, held lots first. */
  lots: z.array(
    z.object({ lotKey: z.string(), reachedBy: z.string(), needsContainment: z.boolean(), reason: z.string() }),
  ),
  reinspected: z.array(
    z.object({
      eventId: z.string(),
      lotKey: z.string(),
      site: z.string(),
      line: z.string(),
      station: z.string(),
      partId: z.string(),
      imageRef: z.string().nullable(),
      outcome: z.string(),
      defects: z.array(z.record(z.string(), z.unknown())),
      modelVersion: z.string().nullable(),
      recipeVersion: z.string().nullable(),
      detail: z.string().nullable(),
    }),
  ),
  next: z.string().nullable(),
});

// A real recall's customer notifications (docs/recall.md#notify).

export const RecallNotificationParamsSchema = z.strictObject({ recallId: Identifier, notificationId: Identifier });

export const RecallAcknowledgeBodySchema = z.strictObject({
  /** Who at the customer acknowledged (name, role). */
  contact: Text,
  channel: z.enum(['phone', 'e-mail', 'portal', 'letter', 'in-person', 'other']),
  note: z.string().max(1000).optional(),
  /** When the customer acknowledged; default: now. */
  acknowledgedAt: z.iso
    .datetime({ offset: true })
    .refine((t) => Date.parse(t) <= Date.now() + 60_000, 'must not be in the future')
    .optional(),
});

export const RecallNotificationViewSchema = z.object({
  notificationId: z.string(),
  customer: z.string(),
  shipTo: z.string(),
  workflowId: z.string(),
  lots: z.array(
    z.object({
      lotKey: z.string(),
      material: z.string().nullable(),
      unit: z.string().nullable(),
      quantity: z.number(),
      deliveries: z.array(z.object({ delivery: z.string(), item: z.string(), quantity: z.number() })),
    }),
  ),
  quantity: z.number(),
  deliveries: z.array(z.string()),
  target: z.string().nullable(),
  reference: z.string().nullable(),
  sentAt: z.string().nullable(),
  acknowledgedAt: z.string().nullable(),
  acknowledgedBy: z.string().nullable(),
  acknowledgement: z.object({ contact: z.string(), channel: z.string(), note: z.string().optional() }).nullable(),
  escalations: z.array(z.object({ level: z.number(), at: z.string() })),
});

export const RecallNotificationsSchema = z.object({
  recallId: z.string(),
  notifications: z.array(RecallNotificationViewSchema),
});

export const RecallAcknowledgedSchema = RecallNotificationViewSchema.extend({
  /** false: the notification was acknowledged before; this request changed nothing. */
  recorded: z.boolean(),
});

export const RecallDrillListQuerySchema = z.strictObject({
  site: Identifier,
  limit: z.coerce.number().int().min(1).max(100).default(20),
  /** The `next` of the previous page: drills due before this time. */
  before: z.iso.datetime({ offset: true }).optional(),
});

export const RecallDrillPageSchema = z.object({
  drills: z.array(
    z.object({
      drillId: z.string(),
      site: z.string(),
      scheduleId: z.string(),
      workflowId: z.string(),
      scheduledAt: z.string(),
      state: z.enum(['running', 'passed', 'overdue', 'failed']),
      recallId: z.string().nullable(),
      scope: z.record(z.string(), z.unknown()).nullable(),
      completeWithinMs: z.number(),
      durationMs: z.number().nullable(),
      error: z.string().nullable(),
      escalations: z.array(
        z.object({
          reason: z.enum(['missed', 'overdue', 'failed']),
          target: z.string(),
          text: z.string(),
          at: z.string(),
        }),
      ),
      startedAt: z.string(),
      completedAt: z.string().nullable(),
      links: z.object({ recall: z.string().nullable() }),
    }),
  ),
  next: z.string().nullable(),
});

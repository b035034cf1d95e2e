import { z } from 'zod';
import { Identifier } from '../../infra/ingest/inspection.schema';
import { SignatureInputSchema, SignatureViewSchema } from './disposition.schema';

export const LineParamsSchema = z.strictObject({ site: Identifier, line: Identifier });
export const ChangeoverParamsSchema = LineParamsSchema.extend({ workOrder: Identifier });

export const ChangeoverBodySchema = z.strictObject({
  workOrder: Identifier,
  sku: Identifier,
  reason: z.string().min(1).max(1000),
  /** The requester's electronic signature; the requester is the signed-in person, never a name in the body. */
  signature: SignatureInputSchema,
});

export const FirstArticleApprovalBodySchema = z.strictObject({
  reason: z.string().min(1).max(1000),
  /** The approving quality engineer's electronic signature. */
  signature: SignatureInputSchema,
});

export const ChangeoverCancelBodySchema = z.strictObject({ reason: z.string().min(1).max(1000) });

const Links = z.object({ self: z.string(), temporalUi: z.string() });

export const ChangeoverStartedSchema = z.object({
  workflowId: z.string(),
  /** `already-running`: this line's changeover to the order exists; nothing new was started. */
  outcome: z.enum(['started', 'already-running']),
  signature: SignatureViewSchema.omit({ valid: true, problem: true }).optional(),
  links: Links,
});

const Snapshot = z.object({
  workOrder: z.string().optional(),
  sku: z.string().optional(),
  recipeVersion: z.string().optional(),
  modelKey: z.string().optional(),
  modelSha256: z.string().optional(),
  assignment: z.enum(['armed', 'active', 'none']).optional(),
  state: z.string().optional(),
  externalRecipeId: z.string().nullable().optional(),
  internalRecipeId: z.string().nullable().optional(),
});

export const ChangeoverStatusSchema = z.object({
  workflowId: z.string(),
  site: z.string(),
  line: z.string(),
  workOrder: z.string(),
  sku: z.string(),
  trigger: z.enum(['order-event', 'manual']),
  stage: z.string(),
  dueAt: z.string(),
  interlock: z.enum(['held', 'released', 'not-configured']),
  stations: z.array(
    z.object({
      station: z.string(),
      kind: z.enum(['holdfast', 'opc40100']),
      target: z.string().optional(),
      before: Snapshot.optional(),
      after: Snapshot.optional(),
      prepared: z.boolean(),
      verified: z.boolean(),
      reverted: z.boolean(),
      problem: z.string().optional(),
    }),
  ),
  firstArticle: z
    .object({
      required: z.number().int(),
      parts: z.array(
        z.object({ partId: z.string(), result: z.enum(['pass', 'fail']), lotId: z.string(), inspectedAt: z.string() }),
      ),
      outcome: z.enum(['passed', 'failed', 'approved', 'timed-out']).optional(),
      approval: z
        .object({ approvedBy: z.string(), reason: z.string(), requestId: z.string(), signature: SignatureViewSchema })
        .optional(),
      holdId: z.string().optional(),
      escalations: z.number().int(),
    })
    .optional(),
  release: z.object({ releasedAt: z.string(), externalReference: z.string() }).optional(),
  timings: z.array(
    z.object({
      step: z.string(),
      startedAt: z.string(),
      finishedAt: z.string().optional(),
      durationMs: z.number().optional(),
    }),
  ),
  error: z.string().optional(),
});

export type ChangeoverStatusView = z.infer<typeof ChangeoverStatusSchema>;

export const ChangeoverViewSchema = z.object({
  workflowId: z.string(),
  runId: z.string(),
  /** Temporal's execution status: RUNNING, COMPLETED, FAILED, CANCELED, TERMINATED, … */
  execution: z.string(),
  /** The workflow's changeoverStatus query; null when no worker answered in time. */
  status: ChangeoverStatusSchema.nullable(),
  links: Links,
});

export type ChangeoverView = z.infer<typeof ChangeoverViewSchema>;

export const ChangeoverCancelledSchema = z.object({ workflowId: z.string(), state: z.literal('cancelling') });

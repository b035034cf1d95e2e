import { z } from 'zod';
import { Identifier } from '../../infra/ingest/inspection.schema';
import { RuleDefinitionSchema, RuleIdSchema } from '../../infra/quality-rules/pg-quality-rule-store';
import { SignatureInputSchema, SignatureViewSchema } from './disposition.schema';

export { RuleDefinitionSchema, RuleIdSchema };

const Reason = z
  .string()
  .min(1)
  .max(1000)
  .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters');

export const ChartLimitsSchema = z.object({
  centre: z.number(),
  baseline: z.object({
    from: z.string(),
    to: z.string(),
    subgroups: z.number().int(),
    units: z.number().int(),
    count: z.number(),
  }),
});

export const RuleListQuerySchema = z.strictObject({
  site: Identifier,
  line: Identifier.optional(),
  /** true: every version, newest first; otherwise each rule's current version. */
  history: z
    .enum(['true', 'false'])
    .transform((v) => v === 'true')
    .default(false),
});

export const RuleParamsSchema = z.strictObject({ site: Identifier, ruleId: RuleIdSchema });

export const RulePutBodySchema = z.strictObject({
  line: Identifier,
  /** Absent or null: every station of the line. */
  station: Identifier.nullable().optional(),
  definition: RuleDefinitionSchema,
  active: z.boolean().default(true),
  reason: Reason,
  /** The version this change was made against (0: a new rule); another one current → 409. */
  expectedVersion: z.number().int().min(0).optional(),
});

export const LimitsBodySchema = z
  .strictObject({ from: z.iso.datetime({ offset: true }), to: z.iso.datetime({ offset: true }), reason: Reason })
  .refine((b) => Date.parse(b.from) < Date.parse(b.to), { message: 'must be after from', path: ['to'] });

export const RuleViewSchema = z.object({
  site: z.string(),
  ruleId: z.string(),
  version: z.number().int(),
  line: z.string(),
  station: z.string().nullable(),
  definition: RuleDefinitionSchema,
  limits: ChartLimitsSchema.nullable(),
  active: z.boolean(),
  changedBy: z.string(),
  reason: z.string(),
  changedAt: z.string(),
  /** Charts: false until limits were computed (the chart then only counts its parts). */
  evaluating: z.boolean(),
});

export const RuleListSchema = z.object({ rules: z.array(RuleViewSchema) });

export const EscalationStateSchema = z.enum(['tripped', 'alerted', 'held', 'release-decided', 'released']);

export const EscalationListQuerySchema = z.strictObject({
  site: Identifier,
  line: Identifier.optional(),
  state: EscalationStateSchema.optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

export const EscalationParamsSchema = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9_-]{1,400}$/, 'an escalation id'),
});

export const EscalationReleaseBodySchema = z.strictObject({
  reason: Reason,
  /** The releaser's electronic signature; the releaser is the signed-in person. */
  signature: SignatureInputSchema,
});

const HoldSchema = z.object({
  holdId: z.string(),
  scope: z.enum(['line', 'work-order']),
  line: z.string(),
  workOrder: z.string().optional(),
  station: z.string().optional(),
  status: z.enum(['ACTIVE', 'RELEASED']),
  reason: z.string(),
  externalReference: z.string(),
  createdAt: z.string(),
  releaseReference: z.string().optional(),
  releaseComment: z.string().optional(),
  releasedAt: z.string().optional(),
});

export const EscalationViewSchema = z.object({
  escalationId: z.string(),
  workflowId: z.string(),
  site: z.string(),
  line: z.string(),
  station: z.string().nullable(),
  ruleId: z.string(),
  version: z.number().int(),
  kind: z.string(),
  firstPoint: z.string(),
  trippedBy: z.string(),
  trippedAt: z.string(),
  summary: z.string(),
  /** The points or subgroups that tripped the rule, and the limits (charts). */
  evidence: z.looseObject({ kind: z.string() }),
  workOrder: z.string(),
  lotId: z.string(),
  policy: z.enum(['alert', 'hold-line', 'hold-order']),
  state: EscalationStateSchema,
  startedAt: z.string().nullable(),
  alertedAt: z.string().nullable(),
  alertTarget: z.string().nullable(),
  hold: HoldSchema.nullable(),
  heldAt: z.string().nullable(),
  decidedAt: z.string().nullable(),
  decidedBy: z.string().nullable(),
  decisionReason: z.string().nullable(),
  signatures: z.array(SignatureViewSchema),
  release: HoldSchema.nullable(),
  releasedAt: z.string().nullable(),
  createdAt: z.string(),
});
export type EscalationView = z.infer<typeof EscalationViewSchema>;

export const EscalationListSchema = z.object({ escalations: z.array(EscalationViewSchema) });

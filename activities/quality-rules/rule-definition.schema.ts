import { z } from 'zod';
import type { RuleDefinition } from './rules';

/**
 * A rule's definition and id as the API and temporal.yaml's seed take them (docs/analytics.md#statistical-escalation):
 * parsed here, so the evaluator only ever sees definitions `rules.ts` can evaluate.
 */
export const RuleIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, - and _ only, at most 64 (used in escalation ids)');

const Window = z.union([
  z.strictObject({ parts: z.number().int().min(1).max(100_000) }),
  z.strictObject({
    seconds: z
      .number()
      .int()
      .min(1)
      .max(31 * 86_400),
  }),
]);
const RunRule = z.union([z.literal(1), z.literal(2), z.literal(3), z.literal(4)]);

/** A rule's definition (activities/quality-rules/rules.ts RuleDefinition). */
export const RuleDefinitionSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('consecutive-nc'), count: z.number().int().min(1).max(10_000) }),
  z.strictObject({
    kind: z.literal('defect-class-window'),
    defectClass: z
      .string()
      .min(1)
      .max(100)
      .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters'),
    defects: z.number().int().min(1).max(100_000),
    window: Window,
  }),
  z.strictObject({
    kind: z.literal('fpy-below'),
    threshold: z.number().gt(0).max(1),
    window: Window,
    /** A time window judges only with at least this many parts in it (default 1). */
    minParts: z.number().int().min(1).max(100_000).optional(),
  }),
  z.strictObject({
    kind: z.enum(['p-chart', 'u-chart']),
    subgroup: Window,
    runRules: z
      .array(RunRule)
      .min(1)
      .max(4)
      .refine((r) => new Set(r).size === r.length, 'each run rule at most once')
      .default([1, 2, 3, 4]),
  }),
]);

/** The schema's output is a RuleDefinition: a change to either breaks this line at compile time. */
export const asRuleDefinition = (d: z.infer<typeof RuleDefinitionSchema>): RuleDefinition => d;

import { z } from 'zod';
import { Identifier, IsoInstant } from '../../infra/ingest/inspection.schema';

export const VerdictSchema = z.strictObject({
  /** The camera frame the verdict is about: what the camera (or its simulator) and an inspector both know. */
  frameId: z.string().regex(/^[A-Za-z0-9._:-]{1,120}$/, '1 to 120 characters: letters, digits, ".", "_", ":" or "-"'),
  verdict: z.enum(['pass', 'fail']),
  defectClass: Identifier.max(100).optional(),
  /** `ground-truth`: a simulator or a labelled set; `manual`: a person checked the part. */
  source: z.enum(['ground-truth', 'manual']),
  /** The person or system deciding; authenticated identities replace this field's trust later. */
  decidedBy: Identifier,
});

export const VerdictBodySchema = z.strictObject({ verdicts: z.array(VerdictSchema).min(1).max(1000) });
export const VerdictResponseSchema = z.object({ recorded: z.number().int() });

export const ShadowReportQuerySchema = z.strictObject({
  since: IsoInstant.optional(),
  until: IsoInstant.optional(),
  /** Which verdicts to measure against; default: manual where there is one, else ground truth. */
  source: z.enum(['ground-truth', 'manual', 'any']).default('any'),
});

const Counts = z.object({
  truePositives: z.number().int(),
  falsePositives: z.number().int(),
  falseNegatives: z.number().int(),
  trueNegatives: z.number().int(),
});

export const ShadowReportSchema = z.object({
  site: z.string(),
  line: z.string(),
  station: z.string(),
  /** The station's configured mode now; the report covers results recorded in shadow mode only. */
  currentMode: z.enum(['production', 'shadow']),
  window: z.object({ since: z.string().nullable(), until: z.string().nullable() }),
  inspected: z.number().int(),
  fails: z.number().int(),
  withVerdict: z.number().int(),
  counts: Counts,
  /** Share of results with a verdict whose pass/fail matches it; null when none has a verdict. */
  agreement: z.number().nullable(),
  precision: z.number().nullable(),
  recall: z.number().nullable(),
  /** Per true defect class: how many the station caught. */
  byClass: z.record(z.string(), z.object({ total: z.number().int(), caught: z.number().int() })),
});
export type ShadowReport = z.infer<typeof ShadowReportSchema>;

import { z } from 'zod';
import type { HoldfastConfig } from '../config/schema';

/** Identifiers from plant systems: printable text, bounded, no control characters. */
export const Identifier = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters');

export const IsoInstant = z.iso.datetime({ offset: true });

const NonNegative = z.number().nonnegative();

export const BoundingBoxSchema = z.strictObject({
  x: NonNegative,
  y: NonNegative,
  width: NonNegative,
  height: NonNegative,
});

export const DetectedDefectSchema = z.strictObject({
  class: Identifier.max(100),
  score: z.number().min(0).max(1),
  bbox: BoundingBoxSchema.optional(),
});

export const EventId = z
  .string()
  .regex(/^[A-Za-z0-9._:-]{1,200}$/, '1 to 200 characters: letters, digits, ".", "_", ":" or "-"');

const MAX_DEFECTS_PER_PART = 50;

/**
 * One inspection result. Site, line and station must exist in temporal.yaml; that check runs even when other fields
 * are wrong, so one answer names every bad field.
 */
export function inspectionResultSchema(config: HoldfastConfig) {
  return z
    .strictObject({
      eventId: EventId,
      site: Identifier,
      line: Identifier,
      station: Identifier,
      partId: Identifier,
      sku: Identifier,
      lotId: Identifier,
      workOrder: Identifier,
      result: z.enum(['pass', 'fail']),
      defects: z.array(DetectedDefectSchema).max(MAX_DEFECTS_PER_PART).default([]),
      modelVersion: Identifier,
      recipeVersion: Identifier,
      inspectedAt: IsoInstant,
      /**
       * What the producer knows of this inspection (docs/analytics.md#first-pass-yield): `after-rework` and
       * `re-inspection` are taken as said; absent or `first`, Holdfast decides by inspection time.
       */
      inspectionKind: z.enum(['first', 're-inspection', 'after-rework']).optional(),
      imageRef: z.url().max(2000).optional(),
      /** The camera frame behind the result: its producer id and the sha256 of its image bytes. */
      frame: z
        .strictObject({
          id: z
            .string()
            .regex(/^[A-Za-z0-9._:-]{1,120}$/, '1 to 120 characters: letters, digits, ".", "_", ":" or "-"'),
          sha256: z.string().regex(/^[0-9a-f]{64}$/, 'lowercase hex sha256'),
        })
        .optional(),
    })
    .superRefine((value, ctx) => checkAgainstTopology(config, value, ctx), {
      when: (payload) => typeof payload.value === 'object' && payload.value !== null,
    });
}

/** Reads the candidate defensively: with `when` it also runs on objects whose other fields failed. */
function checkAgainstTopology(config: HoldfastConfig, value: unknown, ctx: z.RefinementCtx): void {
  const v = value as Record<string, unknown>;
  const siteId = v.site;
  const lineId = v.line;
  const stationId = v.station;
  if (typeof siteId === 'string') {
    const site = config.sites.find((s) => s.id === siteId);
    if (!site) {
      ctx.addIssue({ code: 'custom', path: ['site'], message: `unknown site "${siteId}"` });
    } else if (typeof lineId === 'string') {
      const line = site.lines.find((l) => l.id === lineId);
      if (!line) {
        ctx.addIssue({ code: 'custom', path: ['line'], message: `unknown line "${lineId}" at site ${site.id}` });
      } else if (typeof stationId === 'string' && !line.stations.some((s) => s.id === stationId)) {
        ctx.addIssue({
          code: 'custom',
          path: ['station'],
          message: `unknown station "${stationId}" on line ${site.id}/${line.id}`,
        });
      }
    }
  }
  const defects = Array.isArray(v.defects) ? v.defects : [];
  if (v.result === 'fail' && defects.length === 0) {
    ctx.addIssue({ code: 'custom', path: ['defects'], message: 'a failed inspection needs at least one defect' });
  }
  if (v.result === 'pass' && defects.length > 0) {
    ctx.addIssue({ code: 'custom', path: ['defects'], message: 'a passed inspection has no defects' });
  }
}

export function inspectionBodySchema(config: HoldfastConfig) {
  const result = inspectionResultSchema(config);
  const batch = z.strictObject({ results: z.array(result).min(1).max(config.api.maxBatch) });
  return z.union([batch, result]);
}

export type InspectionResult = z.infer<ReturnType<typeof inspectionResultSchema>>;
export type InspectionBody = z.infer<ReturnType<typeof inspectionBodySchema>>;

export const IngestResponseSchema = z.object({
  accepted: z.number().int(),
  duplicates: z.number().int(),
  results: z.array(
    z.object({
      eventId: z.string(),
      status: z.enum(['accepted', 'duplicate']),
      workflowId: z.string().optional(),
    }),
  ),
});
export type IngestResponse = z.infer<typeof IngestResponseSchema>;

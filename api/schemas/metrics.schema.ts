import { z } from 'zod';
import {
  INSPECTION_KINDS,
  LOT_DIMENSIONS,
  METRIC_BUCKETS,
  METRIC_DIMENSIONS,
  type LotDimension,
  type MetricDimension,
} from '../../infra/analytics/metrics';
import { Identifier } from '../../infra/ingest/inspection.schema';
import { Instant, fromNotAfterTo } from './recall.schema';

/** A comma-separated list of names from `allowed` (`groupBy=line,shift`); an unknown one is named in the answer. */
function commaList<T extends string>(allowed: readonly T[]) {
  return z
    .string()
    .max(200)
    .transform((value, ctx) => {
      const names = value.split(',').filter((n) => n !== '');
      const unknown = names.filter((n) => !(allowed as readonly string[]).includes(n));
      if (unknown.length > 0) {
        ctx.addIssue({
          code: 'custom',
          message: `unknown: ${unknown.map((n) => `"${n}"`).join(', ')}; expected any of ${allowed.join(', ')}`,
        });
        return z.NEVER;
      }
      return [...new Set(names)] as T[];
    });
}

const filters = {
  site: Identifier,
  line: Identifier.optional(),
  station: Identifier.optional(),
  sku: Identifier.optional(),
  workOrder: Identifier.optional(),
  from: Instant.optional().describe('hours starting at or after this instant'),
  to: Instant.optional().describe('hours starting before this instant'),
  groupBy: commaList<MetricDimension>(METRIC_DIMENSIONS)
    .optional()
    .describe(`comma-separated, any of ${METRIC_DIMENSIONS.join(', ')}`),
  bucket: z.enum(METRIC_BUCKETS).default('none'),
};

export const FpyQuerySchema = z.strictObject(filters).superRefine(fromNotAfterTo);

export const DefectQuerySchema = z
  .strictObject({
    ...filters,
    inspectionKind: commaList(INSPECTION_KINDS)
      .optional()
      .describe('comma-separated: first, re-inspection, after-rework; absent: every kind'),
  })
  .superRefine(fromNotAfterTo);

const GroupSchema = z.record(z.string(), z.string().nullable());

const FpyFiguresSchema = z.object({
  units: z.number().int().describe('parts first inspected at their station (production mode)'),
  firstPassGood: z.number().int().describe('of those, parts whose first inspection passed'),
  fpy: z.number().nullable().describe('firstPassGood ÷ units; null when no part was first inspected'),
  reInspections: z
    .object({ inspections: z.number().int(), passed: z.number().int() })
    .describe('inspections of parts already inspected at the station: not in units'),
  afterRework: z
    .object({ inspections: z.number().int(), passed: z.number().int() })
    .describe('inspections after rework, as the producer declared them: not in units'),
  shadow: z
    .object({ inspections: z.number().int(), failed: z.number().int() })
    .describe('shadow-mode results: never counted'),
});

export const FpyResponseSchema = z.object({
  site: z.string(),
  groupBy: z.array(z.string()),
  bucket: z.enum(METRIC_BUCKETS),
  rows: z.array(FpyFiguresSchema.extend({ group: GroupSchema, bucket: z.string().nullable() })),
  total: FpyFiguresSchema,
});

export const DefectParetoResponseSchema = z.object({
  site: z.string(),
  groupBy: z.array(z.string()),
  bucket: z.enum(METRIC_BUCKETS),
  inspectionKinds: z.array(z.enum(INSPECTION_KINDS)).nullable(),
  groups: z.array(
    z.object({
      group: GroupSchema,
      bucket: z.string().nullable(),
      defects: z.number().int(),
      classes: z.array(
        z.object({
          defectClass: z.string(),
          defects: z.number().int(),
          parts: z.number().int(),
          share: z.number(),
          cumulativeShare: z.number(),
        }),
      ),
    }),
  ),
});

export const LotQualityQuerySchema = z
  .strictObject({
    site: Identifier,
    by: z.enum(['component-lot', 'supplier-lot', 'supplier']),
    line: Identifier.optional(),
    station: Identifier.optional(),
    fromShiftDate: z.iso.date().optional().describe('first shift date included'),
    toShiftDate: z.iso.date().optional().describe('last shift date included'),
    groupBy: commaList<LotDimension>(LOT_DIMENSIONS)
      .optional()
      .describe(`comma-separated, any of ${LOT_DIMENSIONS.join(', ')}`),
  })
  .refine((q) => q.fromShiftDate === undefined || q.toShiftDate === undefined || q.fromShiftDate <= q.toShiftDate, {
    path: ['toShiftDate'],
    message: 'must not be before `fromShiftDate`',
  });

export const LotQualityResponseSchema = z.object({
  site: z.string(),
  by: z.enum(['component-lot', 'supplier-lot', 'supplier']),
  groupBy: z.array(z.string()),
  rows: z.array(
    z.object({
      key: z.string(),
      material: z.string().nullable(),
      supplier: z.string().nullable(),
      supplierBatch: z.string().nullable(),
      group: GroupSchema,
      units: z.number().int(),
      firstPassGood: z.number().int(),
      fpy: z.number().nullable(),
      defects: z.number().int(),
    }),
  ),
});

import { z } from 'zod';
import { Identifier } from '../ingest/inspection.schema';

/** RFC 9457 problem details; extension members (errors, conflicts, sites) pass through. */
export const ProblemSchema = z.looseObject({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string().optional(),
  errors: z.array(z.strictObject({ field: z.string(), message: z.string() })).optional(),
});

/** Path parameters naming one station, shared by every HTTP edge that addresses stations. */
export const StationParamsSchema = z.strictObject({ site: Identifier, line: Identifier, station: Identifier });

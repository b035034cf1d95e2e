import { z } from 'zod';
import { Identifier } from '../../infra/ingest/inspection.schema';

/** Names listed with commas (`lot=R1,R2`), at most 100, each an identifier. */
const NameList = z
  .string()
  .max(4000)
  .transform((value, ctx) => {
    const names = value.split(',').filter((n) => n !== '');
    for (const name of names) {
      if (!Identifier.safeParse(name).success) {
        ctx.addIssue({ code: 'custom', message: `"${name}" is not an identifier` });
        return z.NEVER;
      }
    }
    if (names.length > 100) ctx.addIssue({ code: 'custom', message: 'at most 100 names' });
    return names;
  });

export const Fsma204QuerySchema = z
  .strictObject({
    site: Identifier,
    from: z.iso.date().describe('first day included (UTC)'),
    to: z.iso.date().describe('last day included (UTC)'),
    lot: NameList.optional().describe('traceability lot codes or Holdfast lot keys, comma-separated'),
    product: NameList.optional().describe('products (materials), comma-separated'),
    format: z.enum(['csv', 'xlsx']).default('csv'),
  })
  .refine((q) => q.from <= q.to, { path: ['to'], message: 'must not be before `from`' });

export const SpreadsheetSchema = z.string().describe('the sheet: CSV (RFC 4180) or an XLSX workbook');

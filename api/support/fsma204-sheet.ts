import type { FastifyReply } from 'fastify';
import ExcelJS from 'exceljs';
import { FSMA204_COLUMNS, type Fsma204Row } from '../../infra/genealogy/fsma204';
import { toCsv } from './csv';

/** The sheet as a workbook: one worksheet, the header row frozen and filterable, every cell text as in the CSV. */
export async function fsma204Workbook(rows: readonly Fsma204Row[]): Promise<Buffer> {
  const workbook = new ExcelJS.Workbook();
  const sheet = workbook.addWorksheet('FSMA 204', { views: [{ state: 'frozen', ySplit: 1 }] });
  sheet.addRow([...FSMA204_COLUMNS]);
  for (const row of rows) sheet.addRow(FSMA204_COLUMNS.map((c) => row[c]));
  sheet.autoFilter = { from: { row: 1, column: 1 }, to: { row: 1, column: FSMA204_COLUMNS.length } };
  return Buffer.from(await workbook.xlsx.writeBuffer());
}

/** Sends the sheet as an attachment named `name` (CSV, RFC 4180, or XLSX). */
export async function sendFsma204(
  reply: FastifyReply,
  rows: readonly Fsma204Row[],
  format: 'csv' | 'xlsx',
  name: string,
): Promise<FastifyReply> {
  // Header values must be Latin-1: a site named in other letters would make writing the header throw.
  const file = name.replace(/[^\w.-]/g, '_');
  if (format === 'xlsx') {
    return reply
      .type('application/vnd.openxmlformats-officedocument.spreadsheetml.sheet')
      .header('content-disposition', `attachment; filename="${file}.xlsx"`)
      .send(await fsma204Workbook(rows));
  }
  return reply
    .type('text/csv; charset=utf-8')
    .header('content-disposition', `attachment; filename="${file}.csv"`)
    .send(toCsv([[...FSMA204_COLUMNS], ...rows.map((r) => FSMA204_COLUMNS.map((c) => r[c]))]));
}

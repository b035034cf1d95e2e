/**
 * Printable records (the lot quality record, the recall report): HTML written by the route, printed to PDF by the
 * machine's headless Chromium, so what an auditor prints is what the browser shows.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Debian's package (npm run system-packages installs it); HOLDFAST_CHROMIUM names another build. */
export const CHROMIUM = process.env.HOLDFAST_CHROMIUM ?? '/usr/bin/chromium';

export const escapeHtml = (value: string): string =>
  value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** The page's frame: a title, compact tables with borders, the body as given. */
export function printablePage(title: string, body: string): string {
  return (
    '<!doctype html><html><head><meta charset="utf-8">' +
    `<title>${escapeHtml(title)}</title>` +
    '<style>body{font-family:sans-serif;font-size:10pt}table{border-collapse:collapse}' +
    'td,th{border:1px solid #888;padding:2px 4px}</style></head><body>' +
    body +
    '</body></html>'
  );
}

/** A table with a header row; every cell is text, escaped. */
export function htmlTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const e = escapeHtml;
  return (
    `<table><tr>${header.map((h) => `<th>${e(h)}</th>`).join('')}</tr>` +
    rows.map((r) => `<tr>${r.map((v) => `<td>${e(v)}</td>`).join('')}</tr>`).join('') +
    '</table>'
  );
}

/** HTML printed to PDF by headless Chromium, in a directory of its own that is removed afterwards. */
export async function htmlToPdf(html: string): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'holdfast-record-'));
  try {
    const page = join(dir, 'record.html');
    const pdf = join(dir, 'record.pdf');
    await writeFile(page, html);
    await run(
      CHROMIUM,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        `--user-data-dir=${join(dir, 'profile')}`,
        '--no-pdf-header-footer',
        `--print-to-pdf=${pdf}`,
        `file://${page}`,
      ],
      { timeout: 60_000 },
    );
    return await readFile(pdf);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

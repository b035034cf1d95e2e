/**
 * CSV as RFC 4180 has it: CRLF after every record, and a field holding a comma, a double quote, CR or LF enclosed in
 * double quotes with its double quotes doubled. Nothing else is changed, so the copy is the data, byte for byte.
 */
export function toCsv(rows: readonly (readonly string[])[]): string {
  return rows.map((row) => `${row.map(csvField).join(',')}\r\n`).join('');
}

export function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/** Accept names text/csv with a higher weight than JSON (or JSON not at all). */
export function prefersCsv(accept: string | undefined): boolean {
  if (!accept) return false;
  const weight = (type: string) =>
    Math.max(
      0,
      ...accept.split(',').map((part) => {
        const [media, ...params] = part.split(';').map((p) => p.trim().toLowerCase());
        if (media !== type) return 0;
        const q = params.find((p) => p.startsWith('q='));
        return q ? Number(q.slice(2)) || 0 : 1;
      }),
    );
  return weight('text/csv') > weight('application/json');
}

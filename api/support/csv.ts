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

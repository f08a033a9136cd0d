import { stringify } from 'yaml';
import { table, usageError } from '../common.js';

export type Format = 'text' | 'json' | 'yaml';

export function checkFormat(value: string | undefined, allowed: Format[], fallback: Format): Format {
  const f = (value ?? fallback) as Format;
  if (!allowed.includes(f)) throw usageError(`expected one of ${allowed.join(', ')}`, '--format');
  return f;
}

/** Prints resources as YAML documents (like `tctl get`), JSON, or a table. */
export function printResources(items: unknown[], format: Format, toRow?: { headers: string[]; row: (r: any) => string[] }): void {
  if (format === 'json') process.stdout.write(`${JSON.stringify(items, null, 2)}\n`);
  else if (format === 'yaml') process.stdout.write(items.map((i) => stringify(i)).join('---\n'));
  else if (toRow) process.stdout.write(table(toRow.headers, items.map(toRow.row)));
}

/** Writes to stdout, waiting while its buffer is full (large listings stay out of memory). */
async function out(text: string): Promise<void> {
  if (!process.stdout.write(text)) await new Promise((r) => process.stdout.once('drain', r));
}

/**
 * Like printResources, for a listing that arrives page by page: JSON and YAML are written as
 * pages arrive (the JSON is byte for byte what JSON.stringify(all, null, 2) gives); a table
 * keeps only its rows until the end, to size the columns.
 */
export async function printPages(
  pages: AsyncIterable<unknown[]>,
  format: Format,
  toRow: { headers: string[]; row: (r: any) => string[] },
  write: (text: string) => Promise<void> = out,
): Promise<void> {
  if (format === 'text') {
    const rows: string[][] = [];
    for await (const items of pages) for (const i of items) rows.push(toRow.row(i));
    return write(table(toRow.headers, rows));
  }
  let first = true;
  for await (const items of pages) {
    for (const i of items) {
      if (format === 'json') await write(`${first ? '[\n  ' : ',\n  '}${JSON.stringify(i, null, 2).replaceAll('\n', '\n  ')}`);
      else await write(`${first ? '' : '---\n'}${stringify(i)}`);
      first = false;
    }
  }
  if (format === 'json') await write(first ? '[]\n' : '\n]\n');
}

export function ago(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const s = Math.round((Date.parse(iso) - now) / 1000);
  const a = Math.abs(s);
  const text = a < 120 ? `${a}s` : a < 7200 ? `${Math.round(a / 60)}m` : a < 172800 ? `${Math.round(a / 3600)}h` : `${Math.round(a / 86400)}d`;
  return s >= 0 ? `in ${text}` : `${text} ago`;
}

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

export function ago(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const s = Math.round((Date.parse(iso) - now) / 1000);
  const a = Math.abs(s);
  const text = a < 120 ? `${a}s` : a < 7200 ? `${Math.round(a / 60)}m` : a < 172800 ? `${Math.round(a / 3600)}h` : `${Math.round(a / 86400)}d`;
  return s >= 0 ? `in ${text}` : `${text} ago`;
}

import { usageError } from '../common.js';
import { cell, printAwait, print, safeTable, toJson, toYaml } from './output.js';

export type Format = 'text' | 'json' | 'yaml';

export function checkFormat(value: string | undefined, allowed: Format[], fallback: Format): Format {
  const f = (value ?? fallback) as Format;
  if (!allowed.includes(f)) throw usageError(`expected one of ${allowed.join(', ')}`, '--format');
  return f;
}

/** How a table shows items of type T: its headers, and each item's cells. */
export interface TableOf<T> {
  headers: string[];
  row: (item: T) => string[];
}

/** Prints resources as YAML documents (like `tctl get`), JSON, or a table. */
export function printResources<T>(items: T[], format: Format, toRow?: TableOf<T>): void {
  if (format === 'json') print(`${toJson(items)}\n`);
  // an empty list is `[]`, as Teleport's tctl prints it: an empty document would read as null
  else if (format === 'yaml') print(items.length > 0 ? items.map((i) => toYaml(i)).join('---\n') : '[]\n');
  else if (toRow) print(safeTable(toRow.headers, items.map(toRow.row)));
}

/**
 * Like printResources, for a listing that arrives page by page: JSON and YAML are written as
 * pages arrive (the JSON is byte for byte what toJson(all) gives); a table keeps only its rows
 * until the end, to size the columns.
 */
export async function printPages<T>(
  pages: AsyncIterable<T[]>,
  format: Format,
  toRow: TableOf<T>,
  write: (text: string) => Promise<void> = printAwait,
): Promise<void> {
  if (format === 'text') {
    const rows: string[][] = [];
    for await (const items of pages) for (const i of items) rows.push(toRow.row(i));
    return write(safeTable(toRow.headers, rows));
  }
  let first = true;
  for await (const items of pages) {
    for (const i of items) {
      if (format === 'json') await write(`${first ? '[\n  ' : ',\n  '}${toJson(i).replaceAll('\n', '\n  ')}`);
      else await write(`${first ? '' : '---\n'}${toYaml(i)}`);
      first = false;
    }
  }
  if (format === 'json') await write(first ? '[]\n' : '\n]\n');
  else if (first) await write('[]\n');
}

/** A Locked cell: `yes: MESSAGE` (or the lock's name) for a locked item, `-` otherwise. */
export function lockedCell(locked: ReadonlyMap<string, string>, name: string): string {
  const why = locked.get(name);
  return why === undefined ? '-' : `yes: ${why}`;
}

export function ago(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const t = Date.parse(iso);
  // a server value that is no time is shown as it is (safely), not as "NaNd ago"
  if (Number.isNaN(t)) return cell(iso);
  const s = Math.round((t - now) / 1000);
  const a = Math.abs(s);
  const text =
    a < 120
      ? `${a}s`
      : a < 7200
        ? `${Math.round(a / 60)}m`
        : a < 172800
          ? `${Math.round(a / 3600)}h`
          : `${Math.round(a / 86400)}d`;
  return s >= 0 ? `in ${text}` : `${text} ago`;
}

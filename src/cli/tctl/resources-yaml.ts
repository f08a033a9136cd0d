import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { MwiError } from '../../errors.js';
import { ioReason } from '../../util/io-reason.js';

/** Longest resource file tctl reads: resources are small; a bigger file is a mistake. */
const MAX_FILE_CHARS = 4 * 1024 * 1024;

function bad(message: string, field: string, cause?: unknown): MwiError {
  return new MwiError('BAD_CONFIG', message, { field, ...(cause ? { cause } : {}) });
}

/**
 * Parses one or several `---`-separated YAML resources into plain JSON data, as they will be
 * sent to the Auth Service. Every failure is a BAD_CONFIG error naming the document (and the
 * file as the field): YAML errors, alias bombs, anchors that make a cycle, values JSON cannot
 * carry (binary, sets, big integers, non-finite numbers) and documents that are not mappings.
 */
export function parseResources(text: string, source: string): Record<string, unknown>[] {
  if (text.length > MAX_FILE_CHARS) throw bad(`the file is larger than ${MAX_FILE_CHARS} characters`, source);
  const out: Record<string, unknown>[] = [];
  parseAllDocuments(text).forEach((d, i) => {
    const where = `document ${i + 1}`;
    if (d.errors.length > 0) throw bad(`${where}: ${d.errors[0]!.message.split('\n')[0]}`, source);
    let value: unknown;
    try {
      // the yaml library bounds alias expansion (maxAliasCount) and throws on excess
      value = d.toJS({ maxAliasCount: 100 });
    } catch (cause) {
      throw bad(`${where}: ${cause instanceof Error ? cause.message.split('\n')[0] : 'cannot be read'}`, source, cause);
    }
    if (value === null || value === undefined) return;
    // checked on the plain data: a YAML 1.1 timestamp is a Date object, yet a scalar
    const data = plainJson(value, where, source);
    if (typeof data !== 'object' || data === null || Array.isArray(data))
      throw bad(`${where}: expected a mapping (kind, version, metadata, spec)`, source);
    out.push(data as Record<string, unknown>);
  });
  if (out.length === 0) throw bad('no resources in the file', source);
  return out;
}

/** A deep copy holding only what JSON carries; anything else is refused, naming where. */
function plainJson(v: unknown, where: string, source: string, seen = new Set<object>()): unknown {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw bad(`${where}: ${v} is not a number JSON can carry`, source);
    return v;
  }
  if (typeof v !== 'object') throw bad(`${where}: a ${typeof v} value is not supported`, source);
  if (seen.has(v)) throw bad(`${where}: an alias refers to the node that contains it`, source);
  seen.add(v);
  try {
    if (Array.isArray(v)) return v.map((x) => plainJson(x, where, source, seen));
    if (v instanceof Date) return v.toISOString();
    // getPrototypeOf is typed any; a prototype is an object or null
    const proto = Object.getPrototypeOf(v) as object | null;
    if (proto !== Object.prototype && proto !== null)
      throw bad(
        `${where}: a ${proto?.constructor?.name ?? 'tagged'} value is not supported (use plain YAML mappings, ` +
          `lists and scalars)`,
        source,
      );
    const copy: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      // defineProperty: a "__proto__" key stays a key (the schema refuses it) and sets no prototype
      Object.defineProperty(copy, k, {
        value: plainJson(x, where, source, seen),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return copy;
  } finally {
    seen.delete(v);
  }
}

/** Reads a resource file (`-` for stdin) and parses it with parseResources. */
export function readResources(file: string): Record<string, unknown>[] {
  let text: string;
  try {
    text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  } catch (cause) {
    throw bad(`cannot read ${file}: ${ioReason(cause)}`, 'FILE', cause);
  }
  return parseResources(text, file);
}

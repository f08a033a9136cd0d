import type { z } from 'zod';
import { MwiError, type ErrorCode } from '../errors.js';

/** Where an input came from, so that a zod failure names the field the way the user wrote it. */
export interface ParseWhere {
  /** BAD_CONFIG (files and flags, the default) or BAD_REQUEST (an API body, a resource). */
  code?: Extract<ErrorCode, 'BAD_CONFIG' | 'BAD_REQUEST'>;
  /** The path the input sits at in a bigger document, e.g. ['spec', 'github']. */
  path?: ReadonlyArray<string | number>;
  /** A file name put before the field: "mwi.yaml: listen". */
  file?: string;
  /** The field named when the failure is about the whole input. */
  root?: string;
  /** The message for an unknown key, given the path of the object that holds it. */
  unknownKey?: (objectPath: ReadonlyArray<string | number>) => string;
}

/** `a.b[0].c`: how every mwi error names a field. */
export function fieldPath(parts: ReadonlyArray<string | number>): string {
  return parts.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

/**
 * Parses `input` with `schema`; the first failure becomes an MwiError naming the field (an
 * unknown key names the key itself). The one place a zod error turns into an mwi error.
 */
export function parseWith<S extends z.ZodTypeAny>(schema: S, input: unknown, where: ParseWhere = {}): z.output<S> {
  const parsed = schema.safeParse(input);
  // safeParse on a generic schema types its data as any; it is the schema's output
  if (parsed.success) return parsed.data as z.output<S>;
  const issue = parsed.error.issues[0]!;
  const base = [...(where.path ?? []), ...issue.path];
  const unknown = issue.code === 'unrecognized_keys';
  const parts = unknown ? [...base, issue.keys[0]!] : base;
  const name = fieldPath(parts) || where.root || '(top level)';
  const field = where.file ? `${where.file}: ${name}` : name;
  const message = unknown ? (where.unknownKey?.(base) ?? 'unknown key') : issue.message;
  throw new MwiError(where.code ?? 'BAD_CONFIG', message, { field });
}

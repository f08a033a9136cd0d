import { Document, visit } from 'yaml';
import { escapeUnsafe, hasUnsafeChars } from '../../util/text.js';
import { table } from '../common.js';

// Everything tctl shows comes from the Auth Service, and much of that from bots (self-reported
// heartbeats, platform claims): a terminal must never receive a control character from it
// (issue #9, finding 9). Every write of tctl goes through this file; a unit test checks that no
// other tctl file writes to stdout or stderr itself.

/**
 * Writes tctl's output to stdout. Unsafe characters (control, bidi) left in `text` are escaped
 * as `\uXXXX`; newlines stay (they are the layout of the text tctl composed). Returns false when
 * the stream's buffer is full, like `stream.write`.
 */
export function print(text: string): boolean {
  return process.stdout.write(escapeUnsafe(text, { keepNewlines: true }));
}

/** Writes a note for the user (what the Auth Service ignored or changed) to stderr, escaped like print. */
export function printNote(text: string): void {
  process.stderr.write(`note: ${escapeUnsafe(text)}\n`);
}

/** Writes a warning or a note for the person at the terminal to stderr, escaped as print does. */
export function warn(text: string): void {
  process.stderr.write(escapeUnsafe(text, { keepNewlines: true }));
}

/** Like print, waiting while stdout's buffer is full (large listings stay out of memory). */
export async function printAwait(text: string): Promise<void> {
  if (!print(text)) await new Promise((r) => process.stdout.once('drain', r));
}

/** A value from the server placed inside a line or a table cell: newlines escaped too. */
export function cell(v: string | number | boolean | null | undefined): string {
  return escapeUnsafe(v === undefined || v === null ? '' : String(v));
}

/** A table whose every cell is shown safely (a newline in a value cannot forge a row). */
export function safeTable(headers: string[], rows: string[][]): string {
  return table(
    headers,
    rows.map((r) => r.map(cell)),
  );
}

/** JSON text: unsafe characters inside strings become `\uXXXX`, the same value for a parser. */
export function toJson(value: unknown, indent = 2): string {
  return escapeUnsafe(JSON.stringify(value, null, indent), { keepNewlines: true });
}

/**
 * A YAML document: strings holding unsafe characters (other than a newline) are written
 * double-quoted, where `\uXXXX` is a valid escape, so the text holds none and reads back as the
 * same value.
 */
export function toYaml(value: unknown): string {
  const doc = new Document(value);
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value === 'string' && hasUnsafeChars(node.value.replaceAll('\n', ''))) node.type = 'QUOTE_DOUBLE';
    },
  });
  return escapeUnsafe(doc.toString(), { keepNewlines: true });
}

/**
 * An error about to be printed by runMain: its message (and stack, for MWI_DEBUG) may quote the
 * Auth Service's answer, so unsafe characters are escaped, newlines included.
 */
export function safeError(err: unknown): unknown {
  if (err instanceof Error) {
    err.message = escapeUnsafe(err.message);
    if (err.stack) err.stack = escapeUnsafe(err.stack, { keepNewlines: true });
  }
  return err;
}

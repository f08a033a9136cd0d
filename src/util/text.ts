/**
 * Characters a terminal may act on instead of showing: C0 controls (ESC starts escape
 * sequences, CR and BS overwrite what was printed), DEL, C1 controls (U+009B is a one-character
 * CSI), Unicode line/paragraph separators, and the bidi marks, embeddings, overrides and isolates
 * (U+061C, U+200E-U+200F, U+202A-U+202E, U+2066-U+2069) that reorder text so it reads as
 * something else ("Trojan Source", CVE-2021-42574).
 */
const UNSAFE_SOURCE = '\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069';

/** Matches one unsafe character (see above); global. */
export const UNSAFE_CHARS = new RegExp(`[${UNSAFE_SOURCE}]`, 'g');

/** One unsafe character, not global: `test` keeps no state between calls. */
const UNSAFE_CHAR = new RegExp(`[${UNSAFE_SOURCE}]`);

/** The same set without the newline: for text whose line breaks are its own layout. */
const UNSAFE_BUT_NEWLINE = new RegExp(
  `[${UNSAFE_SOURCE.replace('\\u0000-\\u001f', '\\u0000-\\u0009\\u000b-\\u001f')}]`,
  'g',
);

/** True when `s` holds a character a terminal may act on (newlines included). */
export function hasUnsafeChars(s: string): boolean {
  return UNSAFE_CHAR.test(s);
}

/**
 * Removes every unsafe character: for self-reported, single-line values (hostnames, versions)
 * stored by the Auth Service, which have no business holding any.
 *
 * @example stripUnsafe('host\u001b[2J') === 'host[2J'
 */
export function stripUnsafe(s: string): string {
  return s.replace(UNSAFE_CHARS, '');
}

function escapeOne(c: string): string {
  return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/**
 * Shows every unsafe character as a visible `\uXXXX` escape, so a person reading a value sees
 * that it held one (and what) instead of the terminal acting on it. `keepNewlines` leaves `\n`
 * alone: for whole blocks of output (YAML, JSON, PEM) whose lines are the printer's own; inside
 * a JSON string or a YAML double-quoted scalar the escape is a valid one for the same character.
 *
 * @example escapeUnsafe('a\u001b[31m') === 'a\\u001b[31m'
 */
export function escapeUnsafe(s: string, opts: { keepNewlines?: boolean } = {}): string {
  return s.replace(opts.keepNewlines ? UNSAFE_BUT_NEWLINE : UNSAFE_CHARS, escapeOne);
}

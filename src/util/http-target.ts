import { MwiError } from '../errors.js';

/** A request target split without `new URL()`: nothing an attacker sends makes it throw. */
export interface RequestTarget {
  /** The path as sent (not percent-decoded), always starting with `/`. */
  path: string;
  query: URLSearchParams;
}

/**
 * Splits an origin-form request target (`/path?query`). Anything else (`*`, an absolute URI,
 * an empty target) is refused with BAD_REQUEST: no listener of mwi serves those forms, and
 * resolving them against a base URL is what let `GET //[` throw (issue #9, finding 1).
 */
export function parseTarget(raw: string | undefined): RequestTarget {
  if (!raw || raw[0] !== '/') throw new MwiError('BAD_REQUEST', 'request target must be a path starting with /');
  const q = raw.indexOf('?');
  // URLSearchParams decodes leniently: a bad % escape stays as it is, it never throws
  return q < 0
    ? { path: raw, query: new URLSearchParams() }
    : { path: raw.slice(0, q), query: new URLSearchParams(raw.slice(q + 1)) };
}

/** Percent-decodes one path segment; a malformed escape is the client's error, not a 500. */
export function decodeSegment(segment: string, field = 'path'): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new MwiError('BAD_REQUEST', 'malformed percent-encoding in the request path', { field });
  }
}

import { MwiError } from '../../errors.js';

// The SPIFFE ID rules of the SPIFFE-ID specification (section 2): what every SVID's ID must pass
// after its template is filled in, whatever the attributes held.

/** A trust domain name: lowercase letters, digits, ".", "-" and "_" (SPIFFE-ID section 2.1). */
export const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;
/** A path segment: letters, digits, ".", "-" and "_", not "." or ".." (SPIFFE-ID section 2.2). */
const SEGMENT = /^[A-Za-z0-9._-]+$/;
/** The longest SPIFFE ID a URI SAN may carry (SPIFFE-ID section 2.3). */
const MAX_ID_BYTES = 2048;

/** Why `path` is not a valid SPIFFE ID path, if it is not. */
export function spiffePathProblem(path: string): string | undefined {
  if (!path.startsWith('/')) return 'the path must start with "/"';
  if (path === '/') return 'the path must name something after "/"';
  if (path.endsWith('/')) return 'the path must not end with "/"';
  for (const segment of path.slice(1).split('/')) {
    if (segment === '') return 'the path has an empty segment ("//")';
    if (segment === '.' || segment === '..') return 'the path has a "." or ".." segment';
    if (!SEGMENT.test(segment)) return 'a path segment holds a character other than letters, digits, ".", "-" and "_"';
  }
  return undefined;
}

/**
 * The SPIFFE ID `spiffe://TD/PATH`, checked: rule: an SVID never carries an ID the
 * specification forbids (an attribute holding "/", "%", ".." or "{{" cannot escape its segment).
 */
export function spiffeId(trustDomain: string, path: string): string {
  if (!TRUST_DOMAIN.test(trustDomain))
    throw new MwiError('INTERNAL', 'the trust domain is not a valid SPIFFE trust domain name', {
      detail: `trust domain ${JSON.stringify(trustDomain)}: set workload_identity.trust_domain in mwi.yaml`,
    });
  const problem = spiffePathProblem(path);
  if (problem) throw new MwiError('BAD_REQUEST', `the SPIFFE ID is not valid: ${problem}`, { field: 'spiffe.id' });
  const id = `spiffe://${trustDomain}${path}`;
  if (Buffer.byteLength(id) > MAX_ID_BYTES)
    throw new MwiError('BAD_REQUEST', `the SPIFFE ID is longer than ${MAX_ID_BYTES} bytes`, { field: 'spiffe.id' });
  return id;
}

import { createLocalJWKSet, type JSONWebKeySet } from 'jose';
import { z } from 'zod';
import { MwiError } from '../../errors.js';
import { parseDuration } from '../../util/duration.js';
import type { ServerSection } from '../types.js';

/** How the Auth Service reaches issuers: injectable, so tests point issuers at 127.0.0.1. */
export interface OidcTransport {
  /** GET a JSON document; `allowHttp`: an http:// URL is acceptable (see checkFetchUrl). */
  fetchJson(url: string, opts?: { allowHttp?: boolean }): Promise<unknown>;
}

export interface OidcConfig {
  /**
   * Issuer → base URL to fetch its discovery document and keys from instead (the `iss` claim is
   * still checked against the real issuer). For tests and air-gapped mirrors.
   */
  endpointOverrides?: Readonly<Record<string, string>>;
  /** An unknown `kid` refetches the keys at most this often per issuer (default 30 s). */
  minRefreshMs?: number;
}

/**
 * https only, except loopback (test issuers on 127.0.0.1), and http:// with `allowHttp` (a
 * token's spec that explicitly allows its issuer over http: Kubernetes `insecure_allow_http_issuer`).
 */
export function checkFetchUrl(url: string, field: string, allowHttp = false): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new MwiError('BAD_CONFIG', `not a URL: ${JSON.stringify(url)}`, { field });
  }
  const loopback = u.hostname === '127.0.0.1' || u.hostname === 'localhost' || u.hostname === '[::1]';
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && (loopback || allowHttp))) {
    throw new MwiError('BAD_CONFIG', `must be an https:// URL (http:// only for loopback): ${url}`, { field });
  }
  return u;
}

interface Entry {
  keys: ReturnType<typeof createLocalJWKSet>;
  kids: Set<string>;
  fetchedAt: number;
}

/**
 * JWKS per issuer, cached. A token whose `kid` is unknown triggers one refetch, at most once per
 * `minRefreshMs` per issuer, however many such tokens arrive (a flood of random kids cannot make
 * the Auth Service hammer the issuer); concurrent misses share one fetch.
 */
export class JwksCache {
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<void>>();

  constructor(
    private readonly transport: OidcTransport,
    private readonly config: OidcConfig = {},
    private readonly now: () => number = Date.now,
  ) {}

  private base(issuer: string): string {
    return (this.config.endpointOverrides?.[issuer] ?? issuer).replace(/\/+$/, '');
  }

  /** The JWKS URL of an OIDC issuer, from its discovery document. */
  private async jwksUri(issuer: string, allowHttp: boolean): Promise<string> {
    const discovery = `${this.base(issuer)}/.well-known/openid-configuration`;
    const doc = (await this.transport.fetchJson(discovery, { allowHttp })) as {
      issuer?: unknown;
      jwks_uri?: unknown;
    };
    if (doc.issuer !== issuer)
      throw new Error(`discovery document names issuer ${JSON.stringify(doc.issuer)}, expected ${issuer}`);
    if (typeof doc.jwks_uri !== 'string') throw new Error('discovery document has no jwks_uri');
    // with an override, keys come from the same place as the discovery document
    let uri = doc.jwks_uri;
    if (this.config.endpointOverrides?.[issuer]) {
      uri = doc.jwks_uri.startsWith(issuer)
        ? `${this.base(issuer)}${doc.jwks_uri.slice(issuer.length)}`
        : `${this.base(issuer)}${new URL(doc.jwks_uri).pathname}`;
    }
    checkFetchUrl(uri, 'jwks_uri', allowHttp);
    return uri;
  }

  private async refresh(issuer: string, allowHttp: boolean): Promise<void> {
    const uri = await this.jwksUri(issuer, allowHttp);
    const jwks = (await this.transport.fetchJson(uri, { allowHttp })) as JSONWebKeySet;
    if (!Array.isArray(jwks?.keys)) throw new Error('JWKS has no keys');
    this.entries.set(issuer, {
      keys: createLocalJWKSet(jwks),
      kids: new Set(jwks.keys.map((k) => String(k.kid ?? ''))),
      fetchedAt: this.now(),
    });
  }

  /**
   * Keys for `issuer`, refetched (rate-limited) when `kid` is unknown. `allowHttp`: the token's
   * spec allows this issuer over http:// (otherwise https only, except loopback).
   */
  async keysFor(
    issuer: string,
    kid: string | undefined,
    allowHttp = false,
  ): Promise<ReturnType<typeof createLocalJWKSet>> {
    const entry = this.entries.get(issuer);
    if (entry && (kid === undefined || entry.kids.has(kid))) return entry.keys;
    if (!entry || this.now() - entry.fetchedAt >= (this.config.minRefreshMs ?? 30_000)) {
      let p = this.inflight.get(issuer);
      if (!p) {
        p = this.refresh(issuer, allowHttp).finally(() => this.inflight.delete(issuer));
        this.inflight.set(issuer, p);
      }
      try {
        await p;
      } catch (err) {
        if (!entry) throw err;
        // keep serving the keys we have; the next miss after the interval tries again
        this.entries.set(issuer, { ...entry, fetchedAt: this.now() });
      }
    }
    return this.entries.get(issuer)!.keys;
  }
}

/** A static JWKS given in a token spec (Kubernetes `static_jwks`, GitHub `static_jwks`). */
export function staticKeys(jwksJson: string, field: string): ReturnType<typeof createLocalJWKSet> {
  try {
    const jwks = JSON.parse(jwksJson) as JSONWebKeySet;
    if (!Array.isArray(jwks.keys)) throw new Error('no keys');
    return createLocalJWKSet(jwks);
  } catch (cause) {
    throw new MwiError('BAD_REQUEST', 'expected a JWKS document ({"keys": [...]})', { field, cause });
  }
}

/** mwi.yaml `oidc`: how every JWT method reaches issuers, with one JWKS cache per process. */
export const oidcSection: ServerSection<OidcConfig, JwksCache> = {
  key: 'oidc',
  schema: z
    .object({
      endpoint_overrides: z.record(z.string().url()).optional(),
      min_refresh: z
        .string()
        .refine((s) => parseDuration(s) !== undefined, 'expected a duration')
        .optional(),
    })
    .strict()
    .transform((o): OidcConfig => ({
      ...(o.endpoint_overrides ? { endpointOverrides: o.endpoint_overrides } : {}),
      ...(o.min_refresh ? { minRefreshMs: parseDuration(o.min_refresh)! } : {}),
    }))
    .default({}),
  build: (options, deps) => new JwksCache({ fetchJson: deps.fetchJson }, options, deps.now),
};

import type { z } from 'zod';
import type { WorkloadIdentity } from '../../api/workload-identity-resource.js';
import type {
  jwtSvidRequestSchema,
  JwtSvidResponse,
  WorkloadBundle,
  x509SvidRequestSchema,
  X509SvidResponse,
} from '../../api/workload-identity.js';
import { parseClientKey } from '../../crypto/keys.js';
import { failureReason, isMwiError, MwiError } from '../../errors.js';
import { botAccess, type BotAccess } from '../access.js';
import type { Claims } from '../claims.js';
import type { AuthContext } from '../context.js';
import { RawJson } from '../http.js';
import {
  confirmGeneration,
  currentInstance,
  keyFingerprint,
  originFields,
  requireBot,
  type BotClaims,
} from '../instances.js';
import { attributesOf, type AttributeMap } from './attributes.js';
import type { WorkloadContext } from './context.js';
import type { WorkloadKeys } from './keys.js';
import { refusedSummary, selectIdentities } from './select.js';
import { signJwtSvid, signX509Svid, svidTtlMs } from './issue.js';

type X509Body = z.output<typeof x509SvidRequestSchema>;
type JwtBody = z.output<typeof jwtSvidRequestSchema>;

function workloadOf(ctx: AuthContext): WorkloadContext {
  if (!ctx.workload) throw new MwiError('INTERNAL', 'workload identity is not set up on this Auth Service');
  return ctx.workload;
}

/** What every issuance shares: the caller checked, its access, keys and attributes. */
interface Prepared {
  w: WorkloadContext;
  access: BotAccess;
  keys: WorkloadKeys;
  attrs: AttributeMap;
  identities: WorkloadIdentity[];
  refused: Array<{ name: string; reason: string }>;
}

async function prepare(
  ctx: AuthContext,
  c: BotClaims,
  body: X509Body | JwtBody,
  remoteAddr: string,
): Promise<Prepared> {
  const w = workloadOf(ctx);
  const cur = await currentInstance(ctx, c, 'ACCESS_DENIED', { remoteAddr });
  await confirmGeneration(ctx, cur);
  const access = await botAccess(ctx, c.bot);
  const attrs = attributesOf(access.bot, c.instance, cur.instance, body.attributes);
  const selected = await selectIdentities(w, body.selector, access.roles, attrs, ctx.now());
  return {
    w,
    access,
    keys: await w.authorities.current(),
    attrs,
    identities: selected.granted,
    refused: selected.refused,
  };
}

/**
 * Signs for each selected identity; one whose templates cannot be filled (an attribute it needs
 * is missing, or the SPIFFE ID it gives is invalid) is refused alone. None signed: the first refusal.
 */
async function eachIdentity<T>(p: Prepared, sign: (wi: WorkloadIdentity) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  let first: unknown;
  for (const wi of p.identities) {
    try {
      out.push(await sign(wi));
    } catch (err) {
      if (!isMwiError(err, 'ACCESS_DENIED') && !isMwiError(err, 'BAD_REQUEST')) throw err;
      first ??= err;
      p.refused.push({ name: wi.metadata.name, reason: failureReason(err) });
    }
  }
  if (out.length === 0) throw first;
  return out;
}

/** Longest attribute value an audit event keeps (the request may send up to 4096 characters). */
export const AUDIT_VALUE_MAX = 128;

/** Most list items or object keys an audit event keeps of what a request sent. */
export const AUDIT_ITEMS_MAX = 16;

/**
 * What a request sent, bounded for the audit log: strings cut to AUDIT_VALUE_MAX characters
 * (`…` marks a cut), lists and objects to their first AUDIT_ITEMS_MAX entries.
 */
export function cut(value: unknown): unknown {
  if (typeof value === 'string') return value.length > AUDIT_VALUE_MAX ? `${value.slice(0, AUDIT_VALUE_MAX)}…` : value;
  if (Array.isArray(value)) return value.slice(0, AUDIT_ITEMS_MAX).map(cut);
  if (typeof value === 'object' && value !== null)
    return Object.fromEntries(
      Object.entries(value)
        .slice(0, AUDIT_ITEMS_MAX)
        .map(([k, v]) => [cut(k), cut(v)]),
    );
  return value;
}

/** The attributes a request gave, as the audit log records them (long values cut). */
const given = (body: X509Body | JwtBody) => (body.attributes ? { attributes: cut(body.attributes) } : {});
/** The refused identities: a count and the first few with their reasons (not every one: issue #16, M3). */
const refusedField = (p: Prepared | undefined) =>
  p && p.refused.length > 0 ? { refused: refusedSummary(p.refused) } : {};

/** POST /v1/workload-identity/x509: X.509-SVIDs for one public key; audited with serials. */
export async function handleX509Svids(
  ctx: AuthContext,
  claims: Claims | undefined,
  body: X509Body,
  remoteAddr: string,
): Promise<X509SvidResponse> {
  const c = requireBot(claims, 'ACCESS_DENIED');
  let fingerprint: string | undefined;
  let p: Prepared | undefined;
  try {
    const publicKey = parseClientKey(body.public_key, 'public_key');
    fingerprint = keyFingerprint(publicKey);
    const prepared = (p = await prepare(ctx, c, body, remoteAddr));
    const now = ctx.now();
    const svids = await eachIdentity(prepared, (wi) =>
      signX509Svid(
        prepared.keys,
        wi,
        prepared.attrs,
        publicKey,
        svidTtlMs(body.ttl, prepared.access.maxTtlMs, wi.spec.spiffe.x509.maximum_ttl),
        now,
      ),
    );
    ctx.audit.emit({
      event: 'workload_identity.x509',
      success: true,
      bot_name: c.bot,
      bot_instance_id: c.instance,
      ...originFields({ remoteAddr, keyFingerprint: fingerprint }),
      svids: svids.map((s) => ({ name: s.name, spiffe_id: s.spiffe_id, serial: s.serial, expires: s.expires_at })),
      ...given(body),
      ...refusedField(p),
    });
    return { svids: svids.map(({ serial: _s, ...svid }) => svid), bundle: prepared.keys.bundle };
  } catch (err) {
    ctx.audit.emit({
      event: 'workload_identity.x509',
      success: false,
      bot_name: c.bot,
      bot_instance_id: c.instance,
      ...originFields({ remoteAddr, keyFingerprint: fingerprint }),
      selector: cut(body.selector),
      ...given(body),
      ...refusedField(p),
      reason: failureReason(err),
    });
    throw err;
  }
}

/** POST /v1/workload-identity/jwt: JWT-SVIDs for the audiences; audited with their jti. */
export async function handleJwtSvids(
  ctx: AuthContext,
  claims: Claims | undefined,
  body: JwtBody,
  remoteAddr: string,
): Promise<JwtSvidResponse> {
  const c = requireBot(claims, 'ACCESS_DENIED');
  let p: Prepared | undefined;
  try {
    const prepared = (p = await prepare(ctx, c, body, remoteAddr));
    const now = ctx.now();
    const svids = await eachIdentity(prepared, (wi) =>
      signJwtSvid(prepared.keys, wi, prepared.attrs, {
        audiences: body.audiences,
        ttlMs: svidTtlMs(body.ttl, prepared.access.maxTtlMs, wi.spec.spiffe.jwt.maximum_ttl),
        now,
        alg: body.algorithm ?? 'ES256',
        issuer: prepared.w.issuer,
      }),
    );
    ctx.audit.emit({
      event: 'workload_identity.jwt',
      success: true,
      bot_name: c.bot,
      bot_instance_id: c.instance,
      ...originFields({ remoteAddr }),
      audiences: body.audiences,
      svids: svids.map((s) => ({ name: s.name, spiffe_id: s.spiffe_id, jti: s.jti, expires: s.expires_at })),
      ...given(body),
      ...refusedField(p),
    });
    return { svids: svids.map(({ jti: _j, ...svid }) => svid) };
  } catch (err) {
    ctx.audit.emit({
      event: 'workload_identity.jwt',
      success: false,
      bot_name: c.bot,
      bot_instance_id: c.instance,
      ...originFields({ remoteAddr }),
      selector: cut(body.selector),
      audiences: cut(body.audiences),
      ...given(body),
      ...refusedField(p),
      reason: failureReason(err),
    });
    throw err;
  }
}

/**
 * GET /v1/workload-identity/bundle: the trust bundle (any bot; it is public material), never
 * cached: a bot asks for it to learn of a rotation.
 */
export async function handleBundle(ctx: AuthContext, claims: Claims | undefined): Promise<RawJson> {
  requireBot(claims, 'ACCESS_DENIED');
  const bundle: WorkloadBundle = (await workloadOf(ctx).authorities.current()).bundle;
  return new RawJson(JSON.stringify(bundle), { 'cache-control': 'no-store' });
}

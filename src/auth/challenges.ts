import { createHmac, hkdfSync, timingSafeEqual, type KeyObject } from 'node:crypto';
import { sha256Hex } from '../crypto/keys.js';
import { key, type Backend, type TxOp } from '../storage/backend.js';
import { JoinRefusal } from '../join/types.js';

/**
 * Stateless join challenges. Issuing a challenge writes nothing: everything the join step needs
 * (token, method, the method's data, expiry) travels in the challenge id, authenticated by a MAC
 * that only the Auth Service can make. So an unauthenticated flood of challenge requests costs
 * CPU only, never storage (issue #9, finding 6). Single use is enforced at the join, and only
 * once the caller's proof has verified: then one marker is created, so a caller without the key
 * cannot make the server write either.
 */

/** How long a challenge may be answered. */
export const CHALLENGE_TTL_MS = 60_000;
/** Longest challenge id accepted: a join body is bounded anyway, this bounds the MAC work. */
const MAX_ID = 4096;
const VERSION = 'c1';

/** What a challenge carries, as signed. */
export interface ChallengeClaims {
  /** Storage id of the token the challenge is for. */
  token_id: string;
  join_method: string;
  /** Epoch ms. */
  expires: number;
  /** The method's server-side data (e.g. the claims tbot must sign). */
  data: Record<string, unknown>;
}

/**
 * The MAC key: derived from the join-state signing key, which every worker and replica loads from
 * shared storage, so a challenge issued by one is accepted by all without a storage round trip.
 */
export function challengeMacKey(joinStateKey: KeyObject): Buffer {
  const ikm = joinStateKey.export({ type: 'pkcs8', format: 'der' });
  return Buffer.from(hkdfSync('sha256', ikm, 'mwi', 'mwi join challenge mac v1', 32));
}

function mac(k: Buffer, body: string): Buffer {
  return createHmac('sha256', k).update(`${VERSION}.${body}`).digest();
}

/** Encodes and authenticates a challenge: `c1.<base64url JSON>.<base64url MAC>`. */
export function sealChallenge(k: Buffer, claims: ChallengeClaims): string {
  const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
  return `${VERSION}.${body}.${mac(k, body).toString('base64url')}`;
}

/**
 * What a caller is told when the challenge it answered was already used: only after its proof
 * verified. Every earlier refusal (no, malformed, forged or expired challenge) is the generic
 * one an unknown token gets, so that a caller cannot tell which tokens exist from it.
 */
const PUBLIC = 'the join was refused: the challenge is unknown, expired or already used';

/**
 * Checks a challenge id's MAC and expiry and returns its claims. Nothing here touches storage.
 * The MAC is checked before anything in the body is parsed: a forged body is never read.
 */
export function openChallenge(k: Buffer, id: unknown, now: number): ChallengeClaims {
  if (typeof id !== 'string' || id.length > MAX_ID) throw new JoinRefusal('no challenge id');
  const parts = id.split('.');
  if (
    parts.length !== 3 ||
    parts[0] !== VERSION ||
    !/^[A-Za-z0-9_-]+$/.test(parts[1]!) ||
    !/^[A-Za-z0-9_-]{43}$/.test(parts[2]!)
  ) {
    throw new JoinRefusal('malformed challenge id');
  }
  // compared as text, not as decoded bytes: base64url's spare bits would otherwise let one MAC be
  // written several ways, and each spelling would pass as a different, unused challenge
  const want = Buffer.from(mac(k, parts[1]!).toString('base64url'));
  const got = Buffer.from(parts[2]!);
  if (got.length !== want.length || !timingSafeEqual(got, want))
    throw new JoinRefusal('challenge id not issued by this cluster');
  const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as ChallengeClaims;
  if (!(claims.expires > now)) throw new JoinRefusal('challenge expired');
  return claims;
}

/**
 * The storage key of a used challenge's marker (kept until the challenge would expire anyway),
 * keyed on the body the MAC covers: the only part a caller cannot vary.
 */
function usedChallengeKey(id: string): string {
  return key('join_challenges_used', sha256Hex(id.split('.')[1] ?? id));
}

/**
 * The challenge one join answers. Single use is recorded in the first conditional write that
 * records the join's outcome (the token's new status, or the new bot instance), which only a
 * caller whose proof verified reaches: a join refused for any reason writes nothing, so no
 * caller, with or without the key, can make the Auth Service store anything by answering
 * challenges; a replay of an accepted join is refused.
 */
export class JoinChallenge {
  private written = false;
  private readonly marker: string;

  constructor(
    id: string,
    private readonly claims: ChallengeClaims,
  ) {
    this.marker = usedChallengeKey(id);
  }

  /** The method's `store` data sealed into the challenge. */
  get data(): Record<string, unknown> {
    return this.claims.data;
  }

  /** The op that marks it used, for a conditional write that records the outcome (none once written). */
  ops(): TxOp[] {
    return this.written ? [] : [{ op: 'create', key: this.marker, value: '1', expires: this.claims.expires }];
  }

  /** That write committed. */
  committed(): void {
    this.written = true;
  }

  /** After a write with `ops()` failed: a refusal if the cause is that this challenge was used meanwhile. */
  async refuseIfUsed(backend: Backend): Promise<void> {
    if (!this.written && (await backend.get(this.marker))) throw new JoinRefusal('challenge already used', PUBLIC);
  }

  /** Marks it used on its own: for an outcome that is written elsewhere (a refresh of an existing instance). */
  async commitAlone(backend: Backend): Promise<void> {
    const ops = this.ops();
    if (ops.length === 0) return;
    if (!(await backend.transact(ops))) throw new JoinRefusal('challenge already used', PUBLIC);
    this.committed();
  }
}

import type { z } from 'zod';
import type { AUDIT_EVENT_TYPES } from '../api/admin.js';
import type { JoinRequest } from '../api/wire.js';
import { MwiError } from '../errors.js';

/**
 * What the Auth Service gives every server half at startup: nothing method-specific (a method's
 * own settings come from its mwi.yaml section, see ServerSection).
 */
export interface ServerDeps {
  /** The Auth Service's clock (epoch ms). A plain function: methods pass it on unbound. */
  now: () => number;
  /**
   * Marks an identity token used until `expiresAt` (epoch ms); false if it already was (a replay).
   * Kept in storage, so every worker and replica sees it.
   */
  markUsed(id: string, expiresAt: number): Promise<boolean>;
  /**
   * GET a JSON document: https only, except loopback, and http:// too with `allowHttp` (an
   * issuer the token's spec explicitly allows over http, e.g. `insecure_allow_http_issuer`).
   */
  fetchJson: (url: string, opts?: { allowHttp?: boolean }) => Promise<unknown>;
  /** POST JSON (e.g. a Kubernetes TokenReview), trusting `caPem` if given. */
  postJson(
    url: string,
    body: unknown,
    headers: Record<string, string>,
    caPem?: string,
  ): Promise<{ status: number; body: unknown }>;
  /** The process environment (e.g. the pod's Kubernetes service); tests pass their own. */
  env: Readonly<Record<string, string | undefined>>;
}

/**
 * A top-level mwi.yaml section that configures server halves (`oidc`: every JWT method). The
 * Auth Service validates it with the rest of mwi.yaml, and builds its value once per process for
 * every method that reads it.
 */
export interface ServerSection<O = unknown, T = unknown> {
  /** Its key in mwi.yaml. */
  readonly key: string;
  /** Validates the section as written in mwi.yaml and turns it into options; an absent one gets the defaults. */
  readonly schema: z.ZodType<O, z.ZodTypeDef, unknown>;
  /** What the methods that read the section share (e.g. one JWKS cache). */
  build(options: O, deps: ServerDeps): T;
}

/** The value of a section the method declared in `sections`. */
export type SectionReader = <T>(section: ServerSection<unknown, T>) => T;

/** What a server half sees of the token being joined with. */
export interface JoinTokenView {
  /** Storage id (for secret tokens, a hash-derived id, never the secret). */
  id: string;
  botName: string;
  spec: Readonly<Record<string, unknown>>;
  status: Readonly<Record<string, unknown>>;
  /** sha256 hex of the secret, for methods whose token name is the secret. */
  secretHash?: string | undefined;
}

/** A bot identity the caller presented over mTLS (refresh joins). */
export interface CallerIdentity {
  bot: string;
  instance: string;
  generation: number;
}

/** What a join may learn of an existing bot instance of its bot. */
export interface InstanceState {
  /** Its credential is unexpired. */
  live: boolean;
  /** It was used after it was issued. */
  used: boolean;
  /** Its latest identity certifies the public key this join asks to certify (a retried join repeats its key). */
  sameKey: boolean;
  /**
   * It can no longer be used: a holder of its identity ended it, or a lock targets it (or its
   * bot). Set by the Auth Service; absent means false.
   */
  ended?: boolean;
}

/**
 * A join record as stored: what the method wrote, and the bot instance whose join wrote it, as
 * that instance is now (undefined once it no longer exists).
 */
export interface StoredJoinRecord {
  /** Compare with JoinRecord.replaces. */
  revision: number;
  data: Record<string, unknown>;
  botName: string;
  instanceId: string;
  holder: InstanceState | undefined;
}

/**
 * A record a join writes in the same conditional write that creates its bot instance, under the
 * method's name and `id` (ec2: the EC2 instance that joined, so that a copy of its document cannot
 * join again). The Auth Service stores with it the bot instance the join creates. It has no
 * expiry: it stays until a later join replaces it, which the method allows once its holder is gone.
 */
export interface JoinRecord {
  /** Unique within the method; no `/`. */
  id: string;
  data: Record<string, unknown>;
  /**
   * The revision of the stored record this one replaces; absent: none may exist. Either way, a
   * concurrent join that wrote the record first makes this join fail (refused, nothing written).
   */
  replaces?: number;
}

export interface ServerJoinContext {
  request: JoinRequest;
  token: JoinTokenView;
  clusterName: string;
  now: number;
  /** Id the new bot instance will get if this join creates one. */
  newInstanceId: string;
  /** The bot identity presented over mTLS, if any (already checked against the CA). */
  caller: CallerIdentity | undefined;
  /**
   * The `store` data of the challenge this join answers (authenticated by the Auth Service, not
   * secret: it travels with the challenge id), for methods with a challenge step. The challenge
   * is single use: it is spent by the first conditional write that records the join's outcome
   * (the token's status, or the bot instance), so a refused join writes nothing, and a second join
   * with an accepted challenge is refused.
   */
  challenge: Readonly<Record<string, unknown>> | undefined;
  /**
   * Computes the token's next status from its current one and writes it with one conditional
   * write, re-reading and re-running `decide` if another join changed it meanwhile. The bot
   * instances `decide` names in `end` are deleted in that same write, each only if it is still
   * as `instanceStatus` last saw it (a replaced instance that was used meanwhile makes the write
   * fail and `decide` run again on what is stored now). Call it only once the caller's proof
   * verified: the write spends the challenge.
   */
  updateTokenStatus(decide: (status: Readonly<Record<string, unknown>>) => Promise<TokenStatusUpdate>): Promise<void>;
  /** A bot instance of this bot, undefined if it no longer exists. */
  instanceStatus(instanceId: string): Promise<InstanceState | undefined>;
  /** The method's join record `id` (see JoinRecord), undefined if none is stored. */
  readRecord(id: string): Promise<StoredJoinRecord | undefined>;
  /** Locks the join token (a key or state was used from two places) and audits it. */
  lockToken(reason: string): Promise<void>;
  /** Signs / verifies documents with the Auth Service's join-state key. */
  signState(claims: Record<string, unknown>): Promise<string>;
  verifyState(doc: string): Promise<Record<string, unknown> | undefined>;
}

/** A token's next status, and the bot instances the same write ends (they were replaced). */
export interface TokenStatusUpdate {
  status: Record<string, unknown>;
  end?: string[];
}

/** What a server half decided about a join it accepts (it refuses one by throwing a JoinRefusal). */
export interface JoinVerdict {
  /**
   * The join uses the token up: it is deleted in the same conditional write that creates the bot
   * instance, so it is used up if and only if this join succeeds, and of concurrent joins exactly
   * one commits (the others are refused as "token already used").
   */
  consumesToken?: boolean;
  /** Verified attributes, recorded on the bot instance and in the audit log. */
  attributes?: Record<string, unknown>;
  /** Continue this existing instance (a refresh) instead of creating `newInstanceId`. */
  refreshInstance?: string;
  /** Method-specific data returned to tbot (e.g. a join state document). */
  methodData?: Record<string, unknown>;
  /** Records written with the new bot instance (never with a refresh): see JoinRecord. */
  records?: JoinRecord[];
  /**
   * Audit events the Auth Service emits once the join committed (e.g. a warning for the operator),
   * with the join's bot, instance and request fields added.
   */
  events?: Array<{ event: (typeof AUDIT_EVENT_TYPES)[number]; reason: string; [field: string]: unknown }>;
}

export interface ChallengeContext {
  token: JoinTokenView;
  clusterName: string;
  now: number;
  /** The method-specific part of the challenge request. */
  payload: unknown;
}

/**
 * Server half of a join method, as servers.ts registers it: what token creation needs, the
 * mwi.yaml sections it reads, and how the Auth Service builds its JoinHandler at startup.
 */
export interface ServerJoinMethod {
  readonly name: string;
  /** The mwi.yaml sections `create` reads. */
  readonly sections?: readonly ServerSection[];
  /**
   * Validates and normalizes a token spec at creation (hash secrets, generate what is missing,
   * move rules to Teleport's place). `notes` tell the administrator what was changed or ignored
   * (tctl prints them). A plain function: callers take it off the method unbound.
   */
  prepareToken?: (
    spec: Record<string, unknown>,
    now: number,
    previous?: Record<string, unknown>,
  ) => { spec: Record<string, unknown>; shownOnce?: Record<string, string>; notes?: string[] };
  create(deps: ServerDeps, section: SectionReader): JoinHandler;
}

/**
 * A server half as one Auth Service process runs it: `verify` either returns its verdict or
 * throws a JoinRefusal whose reason goes only to the audit log. Methods with a
 * challenge-response step also implement `challenge`.
 */
export interface JoinHandler {
  /**
   * Issues a challenge: `send` goes to tbot; `store` comes back to `verify` as `ctx.challenge`
   * (sealed into the challenge id, so the caller can read it but not change it). Called with an
   * empty token view (no spec, no status) to make the decoy for an unusable token.
   */
  challenge?(ctx: ChallengeContext): Promise<{ send: Record<string, unknown>; store: Record<string, unknown> }>;
  verify(ctx: ServerJoinContext): Promise<JoinVerdict>;
  /** Extra data for a renewal answer (e.g. that a key rotation is due). */
  renewHints?(token: JoinTokenView, now: number): Record<string, unknown>;
  /**
   * Why this instance may no longer renew under its token, if it may not (bound keypair: a
   * later join rebound the key to another instance); checked before every renewal is signed.
   */
  renewRefusal?(token: JoinTokenView, instanceId: string): string | undefined;
  /**
   * `tctl tokens test`: runs the method's checks on an identity token (or on claims a refused
   * join recorded) and reports each one, without spending anything or creating anything. Only
   * methods that verify a platform-signed document have it.
   */
  explain?(token: JoinTokenView, input: ExplainInput, clusterName: string, now: number): Promise<JoinExplanation>;
}

/** What `tctl tokens test` checks: a platform's identity token, or the claims a refused join recorded. */
export type ExplainInput = { idToken: string } | { recordedClaims: Record<string, unknown>; recordedAt: string };

/** One check of an explained join: passed, failed (with why), or not run (an earlier one failed). */
export interface ExplainCheck {
  check: string;
  ok: boolean | null;
  detail: string;
}

/** One field of an `allow` rule against the claim it names. */
export interface ExplainField {
  field: string;
  claim: string;
  want: unknown;
  got: unknown;
  ok: boolean;
}

/** A join explained: each check, each `allow` rule field by field, and the outcome. */
export interface JoinExplanation {
  checks: ExplainCheck[];
  /** Each rule (any one must match); empty when the checks before them failed. */
  rules: Array<{ index: number; ok: boolean; fields: ExplainField[]; problem?: string }>;
  /** The verified claims the rules can name (absent when the signature did not verify). */
  claims?: Record<string, unknown>;
  wouldJoin: boolean;
}

/** What a refused join tells the caller unless its refusal says more. */
const REFUSED =
  'the join was refused (the token is unknown, expired, already used or not valid for this request); ' +
  'the Auth Service audit log has the reason';

/**
 * A refused join: `JOIN_DENIED` with the public message the caller gets, and the internal reason
 * as its `detail` (audit log only, never sent).
 */
export class JoinRefusal extends MwiError {
  /**
   * The verified claims the token's `allow` rules can name, when the join was refused after the
   * platform's signature verified: recorded in the audit event, so that `tctl tokens test
   * --from-audit` can run the rules on them again. Never set from unverified input.
   */
  claims?: Record<string, unknown>;
  constructor(reason: string, publicMessage = REFUSED) {
    super('JOIN_DENIED', publicMessage, { detail: reason });
    this.name = 'JoinRefusal';
  }
}

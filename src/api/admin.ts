import { z } from 'zod';
import { KINDS, RESOURCE_NAME } from './resources.js';
import type { RouteSpec } from './route.js';
import { PATHS } from './wire.js';

// The admin API (tctl's): every route's request and reply, and ADMIN_ROUTES, the one place its
// URLs come from. A request schema checks a body's shape as the handlers have always read it:
// fields they ignore are dropped, an optional field of another JSON type reads as absent (its
// default applies), a required one must have its type. What a field may contain is checked by
// the handler, mostly by the resource's schema: `bots add` with a bad name is refused naming
// metadata.name, as `tctl create` would refuse that bot.

const isObject = (v: unknown): boolean => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A body that is not a JSON object reads as one without fields. */
function objectBody<T extends z.ZodRawShape>(shape: T) {
  return z.preprocess((v) => (isObject(v) ? v : {}), z.object(shape));
}

/** A string, or absent (a value of another type too). */
const optionalString = z.preprocess((v) => (typeof v === 'string' ? v : undefined), z.string().optional());

/** A list of T, or absent (a value that is no list too). */
function optionalList<T extends z.ZodTypeAny>(item: T) {
  return z.preprocess((v) => (Array.isArray(v) ? v : undefined), z.array(item).optional());
}

/**
 * The form of the id mwi gives a token whose name is its secret (`h-` + 16 lowercase hex of the
 * secret's SHA-256), which `tctl get` and `tokens ls` print in place of the secret. The form is
 * reserved: a token name of this form is always read as such an id, and a secret of this form is
 * refused when it is made, so that a re-applied file can never be read two ways.
 */
export const TOKEN_ID_FORM = /^h-[0-9a-f]{16}$/;

/** Why a join secret may not have the id form (tctl tokens add --value, POST tokens `name`). */
export const ID_FORM_SECRET =
  'a join secret may not have the form h-<16 hex>: that form is the id mwi prints for a token whose secret ' +
  "it keeps only as a hash (Teleport's tctl prints the secret itself), and a re-applied name of that form " +
  'replaces the stored token it names; choose another value (or leave it out for a generated one)';

/**
 * The header of a GET resources/KIND/NAME answer that carries the resource's storage revision:
 * what tctl edit sends back as `expected_revision`. Not part of the resource (tctl get prints
 * none; Teleport's metadata.revision is its own storage's and means nothing to mwi).
 */
export const REVISION_HEADER = 'x-mwi-revision';

/**
 * The storage revision a resource must still have for the write to happen (tctl edit: the one
 * it read); otherwise the write is refused with COMPARE_FAILED. Implies replacing.
 */
const expectedRevision = optionalString;

/** POST resources: creates (with `upsert`, replaces) a role, bot, token or lock. */
export const createResourceRequest = objectBody({
  /** Checked by the Auth Service against its kind's schema (src/api/resources.ts). */
  resource: z.unknown(),
  /** Anything but `true` creates. */
  upsert: z.unknown().transform((v) => v === true),
  expected_revision: expectedRevision,
});

/** Most documents one POST apply takes. */
export const MAX_APPLY_RESOURCES = 10_000;

/** Largest POST apply body (an administrator's resource file, as JSON): tctl reads files up to 4 MiB of YAML. */
export const MAX_APPLY_BODY = 8 * 1024 * 1024;

/**
 * POST apply: several resources written all or none (tctl create FILE): each is checked before
 * any is written, and a refused one is a BAD_CONFIG naming its document (`document 3 (token
 * "x"): spec.github...`); the writes are one storage transaction.
 */
export const applyRequest = objectBody({
  resources: z
    .array(z.object({ resource: z.unknown(), expected_revision: expectedRevision }))
    .min(1)
    .max(MAX_APPLY_RESOURCES),
  /** Anything but `true` creates: a resource that exists is refused (ALREADY_EXISTS). */
  upsert: z.unknown().transform((v) => v === true),
});
export type ApplyRequest = z.output<typeof applyRequest>;

const createdReply = z.object({
  kind: z.enum(KINDS),
  name: z.string(),
  /** Whether it replaced a stored one (tctl prints "updated" rather than "created"). */
  updated: z.boolean().optional(),
  /** Secrets the join method generated (e.g. a bound keypair's registration secret): shown only now. */
  shown_once: z.record(z.string()).optional(),
  /**
   * What the Auth Service ignored or changed in the resource, one sentence each naming it, e.g.
   * `role "dev": spec.allow.kubernetes_labels is not used by mwi (ignored)` (tctl prints them on stderr).
   */
  notes: z.array(z.string()).optional(),
});
export type CreatedReply = z.output<typeof createdReply>;

/** One reply per resource of POST apply, in order. */
const appliedReply = z.object({ items: z.array(createdReply) });

/** GET resources/KIND: one page. An empty parameter counts as absent. */
const listQuery = z.object({
  /** Bot instances of this bot only. */
  bot: z.string().optional(),
  /** The previous page's `next`. */
  start_after: z.string().optional(),
  /** Items per page (the Auth Service bounds it; a non-number gives its default). */
  limit: z.string().transform(Number).optional(),
});

/**
 * A page of resources, in key order; `next` (also in the NEXT_PAGE_HEADER header) is absent on the
 * last one. For bots and bot instances, `locked` maps the name of each listed one that a lock now
 * holds (a bot's own, or its instance's, or the join token's it came with) to that lock's message,
 * or its name when it has none.
 */
const pageReply = z.object({
  items: z.array(z.unknown()),
  next: z.string().optional(),
  locked: z.record(z.string()).optional(),
});
/** A page with its items' type, which depends on the kind listed. */
export interface Page<T> {
  items: T[];
  next?: string | undefined;
  /** Bots and bot instances only: name of a locked item -> the lock's message (or name). */
  locked?: Record<string, string> | undefined;
}

/** One resource: only its envelope is checked; the Auth Service checked the rest when it was written. */
const resourceReply = z.object({ kind: z.enum(KINDS), metadata: z.object({ name: z.string() }) });

const okReply = z.object({ ok: z.literal(true) });

/** POST bots: a bot and a single-use join token for it. */
export const addBotRequest = objectBody({
  name: z.string(),
  roles: z.array(z.string()),
  /** The bot's `logins` trait (none when empty). */
  logins: optionalList(z.string()),
  /** The join token's TTL (default 1h). */
  token_ttl: optionalString,
  /** The join token's method (default token). */
  join_method: optionalString,
  /** The bot's spec.max_session_ttl. */
  max_session_ttl: optionalString,
  /**
   * An existing join token to bind instead of making one (Teleport's `--token`): it must name
   * this bot as its bot_name, and may not be of a method whose name is its secret.
   */
  token: optionalString,
});
export type AddBotRequest = z.output<typeof addBotRequest>;

/** PUT bots/NAME: replaces the roles and/or the `logins` trait. */
export const updateBotRequest = objectBody({ roles: optionalList(z.string()), logins: optionalList(z.string()) });
export type UpdateBotRequest = z.output<typeof updateBotRequest>;

/** POST tokens: a join token for a bot. */
export const addTokenRequest = objectBody({
  bot_name: z.string(),
  /** Default token. */
  join_method: optionalString,
  /** Default 30m. */
  ttl: optionalString,
  /**
   * The token's name (Teleport's `--value`): for a method whose name is its secret, a secret the
   * administrator chose (stored only as its hash); otherwise default BOT-RANDOM.
   */
  name: optionalString,
  /** The token's metadata.labels. */
  labels: z.preprocess((v) => (isObject(v) ? v : undefined), z.record(z.string()).optional()),
  /** Method-specific spec fields (e.g. `allow` rules). */
  spec: z.preprocess((v) => (isObject(v) ? v : undefined), z.record(z.unknown()).optional()),
});
export type AddTokenRequest = z.output<typeof addTokenRequest>;

/** A new join token. Secrets the method generated are added as fields of their own, shown only now. */
const joinTokenReply = z
  .object({
    /** The token's name: for method `token` the secret itself. */
    token: z.string(),
    /** What `tctl tokens ls` shows for it. */
    id: z.string(),
    join_method: z.string(),
    bot_name: z.string(),
    /** Absent for a token that never expires (bound_keypair; a platform token bound with `bots add --token`). */
    expires: z.string().optional(),
    /** bound_keypair: the bot must register its key before this time (onboarding.must_register_before). */
    must_register_before: z.string().optional(),
    ca_pins: z.array(z.string()),
    /** bound_keypair: the registration secret, when the Auth Service generated one. */
    registration_secret: z.string().optional(),
    /**
     * bound_keypair, an existing token (`bots add --token`): true while its first join must bring
     * the registration secret (no initial_public_key, no key bound yet), so tctl prints the flag for it.
     */
    awaits_registration_secret: z.boolean().optional(),
    /** What the Auth Service ignored or changed in the spec (see the create reply's notes). */
    notes: z.array(z.string()).optional(),
  })
  .passthrough();
export type JoinTokenReply = z.output<typeof joinTokenReply>;

/** GET audit: the most recent events first. An empty parameter counts as absent. */
const auditQuery = z.object({
  /** Default 50, at most 10,000 (a non-number gives the default). */
  limit: z.string().transform(Number).optional(),
  /** Only events of this type (e.g. bot.join). */
  type: z.string().optional(),
  /** `true`: only refusals (events with success false). */
  failures: z.string().optional(),
});
export type AuditQuery = z.output<typeof auditQuery>;

/** Audit event names, stable: scripts filter on them (`tctl audit ls --type`). */
export const AUDIT_EVENT_TYPES = [
  'bot.join',
  'bot.challenge',
  'bot.renew',
  'bot.certs',
  'bot.heartbeat',
  'token.use',
  'lock.created',
  'lock.deleted',
  'instance.locked',
  'instance.ended',
  'resource.created',
  'resource.updated',
  'resource.deleted',
  'auth.start',
  // a request made with an operator identity (tctl auth sign --admin): each use, under its name
  'admin.request',
  // an EC2 instance joined through an ec2 token after joining through another (a warning)
  'ec2.instance_rejoined_other_token',
  // workload identity (SPIFFE): each SVID issuance or refusal, and each rotation of its CA or keys
  'workload_identity.x509',
  'workload_identity.jwt',
  'workload_identity.rotate',
] as const;

/** An audit event as logged: these fields and any other the event has. */
const auditEvent = z
  .object({
    event: z.string(),
    success: z.boolean(),
    time: z.string().optional(),
    bot_name: z.string().optional(),
    bot_instance_id: z.string().optional(),
    join_method: z.string().optional(),
    /** The join token's id (never a secret: a `token`-method token is named by a keyed hash's id). */
    token_id: z.string().optional(),
    resource: z.string().optional(),
    user: z.string().optional(),
    /** Why a request failed (internal detail: only administrators see it). */
    reason: z.string().optional(),
    /** The event's own id (`tctl tokens test --from-audit UID`). */
    uid: z.string().optional(),
  })
  .passthrough();
export type AuditEventReply = z.output<typeof auditEvent>;

const statusReply = z.object({
  cluster_name: z.string(),
  ca_pin: z.string(),
  server_version: z.string(),
  /**
   * HOST:PORT for each name of the certificates the operator gave the Auth Service (mwi start
   * --tls-cert, mwi.yaml https_keypairs): tbot may join through one as `--proxy-server`, verifying
   * it with the system trust store, without a CA pin. Absent when there are none.
   */
  public_addrs: z.array(z.string()).optional(),
  /** The SPIFFE trust domain, and the JWT-SVID issuer when mwi.yaml sets one. */
  workload_identity: z.object({ trust_domain: z.string(), issuer: z.string().optional() }).optional(),
});
export type StatusReply = z.output<typeof statusReply>;

/** GET ca/TYPE: a CA's public part as its consumers read it (see `tctl ca export`). */
const caReply = z.object({ type: z.string(), text: z.string() });
/** A rotation: the new bundle revision, and until when the old CA or keys stay trusted. */
const rotateReply = z.object({ type: z.string(), revision: z.string(), old_trusted_until: z.string() });

/** POST sign/host: an OpenSSH host certificate for an existing host key. */
export const signHostRequest = objectBody({
  /** authorized_keys form. */
  public_key: z.string(),
  /** The host's names; empty ones are dropped (none at all is refused). */
  principals: z.preprocess((v): unknown => (Array.isArray(v) ? v : []), z.array(z.coerce.string())),
  /** Default 720h, at most a year. */
  ttl: optionalString,
});
export type SignHostRequest = z.output<typeof signHostRequest>;

const signHostReply = z.object({ ssh_cert: z.string() });

/**
 * POST sign/db: a database server's TLS certificate (tctl auth sign --format db), signed by the
 * cluster's db CA, for a key tctl generated; with the db-client CA for the server's ssl_ca_file.
 */
export const signDbRequest = objectBody({
  /** PEM SPKI (P-256 or Ed25519); the private key stays with tctl. */
  public_key: z.string(),
  /** The server's host names and IP addresses (its SANs; the first is the CN). */
  hosts: z.preprocess((v): unknown => (Array.isArray(v) ? v : []), z.array(z.coerce.string())),
  /** Default 2190h (Teleport's example), at most a year. */
  ttl: optionalString,
});
export type SignDbRequest = z.output<typeof signDbRequest>;

const signDbReply = z.object({
  /** PEM server certificate. */
  cert: z.string(),
  /** PEM db-client CA: what the server's ssl_ca_file trusts (tbot's database output). */
  client_ca: z.string(),
  expires: z.string(),
});
export type SignDbReply = z.output<typeof signDbReply>;

/**
 * POST tokens/NAME/test (`tctl tokens test`): a platform's identity token to check against the
 * token, or the uid of a refused join whose recorded claims to check again. Nothing is created.
 */
export const testTokenRequest = objectBody({
  id_token: optionalString,
  audit_uid: optionalString,
});
export type TestTokenRequest = z.output<typeof testTokenRequest>;

const explainCheck = z.object({ check: z.string(), ok: z.boolean().nullable(), detail: z.string() });
const explainRule = z.object({
  index: z.number(),
  ok: z.boolean(),
  fields: z.array(
    z.object({ field: z.string(), claim: z.string(), want: z.unknown(), got: z.unknown(), ok: z.boolean() }),
  ),
  problem: z.string().optional(),
});
const testTokenReply = z.object({
  token: z.string(),
  join_method: z.string(),
  bot_name: z.string(),
  /** Whether a join with this identity token would pass the token's checks (not counting single use). */
  would_join: z.boolean(),
  checks: z.array(explainCheck),
  /** Each `allow` rule, field by field (any one must match); empty when an earlier check failed. */
  rules: z.array(explainRule),
  /** The verified claims the rules can name. */
  claims: z.record(z.unknown()).optional(),
});
export type TestTokenReply = z.output<typeof testTokenReply>;

/** The user name of the local admin identity `mwi start` writes to its data dir. */
export const LOCAL_ADMIN = 'admin';
/** An operator identity's lifetime when `--ttl` is not given (Teleport's `tctl auth sign` default). */
export const OPERATOR_DEFAULT_TTL = '12h';
/** The longest an operator identity may live: the cap on every credential mwi issues to a client. */
export const OPERATOR_MAX_TTL = '24h';

/**
 * Why `name` cannot name an operator identity, or undefined. Locks name it as `user: NAME`,
 * where bots are `bot-NAME` and the Auth Service's own locks say `mwi`, so those are refused.
 */
export function operatorNameProblem(name: string): string | undefined {
  if (!RESOURCE_NAME.test(name)) return 'expected a name of letters, digits, ".", "_", "@" or "-", at most 128';
  // compared without case: "Admin" or "BOT-x" would read in the audit log and in lock targets as
  // the name it imitates
  const folded = name.toLowerCase();
  if (folded === LOCAL_ADMIN)
    return (
      `"${name}" is the local admin identity's name (admin/identity.json), in any case: ` + "choose the operator's name"
    );
  if (folded === 'mwi')
    return `"${name}" names the Auth Service itself (the locks it makes), in any case: choose the operator's name`;
  if (folded.startsWith('bot-'))
    return '"bot-NAME" is how a lock names bot NAME: choose a name that does not start with bot- (in any case)';
  return undefined;
}

/** A host certificate principal: a host name or an IP address (v4, v6 with an optional zone). */
const HOST_PRINCIPAL = /^[A-Za-z0-9._:%-]+$/;

/**
 * Why `principal` cannot name a host in a host certificate, or undefined. OpenSSH matches a host
 * certificate's principals as patterns: one wildcard would vouch for every host that trusts the CA.
 */
export function hostPrincipalProblem(principal: string): string | undefined {
  if (HOST_PRINCIPAL.test(principal)) return undefined;
  return (
    `${JSON.stringify(principal)} is not a host name or IP address: a host principal may not hold a pattern ` +
    '(*, ?, !) or spaces; list each host name'
  );
}

/** POST sign/admin: an operator identity (tctl auth sign --admin), for a key tctl generated. */
export const signAdminRequest = objectBody({
  /** The operator's name: the identity's user, audit events' actor, a lock's `user` target. */
  user: z.string(),
  /** PEM SPKI (P-256 or Ed25519); the private key stays with tctl. */
  public_key: z.string(),
  /** Default OPERATOR_DEFAULT_TTL, at most OPERATOR_MAX_TTL. */
  ttl: optionalString,
});
export type SignAdminRequest = z.output<typeof signAdminRequest>;

/** The identity file's parts the Auth Service makes (tctl adds the key): see IdentityFile in local.ts. */
const signAdminReply = z.object({
  cert: z.string(),
  ca_certs: z.array(z.string()),
  cluster_name: z.string(),
  expires: z.string(),
});
export type SignAdminReply = z.output<typeof signAdminReply>;

/** Every admin route: where a client sends it, what it sends and what it gets back. */
export const ADMIN_ROUTES = {
  status: { method: 'GET', path: `${PATHS.admin}/status`, reply: statusReply },
  createResource: {
    method: 'POST',
    path: `${PATHS.admin}/resources`,
    body: createResourceRequest,
    reply: createdReply,
  },
  apply: {
    method: 'POST',
    path: `${PATHS.admin}/apply`,
    body: applyRequest,
    reply: appliedReply,
    maxBody: MAX_APPLY_BODY,
  },
  listResources: { method: 'GET', path: `${PATHS.admin}/resources/:kind`, query: listQuery, reply: pageReply },
  getResource: { method: 'GET', path: `${PATHS.admin}/resources/:kind/:name`, reply: resourceReply },
  deleteResource: { method: 'DELETE', path: `${PATHS.admin}/resources/:kind/:name`, reply: okReply },
  addBot: { method: 'POST', path: `${PATHS.admin}/bots`, body: addBotRequest, reply: joinTokenReply },
  updateBot: { method: 'PUT', path: `${PATHS.admin}/bots/:name`, body: updateBotRequest, reply: resourceReply },
  addToken: { method: 'POST', path: `${PATHS.admin}/tokens`, body: addTokenRequest, reply: joinTokenReply },
  testToken: {
    method: 'POST',
    path: `${PATHS.admin}/tokens/:name/test`,
    body: testTokenRequest,
    reply: testTokenReply,
  },
  audit: { method: 'GET', path: `${PATHS.admin}/audit`, query: auditQuery, reply: z.array(auditEvent) },
  exportCA: { method: 'GET', path: `${PATHS.admin}/ca/:type`, reply: caReply },
  signHost: { method: 'POST', path: `${PATHS.admin}/sign/host`, body: signHostRequest, reply: signHostReply },
  signAdmin: { method: 'POST', path: `${PATHS.admin}/sign/admin`, body: signAdminRequest, reply: signAdminReply },
  signDb: { method: 'POST', path: `${PATHS.admin}/sign/db`, body: signDbRequest, reply: signDbReply },
  /** Rotates the SPIFFE CA (`spiffe`) or the JWT-SVID keys (`jwt`) at once, the old ones trusted for a grace period. */
  rotateCA: { method: 'POST', path: `${PATHS.admin}/ca/:type/rotate`, reply: rotateReply },
} as const satisfies Record<string, RouteSpec>;

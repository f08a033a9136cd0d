import { z } from 'zod';
import { KINDS } from './resources.js';
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

/** POST resources: creates (with `upsert`, replaces) a role, bot, token or lock. */
export const createResourceRequest = objectBody({
  /** Checked by the Auth Service against its kind's schema (src/api/resources.ts). */
  resource: z.unknown(),
  /** Anything but `true` creates. */
  upsert: z.unknown().transform((v) => v === true),
});

const createdReply = z.object({
  kind: z.enum(KINDS),
  name: z.string(),
  /** Secrets the join method generated (e.g. a bound keypair's registration secret): shown only now. */
  shown_once: z.record(z.string()).optional(),
  /**
   * What the Auth Service ignored or changed in the resource, one sentence each naming it, e.g.
   * `role "dev": spec.allow.kubernetes_labels is not used by mwi (ignored)` (tctl prints them on stderr).
   */
  notes: z.array(z.string()).optional(),
});
export type CreatedReply = z.output<typeof createdReply>;

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
    /** Absent for a token that never expires (a platform token bound with `bots add --token`). */
    expires: z.string().optional(),
    ca_pins: z.array(z.string()),
    /** bound_keypair: the registration secret, when the Auth Service generated one. */
    registration_secret: z.string().optional(),
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
});
export type AuditQuery = z.output<typeof auditQuery>;

/** An audit event as logged: these fields and any other the event has. */
const auditEvent = z
  .object({
    event: z.string(),
    success: z.boolean(),
    time: z.string().optional(),
    bot_name: z.string().optional(),
    bot_instance_id: z.string().optional(),
    join_method: z.string().optional(),
    /** The join token's id (never a secret: a `token`-method token is named by its hash's id). */
    token_id: z.string().optional(),
    resource: z.string().optional(),
    user: z.string().optional(),
    /** Why a request failed (internal detail: only administrators see it). */
    reason: z.string().optional(),
  })
  .passthrough();
export type AuditEventReply = z.output<typeof auditEvent>;

const statusReply = z.object({ cluster_name: z.string(), ca_pin: z.string(), server_version: z.string() });
export type StatusReply = z.output<typeof statusReply>;

/** GET ca/TYPE: a CA's public part as its consumers read it (see `tctl ca export`). */
const caReply = z.object({ type: z.string(), text: z.string() });

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

/** Every admin route: where a client sends it, what it sends and what it gets back. */
export const ADMIN_ROUTES = {
  status: { method: 'GET', path: `${PATHS.admin}/status`, reply: statusReply },
  createResource: {
    method: 'POST',
    path: `${PATHS.admin}/resources`,
    body: createResourceRequest,
    reply: createdReply,
  },
  listResources: { method: 'GET', path: `${PATHS.admin}/resources/:kind`, query: listQuery, reply: pageReply },
  getResource: { method: 'GET', path: `${PATHS.admin}/resources/:kind/:name`, reply: resourceReply },
  deleteResource: { method: 'DELETE', path: `${PATHS.admin}/resources/:kind/:name`, reply: okReply },
  addBot: { method: 'POST', path: `${PATHS.admin}/bots`, body: addBotRequest, reply: joinTokenReply },
  updateBot: { method: 'PUT', path: `${PATHS.admin}/bots/:name`, body: updateBotRequest, reply: resourceReply },
  addToken: { method: 'POST', path: `${PATHS.admin}/tokens`, body: addTokenRequest, reply: joinTokenReply },
  audit: { method: 'GET', path: `${PATHS.admin}/audit`, query: auditQuery, reply: z.array(auditEvent) },
  exportCA: { method: 'GET', path: `${PATHS.admin}/ca/:type`, reply: caReply },
  signHost: { method: 'POST', path: `${PATHS.admin}/sign/host`, body: signHostRequest, reply: signHostReply },
} as const satisfies Record<string, RouteSpec>;

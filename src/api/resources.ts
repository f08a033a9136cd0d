import { z } from 'zod';
import { MwiError } from '../errors.js';
import { parseDuration } from '../util/duration.js';
import { fieldPath, parseWith } from '../util/parse.js';
import { roleFieldNotes } from './role-fields.js';
import { workloadIdentitySchema, type WorkloadIdentity } from './workload-identity-resource.js';

// The resources an administrator writes and reads (roles, bots, tokens, locks) and the bot
// instances joins create: checked here by the Auth Service, read here by tctl.

/** Resource names (bots, roles, non-secret tokens, locks): also what a join's token name must look like. */
export const RESOURCE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,127}$/;
const NAME = z.string().regex(RESOURCE_NAME, 'expected letters, digits, ".", "_", "@" or "-" (at most 128)');
const DURATION = z.string().refine((s) => parseDuration(s) !== undefined, 'expected a duration such as 8h or 30m');
const TIMESTAMP = z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'expected an RFC 3339 time');

/**
 * An SSH login (principal) or a `{{internal.NAME}}` template for one: no whitespace and no
 * control or format characters. Rule: an empty or blank principal never reaches a certificate
 * (finding 2: OpenSSH reads an empty principal list as "any user").
 */
export const LOGIN_PATTERN = /^[^\s\p{C}]+$/u;
const LOGIN = z.string().regex(LOGIN_PATTERN, 'expected a login without spaces or control characters');

/** Teleport's label selector (role `workload_identity_labels`): each key to a value or a list; `*` matches any. */
const WORKLOAD_LABELS = z.record(z.union([z.string(), z.array(z.string())]));

const FORWARD_TOGGLE = z.object({ enabled: z.boolean().optional() }).strict();

const metadata = z
  .object({
    name: NAME,
    expires: TIMESTAMP.optional(),
    description: z.string().optional(),
    labels: z.record(z.string()).optional(),
    /** Teleport's storage revision and namespace: accepted from its exports, not stored. */
    revision: z.string().optional(),
    namespace: z.string().optional(),
  })
  .strict();
/** Teleport's sub_kind: accepted from its exports, not stored (none of these kinds has one in mwi). */
const SUB_KIND = z.string().optional();

export const roleSchema = z
  .object({
    kind: z.literal('role'),
    sub_kind: SUB_KIND,
    // what mwi reads (logins, the options below) means the same in each; v8 is Teleport's default
    version: z
      .enum(['v8', 'v7', 'v6', 'v5'], {
        errorMap: () => ({
          message: "expected v5 to v8 (Teleport's role versions whose fields mwi knows; a v9 role's are not read)",
        }),
      })
      .default('v7'),
    metadata,
    spec: z
      .object({
        // Teleport's role option names; unknown options pass through (Teleport has many)
        options: z
          .object({
            max_session_ttl: DURATION.optional(),
            forward_agent: z.boolean().optional(),
            permit_x11_forwarding: z.boolean().optional(),
            port_forwarding: z.boolean().optional(),
            ssh_port_forwarding: z
              .object({ local: FORWARD_TOGGLE.optional(), remote: FORWARD_TOGGLE.optional() })
              .strict()
              .optional(),
          })
          .passthrough()
          .default({}),
        allow: z
          .object({
            logins: z.array(LOGIN).default([]),
            spiffe: z
              .array(
                z
                  .object({
                    path: z.string().startsWith('/'),
                    dns_sans: z.array(z.string()).optional(),
                    ip_sans: z.array(z.string()).optional(),
                  })
                  .strict(),
              )
              .default([]),
            workload_identity_labels: WORKLOAD_LABELS.optional(),
          })
          .passthrough()
          .default({}),
        deny: z
          .object({ logins: z.array(LOGIN).default([]), workload_identity_labels: WORKLOAD_LABELS.optional() })
          .passthrough()
          .default({}),
      })
      .strict(),
  })
  .strict();
export type Role = z.infer<typeof roleSchema>;

const trait = z.object({ name: z.string().min(1), values: z.array(z.string()) }).strict();

export const botSchema = z
  .object({
    kind: z.literal('bot'),
    sub_kind: SUB_KIND,
    version: z.literal('v1').default('v1'),
    metadata,
    spec: z
      .object({
        roles: z.array(NAME).min(1, 'a bot needs at least one role'),
        traits: z.array(trait).default([]),
        max_session_ttl: DURATION.optional(),
      })
      .strict(),
    /**
     * Written only by the Auth Service (`uid`); accepted and ignored on input, so `tctl get`
     * output (mwi's, or Teleport's with user_name and role_name) can be re-applied.
     */
    status: z.object({ uid: z.string().optional() }).passthrough().optional(),
  })
  .strict();
export type Bot = z.infer<typeof botSchema>;

/** Join methods the Auth Service knows about; the catalog decides which are implemented. */
export const tokenSchema = z
  .object({
    kind: z.literal('token'),
    sub_kind: SUB_KIND,
    version: z.literal('v2').default('v2'),
    metadata,
    spec: z
      .object({
        roles: z.array(z.string()).default(['Bot']),
        join_method: z.string().min(1),
        bot_name: NAME,
      })
      .passthrough()
      .refine((s) => s.roles.length === 1 && s.roles[0] === 'Bot', {
        message: 'only bot tokens are supported: roles must be [Bot]',
        path: ['roles'],
      }),
    /** Written only by the Auth Service: ignored on input (a replaced token keeps its own). */
    status: z.record(z.unknown()).optional(),
  })
  .strict();
export type Token = z.infer<typeof tokenSchema>;

export const lockSchema = z
  .object({
    kind: z.literal('lock'),
    sub_kind: SUB_KIND,
    version: z.literal('v2').default('v2'),
    metadata,
    spec: z
      .object({
        target: z
          .object({
            user: z.string().optional(),
            bot_instance_id: z.string().optional(),
            join_token: z.string().optional(),
          })
          .strict()
          .refine(
            (t) => [t.user, t.bot_instance_id, t.join_token].filter(Boolean).length === 1,
            'exactly one of target.user (bot-NAME), target.bot_instance_id or target.join_token: an mwi lock ' +
              "has one target (Teleport's may combine several; write one lock per target)",
          ),
        message: z.string().default(''),
        expires: TIMESTAMP.optional(),
        /** Who and when (Teleport's names): set by the Auth Service unless given (a re-applied lock keeps its own). */
        created_by: z.string().optional(),
        created_at: TIMESTAMP.optional(),
        /** What mwi called created_at before: read as it. */
        created: TIMESTAMP.optional(),
      })
      .strict(),
  })
  .strict();
export type Lock = z.infer<typeof lockSchema>;

/** Bot instances are created by joins, never by users. */
export interface BotInstance {
  kind: 'bot_instance';
  version: 'v1';
  metadata: { name: string; expires: string };
  /**
   * `bot_uid`: the `status.uid` of the bot this instance joined. A bot removed and added again
   * with the same name gets a new uid, so the old bot's instances never count as the new bot's.
   */
  spec: { bot_name: string; instance_id: string; bot_uid?: string };
  status: {
    initial_authentication: {
      auth_at: string;
      join_method: string;
      join_token_name: string;
      metadata?: Record<string, unknown>;
    };
    latest_authentication: { auth_at: string; join_method: string; generation: number };
    /** Server-side renewal counter; the current certificate carries the same number. */
    generation: number;
    /**
     * Whether a request has used the current generation yet. Until one has, the previous
     * generation may renew once more: that is tbot retrying a renewal whose answer it lost
     * (a crash or a dropped connection), not a copy.
     */
    generation_confirmed: boolean;
    public_key_fingerprint: string;
    /** Expiry of the latest renewable identity issued to this instance. */
    credential_expires: string;
    /**
     * Set when a holder of the instance's identity ended it (POST /v1/instance/end): the record is
     * kept until it expires, as evidence, and every later use of the identity is refused.
     */
    ended?: { at: string; reason: string; generation: number };
    /** Self-reported by tbot; informational only. */
    latest_heartbeats: Array<{
      recorded_at: string;
      hostname: string;
      os: string;
      version: string;
      uptime_seconds: number;
      one_shot: boolean;
    }>;
  };
}

export const KINDS = ['role', 'bot', 'token', 'lock', 'bot_instance', 'workload_identity'] as const;
export type Kind = (typeof KINDS)[number];

/** What the admin API answers for each kind (a token without its secret's hash). */
interface ResourceByKind {
  role: Role;
  bot: Bot;
  token: Token;
  lock: Lock;
  bot_instance: BotInstance;
  workload_identity: WorkloadIdentity;
}
export type Resource = ResourceByKind[Kind];
/** The resource a kind's name stands for; any resource for a name known only at run time. */
export type ResourceOf<K extends string> = K extends Kind ? ResourceByKind[K] : Resource;

const PLURALS: Record<string, Kind> = {
  role: 'role',
  roles: 'role',
  bot: 'bot',
  bots: 'bot',
  token: 'token',
  tokens: 'token',
  lock: 'lock',
  locks: 'lock',
  bot_instance: 'bot_instance',
  bot_instances: 'bot_instance',
  workload_identity: 'workload_identity',
  workload_identities: 'workload_identity',
};

/** Accepts `roles`, `role`, `bots`, ...; names the closed set on failure. */
export function parseKind(text: string): Kind {
  const kind = PLURALS[text.toLowerCase()];
  if (!kind)
    throw new MwiError(
      'BAD_REQUEST',
      `unknown resource kind ${JSON.stringify(text)} (expected one of: ${KINDS.join(', ')})`,
      { field: 'kind' },
    );
  return kind;
}

/** Deepest nesting of mappings and lists a resource may have: its schemas use a handful of levels. */
export const MAX_RESOURCE_DEPTH = 64;

/**
 * Where `value` nests mappings or lists deeper than MAX_RESOURCE_DEPTH (the field at the top of
 * the deep part), if anywhere. Checked before any recursive walk of the input (the __proto__
 * search, the schema), and itself without recursion: no body can exhaust the stack.
 */
function tooDeepPath(value: unknown): string | undefined {
  const stack: Array<[unknown, ReadonlyArray<string | number>]> = [[value, []]];
  while (stack.length > 0) {
    const [v, path] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (path.length >= MAX_RESOURCE_DEPTH) {
      // name the field down to where the nesting goes on, not 64 segments of it
      const named = path.findIndex((p) => typeof p === 'number');
      return fieldPath(path.slice(0, named > 0 ? named : Math.min(path.length, 4)));
    }
    for (const [k, x] of Object.entries(v)) stack.push([x, [...path, Array.isArray(v) ? Number(k) : k]]);
  }
  return undefined;
}

/** Where `value` holds an own `__proto__` key (JSON.parse makes one from `"__proto__": ...`), if anywhere. */
function protoKeyPath(value: unknown, path: ReadonlyArray<string | number> = []): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  if (Object.hasOwn(value, '__proto__')) return fieldPath([...path, '__proto__']);
  for (const [k, v] of Object.entries(value)) {
    const found = protoKeyPath(v, [...path, Array.isArray(value) ? Number(k) : k]);
    if (found) return found;
  }
  return undefined;
}

/** Why a Teleport lock target (role, login, server_id, ...) is refused. */
const LOCK_TARGETS =
  'not a lock target in mwi: an mwi lock targets a bot (user: bot-NAME), a bot instance (bot_instance_id) or a ' +
  "join token (join_token); Teleport's other targets name users, roles, logins, nodes and devices mwi does not have";

/** A resource as the Auth Service stores it, and notes on what in the input it ignored. */
export interface CheckedResource {
  resource: Role | Bot | Token | Lock | WorkloadIdentity;
  /** e.g. `spec.allow.kubernetes_labels is not used by mwi (ignored)`; the caller names the resource. */
  notes: string[];
}

/** Validates a user-supplied resource with its kind's schema; the error names the field. */
export function validateResource(input: unknown): Role | Bot | Token | Lock | WorkloadIdentity {
  return checkResource(input).resource;
}

/**
 * Validates a user-supplied resource with its kind's schema (the error names the field), as
 * written by mwi's or Teleport's `tctl get`: what only Teleport has (metadata.revision,
 * metadata.namespace, sub_kind) is dropped with a note, and so is a status (the Auth Service
 * writes its own).
 */
export function checkResource(input: unknown): CheckedResource {
  const kind = (input as { kind?: unknown } | null)?.kind;
  const schema =
    kind === 'role'
      ? roleSchema
      : kind === 'bot'
        ? botSchema
        : kind === 'token'
          ? tokenSchema
          : kind === 'lock'
            ? lockSchema
            : kind === 'workload_identity'
              ? workloadIdentitySchema
              : undefined;
  if (!schema) {
    throw new MwiError(
      'BAD_REQUEST',
      `unknown or missing resource kind ${JSON.stringify(kind)} (expected one of: ` +
        'role, bot, token, lock, workload_identity)',
      { field: 'kind' },
    );
  }
  const deep = tooDeepPath(input);
  if (deep !== undefined)
    throw new MwiError('BAD_REQUEST', `nested more than ${MAX_RESOURCE_DEPTH} levels deep`, {
      field: deep || 'resource',
    });
  const proto = protoKeyPath(input);
  // zod copies the fields it passes through by assignment: this one would become a prototype
  if (proto) throw new MwiError('BAD_REQUEST', 'a field named __proto__ is not allowed', { field: proto });
  const parsed = parseWith<z.ZodType<Role | Bot | Token | Lock | WorkloadIdentity, z.ZodTypeDef, unknown>>(
    schema,
    input,
    {
      code: 'BAD_REQUEST',
      root: 'resource',
      unknownKey: (at) => (kind === 'lock' && fieldPath(at) === 'spec.target' ? LOCK_TARGETS : 'unknown key'),
    },
  );
  const { sub_kind: subKind, ...resource } = parsed;
  const { revision, namespace, ...meta } = resource.metadata;
  const notes = [
    ...(revision !== undefined ? ['metadata.revision is not used by mwi (ignored)'] : []),
    ...(namespace !== undefined ? ['metadata.namespace is not used by mwi (ignored)'] : []),
    ...(subKind ? ['sub_kind is not used by mwi (ignored)'] : []),
  ];
  const status = 'status' in resource ? resource.status : undefined;
  if (status && Object.keys(status).length > 0) notes.push('status is written by the Auth Service (ignored)');
  if (resource.kind === 'role') notes.push(...roleFieldNotes(resource.spec));
  return { resource: { ...resource, metadata: meta }, notes };
}

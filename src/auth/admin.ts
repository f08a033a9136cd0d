import { randomUUID } from 'node:crypto';
import {
  ID_FORM_SECRET,
  REVISION_HEADER,
  TOKEN_ID_FORM,
  type AddBotRequest,
  type AddTokenRequest,
  type ApplyRequest,
  type AuditEventReply,
  type AuditQuery,
  type CreatedReply,
  hostPrincipalProblem,
  type JoinTokenReply,
  LOCAL_ADMIN,
  type Page,
  type SignHostRequest,
  type StatusReply,
  type UpdateBotRequest,
} from '../api/admin.js';
import { parseKind, validateResource } from '../api/resources.js';
import type { Bot, BotInstance, Kind, Resource, Token } from '../api/resources.js';
import { NEXT_PAGE_HEADER } from '../api/wire.js';
import { parseSshPublicKey, signSshCertificate } from '../crypto/ssh.js';
import { BACKDATE_MS } from '../crypto/x509.js';
import { isMwiError, MwiError } from '../errors.js';
import { awaitsRegistrationSecret } from '../join/bound_keypair/wire.js';
import { joinMethodInfo } from '../join/catalog.js';
import { teleportPlacement } from '../join/placement.js';
import { key } from '../storage/backend.js';
import { parseDuration } from '../util/duration.js';
import { VERSION } from '../version.js';
import { applyResources, checkJoinMethod } from './apply.js';
import { CA_TYPES, exportCA, type CAType } from './authorities.js';
import { activeLock } from './access.js';
import { removeBot } from './bot-removal.js';
import type { AuthContext } from './context.js';
import { RawJson } from './http.js';
import { getBySecret, newSecret, SECRET_ID, tokenId, tokenKey, type StoredToken } from './tokens.js';

const DEFAULT_PAGE = 1000;
const MAX_PAGE = 5000;
const DEFAULT_AUDIT_EVENTS = 50;
const MAX_AUDIT_EVENTS = 10_000;

const PREFIX: Record<Kind, string> = {
  role: '/roles/',
  bot: '/bots/',
  token: '/tokens/',
  lock: '/locks/',
  bot_instance: '/bot_instances/',
  workload_identity: '/workload_identities/',
};

/**
 * What admin requests may see of a stored token: never the hash; its rules where Teleport keeps
 * them, also for a token stored before mwi did.
 */
function publicToken(t: StoredToken): Token {
  const { secret_hash: _hidden, ...rest } = t;
  const { spec } = teleportPlacement(rest.spec, rest.spec.join_method);
  return { ...rest, spec: spec as Token['spec'] };
}

/**
 * NOT_FOUND for a resource. A token's name is not repeated: for method `token` it may be the
 * secret itself, and the message may be logged.
 */
function notFound(kind: Kind, name: string): MwiError {
  if (kind === 'token')
    return new MwiError(
      'NOT_FOUND',
      'no such token: no token has this id, nor (method token) this secret; tctl tokens ls lists the ids',
    );
  return new MwiError('NOT_FOUND', `${kind} ${JSON.stringify(name)} not found`);
}

/** A request's `ttl`: a duration above zero ("0s" is a duration, yet no lifetime). */
function positiveTtl(text: string): number {
  const ms = parseDuration(text);
  const got = `(got ${JSON.stringify(text)})`;
  if (ms === undefined)
    throw new MwiError('BAD_REQUEST', `expected a duration such as 30m or 24h ${got}`, { field: 'ttl' });
  if (ms <= 0) throw new MwiError('BAD_REQUEST', `must be more than 0 ${got}`, { field: 'ttl' });
  return ms;
}

/** A stored resource of `kind` as admin requests see it. */
function readResource(kind: Kind, stored: string): Resource {
  return kind === 'token' ? publicToken(JSON.parse(stored) as StoredToken) : (JSON.parse(stored) as Resource);
}

/** Paging of a listing (see AdminApi.list). */
interface PageOptions {
  startAfter?: string | undefined;
  limit?: number | undefined;
  bot?: string | undefined;
}

/** The admin API's handlers (the routes are in routes.ts); `user` is the administrator calling. */
export class AdminApi {
  /**
   * `publicAddrs`: HOST:PORT for each name of the operator's certificates (status tells tctl, which
   * prints a `--proxy-server` start line with one).
   */
  constructor(
    private readonly ctx: AuthContext,
    private readonly publicAddrs: () => string[] = () => [],
  ) {}

  private audit(
    event: 'resource.created' | 'resource.updated' | 'resource.deleted' | 'lock.created' | 'lock.deleted',
    resource: string,
    user: string,
    extra: Record<string, unknown> = {},
  ): void {
    this.ctx.audit.emit({ event, success: true, resource, user, ...extra });
  }

  status(): StatusReply {
    const publicAddrs = this.publicAddrs();
    return {
      cluster_name: this.ctx.cas.clusterName,
      ca_pin: this.ctx.cas.caPin,
      server_version: VERSION,
      ...(publicAddrs.length > 0 ? { public_addrs: publicAddrs } : {}),
      ...(this.ctx.workload
        ? {
            workload_identity: {
              trust_domain: this.ctx.workload.authorities.trustDomain,
              ...(this.ctx.workload.issuer ? { issuer: this.ctx.workload.issuer } : {}),
            },
          }
        : {}),
    };
  }

  /**
   * Creates (or with `upsert`, replaces) a role, bot, token or lock; with `expectedRevision`,
   * only if the stored one still has it (tctl edit). The reply's notes say what of the input was
   * ignored or moved (tctl prints them).
   */
  async create(input: unknown, upsert: boolean, user: string, expectedRevision?: string): Promise<CreatedReply> {
    const [reply] = await applyResources(this.ctx, [{ resource: input, expectedRevision }], upsert, user, 'none');
    return reply!;
  }

  /**
   * Writes several resources, all or none (tctl create FILE): a refused one is a BAD_CONFIG
   * naming its document, and nothing is written (see applyResources).
   */
  async apply(body: ApplyRequest, user: string): Promise<{ items: CreatedReply[] }> {
    const items = body.resources.map((r) => ({ resource: r.resource, expectedRevision: r.expected_revision }));
    return { items: await applyResources(this.ctx, items, body.upsert, user, 'documents') };
  }

  /**
   * One page of a kind, in key order: at most `limit` (default 1000, at most 5000) items, and
   * `next` to pass as `startAfter` for the following page (absent on the last page).
   */
  async list(kindText: string, opts: PageOptions = {}): Promise<Page<Resource>> {
    const { kind, page, more } = await this.page(kindText, opts);
    const locked = this.lockedOf(kind, page);
    return {
      items: page.map((i) => readResource(kind, i.value)),
      ...(more ? { next: page[page.length - 1]!.key } : {}),
      ...(locked ? { locked } : {}),
    };
  }

  /**
   * Which of a page's bots or bot instances a lock holds now, as a join or renewal would find it
   * (the lock cache): name -> the lock's message or name. Undefined for other kinds, and when none is.
   */
  private lockedOf(kind: Kind, page: Array<{ key: string; value: string }>): Record<string, string> | undefined {
    if (kind !== 'bot' && kind !== 'bot_instance') return undefined;
    const out: Record<string, string> = {};
    for (const row of page) {
      if (kind === 'bot') {
        const name = (JSON.parse(row.value) as Bot).metadata.name;
        const why = activeLock(this.ctx, name);
        if (why !== undefined) out[name] = why;
        continue;
      }
      const i = JSON.parse(row.value) as BotInstance;
      const token = i.status?.initial_authentication?.join_token_name;
      const why = activeLock(this.ctx, i.spec.bot_name, i.spec.instance_id, token);
      if (why !== undefined) out[i.metadata.name] = why;
    }
    return Object.keys(out).length > 0 ? out : undefined;
  }

  /**
   * The same page as `list`, as JSON text: stored values are sent as stored, without parsing
   * and re-serializing each one (100,000 bot instances are 20 pages of 5,000).
   */
  async listJson(kindText: string, opts: PageOptions = {}): Promise<RawJson> {
    if (parseKind(kindText) === 'token') return new RawJson(JSON.stringify(await this.list(kindText, opts)));
    const { kind, page, more } = await this.page(kindText, opts);
    const nextKey = more ? page[page.length - 1]!.key : undefined;
    const next = nextKey ? `,"next":${JSON.stringify(nextKey)}` : '';
    const lockedMap = this.lockedOf(kind, page);
    const locked = lockedMap ? `,"locked":${JSON.stringify(lockedMap)}` : '';
    return new RawJson(
      `{"items":[${page.map((i) => i.value).join(',')}]${next}${locked}}`,
      nextKey ? { [NEXT_PAGE_HEADER]: encodeURIComponent(nextKey) } : {},
    );
  }

  private async page(kindText: string, opts: PageOptions) {
    const kind = parseKind(kindText);
    const prefix = kind === 'bot_instance' && opts.bot ? `${PREFIX.bot_instance}${opts.bot}/` : PREFIX[kind];
    const limit = Math.max(
      1,
      Math.min(MAX_PAGE, opts.limit && Number.isFinite(opts.limit) ? Math.floor(opts.limit) : DEFAULT_PAGE),
    );
    if (opts.startAfter !== undefined && !opts.startAfter.startsWith(prefix))
      throw new MwiError('BAD_REQUEST', 'page token does not belong to this listing', { field: 'start_after' });
    const rows = await this.ctx.backend.range(prefix, {
      limit: limit + 1,
      ...(opts.startAfter ? { startAfter: opts.startAfter } : {}),
    });
    return { kind, page: rows.slice(0, limit), more: rows.length > limit };
  }

  async get(kindText: string, name: string): Promise<Resource> {
    return (await this.getItem(kindText, name)).resource;
  }

  /** GET resources/KIND/NAME: the resource, its storage revision in the REVISION_HEADER (for tctl edit). */
  async getJson(kindText: string, name: string): Promise<RawJson> {
    const { resource, revision } = await this.getItem(kindText, name);
    return new RawJson(JSON.stringify(resource), revision !== undefined ? { [REVISION_HEADER]: String(revision) } : {});
  }

  /** A resource and its storage revision (none for a bot instance found by its ID alone). */
  private async getItem(kindText: string, name: string): Promise<{ resource: Resource; revision?: number }> {
    const kind = parseKind(kindText);
    if (kind === 'bot_instance' && name.includes('/')) {
      // BOT/ID, as Teleport names them: one read
      const [bot, id, ...more] = name.split('/');
      const item =
        bot && id && more.length === 0 ? await this.ctx.backend.get(key('bot_instances', bot, id)) : undefined;
      if (!item) throw new MwiError('NOT_FOUND', `bot_instance ${JSON.stringify(name)} not found`);
      return { resource: JSON.parse(item.value) as Resource, revision: item.revision };
    }
    if (kind === 'bot_instance') {
      // instances are keyed by bot: without the bot name this walks the pages
      let startAfter: string | undefined;
      do {
        const page = await this.list('bot_instance', { limit: MAX_PAGE, ...(startAfter ? { startAfter } : {}) });
        const found = page.items.find((i) => i.metadata.name === name);
        if (found) return { resource: found };
        startAfter = page.next;
      } while (startAfter);
      throw new MwiError('NOT_FOUND', `bot_instance ${JSON.stringify(name)} not found`);
    }
    const item = await this.ctx.backend.get(await this.resourceKey(kind, name));
    if (!item) throw notFound(kind, name);
    return { resource: readResource(kind, item.value), revision: item.revision };
  }

  private async resourceKey(kind: Kind, name: string): Promise<string> {
    if (kind !== 'token') return key(PREFIX[kind].slice(1, -1), name);
    // accept the id shown by `tokens ls`, or the secret itself
    const direct = tokenKey(name);
    if (SECRET_ID.test(name) || (await this.ctx.backend.get(direct))) return direct;
    const mac = this.ctx.cas.challengeMac;
    return tokenKey((await getBySecret(this.ctx.backend, name, mac))?.id ?? tokenId(name, 'token', mac));
  }

  async remove(kindText: string, name: string, user: string): Promise<void> {
    const kind = parseKind(kindText);
    if (kind === 'bot_instance')
      throw new MwiError(
        'BAD_REQUEST',
        'bot instances are removed by expiry; lock one with tctl locks add --bot-instance',
      );
    if (kind === 'bot') return removeBot(this.ctx, name, user);
    const k = await this.resourceKey(kind, name);
    if (!(await this.ctx.backend.delete(k))) throw notFound(kind, name);
    this.audit(
      kind === 'lock' ? 'lock.deleted' : 'resource.deleted',
      `${kind}/${kind === 'token' ? k.slice('/tokens/'.length) : name}`,
      user,
    );
  }

  /** `tctl tokens add`: creates a token; for method `token` a fresh secret, shown only now. */
  async addToken(body: AddTokenRequest, user: string): Promise<JoinTokenReply> {
    const method = body.join_method ?? 'token';
    checkJoinMethod(method);
    const ttlMs = body.ttl !== undefined ? positiveTtl(body.ttl) : 30 * 60 * 1000;
    const secretName = joinMethodInfo(method)!.secretName;
    // a chosen secret (Teleport's --value) is checked and hashed like any other by create; the
    // id form is refused here, where it can only be meant as a secret (create reads it as an id)
    if (secretName && body.name !== undefined && TOKEN_ID_FORM.test(body.name))
      throw new MwiError('BAD_REQUEST', ID_FORM_SECRET, { field: 'name' });
    const name = body.name ?? (secretName ? newSecret() : `${body.bot_name}-${randomUUID().slice(0, 8)}`);
    const until = new Date(this.ctx.now() + ttlMs).toISOString();
    let spec: Record<string, unknown> = { ...body.spec, roles: ['Bot'], join_method: method, bot_name: body.bot_name };
    // a bound keypair token is the lasting trust in the bot's key (recovery after an outage goes
    // through it, bounded by recovery.limit), so it does not expire, as in Teleport: the TTL bounds
    // the registration instead (onboarding.must_register_before), unless the spec sets that itself
    let expires: string | undefined = until;
    let mustRegisterBefore: string | undefined;
    if (method === 'bound_keypair') {
      expires = undefined;
      const bk = (spec.bound_keypair ?? {}) as { onboarding?: { must_register_before?: unknown } };
      if (typeof bk !== 'object' || bk === null || Array.isArray(bk))
        throw new MwiError('BAD_REQUEST', 'spec.bound_keypair must be an object', { field: 'spec.bound_keypair' });
      const onboarding = bk.onboarding ?? {};
      const given = onboarding.must_register_before;
      mustRegisterBefore = typeof given === 'string' && given !== '' ? given : until;
      spec = {
        ...spec,
        bound_keypair: { ...bk, onboarding: { ...onboarding, must_register_before: mustRegisterBefore } },
      };
    }
    const labels = body.labels ? { labels: body.labels } : {};
    const metadata = { name, ...(expires ? { expires } : {}), ...labels };
    const {
      name: id,
      shown_once,
      notes,
    } = await this.create({ kind: 'token', version: 'v2', metadata, spec }, false, user);
    return {
      token: name,
      id,
      join_method: method,
      bot_name: body.bot_name,
      ...(expires ? { expires } : {}),
      ...(mustRegisterBefore ? { must_register_before: mustRegisterBefore } : {}),
      ca_pins: [this.ctx.cas.caPin],
      ...(shown_once ?? {}),
      ...(notes ? { notes } : {}),
    };
  }

  /**
   * `tctl bots add`: the bot and, for method `token`, a single-use join token; with `token`, the
   * bot and an existing token bound to it (checked before the bot is written).
   */
  async addBot(body: AddBotRequest, user: string): Promise<JoinTokenReply> {
    const traits = body.logins && body.logins.length > 0 ? [{ name: 'logins', values: body.logins }] : [];
    const ttl = body.max_session_ttl !== undefined ? { max_session_ttl: body.max_session_ttl } : {};
    const spec = { roles: body.roles, traits, ...ttl };
    const bound = body.token !== undefined ? await this.tokenForNewBot(body.token, body.name) : undefined;
    try {
      await this.create({ kind: 'bot', version: 'v1', metadata: { name: body.name }, spec }, false, user);
    } catch (err) {
      // bots add has no --force (create's "use --force" would mislead): say what changes a bot instead
      if (!isMwiError(err, 'ALREADY_EXISTS')) throw err;
      const name = JSON.stringify(body.name);
      throw new MwiError(
        'ALREADY_EXISTS',
        `bot ${name} already exists: tctl bots update ${name} changes its roles and logins, tctl bots instances add ` +
          `${name} makes a new join token for it, tctl bots rm ${name} removes it`,
      );
    }
    if (bound) {
      const { metadata: m, spec: s } = bound;
      const expires = m.expires !== undefined ? { expires: m.expires } : {};
      return {
        token: m.name,
        id: m.name,
        join_method: s.join_method,
        bot_name: s.bot_name,
        ...expires,
        ca_pins: [this.ctx.cas.caPin],
        ...(awaitsRegistrationSecret(s, bound.status) ? { awaits_registration_secret: true } : {}),
      };
    }
    const token = { bot_name: body.name, join_method: body.join_method ?? 'token', ttl: body.token_ttl ?? '1h' };
    return this.addToken(token, user);
  }

  /**
   * The token `bots add --token` binds, as Teleport checks it: it exists and names the bot. A
   * token whose name is its secret cannot be bound: mwi holds only its hash, so it could not
   * print the join command, and such a token is single-use anyway.
   */
  private async tokenForNewBot(name: string, bot: string): Promise<Token> {
    let token: Token;
    try {
      token = (await this.get('token', name)) as Token;
    } catch (err) {
      if (!isMwiError(err, 'NOT_FOUND')) throw err;
      const message = `token ${JSON.stringify(name)} not found (create it first, or leave out --token)`;
      throw new MwiError('NOT_FOUND', message, { field: 'token' });
    }
    if (joinMethodInfo(token.spec.join_method)?.secretName)
      throw new MwiError(
        'BAD_REQUEST',
        `token ${JSON.stringify(token.metadata.name)} is a single-use ${token.spec.join_method} token, whose ` +
          'secret mwi stores only as a hash: leave out --token to get a new one (--token binds platform and ' +
          'bound_keypair tokens)',
        { field: 'token' },
      );
    if (token.spec.bot_name !== bot)
      throw new MwiError(
        'BAD_REQUEST',
        `token ${JSON.stringify(name)} is for bot ${JSON.stringify(token.spec.bot_name)}, not ${JSON.stringify(bot)}`,
        { field: 'token' },
      );
    return token;
  }

  /** `tctl bots update`: replaces roles and/or logins. */
  async updateBot(name: string, body: UpdateBotRequest, user: string): Promise<Bot> {
    const item = await this.ctx.backend.get(key('bots', name));
    if (!item) throw new MwiError('NOT_FOUND', `bot ${JSON.stringify(name)} not found`);
    const bot = JSON.parse(item.value) as Bot;
    if (body.roles) bot.spec.roles = body.roles;
    const others = bot.spec.traits.filter((t) => t.name !== 'logins');
    if (body.logins) bot.spec.traits = [...others, { name: 'logins', values: body.logins }];
    const checked = validateResource(bot) as Bot;
    for (const r of checked.spec.roles) {
      if (!(await this.ctx.roles.fresh(r))) {
        throw new MwiError('NOT_FOUND', `role ${JSON.stringify(r)} does not exist`, { field: 'roles' });
      }
    }
    await this.ctx.backend.compareAndSwap(item.key, item.revision, JSON.stringify(checked));
    this.audit('resource.updated', `bot/${name}`, user);
    return checked;
  }

  /** The most recent audit events first: `limit` of them (default 50, at most 10,000), of one type or all. */
  recentEvents(query: AuditQuery): Promise<AuditEventReply[]> {
    const filter = { type: query.type, failures: query.failures === 'true' };
    return this.ctx.audit.recent(Math.min(query.limit || DEFAULT_AUDIT_EVENTS, MAX_AUDIT_EVENTS), filter);
  }

  exportCA(type: string): string {
    if (!(CA_TYPES as readonly string[]).includes(type)) {
      throw new MwiError(
        'BAD_REQUEST',
        `unknown CA type ${JSON.stringify(type)} (expected one of: ${CA_TYPES.join(', ')})`,
        { field: 'type' },
      );
    }
    return exportCA(this.ctx.cas, type as CAType);
  }

  /**
   * Signs an OpenSSH host certificate for an existing host key (the key never leaves the host).
   * Only for the local admin identity, as sign/admin: a host certificate lives up to a year and no
   * lock revokes it, so a stolen operator identity must not be able to make one.
   */
  async signHost(body: SignHostRequest, user: string): Promise<{ ssh_cert: string }> {
    if (user !== LOCAL_ADMIN)
      throw new MwiError(
        'ACCESS_DENIED',
        'an operator identity cannot sign host certificates (they last up to a year and no lock revokes them): ' +
          'run tctl auth sign --host on the Auth Service host, with its local admin identity',
      );
    const { blob } = parseSshPublicKey(body.public_key, 'public_key');
    const principals = body.principals.filter(Boolean);
    if (principals.length === 0)
      throw new MwiError('BAD_REQUEST', 'expected at least one host name', { field: 'host' });
    for (const p of principals) {
      const problem = hostPrincipalProblem(p);
      if (problem) throw new MwiError('BAD_REQUEST', problem, { field: 'host' });
    }
    const ttlMs = body.ttl !== undefined ? positiveTtl(body.ttl) : 30 * 24 * 3600 * 1000;
    const now = this.ctx.now();
    const { cert: ssh_cert } = await signSshCertificate({
      caKey: this.ctx.cas.sshHost.key,
      caBlob: this.ctx.cas.sshHost.blob,
      subjectBlob: blob,
      certType: 'host',
      keyId: principals[0]!,
      principals,
      validAfter: new Date(now - BACKDATE_MS),
      validBefore: new Date(now + Math.min(ttlMs, 365 * 24 * 3600 * 1000)),
    });
    this.ctx.audit.emit({ event: 'resource.created', success: true, resource: `host_cert/${principals[0]}`, user });
    return { ssh_cert };
  }
}

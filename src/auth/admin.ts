import { randomUUID } from 'node:crypto';
import type {
  AddBotRequest,
  AddTokenRequest,
  AuditEventReply,
  AuditQuery,
  CreatedReply,
  JoinTokenReply,
  Page,
  SignHostRequest,
  StatusReply,
  UpdateBotRequest,
} from '../api/admin.js';
import { checkResource, parseKind, validateResource } from '../api/resources.js';
import type { Bot, BotInstance, Kind, Lock, Resource, Token } from '../api/resources.js';
import { NEXT_PAGE_HEADER } from '../api/wire.js';
import { sha256Hex } from '../crypto/keys.js';
import { parseSshPublicKey, signSshCertificate } from '../crypto/ssh.js';
import { BACKDATE_MS } from '../crypto/x509.js';
import { isMwiError, MwiError } from '../errors.js';
import { joinMethodInfo, unknownJoinMethod } from '../join/catalog.js';
import { teleportPlacement } from '../join/placement.js';
import { prepareTokenSpec } from '../join/token-spec.js';
import { key } from '../storage/backend.js';
import { parseDuration } from '../util/duration.js';
import { VERSION } from '../version.js';
import { CA_TYPES, exportCA, type CAType } from './authorities.js';
import { activeLock } from './access.js';
import { removeBot } from './bot-removal.js';
import type { AuthContext } from './context.js';
import { RawJson } from './http.js';
import { newSecret, SECRET_ID, tokenId, tokenKey, type StoredToken } from './tokens.js';

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

function checkJoinMethod(method: string): void {
  if (!joinMethodInfo(method)) {
    throw new MwiError('BAD_REQUEST', unknownJoinMethod(method), { field: 'spec.join_method' });
  }
}

/**
 * Turns a validated token into its stored form: a `token`-method name becomes a hash, and the
 * method normalizes its spec (bound_keypair hashes or generates its registration secret, a
 * platform method moves its rules to Teleport's place). Status is the server's: never taken from
 * the input, kept from `previous` on replace. A `token`-method token named by its id (`tctl get`
 * prints no secret) replaces the stored one it names, keeping its secret.
 */
function storedToken(
  t: Token,
  now: number,
  previous?: StoredToken,
): { id: string; stored: StoredToken; shownOnce?: Record<string, string>; notes: string[] } {
  checkJoinMethod(t.spec.join_method);
  const name = t.metadata.name;
  const { spec, shownOnce, notes } = prepareTokenSpec(t.spec, now, previous?.spec);
  const { status: _server, ...given } = t;
  const base: StoredToken = {
    ...given,
    spec: spec as Token['spec'],
    ...(previous?.status ? { status: previous.status } : {}),
  };
  if (joinMethodInfo(t.spec.join_method)!.secretName) {
    if (SECRET_ID.test(name)) return { id: name, stored: { ...base, secret_hash: previous!.secret_hash! }, notes };
    if (name.length < 16)
      throw new MwiError('BAD_REQUEST', 'a join secret must be at least 16 characters', { field: 'metadata.name' });
    const id = tokenId(name, t.spec.join_method);
    const stored = { ...base, metadata: { ...t.metadata, name: id }, secret_hash: sha256Hex(name) };
    return { id, stored, notes };
  }
  if (SECRET_ID.test(name))
    throw new MwiError('BAD_REQUEST', 'names of the form h-<16 hex> are reserved for hashed tokens', {
      field: 'metadata.name',
    });
  return { id: name, stored: base, ...(shownOnce ? { shownOnce } : {}), notes };
}

/** Why a token named by an id (`h-<16 hex>`) that is not stored cannot be created. */
const BY_ID_NOT_FOUND = (id: string): string =>
  `token ${JSON.stringify(id)} not found: a name of the form h-<16 hex> is the id tctl get prints for a token ` +
  'named by its secret (mwi keeps only a hash of the secret, where Teleport prints the secret itself), so it ' +
  'can only replace that stored token; make a new one with tctl tokens add';

/** Paging of a listing (see AdminApi.list). */
interface PageOptions {
  startAfter?: string | undefined;
  limit?: number | undefined;
  bot?: string | undefined;
}

/** The admin API's handlers (the routes are in routes.ts); `user` is the administrator calling. */
export class AdminApi {
  constructor(private readonly ctx: AuthContext) {}

  private audit(
    event: 'resource.created' | 'resource.updated' | 'resource.deleted' | 'lock.created' | 'lock.deleted',
    resource: string,
    user: string,
  ): void {
    this.ctx.audit.emit({ event, success: true, resource, user });
  }

  status(): StatusReply {
    return { cluster_name: this.ctx.cas.clusterName, ca_pin: this.ctx.cas.caPin, server_version: VERSION };
  }

  /**
   * Creates (or with `upsert`, replaces) a role, bot, token or lock. The reply's notes say what
   * of the input was ignored or moved (tctl prints them).
   */
  async create(input: unknown, upsert: boolean, user: string): Promise<CreatedReply> {
    const checked = checkResource(input);
    const res = checked.resource;
    let k: string;
    let value: unknown = res;
    let name = res.metadata.name;
    let shownOnce: Record<string, string> | undefined;
    let notes = checked.notes;
    /** A replaced token or bot as read: written back only if nothing changed it meanwhile (a join, a removal). */
    let replacing: { revision: number } | undefined;
    const reply = (): CreatedReply => ({
      kind: res.kind,
      name,
      ...(shownOnce ? { shown_once: shownOnce } : {}),
      ...(notes.length ? { notes: notes.map((n) => `${res.kind} ${JSON.stringify(name)}: ${n}`) } : {}),
    });
    if (res.kind === 'token') {
      // Teleport's order is the token first, then `tctl bots add NAME --token TOKEN`: a token may
      // name a bot that does not exist yet (a join with it is refused until the bot exists)
      checkJoinMethod(res.spec.join_method);
      if (!(await this.ctx.bots.fresh(res.spec.bot_name))) {
        // never the name of a token whose name is its secret: notes are printed
        const bind = joinMethodInfo(res.spec.join_method)!.secretName ? '' : ` --token ${res.metadata.name}`;
        notes = [
          ...notes,
          `bot ${JSON.stringify(res.spec.bot_name)} does not exist yet: joins with this token are refused until ` +
            `it does (tctl bots add ${res.spec.bot_name} --roles ...${bind})`,
        ];
      }
      const byId = joinMethodInfo(res.spec.join_method)!.secretName && SECRET_ID.test(res.metadata.name);
      const id0 = byId ? res.metadata.name : tokenId(res.metadata.name, res.spec.join_method);
      const prev = upsert || byId ? await this.ctx.backend.get(tokenKey(id0)) : undefined;
      if (byId && !prev)
        throw new MwiError('NOT_FOUND', BY_ID_NOT_FOUND(res.metadata.name), { field: 'metadata.name' });
      const prepared = storedToken(res, this.ctx.now(), prev ? (JSON.parse(prev.value) as StoredToken) : undefined);
      k = tokenKey(prepared.id);
      value = prepared.stored;
      name = prepared.id;
      shownOnce = prepared.shownOnce;
      notes = [...notes, ...prepared.notes];
      replacing = upsert ? prev : undefined;
    } else if (res.kind === 'bot') {
      for (const r of res.spec.roles)
        if (!(await this.ctx.roles.fresh(r)))
          throw new MwiError('NOT_FOUND', `role ${JSON.stringify(r)} does not exist`, { field: 'spec.roles' });
      k = key('bots', name);
      const prev = upsert ? await this.ctx.backend.get(k) : undefined;
      // the uid is the server's: a new bot gets a new one, a replaced bot keeps its own (a bot
      // stored before uids existed keeps none, so its instances stay valid)
      const uid = prev ? (JSON.parse(prev.value) as Bot).status?.uid : randomUUID();
      const { status: _ignored, ...rest } = res;
      value = { ...rest, ...(uid ? { status: { uid } } : {}) };
      // conditional: a removal in between must not be undone with the old uid
      replacing = prev;
    } else if (res.kind === 'lock') {
      // who and when: kept when given (a lock re-applied from tctl get stays as it was), as in Teleport
      const { created, ...spec } = res.spec;
      const createdAt = spec.created_at ?? created ?? new Date(this.ctx.now()).toISOString();
      const lock: Lock = { ...res, spec: { ...spec, created_by: spec.created_by ?? user, created_at: createdAt } };
      value = lock;
      k = key('locks', name);
    } else {
      k = key('roles', name);
    }
    const text = JSON.stringify(value);
    if (replacing) {
      try {
        await this.ctx.backend.compareAndSwap(k, replacing.revision, text);
      } catch (err) {
        if (isMwiError(err, 'COMPARE_FAILED'))
          throw new MwiError('COMPARE_FAILED', `${res.kind} ${JSON.stringify(name)} changed concurrently; try again`);
        throw err;
      }
    } else if (upsert) await this.ctx.backend.put(k, text);
    else {
      try {
        await this.ctx.backend.create(k, text);
      } catch (err) {
        if (isMwiError(err, 'ALREADY_EXISTS'))
          throw new MwiError(
            'ALREADY_EXISTS',
            `${res.kind} ${JSON.stringify(name)} already exists (use --force to replace it)`,
          );
        throw err;
      }
    }
    this.audit(
      res.kind === 'lock' ? 'lock.created' : upsert ? 'resource.updated' : 'resource.created',
      `${res.kind}/${name}`,
      user,
    );
    return reply();
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
    const kind = parseKind(kindText);
    if (kind === 'bot_instance' && name.includes('/')) {
      // BOT/ID, as Teleport names them: one read
      const [bot, id, ...more] = name.split('/');
      const item =
        bot && id && more.length === 0 ? await this.ctx.backend.get(key('bot_instances', bot, id)) : undefined;
      if (!item) throw new MwiError('NOT_FOUND', `bot_instance ${JSON.stringify(name)} not found`);
      return JSON.parse(item.value) as Resource;
    }
    if (kind === 'bot_instance') {
      // instances are keyed by bot: without the bot name this walks the pages
      let startAfter: string | undefined;
      do {
        const page = await this.list('bot_instance', { limit: MAX_PAGE, ...(startAfter ? { startAfter } : {}) });
        const found = page.items.find((i) => i.metadata.name === name);
        if (found) return found;
        startAfter = page.next;
      } while (startAfter);
      throw new MwiError('NOT_FOUND', `bot_instance ${JSON.stringify(name)} not found`);
    }
    const item = await this.ctx.backend.get(await this.resourceKey(kind, name));
    if (!item) throw notFound(kind, name);
    return readResource(kind, item.value);
  }

  private async resourceKey(kind: Kind, name: string): Promise<string> {
    if (kind !== 'token') return key(PREFIX[kind].slice(1, -1), name);
    // accept the id shown by `tokens ls`, or the secret itself
    const direct = tokenKey(name);
    if (SECRET_ID.test(name) || (await this.ctx.backend.get(direct))) return direct;
    return tokenKey(tokenId(name, 'token'));
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
    // a chosen secret (Teleport's --value) is checked and hashed like any other by create
    const name = body.name ?? (secretName ? newSecret() : `${body.bot_name}-${randomUUID().slice(0, 8)}`);
    const expires = new Date(this.ctx.now() + ttlMs).toISOString();
    const spec = { ...body.spec, roles: ['Bot'], join_method: method, bot_name: body.bot_name };
    const labels = body.labels ? { labels: body.labels } : {};
    const {
      name: id,
      shown_once,
      notes,
    } = await this.create({ kind: 'token', version: 'v2', metadata: { name, expires, ...labels }, spec }, false, user);
    return {
      token: name,
      id,
      join_method: method,
      bot_name: body.bot_name,
      expires,
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
    return this.ctx.audit.recent(Math.min(query.limit || DEFAULT_AUDIT_EVENTS, MAX_AUDIT_EVENTS), query.type);
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

  /** Signs an OpenSSH host certificate for an existing host key (the key never leaves the host). */
  async signHost(body: SignHostRequest, user: string): Promise<{ ssh_cert: string }> {
    const { blob } = parseSshPublicKey(body.public_key, 'public_key');
    const principals = body.principals.filter(Boolean);
    if (principals.length === 0)
      throw new MwiError('BAD_REQUEST', 'expected at least one host name', { field: 'host' });
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

import type { IncomingHttpHeaders } from 'node:http';
import type { z } from 'zod';
import { MwiError } from '../errors.js';
import { parseWith } from '../util/parse.js';
import {
  ADMIN_ROUTES,
  type AddBotRequest,
  type AddTokenRequest,
  type ApplyRequest,
  type AuditEventReply,
  type CreatedReply,
  type JoinTokenReply,
  type Page,
  REVISION_HEADER,
  type SignAdminReply,
  type SignAdminRequest,
  type SignHostRequest,
  type StatusReply,
  type TestTokenReply,
  type TestTokenRequest,
  type UpdateBotRequest,
} from './admin.js';
import type { ApiClient } from './client.js';
import type { ResourceOf } from './resources.js';
import { routePath, type BodyOf, type PathParams, type ReplyOf, type RouteSpec } from './route.js';
import { NEXT_PAGE_HEADER } from './wire.js';

export interface PageOptions {
  /** Bot instances of this bot only. */
  bot?: string;
  /** Bots and bot instances: filled, page by page, with the ones a lock holds (name -> the lock's message or name). */
  locked?: Map<string, string>;
  /** The previous page's `next`. */
  startAfter?: string;
  limit?: number;
}

/** Items per page when paging through a whole listing: the most the Auth Service gives at once. */
const PAGE_LIMIT = 5000;

interface SendOptions<S extends RouteSpec> {
  body?: BodyOf<S>;
  /** Wire values (strings); an absent one is left out. */
  query?: Record<string, string | undefined>;
  onHeaders?: (headers: IncomingHttpHeaders) => void;
}

const numberText = (n: number | undefined): string | undefined => (n === undefined ? undefined : String(n));

interface Fetching<T> {
  /** The next page's token, as soon as this page's headers say it (or its body, from an older Auth Service). */
  next: Promise<string | undefined>;
  items: Promise<T[]>;
}

/**
 * The admin API, one typed method per route of ADMIN_ROUTES, over an ApiClient that presents an
 * admin identity. A kind is named as the API accepts it (`role`, `roles`, `bot_instance`, ...).
 */
export class AdminClient {
  constructor(private readonly api: ApiClient) {}

  /** The Auth Service addresses this client uses. */
  get addrs(): readonly string[] {
    return this.api.addrs;
  }

  status(): Promise<StatusReply> {
    return this.send(ADMIN_ROUTES.status, {});
  }

  /**
   * Creates a resource (checked by the Auth Service against its kind's schema); `upsert` replaces
   * one. The reply's `notes` say what the Auth Service ignored or moved (tctl prints them).
   */
  create(resource: unknown, upsert = false): Promise<CreatedReply> {
    return this.send(ADMIN_ROUTES.createResource, {}, { body: { resource, upsert } });
  }

  /**
   * Writes several resources, all or none (the Auth Service checks every one before it writes
   * any; a refused one is a BAD_CONFIG naming its document). A resource with `expected_revision`
   * is written only if the stored one still has that revision (see getWithRevision).
   */
  apply(resources: ApplyRequest['resources'], upsert = false): Promise<{ items: CreatedReply[] }> {
    return this.send(ADMIN_ROUTES.apply, {}, { body: { resources, upsert } });
  }

  /** One page of a kind; `onNext` gets the next page's token as soon as the answer's headers name it. */
  async listPage<K extends string>(
    kind: K,
    opts: PageOptions = {},
    onNext?: (token: string) => void,
  ): Promise<Page<ResourceOf<K>>> {
    const query = { bot: opts.bot, start_after: opts.startAfter, limit: numberText(opts.limit) };
    const onHeaders =
      onNext &&
      ((h: IncomingHttpHeaders) => {
        const token = h[NEXT_PAGE_HEADER];
        if (typeof token === 'string' && token) onNext(decodeURIComponent(token));
      });
    const page = await this.send(ADMIN_ROUTES.listResources, { kind }, { query, ...(onHeaders ? { onHeaders } : {}) });
    for (const [name, why] of Object.entries(page.locked ?? {})) opts.locked?.set(name, why);
    // the items are what the Auth Service stored for this kind, checked when they were written
    return page as Page<ResourceOf<K>>;
  }

  /**
   * The pages of a kind, in order. The next page is asked for as soon as this one's headers
   * arrive, so the Auth Service reads page k+1 while this process handles page k; never more
   * than one page ahead of the consumer, so memory stays at two pages however long the listing.
   */
  async *pages<K extends string>(kind: K, opts: Omit<PageOptions, 'startAfter'> = {}): AsyncGenerator<ResourceOf<K>[]> {
    const fetchPage = (after: string | undefined): Fetching<ResourceOf<K>> => {
      let resolveNext!: (token: string | undefined) => void;
      const next = new Promise<string | undefined>((r) => (resolveNext = r));
      const page = this.listPage(kind, { limit: PAGE_LIMIT, ...opts, startAfter: after }, resolveNext);
      // (a later resolve is a no-op: the header, when there is one, came first)
      page.then(
        (p) => resolveNext(p.next),
        () => resolveNext(undefined),
      );
      return { next, items: page.then((p) => p.items) };
    };
    for (let cur: Fetching<ResourceOf<K>> | undefined = fetchPage(undefined); cur;) {
      const token: string | undefined = await cur.next;
      const following: Fetching<ResourceOf<K>> | undefined = token ? fetchPage(token) : undefined;
      // awaited on the next turn; a failure before then must not count as unhandled
      following?.items.catch(() => {});
      yield await cur.items;
      cur = following;
    }
  }

  /** Every item of a kind, fetched page by page (the Auth Service never sends a whole table at once). */
  async listAll<K extends string>(kind: K, opts: Omit<PageOptions, 'startAfter'> = {}): Promise<ResourceOf<K>[]> {
    const out: ResourceOf<K>[] = [];
    for await (const items of this.pages(kind, opts)) out.push(...items);
    return out;
  }

  /** One resource; a bot instance is named BOT/ID or by its ID alone. */
  async get<K extends string>(kind: K, name: string): Promise<ResourceOf<K>> {
    // the envelope is checked; the rest is what the Auth Service stored for this kind
    return (await this.send(ADMIN_ROUTES.getResource, { kind, name })) as ResourceOf<K>;
  }

  /**
   * One resource and its storage revision, to send back as `expected_revision` so that a change
   * made meanwhile is not overwritten (tctl edit). The revision is absent for a bot instance named
   * by its ID alone.
   */
  async getWithRevision<K extends string>(
    kind: K,
    name: string,
  ): Promise<{ resource: ResourceOf<K>; revision: string | undefined }> {
    let revision: string | undefined;
    const onHeaders = (h: IncomingHttpHeaders) => {
      const value = h[REVISION_HEADER];
      if (typeof value === 'string' && value) revision = value;
    };
    const resource = (await this.send(ADMIN_ROUTES.getResource, { kind, name }, { onHeaders })) as ResourceOf<K>;
    return { resource, revision };
  }

  async remove(kind: string, name: string): Promise<void> {
    await this.send(ADMIN_ROUTES.deleteResource, { kind, name });
  }

  /** A bot and a single-use join token for it. */
  addBot(req: AddBotRequest): Promise<JoinTokenReply> {
    return this.send(ADMIN_ROUTES.addBot, {}, { body: req });
  }

  async updateBot(name: string, req: UpdateBotRequest): Promise<ResourceOf<'bot'>> {
    return (await this.send(ADMIN_ROUTES.updateBot, { name }, { body: req })) as ResourceOf<'bot'>;
  }

  addToken(req: AddTokenRequest): Promise<JoinTokenReply> {
    return this.send(ADMIN_ROUTES.addToken, {}, { body: req });
  }

  /** Runs a token's checks on an identity token, or on a refused join's recorded claims; creates nothing. */
  testToken(name: string, req: TestTokenRequest): Promise<TestTokenReply> {
    return this.send(ADMIN_ROUTES.testToken, { name }, { body: req });
  }

  /** The most recent audit events first (default 50); `failures`: refusals only. */
  audit(opts: { limit?: number; type?: string; failures?: boolean } = {}): Promise<AuditEventReply[]> {
    const query = { limit: numberText(opts.limit), type: opts.type, failures: opts.failures ? 'true' : undefined };
    return this.send(ADMIN_ROUTES.audit, {}, { query });
  }

  /** A CA's public part as its consumers read it. */
  async exportCA(type: string): Promise<string> {
    return (await this.send(ADMIN_ROUTES.exportCA, { type })).text;
  }

  /** Rotates the SPIFFE CA (`spiffe`) or the JWT-SVID keys (`jwt`): the new revision, the grace period's end. */
  rotateCA(type: string): Promise<{ type: string; revision: string; old_trusted_until: string }> {
    return this.send(ADMIN_ROUTES.rotateCA, { type });
  }

  /** An OpenSSH host certificate line for an existing host key. */
  async signHost(req: SignHostRequest): Promise<string> {
    return (await this.send(ADMIN_ROUTES.signHost, {}, { body: req })).ssh_cert;
  }

  /** An operator identity's certificate for `req.public_key` (only the local admin identity may ask). */
  signAdmin(req: SignAdminRequest): Promise<SignAdminReply> {
    return this.send(ADMIN_ROUTES.signAdmin, {}, { body: req });
  }

  close(): void {
    this.api.close();
  }

  /**
   * Sends one request of `spec`. The answer is checked against the reply schema and returned as
   * it was sent: a field the schema does not name is kept, and the order of fields too (tctl's
   * JSON output is what the Auth Service sent).
   */
  private async send<S extends RouteSpec & { reply: z.ZodTypeAny }>(
    spec: S,
    params: Record<PathParams<S['path']>, string>,
    opts: SendOptions<S> = {},
  ): Promise<ReplyOf<S>> {
    const path = routePath(spec, params, opts.query);
    const { body, onHeaders } = opts;
    const answer = await this.api.call<unknown>(spec.method, path, body, onHeaders ? { onHeaders } : {});
    try {
      parseWith(spec.reply, answer, { code: 'BAD_REQUEST', root: 'answer' });
    } catch (cause) {
      const detail = cause instanceof Error ? cause.message : String(cause);
      const message = `the Auth Service sent a malformed answer to ${spec.method} ${spec.path} (${detail})`;
      throw new MwiError('INTERNAL', message, { cause });
    }
    return answer as ReplyOf<S>;
  }
}

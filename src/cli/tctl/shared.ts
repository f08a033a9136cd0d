import type { IncomingHttpHeaders } from 'node:http';
import type { ApiClient } from '../../api/client.js';
import { NEXT_PAGE_HEADER } from '../../api/wire.js';
import { usageError } from '../common.js';

const str = { type: 'string' } as const;
/** Every flag of every command: parsed once, so global flags may stand anywhere. */
export const OPTIONS = {
  'data-dir': str, 'auth-server': str, identity: str, format: str, help: { type: 'boolean', short: 'h' },
  f: { type: 'string', short: 'f' }, force: { type: 'boolean' }, type: str, limit: str, host: str, 'public-key': str,
  ttl: str, out: str, roles: str, logins: str, 'set-roles': str, 'add-roles': str, 'set-logins': str, 'add-logins': str,
  'bot-name': str, 'join-method': str, spec: str, bot: str, 'bot-instance': str, message: str, reason: str,
} as const;
export type Flags = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };

export function list(v: string | undefined): string[] | undefined {
  return v === undefined ? undefined : v.split(',').map((s) => s.trim()).filter(Boolean);
}

export function need<T>(v: T | undefined, flag: string): T {
  if (v === undefined || v === '') throw usageError('is required', flag);
  return v;
}

export type Row = Record<string, any>;

interface Fetching<T> {
  /** The next page's token, as soon as this page's headers say it (or its body, from an older Auth Service). */
  next: Promise<string | undefined>;
  items: Promise<T[]>;
}

/**
 * The pages of a kind, in order. The next page is asked for as soon as this one's headers
 * arrive, so the Auth Service reads page k+1 while this process parses page k; never more than
 * one page ahead of the consumer, so memory stays at two pages however long the listing.
 */
export async function* pages<T>(api: ApiClient, kind: string, query: Record<string, string> = {}): AsyncGenerator<T[]> {
  const fetchPage = (after: string | undefined): Fetching<T> => {
    let resolveNext!: (token: string | undefined) => void;
    const next = new Promise<string | undefined>((r) => (resolveNext = r));
    const q = new URLSearchParams({ limit: '5000', ...query, ...(after ? { start_after: after } : {}) });
    const onHeaders = (h: IncomingHttpHeaders) => {
      const token = h[NEXT_PAGE_HEADER];
      if (typeof token === 'string' && token) resolveNext(decodeURIComponent(token));
    };
    const page = api.call<{ items: T[]; next?: string }>('GET', `/v1/admin/resources/${encodeURIComponent(kind)}?${q}`, undefined, { onHeaders });
    // (a later resolve is a no-op: the header, when there is one, came first)
    page.then((p) => resolveNext(p.next), () => resolveNext(undefined));
    return { next, items: page.then((p) => p.items) };
  };
  for (let cur: Fetching<T> | undefined = fetchPage(undefined); cur; ) {
    const token: string | undefined = await cur.next;
    const following: Fetching<T> | undefined = token ? fetchPage(token) : undefined;
    // awaited on the next turn; a failure before then must not count as unhandled
    following?.items.catch(() => {});
    yield await cur.items;
    cur = following;
  }
}

/** Every item of a kind, fetched page by page (the Auth Service never sends a whole table at once). */
export async function listAll<T>(api: ApiClient, kind: string, query: Record<string, string> = {}): Promise<T[]> {
  const out: T[] = [];
  for await (const items of pages<T>(api, kind, query)) out.push(...items);
  return out;
}

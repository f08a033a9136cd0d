import type { IncomingMessage } from 'node:http';
import type { BodyOf, PathParams, QueryOf, ReplyOf, RouteSpec } from '../api/route.js';
import { MwiError } from '../errors.js';
import { decodeSegment, type RequestTarget } from '../util/http-target.js';
import { parseWith } from '../util/parse.js';
import type { Claims } from './claims.js';
import { callerOf, type Access, type AdminClaims } from './connection-identity.js';
import { readJson, type RawJson } from './http.js';

/** What a handler gets: the request, checked and parsed. */
export interface Call<S extends RouteSpec, A extends Access> {
  req: IncomingMessage;
  /** The client's address, for audit events. */
  remote: string;
  caller: A extends 'admin' ? AdminClaims : Claims | undefined;
  params: Record<PathParams<S['path']>, string>;
  query: QueryOf<S>;
  body: BodyOf<S>;
}

/**
 * A Call as the router builds it for any route: query and body parsed by that route's own
 * schemas, so of the types route() bound the handler to, which the router itself cannot name.
 */
type RouterCall = Omit<Call<RouteSpec, Access>, 'query' | 'body'> & { query: unknown; body: unknown };

/** A route of the Auth Service: its spec, who may call it, and the handler whose value is the 200 answer. */
export interface Route {
  readonly spec: RouteSpec;
  readonly access: Access;
  handle(call: RouterCall): unknown;
}

type Answer<S extends RouteSpec> = ReplyOf<S> | RawJson;

/** Binds a handler to a route spec; the handler's answer must be the spec's reply (or that reply as JSON text). */
export function route<const S extends RouteSpec, A extends Access>(
  spec: S,
  access: A,
  handle: (call: Call<S, A>) => Answer<S> | Promise<Answer<S>>,
): Route {
  // the router builds each Call from this route's own spec and access
  return { spec, access, handle: handle };
}

/** Routes under one path prefix, sharing rules. */
export interface Area {
  /** The area of a path is the first whose prefix the path starts with. */
  prefix: string;
  /** Checked before a route is looked up: a caller without it learns nothing of the area's routes. */
  access: Access;
  /** How a 404's message begins: `no admin route GET /v1/admin/x`. */
  notFound: string;
  /**
   * Paths of this area carry names: each segment after the prefix is percent-decoded before it
   * is matched. A decoded "/" would become a storage key separator, so it is refused unless
   * allowed at segment `i`; in an area without names, paths are matched as sent.
   */
  names?: { slashAllowed(segments: readonly string[], i: number): boolean };
  routes: Route[];
}

/** The first value of each query parameter; an empty one counts as absent. */
function queryValues(q: URLSearchParams): Record<string, string> {
  const entries = [...new Set(q.keys())].map((k): [string, string] => [k, q.get(k) ?? '']);
  return Object.fromEntries(entries.filter(([, v]) => v !== ''));
}

/** The parameters of a path that matches `pattern` segment for segment (a parameter is never empty). */
function match(pattern: readonly string[], segments: readonly string[]): Record<string, string> | undefined {
  if (pattern.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (const [i, p] of pattern.entries()) {
    const s = segments[i]!;
    if (p.startsWith(':') && s !== '') params[p.slice(1)] = s;
    else if (p !== s) return undefined;
  }
  return params;
}

function routeName(r: Route): string {
  return `${r.spec.method} ${r.spec.path}`;
}

/**
 * Finds the route of a request and calls its handler, in this order: the area's access, the
 * path's names, the route (404 when none), the route's access, the query, then the body (read
 * only now, within `bodyTimeoutMs`). Each schema failure is a BAD_REQUEST naming the field.
 */
export class Router {
  private readonly areas: Array<Area & { patterns: Map<Route, string[]> }>;

  constructor(
    areas: Area[],
    private readonly bodyTimeoutMs: number,
  ) {
    this.areas = areas.map((a) => {
      for (const r of a.routes) {
        if (!r.spec.path.startsWith(a.prefix)) throw new TypeError(`route ${r.spec.path} is outside ${a.prefix}`);
      }
      return { ...a, patterns: new Map(a.routes.map((r) => [r, r.spec.path.slice(a.prefix.length).split('/')])) };
    });
  }

  /** Every route's name, `METHOD /path/:param` (the route label of the request metrics). */
  routeNames(): string[] {
    return this.areas.flatMap((a) => a.routes.map(routeName));
  }

  /**
   * The answer to send with status 200; an MwiError for any other. `matched.route` is set to the
   * name of the route found (see routeNames), before its checks run.
   */
  async dispatch(
    req: IncomingMessage,
    target: RequestTarget,
    remote: string,
    now: number,
    matched: { route?: string } = {},
  ): Promise<unknown> {
    const area = this.areas.find((a) => target.path.startsWith(a.prefix));
    if (!area) throw new MwiError('NOT_FOUND', `no route ${req.method} ${target.path}`);
    if (area.access !== 'anyone') callerOf(req, now, area.access);
    const raw = target.path.slice(area.prefix.length).split('/');
    const names = area.names;
    const segments = names ? raw.map((s) => decodeSegment(s)) : raw;
    if (names && segments.some((s, i) => s.includes('/') && !names.slashAllowed(segments, i))) {
      throw new MwiError('BAD_REQUEST', 'a name in the path cannot contain /', { field: 'path' });
    }
    for (const [r, pattern] of area.patterns) {
      const params = r.spec.method === req.method ? match(pattern, segments) : undefined;
      if (!params) continue;
      matched.route = routeName(r);
      const caller = callerOf(req, now, r.access);
      const { query: q, body: b } = r.spec;
      const query: unknown = q
        ? parseWith(q, queryValues(target.query), { code: 'BAD_REQUEST', root: 'query' })
        : undefined;
      // the body is read only now: a request refused above never has it read
      const json = b ? await readJson(req, this.bodyTimeoutMs, r.spec.maxBody) : undefined;
      const body: unknown = b ? parseWith(b, json, { code: 'BAD_REQUEST', root: 'body' }) : undefined;
      return r.handle({ req, remote, caller, params, query, body });
    }
    throw new MwiError('NOT_FOUND', `${area.notFound} ${req.method} ${target.path}`);
  }
}

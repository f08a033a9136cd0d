import type { z } from 'zod';

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

/**
 * One route of the Auth Service's HTTP API as both sides see it: the method, the path pattern
 * (a `:name` segment is a parameter) and the schemas of the body, the query and the reply. The
 * Auth Service binds a handler to it (src/auth/routes.ts); a client builds its URLs with routePath.
 */
export interface RouteSpec {
  method: Method;
  path: string;
  body?: z.ZodTypeAny;
  query?: z.ZodTypeAny;
  reply?: z.ZodTypeAny;
  /** Largest body the route reads, in bytes (default 64 KiB). */
  maxBody?: number;
}

/** The parameter names of a path pattern: `/a/:kind/:name` gives 'kind' | 'name'. */
export type PathParams<P extends string> = P extends `${string}:${infer N}/${infer R}`
  ? N | PathParams<R>
  : P extends `${string}:${infer N}`
    ? N
    : never;

/** What a route's body, query or reply schema makes of the wire form (undefined: the route has none). */
export type BodyOf<S extends RouteSpec> = S extends { body: infer B extends z.ZodTypeAny } ? z.output<B> : undefined;
export type QueryOf<S extends RouteSpec> = S extends { query: infer Q extends z.ZodTypeAny } ? z.output<Q> : undefined;
export type ReplyOf<S extends RouteSpec> = S extends { reply: infer R extends z.ZodTypeAny } ? z.output<R> : unknown;

/**
 * The URL of a route: each parameter percent-encoded into its segment, then the query (a
 * parameter without a value left out).
 */
export function routePath<S extends RouteSpec>(
  spec: S,
  params: Record<PathParams<S['path']>, string>,
  query: Record<string, string | undefined> = {},
): string {
  const values: Record<string, string> = params;
  const path = spec.path.replace(/:(\w+)/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new TypeError(`no value for :${name} in ${spec.path}`);
    return encodeURIComponent(value);
  });
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') q.set(k, v);
  return q.size > 0 ? `${path}?${q}` : path;
}

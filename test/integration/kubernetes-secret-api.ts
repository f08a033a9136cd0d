/**
 * A stand-in for a Kubernetes API server's Secrets endpoints, served over HTTPS on 127.0.0.1
 * (port 0), for tbot's `kubernetes_secret` destination. No API server runs on this machine, so
 * the tests serve the wire shapes themselves.
 *
 * What it reproduces of the real API server (v1.2x-1.3x), byte for byte where a client can see it:
 * - `GET /api/v1/namespaces/NS/secrets/NAME`: the Secret (apiVersion, kind, metadata with uid,
 *   resourceVersion, creationTimestamp and labels, type, base64 `data`), or a 404 Status
 *   (`secrets "NAME" not found`, reason NotFound, details {name, kind: secrets}).
 * - Server-side apply: `PATCH` with `Content-Type: application/apply-patch+yaml` (any other type:
 *   415 with the real message), the body parsed as YAML (so JSON works), `fieldManager` required
 *   (422 Invalid otherwise), `force`, `dryRun=All` (authorized, validated and answered like a
 *   real write, nothing stored; any other dryRun value: 400), name and namespace in the body
 *   checked against the URL (400), `data` keys and base64 values validated (422 Invalid), type
 *   immutable (422). Creates (201) or updates (200); every stored change bumps resourceVersion
 *   (one cluster-wide counter, as etcd's revision). A `metadata.resourceVersion` in the body
 *   that is not the stored one: 409 Conflict with the real message (`the object has been
 *   modified; please apply your changes to the latest version and try again`).
 * - Apply ownership, for `data` keys and labels only: a field manager's apply removes the keys it
 *   applied before and omits now, keeps other managers' keys, and (force) takes over the keys it
 *   sets.
 * - Authentication: a bearer token (`tokens`), else a client certificate verified against
 *   `clientCa` (its CN is the user); neither: 401 Status (reason Unauthorized).
 * - RBAC as the authorizer sees it: per user and namespace, rules of verbs and optional
 *   resourceNames on `secrets`; GET needs get, an apply needs patch and, when it creates the
 *   Secret, also create, checked with the name from the URL (as the apiserver's patch handler
 *   does, which is why a create rule with resourceNames works for apply); a refusal is a 403
 *   Status with the real message (`secrets "NAME" is forbidden: User "U" cannot VERB resource
 *   "secrets" in API group "" in the namespace "NS"`). Dry runs are authorized the same way.
 * - An apply that would create a Secret in a namespace that does not exist: 404 `namespaces "NS"
 *   not found` (details kind namespaces); a GET there is a plain secrets 404, as for real.
 * - Not the API server's, for tests of tbot's own defences: `trickleMs` (an answer that never
 *   ends, a byte at a time) and `answer` (any status and body, a hostile server's message).
 *
 * What it does not reproduce: other resources and verbs (list, watch, POST, PUT, DELETE,
 * JSON/merge/strategic patches), managedFields in answers and conflicts between managers without
 * force, admission, discovery, CBOR/protobuf, HTTP/2, size limits, `stringData`, field
 * validation of unknown fields, and what the real server does with a resourceVersion in an apply
 * to a Secret that no longer exists (here: created, the version dropped; tbot also handles a 404
 * or 409 there, by reading again).
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { parse } from 'yaml';
import { makePublicPki } from '../helpers/public-pki.js';
import { run } from '../helpers/procs.js';

/** A Role rule on secrets: its verbs, and (optionally) the names it is limited to. */
export interface SecretRule {
  verbs: string[];
  resourceNames?: string[];
}

interface Stored {
  uid: string;
  resourceVersion: string;
  creationTimestamp: string;
  type: string;
  data: Map<string, string>;
  labels: Map<string, string>;
  /** field manager -> the data keys and labels it applied last */
  owners: Map<string, { data: Set<string>; labels: Set<string> }>;
}

/** One request as the stand-in saw it. */
export interface SeenRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType: string | undefined;
  user: string | undefined;
  status: number;
}

export interface KubeStandIn {
  /** https://127.0.0.1:PORT */
  url: string;
  port: number;
  /** The CA that verifies the server (PEM file): a pod's ca.crt. */
  caFile: string;
  /** Bearer token -> user (`system:serviceaccount:NS:NAME`). */
  tokens: Map<string, string>;
  /** user -> namespace -> rules. */
  rbac: Map<string, Map<string, SecretRule[]>>;
  namespaces: Set<string>;
  requests: SeenRequest[];
  /** The Secret's data, decoded; undefined when there is none. */
  secret(ns: string, name: string): Record<string, string> | undefined;
  /** The Secret as GET returns it (labels, resourceVersion, ...). */
  raw(ns: string, name: string): Record<string, unknown> | undefined;
  deleteSecret(ns: string, name: string): void;
  /** Changes the Secret behind the next `count` applies' backs (another writer): each gets a 409. */
  conflictNext(ns: string, name: string, count?: number): void;
  /** Grants `user` the rules in `ns` (replacing earlier ones). */
  allow(user: string, ns: string, rules: SecretRule[]): void;
  /**
   * While set, every request is answered with a 200 and its headers, then one byte every this many
   * milliseconds, never finished: a stalled (or hostile) API server that no idle timeout catches.
   */
  trickleMs: number | undefined;
  /** While set, what it returns (status and body) answers a request in place of the stand-in's own. */
  answer: ((method: string, path: string) => [number, unknown] | undefined) | undefined;
  /** A client certificate and key (PEM files) for user CN, trusted by this server. */
  clientCert(cn: string): Promise<{ cert: string; key: string }>;
  close(): Promise<void>;
}

const DATA_KEY = /^[-._a-zA-Z0-9]+$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function status(code: number, reason: string, message: string, details?: Record<string, unknown>) {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

async function openssl(args: string[]): Promise<void> {
  const r = await run('openssl', args);
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

/** Starts the stand-in; `dir` holds its TLS files. */
export async function startKubeStandIn(dir: string): Promise<KubeStandIn> {
  mkdirSync(dir, { recursive: true });
  const pki = await makePublicPki(dir);
  const tls = await pki.issue('kube-apiserver', 'DNS:localhost,IP:127.0.0.1');
  // client certificates come from their own CA, as a cluster's client CA is not its serving CA
  const p = (f: string) => join(dir, f);
  const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await openssl(
    ['req', '-x509', ...EC, '-keyout', p('client-ca.key'), '-out', p('client-ca.pem')].concat([
      '-subj',
      '/CN=kubernetes-client-ca',
      '-days',
      '2',
    ]),
  );
  let rv = 1000;
  const store = new Map<string, Stored>();
  const key = (ns: string, name: string) => `${ns}/${name}`;
  const conflicts = new Map<string, number>();
  const self: KubeStandIn = {
    url: '',
    port: 0,
    caFile: pki.root,
    tokens: new Map(),
    rbac: new Map(),
    namespaces: new Set(),
    requests: [],
    secret(ns, name) {
      const s = store.get(key(ns, name));
      if (!s) return undefined;
      return Object.fromEntries([...s.data].map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
    },
    raw(ns, name) {
      const s = store.get(key(ns, name));
      return s ? view(ns, name, s) : undefined;
    },
    deleteSecret(ns, name) {
      store.delete(key(ns, name));
    },
    conflictNext(ns, name, count = 1) {
      conflicts.set(key(ns, name), count);
    },
    allow(user, ns, rules) {
      if (!self.rbac.has(user)) self.rbac.set(user, new Map());
      self.rbac.get(user)!.set(ns, rules);
    },
    async clientCert(cn) {
      writeFileSync(
        p(`${cn}.ext`),
        'basicConstraints=CA:false\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n',
      );
      await openssl(['req', ...EC, '-keyout', p(`${cn}.key`), '-out', p(`${cn}.csr`), '-subj', `/CN=${cn}`]);
      await openssl(
        ['x509', '-req', '-in', p(`${cn}.csr`), '-CA', p('client-ca.pem'), '-CAkey', p('client-ca.key')].concat(
          ['-set_serial', `0x${randomUUID().replace(/-/g, '').slice(0, 16)}`, '-days', '1'],
          ['-extfile', p(`${cn}.ext`), '-out', p(`${cn}.pem`)],
        ),
      );
      return { cert: p(`${cn}.pem`), key: p(`${cn}.key`) };
    },
    trickleMs: undefined,
    answer: undefined,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        // a trickled answer never ends by itself
        server.closeAllConnections();
      }),
  };

  function view(ns: string, name: string, s: Stored) {
    return {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name,
        namespace: ns,
        uid: s.uid,
        resourceVersion: s.resourceVersion,
        creationTimestamp: s.creationTimestamp,
        ...(s.labels.size > 0 ? { labels: Object.fromEntries(s.labels) } : {}),
      },
      ...(s.data.size > 0 ? { data: Object.fromEntries(s.data) } : {}),
      type: s.type,
    };
  }

  function authorized(user: string, ns: string, verb: string, name: string): boolean {
    const rules = self.rbac.get(user)?.get(ns) ?? [];
    return rules.some(
      (r) => (r.verbs.includes(verb) || r.verbs.includes('*')) && (!r.resourceNames || r.resourceNames.includes(name)),
    );
  }

  const forbidden = (user: string, verb: string, ns: string, name: string) =>
    status(
      403,
      'Forbidden',
      `secrets "${name}" is forbidden: User "${user}" cannot ${verb} resource "secrets" in API group "" in the ` +
        `namespace "${ns}"`,
      { name, kind: 'secrets' },
    );

  /** The answer to one request: status and body. */
  function handle(
    method: string,
    url: URL,
    contentType: string | undefined,
    body: string,
    user: string | undefined,
  ): [number, unknown] {
    if (!user) return [401, status(401, 'Unauthorized', 'Unauthorized')];
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/secrets\/([^/]+)$/.exec(url.pathname);
    if (!m) return [404, status(404, 'NotFound', 'the server could not find the requested resource')];
    const ns = decodeURIComponent(m[1]!);
    const name = decodeURIComponent(m[2]!);
    const existing = store.get(key(ns, name));
    if (method === 'GET') {
      if (!authorized(user, ns, 'get', name)) return [403, forbidden(user, 'get', ns, name)];
      if (!existing) return [404, status(404, 'NotFound', `secrets "${name}" not found`, { name, kind: 'secrets' })];
      return [200, view(ns, name, existing)];
    }
    if (method !== 'PATCH') return [405, status(405, 'MethodNotAllowed', 'the server does not allow this method')];
    if (contentType !== 'application/apply-patch+yaml')
      return [
        415,
        status(
          415,
          'UnsupportedMediaType',
          `the body of the request was in an unknown format - accepted media types include: ` +
            'application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml',
        ),
      ];
    if (!authorized(user, ns, 'patch', name)) return [403, forbidden(user, 'patch', ns, name)];
    const manager = url.searchParams.get('fieldManager');
    if (!manager)
      return [
        422,
        status(
          422,
          'Invalid',
          'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
        ),
      ];
    const dryRun = url.searchParams.get('dryRun');
    if (dryRun !== null && dryRun !== 'All')
      return [400, status(400, 'BadRequest', `Invalid dry run option: ${JSON.stringify(dryRun)}`)];
    let obj: Record<string, any>;
    try {
      obj = parse(body) as Record<string, any>;
    } catch (e) {
      return [400, status(400, 'BadRequest', `error decoding YAML: ${String(e)}`)];
    }
    if (obj?.apiVersion !== 'v1' || obj?.kind !== 'Secret')
      return [400, status(400, 'BadRequest', 'the body is not a v1 Secret')];
    if (obj.metadata?.name !== name)
      return [
        400,
        status(
          400,
          'BadRequest',
          `the name of the object (${obj.metadata?.name}) does not match the name on the URL (${name})`,
        ),
      ];
    if (obj.metadata?.namespace !== undefined && obj.metadata.namespace !== ns)
      return [
        400,
        status(
          400,
          'BadRequest',
          'the namespace of the provided object does not match the namespace sent on the request',
        ),
      ];
    const data: Record<string, unknown> = obj.data ?? {};
    for (const [k, v] of Object.entries(data)) {
      if (!DATA_KEY.test(k) || typeof v !== 'string' || !BASE64.test(v))
        return [
          422,
          status(
            422,
            'Invalid',
            `Secret "${name}" is invalid: data[${k}]: Invalid value: a valid key or base64 value is required`,
          ),
        ];
    }
    if (!existing) {
      if (!self.namespaces.has(ns))
        return [404, status(404, 'NotFound', `namespaces "${ns}" not found`, { name: ns, kind: 'namespaces' })];
      if (!authorized(user, ns, 'create', name)) return [403, forbidden(user, 'create', ns, name)];
    }
    const type = obj.type ?? 'Opaque';
    if (existing && existing.type !== type)
      return [
        422,
        status(422, 'Invalid', `Secret "${name}" is invalid: type: Invalid value: "${type}": field is immutable`),
      ];
    // another writer got there first: the stored version moves on, so this apply's is stale
    const pending = conflicts.get(key(ns, name)) ?? 0;
    if (existing && pending > 0 && dryRun === null) {
      conflicts.set(key(ns, name), pending - 1);
      existing.resourceVersion = String(++rv);
    }
    const wanted = obj.metadata.resourceVersion as string | undefined;
    if (existing && wanted !== undefined && wanted !== existing.resourceVersion)
      return [
        409,
        status(
          409,
          'Conflict',
          `Operation cannot be fulfilled on secrets "${name}": the object has been modified; please apply your ` +
            'changes to the latest version and try again',
          { name, kind: 'secrets' },
        ),
      ];
    const next: Stored = existing
      ? {
          ...existing,
          data: new Map(existing.data),
          labels: new Map(existing.labels),
          owners: new Map(existing.owners),
        }
      : {
          uid: randomUUID(),
          resourceVersion: '',
          creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
          type,
          data: new Map(),
          labels: new Map(),
          owners: new Map(),
        };
    const labels: Record<string, string> = obj.metadata.labels ?? {};
    const before = next.owners.get(manager) ?? { data: new Set<string>(), labels: new Set<string>() };
    const ownedByOthers = (what: 'data' | 'labels', k: string) =>
      [...next.owners].some(([mgr, o]) => mgr !== manager && o[what].has(k));
    for (const k of before.data) if (!(k in data) && !ownedByOthers('data', k)) next.data.delete(k);
    for (const k of before.labels) if (!(k in labels) && !ownedByOthers('labels', k)) next.labels.delete(k);
    for (const [k, v] of Object.entries(data)) next.data.set(k, v as string);
    for (const [k, v] of Object.entries(labels)) next.labels.set(k, String(v));
    // force: the keys this manager sets are its own from now on
    for (const [mgr, o] of next.owners) {
      if (mgr === manager) continue;
      for (const k of Object.keys(data)) o.data.delete(k);
      for (const k of Object.keys(labels)) o.labels.delete(k);
    }
    next.owners.set(manager, { data: new Set(Object.keys(data)), labels: new Set(Object.keys(labels)) });
    if (dryRun === 'All')
      return [existing ? 200 : 201, view(ns, name, { ...next, resourceVersion: existing?.resourceVersion ?? '' })];
    next.resourceVersion = String(++rv);
    store.set(key(ns, name), next);
    return [existing ? 200 : 201, view(ns, name, next)];
  }

  const server: Server = createServer(
    {
      cert: readFileSync(tls.cert),
      key: readFileSync(tls.key),
      ca: readFileSync(p('client-ca.pem')),
      requestCert: true,
      rejectUnauthorized: false,
    },
    (req, res) => {
      if (self.trickleMs !== undefined) {
        const url = new URL(req.url ?? '/', 'https://x');
        const query = Object.fromEntries(url.searchParams);
        self.requests.push({
          method: req.method ?? '',
          path: url.pathname,
          query,
          contentType: undefined,
          user: undefined,
          status: 200,
        });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{');
        const drip = setInterval(() => res.write(' '), self.trickleMs);
        res.on('close', () => clearInterval(drip));
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const url = new URL(req.url ?? '/', 'https://x');
        const auth = req.headers.authorization;
        let user: string | undefined;
        if (auth?.startsWith('Bearer ')) user = self.tokens.get(auth.slice(7));
        else {
          const sock = req.socket as TLSSocket;
          if (sock.authorized) user = sock.getPeerCertificate().subject?.CN as string | undefined;
        }
        const contentType = req.headers['content-type']?.split(';')[0]?.trim();
        const [code, body] =
          self.answer?.(req.method ?? 'GET', url.pathname) ??
          handle(req.method ?? 'GET', url, contentType, Buffer.concat(chunks).toString(), user);
        self.requests.push({
          method: req.method ?? '',
          path: url.pathname,
          query: Object.fromEntries(url.searchParams),
          contentType,
          user,
          status: code,
        });
        res.writeHead(code, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      });
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  self.port = (server.address() as AddressInfo).port;
  self.url = `https://127.0.0.1:${self.port}`;
  return self;
}

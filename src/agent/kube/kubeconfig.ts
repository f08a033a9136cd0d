import { dirname, isAbsolute, resolve } from 'node:path';
import { parse } from 'yaml';
import { MwiError } from '../../errors.js';
import type { KubeConnection } from './connection.js';
import { readFor } from './files.js';

type Entry = Record<string, unknown>;

/** A named entry of `clusters`, `contexts` or `users`, with the file it came from. */
interface Named {
  body: Entry;
  file: string;
}

/** The kubeconfig files merged as kubectl merges them: the first file to name something wins. */
interface Merged {
  currentContext: string | undefined;
  clusters: Map<string, Named>;
  contexts: Map<string, Named>;
  users: Map<string, Named>;
}

function load(files: string[], field: string): Merged {
  const merged: Merged = { currentContext: undefined, clusters: new Map(), contexts: new Map(), users: new Map() };
  for (const file of files) {
    let doc: unknown;
    try {
      doc = parse(readFor(file, 'the kubeconfig', field));
    } catch (cause) {
      if (cause instanceof MwiError) throw cause;
      throw new MwiError('BAD_CONFIG', `${file} is not valid YAML`, { field, cause });
    }
    if (doc === null || doc === undefined) continue;
    if (typeof doc !== 'object' || Array.isArray(doc))
      throw new MwiError('BAD_CONFIG', `${file} is not a kubeconfig (expected a YAML mapping)`, { field });
    const d = doc as Entry;
    if (typeof d['current-context'] === 'string' && d['current-context'] && merged.currentContext === undefined)
      merged.currentContext = d['current-context'];
    for (const [list, key] of [
      ['clusters', 'cluster'],
      ['contexts', 'context'],
      ['users', 'user'],
    ] as const) {
      const items = d[list];
      if (items === undefined || items === null) continue;
      if (!Array.isArray(items)) throw new MwiError('BAD_CONFIG', `${file}: ${list} must be a list`, { field });
      for (const item of items as Entry[]) {
        const name = item?.name;
        if (typeof name !== 'string' || merged[list].has(name)) continue;
        const body = item[key];
        merged[list].set(name, { body: typeof body === 'object' && body !== null ? (body as Entry) : {}, file });
      }
    }
  }
  return merged;
}

/** A string key of an entry, or undefined. */
function str(e: Entry, key: string): string | undefined {
  const v = e[key];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** A PEM from `<key>-data` (base64) or the file `<key>` (relative to the kubeconfig's directory). */
function pem(n: Named, key: string, what: string, field: string): string | undefined {
  const data = str(n.body, `${key}-data`);
  if (data) return Buffer.from(data, 'base64').toString('utf8');
  const path = str(n.body, key);
  if (!path) return undefined;
  return readFor(isAbsolute(path) ? path : resolve(dirname(n.file), path), what, field);
}

/**
 * Keys of a kubeconfig user that tbot does not act on. Each would change who tbot speaks as, so
 * ignoring one silently could send requests as somebody else (or as nobody).
 */
const REFUSED_USER_KEYS: Record<string, string> = {
  exec:
    'tbot does not run kubeconfig exec plugins (aws eks get-token, gke-gcloud-auth-plugin, kubelogin...): it is a ' +
    'daemon holding credentials, and would run that command with them for every write',
  'auth-provider': 'auth-provider plugins are gone from kubectl too (since 1.26)',
  username: 'basic authentication is not supported by Kubernetes API servers since 1.19',
  password: 'basic authentication is not supported by Kubernetes API servers since 1.19',
  impersonate: 'tbot writes as the kubeconfig user itself',
  as: 'tbot writes as the kubeconfig user itself',
};

const USABLE =
  'give tbot a kubeconfig whose user has token, tokenFile, or client-certificate(-data) and client-key(-data) ' +
  '(for instance a service account token: kubectl create token NAME --duration=...)';

/**
 * A connection from kubeconfig `files` (several, as $KUBECONFIG lists them), with `context` or
 * the current one. Supported: cluster `server` (https), `certificate-authority(-data)`,
 * `tls-server-name`; user `token`, `tokenFile` (read for every request), `client-certificate(-data)`
 * with `client-key(-data)`. Refused, each with the reason: exec and auth-provider plugins, basic
 * authentication, impersonation, `insecure-skip-tls-verify`, `proxy-url`, plain http.
 */
export function fromKubeconfig(
  files: string[],
  context: string | undefined,
  field: string,
  contextField: string,
): KubeConnection {
  const k = load(files, field);
  const where = files.join(':');
  const ctxName = context ?? k.currentContext;
  const bad = (message: string, f = field) => new MwiError('BAD_CONFIG', message, { field: f });
  if (!ctxName) throw bad(`${where} has no current-context: set kubeconfig_context`);
  const ctx = k.contexts.get(ctxName);
  if (!ctx) {
    const known = [...k.contexts.keys()].join(', ') || 'none';
    throw bad(`${where} has no context "${ctxName}" (it has: ${known})`, context ? contextField : field);
  }
  const clusterName = str(ctx.body, 'cluster');
  const cluster = clusterName ? k.clusters.get(clusterName) : undefined;
  if (!cluster) throw bad(`${where}: context "${ctxName}" names cluster "${clusterName ?? ''}", which is not there`);
  const userName = str(ctx.body, 'user');
  const user = userName ? k.users.get(userName) : undefined;
  if (userName && !user) throw bad(`${where}: context "${ctxName}" names user "${userName}", which is not there`);
  const c = cluster.body;
  const server = str(c, 'server');
  if (!server) throw bad(`${where}: cluster "${clusterName}" has no server`);
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw bad(`${where}: cluster "${clusterName}" server ${JSON.stringify(server)} is not a URL`);
  }
  if (url.protocol !== 'https:')
    throw bad(
      `${where}: cluster "${clusterName}" server ${server} is not https: tbot sends a credential and writes ` +
        'Secrets, so it speaks to the API server over TLS only',
    );
  if (c['insecure-skip-tls-verify'] === true)
    throw bad(
      `${where}: cluster "${clusterName}" sets insecure-skip-tls-verify: tbot writes credentials into this ` +
        'cluster and verifies it: give certificate-authority or certificate-authority-data instead',
    );
  if (str(c, 'proxy-url')) throw bad(`${where}: cluster "${clusterName}" sets proxy-url, which tbot does not use`);
  const u = user?.body ?? {};
  for (const [key, why] of Object.entries(REFUSED_USER_KEYS)) {
    if (u[key] !== undefined) throw bad(`${where}: user "${userName}" sets ${key}: ${why}; ${USABLE}`);
  }
  const cert = user ? pem(user, 'client-certificate', 'the client certificate', field) : undefined;
  const key = user ? pem(user, 'client-key', 'the client key', field) : undefined;
  if (Boolean(cert) !== Boolean(key))
    throw bad(`${where}: user "${userName}" has a client certificate or a client key without the other`);
  const inline = str(u, 'token');
  const tokenFile = str(u, 'tokenFile');
  const tokenPath =
    tokenFile && user ? (isAbsolute(tokenFile) ? tokenFile : resolve(dirname(user.file), tokenFile)) : '';
  if (tokenPath) readFor(tokenPath, 'the token file', field);
  const token = inline
    ? () => inline
    : tokenPath
      ? () => readFor(tokenPath, 'the token file', field).trim()
      : undefined;
  if (!token && !cert) throw bad(`${where}: user "${userName ?? ''}" has no credential tbot can use; ${USABLE}`);
  return {
    server: `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`,
    ca: pem(cluster, 'certificate-authority', 'the certificate authority', field),
    servername: str(c, 'tls-server-name'),
    token,
    cert,
    key,
    namespace: str(ctx.body, 'namespace'),
    source: `kubeconfig ${where} (context ${ctxName})`,
  };
}

// What the benchmarks need in the Auth Service: a role and bot named `bench`, join tokens, and
// clients that speak to it as a bot that has not joined yet.
import { ApiClient } from '../src/api/client.js';
import { PATHS, type BotCredentialResponse } from '../src/api/wire.js';
import type { PemKeyPair } from '../src/crypto/keys.js';
import type { BenchCluster } from './cluster.js';
import { drive } from './stats.js';

/** Role `bench` (login `bench`) and bot `bench` with it. */
export async function setup(c: BenchCluster): Promise<void> {
  await createResource(c, { kind: 'role', metadata: { name: 'bench' }, spec: { allow: { logins: ['bench'] } } });
  await createResource(c, { kind: 'bot', metadata: { name: 'bench' }, spec: { roles: ['bench'] } });
}

/** Creates one resource (role, bot, token, lock) through the admin API. */
export async function createResource(c: BenchCluster, resource: object): Promise<void> {
  await c.admin.call('POST', '/v1/admin/resources', { resource });
}

/** `n` single-use join tokens for bot `bench`, made 32 at a time. */
export async function tokens(c: BenchCluster, n: number, method = 'token', spec?: unknown): Promise<string[]> {
  const out: string[] = [];
  const r = await drive(n, 32, async () => {
    const body = { bot_name: 'bench', join_method: method, ttl: '2h', ...(spec ? { spec } : {}) };
    out.push((await c.admin.call<{ token: string }>('POST', '/v1/admin/tokens', body)).token);
  });
  if (r.errors) throw new Error(`creating ${n} join tokens: ${r.errors} failed, the first with: ${r.firstError}`);
  return out;
}

/** The host CA only: what tbot trusts before it joins. */
export function hostCA(c: BenchCluster): string[] {
  return [c.caCerts[0]!];
}

/** A client without an identity, trusting the host CA (close it when done). */
export function joinClient(c: BenchCluster): ApiClient {
  return new ApiClient({ addrs: [c.addr], tls: { ca: hostCA(c) } });
}

/** A `token` join: what tbot sends, over the given client. */
export function tokenJoin(api: ApiClient, token: string, key: PemKeyPair): Promise<BotCredentialResponse> {
  return api.call<BotCredentialResponse>('POST', PATHS.join, {
    token,
    join_method: 'token',
    public_key: key.publicKeyPem,
  });
}

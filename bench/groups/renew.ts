// Renewals: on a new mTLS connection each (a fleet), tbot's whole cycle (renew + one output),
// and on kept-alive connections that carry the identity forward (daemons).
import { ApiClient } from '../../src/api/client.js';
import { PATHS, type BotCredentialResponse } from '../../src/api/wire.js';
import type { PemKeyPair } from '../../src/crypto/keys.js';
import type { BenchCluster } from '../cluster.js';
import { cryptoBound, OPS } from '../crypto.js';
import { joinClient, tokenJoin, tokens } from '../fixtures.js';
import { levels, type LoadBench, type Prepared } from '../measure.js';
import { Pool } from '../stats.js';

interface Renewer {
  key: PemKeyPair;
  id: BotCredentialResponse;
}

/** `count` bot identities, joined with tokens, in a pool: each is used by one renewal at a time. */
async function renewers(c: BenchCluster, keys: PemKeyPair[], count: number): Promise<Pool<Renewer>> {
  const toks = await tokens(c, count);
  const api = joinClient(c);
  try {
    const joined = toks.map(async (t, i) => {
      const key = keys[i % keys.length]!;
      return { key, id: await tokenJoin(api, t, key) };
    });
    return new Pool(await Promise.all(joined));
  } finally {
    api.close();
  }
}

/** The client credentials of an identity and its key. */
const tlsOf = (id: BotCredentialResponse, key: PemKeyPair) => ({
  ca: id.tls_ca_certs,
  cert: id.tls_cert,
  key: key.privateKeyPem,
});
/** After a renewal for `key`, the client's credentials are the answer's (as tbot rekeys). */
const rekeyTo = (key: PemKeyPair) => (a: BotCredentialResponse) => tlsOf(a, key);

/**
 * A fleet: every renewal opens a new mTLS connection with the current certificate. With
 * `output`, tbot's whole cycle: then an output's certificates on the same connection (which now
 * speaks as the new generation).
 */
async function renewOnNewConnection(
  c: BenchCluster,
  keys: PemKeyPair[],
  clients: number,
  output: boolean,
): Promise<Prepared> {
  const pool = await renewers(c, keys, clients);
  return {
    task: async (i) => {
      const me = await pool.take();
      const next = keys[(i * 7) % keys.length]!;
      const api = new ApiClient({ addrs: [c.addr], tls: tlsOf(me.id, me.key) });
      try {
        const body = { public_key: next.publicKeyPem };
        me.id = await api.call<BotCredentialResponse>(
          'POST',
          PATHS.renew,
          body,
          output ? { rekey: rekeyTo(next) } : {},
        );
        me.key = next;
        if (output) await api.call('POST', PATHS.certs, { public_key: keys[i % keys.length]!.publicKeyPem });
      } finally {
        api.close();
        pool.give(me);
      }
    },
  };
}

export async function renewNewConnection(b: LoadBench): Promise<void> {
  const { c, keys } = b;
  const bound = cryptoBound(b.rates, OPS.renewNew);
  const prepare = (_n: number, clients: number) => renewOnNewConnection(c, keys, clients, false);
  await levels(b, c, 'renew, new mTLS connection each', bound, prepare);
}

export async function renewalCycle(b: LoadBench): Promise<void> {
  const { c, keys } = b;
  const name = 'tbot renewal cycle: new connection, renew + one output (TLS + SSH certs)';
  const prepare = (_n: number, clients: number) => renewOnNewConnection(c, keys, clients, true);
  await levels(b, c, name, cryptoBound(b.rates, OPS.cycle), prepare);
}

/**
 * Daemons renewing within the keep-alive window: each keeps its connection, which the Auth
 * Service carries forward to every new generation (as tbot does).
 */
export async function renewKeptAlive(b: LoadBench): Promise<void> {
  const { c, keys } = b;
  const bound = cryptoBound(b.rates, OPS.renewKept);
  await levels(b, c, 'renew, kept-alive connection (identity carried)', bound, async (_n, clients) => {
    const ids = await renewers(c, keys, clients);
    const apis = ids.all().map((me) => new ApiClient({ addrs: [c.addr], tls: tlsOf(me.id, me.key) }));
    // connections opened before the clock starts: this measures renewals, not handshakes
    await Promise.all(apis.map((api) => api.call('GET', PATHS.ping)));
    const pool = new Pool(apis);
    return {
      task: async (i) => {
        const api = await pool.take();
        const next = keys[(i * 7) % keys.length]!;
        try {
          await api.call('POST', PATHS.renew, { public_key: next.publicKeyPem }, { rekey: rekeyTo(next) });
        } finally {
          pool.give(api);
        }
      },
      close: () => apis.forEach((api) => api.close()),
    };
  });
}

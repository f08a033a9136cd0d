// SVID issuance: X.509-SVIDs and JWT-SVIDs for bots on kept-alive mTLS connections (tbot's
// outputs and its Workload API ask this way), one `workload_identity` granted by the bot's role.
import { ApiClient } from '../../src/api/client.js';
import { PATHS, type BotCredentialResponse } from '../../src/api/wire.js';
import type { BenchCluster } from '../cluster.js';
import { cryptoBound } from '../crypto.js';
import { joinClient, tokenJoin, tokens } from '../fixtures.js';
import { levels, type LoadBench, type Prepared } from '../measure.js';

/** Role `bench` again (its login kept), now also granting workload identities labelled bench=yes; one such identity. */
async function grant(c: BenchCluster): Promise<void> {
  const upsert = (resource: object) => c.admin.call('POST', '/v1/admin/resources', { resource, upsert: true });
  await upsert({
    kind: 'role',
    metadata: { name: 'bench' },
    spec: { allow: { logins: ['bench'], workload_identity_labels: { bench: 'yes' } } },
  });
  await upsert({
    kind: 'workload_identity',
    metadata: { name: 'bench', labels: { bench: 'yes' } },
    spec: { spiffe: { id: '/bench/{{ user.bot_instance_id }}', x509: { dns_sans: ['bench.internal'] } } },
  });
}

/** `count` joined bot instances, each an API client whose connection is open before the clock starts. */
async function clients(b: LoadBench, count: number): Promise<ApiClient[]> {
  const toks = await tokens(b.c, count);
  const api = joinClient(b.c);
  try {
    const ids = await Promise.all(
      toks.map(async (t, i) => {
        const key = b.keys[i % b.keys.length]!;
        const id: BotCredentialResponse = await tokenJoin(api, t, key);
        return new ApiClient({
          addrs: [b.c.addr],
          tls: { ca: id.tls_ca_certs, cert: id.tls_cert, key: key.privateKeyPem },
        });
      }),
    );
    await Promise.all(ids.map((c) => c.call('GET', PATHS.ping)));
    return ids;
  } finally {
    api.close();
  }
}

/** Issuance of one SVID kind, at every concurrency level, by up to 32 bot instances. */
async function svids(b: LoadBench, bench: string, issue: (api: ApiClient, i: number) => Promise<unknown>) {
  await grant(b.c);
  const pool = await clients(b, 32);
  // one ECDSA P-256 signature per SVID (the X.509-SVID, or the ES256 JWT)
  const bound = cryptoBound(b.rates, { ecdsa_p256_sign: 1 });
  try {
    await levels(b, b.c, bench, bound, async (): Promise<Prepared> => ({
      task: async (i) => {
        await issue(pool[i % pool.length]!, i);
      },
    }));
  } finally {
    for (const api of pool) api.close();
  }
}

export async function x509Svids(b: LoadBench): Promise<void> {
  await svids(b, 'X.509-SVID issuance, kept-alive mTLS connection', (api, i) =>
    api.issueX509Svids({ selector: { name: 'bench' }, public_key: b.keys[i % b.keys.length]!.publicKeyPem }),
  );
}

export async function jwtSvids(b: LoadBench): Promise<void> {
  await svids(b, 'JWT-SVID issuance (ES256), kept-alive mTLS connection', (api) =>
    api.issueJwtSvids({ selector: { name: 'bench' }, audiences: ['bench.example'] }),
  );
}

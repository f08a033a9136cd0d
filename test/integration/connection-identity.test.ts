import assert from 'node:assert/strict';
import { Agent, request } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { ApiClient, discoverCA, parseAddr } from '../../src/api/client.js';
import { AUTH_SERVER_NAME, PATHS, type BotCredentialResponse } from '../../src/api/wire.js';
import { generateKeys, type PemKeyPair } from '../../src/crypto/keys.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

/** One keep-alive connection with fixed TLS credentials: what the server sees is all we control. */
function fixedConnection(c: TestCluster, ca: string[], cert: string, key: string) {
  const agent = new Agent({
    keepAlive: true,
    maxSockets: 1,
    ca,
    cert,
    key,
    servername: AUTH_SERVER_NAME,
    minVersion: 'TLSv1.3',
  });
  const sockets = new Set<unknown>();
  const { host, port } = parseAddr(c.addr);
  const post = (path: string, body: unknown) =>
    new Promise<{ status: number; json: any }>((resolve, reject) => {
      const payload = Buffer.from(JSON.stringify(body));
      const req = request(
        {
          host,
          port,
          path,
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', 'content-length': payload.length },
        },
        (res) => {
          sockets.add(res.socket);
          const chunks: Buffer[] = [];
          res.on('data', (d: Buffer) => chunks.push(d));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) }),
          );
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  return { post, connections: () => sockets.size, close: () => agent.destroy() };
}

describe('a renewal answered on a connection: the connection carries the new identity', () => {
  let cluster: TestCluster;
  let ca: string[];
  before(async () => {
    cluster = await startCluster('carry');
    ca = [await discoverCA(cluster.addr, [cluster.caPin])];
  });
  after(async () => cluster?.stop());

  /** A new bot, joined once: its generation-1 identity and key. */
  async function newBot(name: string): Promise<{ g1: BotCredentialResponse; k1: PemKeyPair }> {
    const token = await cluster.addBot(name, ['deploy']);
    const k1 = await generateKeys('ec-p256');
    const api = new ApiClient({ addrs: [cluster.addr], tls: { ca } });
    try {
      return {
        g1: await api.call<BotCredentialResponse>('POST', PATHS.join, {
          token,
          join_method: 'token',
          public_key: k1.publicKeyPem,
        }),
        k1,
      };
    } finally {
      api.close();
    }
  }

  it('the renewing connection speaks as the new generation; the old certificate elsewhere is still a copy', async () => {
    const { g1, k1 } = await newBot('carrier');
    const conn = fixedConnection(cluster, g1.tls_ca_certs, g1.tls_cert, k1.privateKeyPem);
    try {
      const k2 = await generateKeys('ec-p256');
      const r2 = await conn.post(PATHS.renew, { public_key: k2.publicKeyPem });
      assert.equal(r2.status, 200, JSON.stringify(r2.json));
      assert.equal(r2.json.generation, 2);
      // same connection, TLS still shows generation 1's certificate: the server treats it as 2,
      // so this renewal goes 2 -> 3 (without carrying it would be taken for a retry of 1 -> 2)
      const k3 = await generateKeys('ec-p256');
      const r3 = await conn.post(PATHS.renew, { public_key: k3.publicKeyPem });
      assert.equal(r3.status, 200, JSON.stringify(r3.json));
      assert.equal(r3.json.generation, 3);
      const certs = await conn.post(PATHS.certs, { public_key: k3.publicKeyPem });
      assert.equal(certs.status, 200, JSON.stringify(certs.json));
      assert.equal(conn.connections(), 1, 'all on one connection');
    } finally {
      conn.close();
    }
    // generation 1's certificate on a new connection is a copy: refused, instance locked
    const copy = fixedConnection(cluster, g1.tls_ca_certs, g1.tls_cert, k1.privateKeyPem);
    try {
      const r = await copy.post(PATHS.certs, { public_key: k1.publicKeyPem });
      assert.equal(r.status, 403);
      assert.equal(r.json.error.code, 'LOCKED');
    } finally {
      copy.close();
    }
  });

  it('a carried identity that expires is refused on its connection', async () => {
    const { g1, k1 } = await newBot('short');
    const conn = fixedConnection(cluster, g1.tls_ca_certs, g1.tls_cert, k1.privateKeyPem);
    try {
      const k2 = await generateKeys('ec-p256');
      const r2 = await conn.post(PATHS.renew, { public_key: k2.publicKeyPem, ttl_seconds: 1 });
      assert.equal(r2.status, 200, JSON.stringify(r2.json));
      await new Promise((r) => setTimeout(r, 1300));
      // the TLS certificate (generation 1) is valid for an hour, but the connection speaks as
      // generation 2, which expired
      const late = await conn.post(PATHS.certs, { public_key: k2.publicKeyPem });
      assert.equal(late.status, 403);
      assert.equal(late.json.error.code, 'ACCESS_DENIED');
      assert.match(late.json.error.message, /expired at/);
    } finally {
      conn.close();
    }
  });

  it('ApiClient: after a renewal with rekey, other connections are closed and new ones use the new identity', async () => {
    const { g1, k1 } = await newBot('rekeyed');
    const api = new ApiClient({
      addrs: [cluster.addr],
      tls: { ca: g1.tls_ca_certs, cert: g1.tls_cert, key: k1.privateKeyPem },
    });
    try {
      // two connections open (two requests at once), both generation 1
      const k = await generateKeys('ec-p256');
      await Promise.all([
        api.call('POST', PATHS.certs, { public_key: k.publicKeyPem }),
        api.call('POST', PATHS.certs, { public_key: k.publicKeyPem }),
      ]);
      const k2 = await generateKeys('ec-p256');
      const g2 = await api.call<BotCredentialResponse>(
        'POST',
        PATHS.renew,
        { public_key: k2.publicKeyPem },
        { rekey: (r) => ({ ca: r.tls_ca_certs, cert: r.tls_cert, key: k2.privateKeyPem }) },
      );
      assert.equal(g2.generation, 2);
      // were the other generation-1 connection still open, one of these could land on it and be
      // taken for a copy; all of them pass, and generation 2 is confirmed in use
      await Promise.all(Array.from({ length: 4 }, () => api.call('POST', PATHS.certs, { public_key: k.publicKeyPem })));
      const k3 = await generateKeys('ec-p256');
      const g3 = await api.call<BotCredentialResponse>(
        'POST',
        PATHS.renew,
        { public_key: k3.publicKeyPem },
        { rekey: (r) => ({ ca: r.tls_ca_certs, cert: r.tls_cert, key: k3.privateKeyPem }) },
      );
      assert.equal(g3.generation, 3);
    } finally {
      api.close();
    }
    assert.equal(cluster.audit().filter((e) => e.event === 'instance.locked' && e.bot_name === 'rekeyed').length, 0);
  });

  it('a rekey that throws (certificate for another key) fails the call', async () => {
    const { g1, k1 } = await newBot('wrongkey');
    const api = new ApiClient({
      addrs: [cluster.addr],
      tls: { ca: g1.tls_ca_certs, cert: g1.tls_cert, key: k1.privateKeyPem },
    });
    try {
      const k2 = await generateKeys('ec-p256');
      await assert.rejects(
        api.call(
          'POST',
          PATHS.renew,
          { public_key: k2.publicKeyPem },
          {
            rekey: () => {
              throw new Error('certificate is for another key');
            },
          },
        ),
        /another key/,
      );
    } finally {
      api.close();
    }
  });
});

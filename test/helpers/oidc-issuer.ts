import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';

type Key = { kid: string; alg: string; privateKey: CryptoKey; jwk: JWK };

export interface TestIssuer {
  /** http://127.0.0.1:PORT: serves discovery, JWKS, and a GitHub-style token endpoint. */
  url: string;
  /** The `iss` it signs with (its own URL unless a platform's real issuer was given). */
  issuer: string;
  jwksFetches(): number;
  /** A JWT with these claims (iat/exp default to now / now+5m), signed by the current key. */
  sign(claims: JWTPayload, opts?: { kid?: string; key?: Key; header?: Record<string, unknown> }): Promise<string>;
  /** A new current key; `keepOld` keeps serving the previous ones. */
  rotate(keepOld?: boolean): Promise<Key>;
  current(): Key;
  /** A key the issuer never publishes. */
  foreignKey(): Promise<Key>;
  /** The public JWKS, as a string (for static_jwks specs). */
  jwks(): string;
  /** Claims the GitHub-style token endpoint puts in the tokens it hands out. */
  tokenEndpointClaims: JWTPayload;
  close(): Promise<void>;
}

async function newKey(alg = 'RS256'): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = `k-${Math.random().toString(36).slice(2, 10)}`;
  return {
    kid,
    alg,
    privateKey: privateKey,
    jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' },
  };
}

/** An OIDC issuer on 127.0.0.1 with its own keys, for verifying platform tokens for real. */
export async function startIssuer(opts: { issuer?: string; alg?: string } = {}): Promise<TestIssuer> {
  let keys = [await newKey(opts.alg)];
  let fetches = 0;
  const self: Partial<TestIssuer> = { tokenEndpointClaims: {} };
  const server: Server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (u.pathname === '/.well-known/openid-configuration')
      return json(200, { issuer: self.issuer, jwks_uri: `${self.issuer}/.well-known/jwks` });
    if (u.pathname === '/.well-known/jwks') {
      fetches++;
      return json(200, { keys: keys.map((k) => k.jwk) });
    }
    if (u.pathname === '/computeMetadata/v1/instance/service-accounts/default/identity') {
      // the GCE metadata server
      if (req.headers['metadata-flavor'] !== 'Google') return json(403, {});
      void self.sign!({
        jti: randomUUID(),
        ...self.tokenEndpointClaims,
        aud: u.searchParams.get('audience') ?? '',
      }).then((v) => {
        res.writeHead(200, { 'content-type': 'application/jwt' });
        res.end(v);
      });
      return;
    }
    if (u.pathname === '/azdo/oidctoken' && req.method === 'POST') {
      // Azure DevOps' pipeline OIDC request endpoint
      if (req.headers.authorization !== 'Bearer runner-request-token') return json(401, {});
      void self.sign!({ jti: randomUUID(), ...self.tokenEndpointClaims }).then((oidcToken) => json(200, { oidcToken }));
      return;
    }
    if (u.pathname === '/token') {
      // GitHub Actions' ID token request endpoint
      if (req.headers.authorization !== 'Bearer runner-request-token') return json(401, { message: 'bad token' });
      void self.sign!({
        jti: randomUUID(),
        ...self.tokenEndpointClaims,
        aud: u.searchParams.get('audience') ?? '',
      }).then((value) => json(200, { value }));
      return;
    }
    json(404, {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  Object.assign(self, {
    url,
    issuer: opts.issuer ?? url,
    jwksFetches: () => fetches,
    current: () => keys[keys.length - 1]!,
    async sign(claims: JWTPayload, o: { kid?: string; key?: Key; header?: Record<string, unknown> } = {}) {
      const key = o.key ?? keys[keys.length - 1]!;
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ iat: now, exp: now + 300, iss: self.issuer, ...claims })
        .setProtectedHeader({ alg: key.alg, kid: o.kid ?? key.kid, typ: 'JWT', ...o.header })
        .sign(key.privateKey);
    },
    async rotate(keepOld = true) {
      const k = await newKey(opts.alg);
      keys = keepOld ? [...keys, k] : [k];
      return k;
    },
    foreignKey: () => newKey(opts.alg),
    jwks: () => JSON.stringify({ keys: keys.map((k) => k.jwk) }),
    close: () => new Promise<void>((r) => server.close(() => r())),
  });
  return self as TestIssuer;
}

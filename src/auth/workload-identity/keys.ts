import { createHash, createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { SVID_MAX_TTL_MS, type Jwk, type JwtAlgorithm, type WorkloadBundle } from '../../api/workload-identity.js';
import { generateKeys } from '../../crypto/keys.js';
import { BACKDATE_MS, createCA, loadCA, type LoadedCA } from '../../crypto/x509.js';
import { isMwiError } from '../../errors.js';
import { key, type Backend } from '../../storage/backend.js';
import { getOrCreate } from '../authorities.js';

// The SPIFFE X.509 CA and the JWT-SVID signing keys of a cluster: created once, shared by every
// replica through storage, loaded once per change (a rotation) and never per request.

/** Storage keys: next to the other CAs (src/auth/authorities.ts). */
export const SPIFFE_CA_KEY = key('cas', 'spiffe');
export const JWT_KEYS_KEY = key('cas', 'jwt');

/** A stored SPIFFE CA; `trusted_until` is set when a rotation retires it (still in the bundle until then). */
interface StoredCA {
  cert_pem: string;
  key_pem: string;
  trusted_until?: string;
}
/** A stored JWT signing key, with the same retirement. */
interface StoredJwtKey {
  alg: JwtAlgorithm;
  key_pem: string;
  trusted_until?: string;
}
interface StoredCAs {
  authorities: StoredCA[];
}
interface StoredJwtKeys {
  keys: StoredJwtKey[];
}

/** A JWT signing key ready to sign: its private key, and its public JWK (with kid). */
export interface JwtSigner {
  alg: JwtAlgorithm;
  kid: string;
  key: KeyObject;
  jwk: Jwk;
}

/** What issuance reads: the active CA and keys, and the bundle of everything trusted now. */
export interface WorkloadKeys {
  trustDomain: string;
  ca: LoadedCA;
  signers: Readonly<Record<JwtAlgorithm, JwtSigner>>;
  bundle: WorkloadBundle;
  /** Grows with every rotation (the storage revisions of the CA and the keys): the SPIFFE bundle's spiffe_sequence. */
  sequence: number;
}

/** How long a retired CA or key stays trusted: every SVID it signed has expired by then. */
export const ROTATION_GRACE_MS = SVID_MAX_TTL_MS + BACKDATE_MS;

async function newCA(clusterName: string): Promise<StoredCA> {
  const pair = await createCA(clusterName, 'mwi SPIFFE CA');
  return { cert_pem: pair.certPem, key_pem: pair.keyPem };
}

async function newJwtKey(alg: JwtAlgorithm): Promise<StoredJwtKey> {
  if (alg === 'ES256') return { alg, key_pem: (await generateKeys('ec-p256')).privateKeyPem };
  const key_pem = await new Promise<string>((resolve, reject) =>
    generateKeyPair(
      'rsa',
      {
        modulusLength: 2048,
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
        publicKeyEncoding: { type: 'spki', format: 'pem' },
      },
      (err, _pub, priv) => (err ? reject(err) : resolve(priv)),
    ),
  );
  return { alg, key_pem };
}

const stillTrusted = (x: { trusted_until?: string }, now: number) =>
  x.trusted_until === undefined || Date.parse(x.trusted_until) > now;

async function jwkOf(k: StoredJwtKey): Promise<{ key: KeyObject; jwk: Jwk }> {
  const priv = createPrivateKey(k.key_pem);
  const pub = await exportJWK(createPublicKey(priv));
  const kid = await calculateJwkThumbprint(pub, 'sha256');
  return { key: priv, jwk: { ...(pub as Record<string, string>), kid, alg: k.alg, use: 'sig', kty: pub.kty! } };
}

/** Builds what issuance needs from the stored CAs and keys (parsed here, once per change). */
async function build(
  trustDomain: string,
  cas: StoredCAs,
  keys: StoredJwtKeys,
  now: number,
  sequence: number,
): Promise<WorkloadKeys> {
  const trustedCAs = cas.authorities.filter((a) => stillTrusted(a, now));
  const ca = await loadCA({ certPem: trustedCAs[0]!.cert_pem, keyPem: trustedCAs[0]!.key_pem });
  const trustedKeys = await Promise.all(
    keys.keys.filter((k) => stillTrusted(k, now)).map(async (k) => ({ k, ...(await jwkOf(k)) })),
  );
  const signer = (alg: JwtAlgorithm): JwtSigner => {
    const s = trustedKeys.find((t) => t.k.alg === alg)!;
    return { alg, kid: s.jwk.kid, key: s.key, jwk: s.jwk };
  };
  const x509 = trustedCAs.map((a) => a.cert_pem);
  const jwks = { keys: trustedKeys.map((t) => t.jwk) };
  // the same sets give the same revision on every replica
  const revision = createHash('sha256')
    .update(JSON.stringify([trustDomain, x509, jwks.keys.map((k) => k.kid)]))
    .digest('hex')
    .slice(0, 16);
  return {
    trustDomain,
    ca,
    signers: { ES256: signer('ES256'), RS256: signer('RS256') },
    bundle: { trust_domain: trustDomain, x509_authorities_pem: x509, jwks, revision },
    sequence,
  };
}

/**
 * The cluster's workload identity keys, kept current: a rotation written by any replica is
 * picked up through the storage watch (and the retired keys fall out of the bundle once their
 * grace period is over, checked when the bundle is read).
 */
export class WorkloadAuthorities {
  private keys: WorkloadKeys | undefined;
  private stopWatch: (() => void) | undefined;
  private reloading: Promise<void> | undefined;
  private nextExpiry = Infinity;

  private constructor(
    private readonly backend: Backend,
    private readonly clusterName: string,
    readonly trustDomain: string,
    private readonly now: () => number,
  ) {}

  /** Creates the SPIFFE CA and JWT keys on first start (one replica wins), then loads them. */
  static async open(
    backend: Backend,
    opts: { clusterName: string; trustDomain: string; now: () => number },
  ): Promise<WorkloadAuthorities> {
    const w = new WorkloadAuthorities(backend, opts.clusterName, opts.trustDomain, opts.now);
    w.stopWatch = backend.watch(key('cas') + '/', (e) => {
      const k = e.type === 'put' ? e.item.key : e.key;
      if (k === SPIFFE_CA_KEY || k === JWT_KEYS_KEY) void w.reload().catch(() => undefined);
    });
    await w.reload();
    return w;
  }

  private async stored(): Promise<{ cas: StoredCAs; keys: StoredJwtKeys; sequence: number }> {
    const cas = await getOrCreate<StoredCAs>(this.backend, SPIFFE_CA_KEY, async () => ({
      authorities: [await newCA(this.clusterName)],
    }));
    const keys = await getOrCreate<StoredJwtKeys>(this.backend, JWT_KEYS_KEY, async () => ({
      keys: [await newJwtKey('ES256'), await newJwtKey('RS256')],
    }));
    const revisions = await Promise.all([SPIFFE_CA_KEY, JWT_KEYS_KEY].map((k) => this.backend.get(k)));
    return { cas, keys, sequence: revisions.reduce((n, item) => n + (item?.revision ?? 0), 0) };
  }

  private reload(): Promise<void> {
    const run = async () => {
      const { cas, keys, sequence } = await this.stored();
      const now = this.now();
      this.keys = await build(this.trustDomain, cas, keys, now, sequence);
      const ends = [...cas.authorities, ...keys.keys]
        .map((x) => (x.trusted_until ? Date.parse(x.trusted_until) : Infinity))
        .filter((t) => t > now);
      this.nextExpiry = Math.min(Infinity, ...ends);
    };
    const p = (this.reloading ?? Promise.resolve()).then(run, run);
    this.reloading = p;
    return p;
  }

  /** The active CA, signing keys and bundle (a retired key past its grace period is dropped first). */
  async current(): Promise<WorkloadKeys> {
    if (this.now() >= this.nextExpiry) await this.reload();
    return this.keys!;
  }

  /**
   * Rotates the SPIFFE CA (`spiffe`) or the JWT keys (`jwt`) at once: a new one signs from now
   * on; the old one stays in the bundle for ROTATION_GRACE_MS, until every SVID it signed has
   * expired. Returns the new bundle's revision.
   */
  async rotate(type: 'spiffe' | 'jwt'): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      await this.stored();
      const k = type === 'spiffe' ? SPIFFE_CA_KEY : JWT_KEYS_KEY;
      const item = (await this.backend.get(k))!;
      const now = this.now();
      const until = new Date(now + ROTATION_GRACE_MS).toISOString();
      const retire = <T extends { trusted_until?: string }>(list: T[]): T[] =>
        list.filter((x) => stillTrusted(x, now)).map((x) => ({ ...x, trusted_until: x.trusted_until ?? until }));
      const next =
        type === 'spiffe'
          ? {
              authorities: [
                await newCA(this.clusterName),
                ...retire((JSON.parse(item.value) as StoredCAs).authorities),
              ],
            }
          : {
              keys: [
                await newJwtKey('ES256'),
                await newJwtKey('RS256'),
                ...retire((JSON.parse(item.value) as StoredJwtKeys).keys),
              ],
            };
      try {
        await this.backend.compareAndSwap(k, item.revision, JSON.stringify(next));
        break;
      } catch (err) {
        if (!isMwiError(err, 'COMPARE_FAILED') || attempt >= 3) throw err;
      }
    }
    await this.reload();
    return this.keys!.bundle.revision;
  }

  close(): void {
    this.stopWatch?.();
  }
}

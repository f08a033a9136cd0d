import { readFileSync } from 'node:fs';
import { X509Certificate, createPublicKey } from 'node:crypto';
import { ApiClient, discoverCA } from '../api/client.js';
import { PATHS, type IdentityResponse, type JoinRequest } from '../api/wire.js';
import { generateKeys, sha256Hex } from '../crypto/keys.js';
import { splitPemBundle } from '../crypto/x509.js';
import { isMwiError, MwiError } from '../errors.js';
import { CLIENT_METHODS } from '../join/clients.js';
import type { Logger } from '../util/log.js';
import type { TbotConfig } from './config.js';
import type { Destination } from './destinations/destination.js';
import { Mutex } from './runtime.js';

/** tbot's internal identity as kept in its storage (one file, written atomically, 0600). */
export interface StoredIdentity {
  version: 1;
  cluster_name: string;
  bot_name: string;
  instance_id: string;
  generation: number;
  renewable: boolean;
  expires: string;
  join_method: string;
  /** sha256 of the join token this identity came from: a changed token means join again. */
  join_token_hash: string;
  tls_cert: string;
  key: string;
  tls_ca_certs: string[];
}

const STORAGE_FILE = 'identity';

/**
 * Holds tbot's renewable identity: joins, resumes from storage, renews, and serializes every
 * call made with it (a call racing a renewal would present a stale generation and lock itself).
 */
export class BotIdentity {
  private current: StoredIdentity | undefined;
  private client: ApiClient | undefined;
  private readonly mutex = new Mutex();
  private readonly listeners: Array<() => void> = [];

  constructor(
    private readonly cfg: TbotConfig,
    private readonly storage: Destination,
    private readonly log: Logger,
  ) {}

  get identity(): StoredIdentity | undefined {
    return this.current;
  }

  onRenewed(fn: () => void): void {
    this.listeners.push(fn);
  }

  /** Loads the stored identity; returns whether a usable one (unexpired, same token) was found. */
  async load(): Promise<boolean> {
    const text = await this.storage.read(STORAGE_FILE);
    if (!text) return false;
    let stored: StoredIdentity;
    try {
      stored = JSON.parse(text) as StoredIdentity;
    } catch {
      this.log.warn('stored identity is unreadable; joining again', { storage: this.storage.description });
      return false;
    }
    if (this.cfg.token && stored.join_token_hash !== sha256Hex(this.cfg.token)) {
      this.log.info('the configured token changed since the last join; joining again');
      return false;
    }
    if (Date.parse(stored.expires) <= Date.now()) {
      throw new MwiError(
        'RENEW_DENIED',
        `the stored identity of bot ${stored.bot_name} expired at ${stored.expires}; a "${stored.join_method}" identity cannot be recovered after expiry: create a new join token (tctl bots add / tctl tokens add) and start tbot with it`,
      );
    }
    this.setCurrent(stored);
    this.log.info('resumed identity from storage', { bot: stored.bot_name, instance: stored.instance_id, generation: stored.generation, expires: stored.expires });
    return true;
  }

  private setCurrent(id: StoredIdentity): void {
    this.client?.close();
    this.current = id;
    this.client = new ApiClient({ addrs: this.cfg.authServers, tls: { ca: id.tls_ca_certs, cert: id.tls_cert, key: id.key } });
  }

  /** The CA that authenticates the Auth Service on first contact: pinned, a file, or (unsafe) anything. */
  private async firstContactCA(): Promise<string[]> {
    if (this.cfg.caPath) {
      try {
        return splitPemBundle(readFileSync(this.cfg.caPath, 'utf8'));
      } catch (cause) {
        throw new MwiError('BAD_CONFIG', `cannot read ${this.cfg.caPath}`, { field: 'onboarding.ca_path', cause });
      }
    }
    let last: unknown;
    for (const addr of this.cfg.authServers) {
      try {
        if (this.cfg.caPins.length === 0 && this.cfg.insecure) {
          this.log.warn('INSECURE: trusting whatever CA the Auth Service presents (no ca_pins); anyone between tbot and the Auth Service can impersonate it');
          return [await discoverCA(addr, 'any')];
        }
        return [await discoverCA(addr, this.cfg.caPins)];
      } catch (err) {
        last = err;
        if (!isMwiError(err, 'UNREACHABLE')) throw err;
      }
    }
    throw last;
  }

  /** First join with the configured method. */
  async join(): Promise<void> {
    const method = CLIENT_METHODS.get(this.cfg.joinMethod);
    if (!method) throw new MwiError('BAD_CONFIG', `join method ${this.cfg.joinMethod} is not available in this tbot`, { field: 'onboarding.join_method' });
    const ca = await this.firstContactCA();
    const keys = await generateKeys('ec-p256');
    const token = this.cfg.token ?? '';
    const req: JoinRequest = {
      token,
      join_method: method.name,
      public_key: keys.publicKeyPem,
      ttl_seconds: Math.round(this.cfg.credentialTtlMs / 1000),
      payload: await method.payload({ token }),
    };
    const api = new ApiClient({ addrs: this.cfg.authServers, tls: { ca } });
    let res: IdentityResponse;
    try {
      res = await api.call<IdentityResponse>('POST', PATHS.join, req);
    } finally {
      api.close();
    }
    const stored = this.toStored(res, keys.privateKeyPem, keys.publicKeyPem, method.name, sha256Hex(token));
    await this.persist(stored);
    this.setCurrent(stored);
    this.log.info('joined', { bot: res.bot_name, instance: res.instance_id, cluster: res.cluster_name, method: method.name, expires: res.expires });
  }

  private toStored(res: IdentityResponse, key: string, publicKeyPem: string, joinMethod: string, tokenHash: string): StoredIdentity {
    // the certificate must be for the key we generated: anything else is a broken or hostile server
    const got = new X509Certificate(res.tls_cert).publicKey.export({ type: 'spki', format: 'der' });
    if (!got.equals(createPublicKey(publicKeyPem).export({ type: 'spki', format: 'der' }))) {
      throw new MwiError('INTERNAL', 'the Auth Service returned a certificate for another key');
    }
    return {
      version: 1,
      cluster_name: res.cluster_name,
      bot_name: res.bot_name,
      instance_id: res.instance_id,
      generation: res.generation,
      renewable: res.renewable,
      expires: res.expires,
      join_method: joinMethod,
      join_token_hash: tokenHash,
      tls_cert: res.tls_cert,
      key,
      tls_ca_certs: res.tls_ca_certs,
    };
  }

  private async persist(id: StoredIdentity): Promise<void> {
    await this.storage.writeAll([{ name: STORAGE_FILE, data: JSON.stringify(id, null, 2), mode: 0o600 }]);
  }

  /** Renews the internal identity with a fresh key; the new generation is stored before use. */
  async renew(): Promise<void> {
    await this.mutex.run(async () => {
      const cur = this.current;
      if (!cur || !this.client) throw new TypeError('renew before join');
      const keys = await generateKeys('ec-p256');
      const res = await this.client.call<IdentityResponse>('POST', PATHS.renew, {
        public_key: keys.publicKeyPem,
        ttl_seconds: Math.round(this.cfg.credentialTtlMs / 1000),
      });
      const next = this.toStored(res, keys.privateKeyPem, keys.publicKeyPem, cur.join_method, cur.join_token_hash);
      await this.persist(next);
      this.setCurrent(next);
      this.log.info('renewed identity', { bot: res.bot_name, instance: res.instance_id, generation: res.generation, expires: res.expires });
    });
    for (const fn of this.listeners) fn();
  }

  /** Calls the Auth Service with the internal identity, serialized with renewals. */
  async call<T>(path: string, body: unknown): Promise<T> {
    return this.mutex.run(async () => {
      if (!this.client) throw new TypeError('call before join');
      return this.client.call<T>('POST', path, body);
    });
  }

  close(): void {
    this.client?.close();
  }
}

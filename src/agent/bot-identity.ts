import { readFileSync } from 'node:fs';
import { X509Certificate, createPublicKey } from 'node:crypto';
import { ApiClient, discoverCA, type ClientTLS } from '../api/client.js';
import { PATHS, type BotCredentialResponse, type JoinRequest, type PingResponse } from '../api/wire.js';
import { generateKeys, sha256Hex, type PemKeyPair } from '../crypto/keys.js';
import { splitPemBundle } from '../crypto/pem.js';
import { isMwiError, MwiError } from '../errors.js';
import { joinMethodInfo } from '../join/catalog.js';
import { CLIENT_METHODS } from '../join/clients.js';
import type { ClientJoinContext } from '../join/client-types.js';
import type { Logger } from '../util/log.js';
import type { TbotConfig } from './config.js';
import type { Destination } from './destinations/destination.js';
import { Mutex } from './runtime.js';
import { readState, writeState, type BotCredential, type BotState } from './state.js';
import { ioReason } from '../util/io-reason.js';

/**
 * The bot identity: holds tbot's renewable credential (`current`); joins, resumes from storage,
 * recovers (methods that can), renews, and serializes every call made with it (a call racing a
 * renewal would present a stale generation and lock itself).
 */
export class BotIdentity {
  private state: BotState = { version: 2, methods: {} };
  private client: ApiClient | undefined;
  /** The last client made (its preferred address is where the next one starts). */
  private lastClient: ApiClient | undefined;
  private readonly mutex = new Mutex();
  private readonly listeners: Array<() => void> = [];

  constructor(
    private readonly cfg: TbotConfig,
    private readonly storage: Destination,
    private readonly log: Logger,
  ) {}

  /** The credential held now; undefined before a join or a resume. */
  get current(): BotCredential | undefined {
    return this.state.identity;
  }

  onRenewed(fn: () => void): void {
    this.listeners.push(fn);
  }

  /**
   * Loads the stored state. Returns true if a usable identity was found (unexpired, same
   * token); false if tbot must join (or, for methods that can, recover).
   */
  async load(): Promise<boolean> {
    this.state = await readState(this.storage);
    const stored = this.state.identity;
    if (!stored) return false;
    if (this.cfg.token && stored.join_token_hash !== sha256Hex(this.cfg.token)) {
      this.log.info('the configured token changed since the last join; joining again');
      return false;
    }
    if (Date.parse(stored.expires) <= Date.now()) {
      const recovery = CLIENT_METHODS.get(this.cfg.joinMethod)?.expiredRecovery;
      if (recovery && stored.join_method === this.cfg.joinMethod) {
        this.log.warn(`the stored identity expired; ${recovery}`, { expired: stored.expires });
        return false;
      }
      if (joinMethodInfo(this.cfg.joinMethod)?.renewable === false) {
        // platform-signed methods join afresh for every identity anyway
        this.log.info('the stored identity expired; joining again', { expired: stored.expires });
        return false;
      }
      throw new MwiError(
        'RENEW_DENIED',
        `the stored identity of bot ${stored.bot_name} expired at ${stored.expires}; a "${stored.join_method}" ` +
          `identity cannot be recovered after expiry: create a new join token (tctl bots add / tctl tokens add) ` +
          `and start tbot with it`,
      );
    }
    this.setCurrent(stored);
    this.log.info('resumed identity from storage', {
      bot: stored.bot_name,
      instance: stored.instance_id,
      generation: stored.generation,
      expires: stored.expires,
    });
    return true;
  }

  private setCurrent(id: BotCredential): void {
    this.client?.close();
    this.state.identity = id;
    // Once joined, every connection asks for the Auth Service's own certificate and verifies it
    // with the cluster's CAs from the join answer, also after a join through proxy_server: the
    // public PKI is trusted once, for the first contact (as a CA pin is), and never again. A
    // certificate for the proxy's name mis-issued later by any public CA, a public certificate
    // that expired or was swapped, cannot make a joined tbot talk to anyone but its cluster (it
    // would hand workloads that server's CAs and certificates). The public certificate itself is
    // never checked against the cluster's CA, which did not issue it (docs/security.md).
    this.client = this.apiClient({ ca: id.tls_ca_certs, cert: id.tls_cert, key: id.key });
  }

  /**
   * A client for the configured addresses that starts with the one the previous client last
   * reached (a join's client hands over to the identity's), and says when it fails over.
   */
  private apiClient(tls: ClientTLS): ApiClient {
    const previous = this.lastClient;
    const client = new ApiClient({
      addrs: this.cfg.authServers,
      tls,
      preferredAddr: previous?.preferredAddr,
      onFailover: (from, to, err) =>
        this.log.warn('the Auth Service did not answer; trying the next address', { from, to, error: err.message }),
    });
    this.lastClient = client;
    return client;
  }

  private async persist(): Promise<void> {
    await writeState(this.storage, this.state);
  }

  /**
   * The key for the next join or renewal: the pending one if an earlier request's answer was
   * never stored, else a new one, persisted (with `persist`) before any request is sent with it.
   */
  private async pendingKeys(persist = true): Promise<PemKeyPair> {
    const p = this.state.pending;
    if (p) return { privateKeyPem: p.private_key, publicKeyPem: p.public_key };
    const keys = await generateKeys('ec-p256');
    this.state.pending = { private_key: keys.privateKeyPem, public_key: keys.publicKeyPem };
    if (persist) await this.persist();
    return keys;
  }

  /**
   * What authenticates the Auth Service on first contact: a pinned CA, a CA file, the system
   * trust store (proxy_server without pins: the operator's public certificate), or (unsafe)
   * anything. Pins and a CA file, when given, win over the trust store.
   */
  private async firstContactCA(): Promise<string[] | 'system'> {
    if (this.cfg.caPath) {
      try {
        return splitPemBundle(readFileSync(this.cfg.caPath, 'utf8'));
      } catch (cause) {
        throw new MwiError('BAD_CONFIG', `cannot read ${this.cfg.caPath}: ${ioReason(cause)}`, {
          field: 'onboarding.ca_path',
          cause,
        });
      }
    }
    let last: unknown;
    for (const addr of this.cfg.authServers) {
      try {
        if (this.cfg.caPins.length === 0 && this.cfg.insecure) {
          this.log.warn(
            'INSECURE: trusting whatever CA the Auth Service presents (no ca_pins); anyone between tbot and the ' +
              'Auth Service can impersonate it',
          );
          return [await discoverCA(addr, 'any')];
        }
        if (this.cfg.caPins.length === 0 && this.cfg.proxyServer) {
          this.log.info('verifying proxy_server with the system trust store (no ca_pins)', { proxy_server: addr });
          return 'system';
        }
        return [await discoverCA(addr, this.cfg.caPins)];
      } catch (err) {
        last = err;
        if (!isMwiError(err, 'UNREACHABLE')) throw err;
      }
    }
    throw last;
  }

  /**
   * Joins with the configured method: a first join, a recovery, or (with `refresh`, over mTLS
   * with the current identity) a refresh the server asked for. `checkCluster` sees the cluster's
   * name before anything is sent that could spend the token (a config error must not use it up).
   */
  async join(refresh = false, checkCluster?: (clusterName: () => Promise<string>) => Promise<void>): Promise<void> {
    const method = CLIENT_METHODS.get(this.cfg.joinMethod);
    if (!method)
      throw new MwiError('BAD_CONFIG', `join method ${this.cfg.joinMethod} is not available in this tbot`, {
        field: 'onboarding.join_method',
      });
    const cur = this.state.identity;
    // a refresh authenticates with the current identity; trust then comes from the stored CAs
    const api =
      refresh && this.client && cur
        ? this.client
        : this.apiClient({ ca: cur?.tls_ca_certs ?? (await this.firstContactCA()) });
    const token = this.cfg.token ?? '';
    const jctx: ClientJoinContext = {
      token,
      options: this.cfg.methodOptions,
      state: {
        read: () => this.state.methods[method.name] ?? {},
        write: async (s) => {
          this.state.methods[method.name] = s;
          await this.persist();
        },
      },
      challenge: (payload) => api.call('POST', PATHS.challenge, { token, join_method: method.name, payload }),
      clusterName: async () => cur?.cluster_name ?? (await api.call<PingResponse>('GET', PATHS.ping)).cluster_name,
      log: this.log,
    };
    try {
      await checkCluster?.(() => jctx.clusterName());
      const payload = await method.payload(jctx);
      // a lost answer can be retried only where tbot already keeps state (a refresh, a method with
      // client state such as bound_keypair): a first join with a single-use token or a platform
      // document writes nothing before it succeeds
      const keys = await this.pendingKeys(cur !== undefined || this.state.methods[method.name] !== undefined);
      const req: JoinRequest = {
        token,
        join_method: method.name,
        public_key: keys.publicKeyPem,
        ttl_seconds: Math.round(this.cfg.credentialTtlMs / 1000),
        payload,
      };
      const res = await api.call<BotCredentialResponse>('POST', PATHS.join, req);
      const stored = this.toCredential(res, keys.privateKeyPem, keys.publicKeyPem, method.name, sha256Hex(token));
      const previous = this.state.identity;
      this.state.identity = stored;
      delete this.state.pending;
      this.setCurrent(stored);
      try {
        // the identity and the method's state (e.g. the new join state) are written together
        if (method.afterJoin) await method.afterJoin(jctx, res.method_data);
        else await this.persist();
      } catch (err) {
        if (refresh) throw err; // the instance lives on: the next renewal writes again
        throw await this.unstored(err, stored, previous);
      }
      this.log.info(refresh ? 'refreshed identity' : 'joined', {
        bot: res.bot_name,
        instance: res.instance_id,
        cluster: res.cluster_name,
        method: method.name,
        generation: res.generation,
        expires: res.expires,
      });
    } finally {
      if (api !== this.client) api.close();
    }
  }

  /**
   * A join succeeded but its identity could not be stored: the instance it made is ended (a
   * restart could not continue it, so it would be an orphan) and the error says so.
   */
  private async unstored(err: unknown, joined: BotCredential, previous: BotCredential | undefined): Promise<MwiError> {
    const why = err instanceof Error ? err.message : String(err);
    const ended = await this.end(`its identity could not be written to storage: ${why}`);
    this.state.identity = previous;
    if (previous) this.setCurrent(previous);
    else {
      this.client?.close();
      this.client = undefined;
    }
    const after = ended
      ? 'the instance was ended, so none is left behind'
      : 'ending the instance failed: it stays until its identity expires';
    return new MwiError(
      'BAD_CONFIG',
      `joined as bot instance ${joined.instance_id}, but its identity could not be written to ` +
        `${this.storage.description} (${why}); ${after}. The join token is spent: fix the storage, then start ` +
        'tbot with a new token',
      { field: 'storage.path', cause: err },
    );
  }

  /**
   * Ends the bot instance this identity belongs to (POST /v1/instance/end), for a run that joined
   * and cannot keep its identity (memory storage, or a storage write that failed), so that no
   * orphan instance is left. Best effort: returns whether it was ended; a failure is logged.
   */
  async end(reason: string): Promise<boolean> {
    const cur = this.state.identity;
    const client = this.client;
    if (!cur || !client) return false;
    try {
      await this.mutex.run(() => client.call('POST', PATHS.endInstance, { reason }));
      this.log.warn("ended this run's bot instance: its identity cannot be kept", {
        bot: cur.bot_name,
        instance: cur.instance_id,
        reason,
      });
      return true;
    } catch (err) {
      this.log.error("could not end this run's bot instance: it stays until its identity expires", {
        bot: cur.bot_name,
        instance: cur.instance_id,
        error: err instanceof Error ? err.message : String(err),
      });
      return false;
    }
  }

  private toCredential(
    res: BotCredentialResponse,
    key: string,
    publicKeyPem: string,
    joinMethod: string,
    tokenHash: string,
  ): BotCredential {
    // the certificate must be for the key we generated: anything else is a broken or hostile server
    const got = new X509Certificate(res.tls_cert).publicKey.export({ type: 'spki', format: 'der' });
    if (!got.equals(createPublicKey(publicKeyPem).export({ type: 'spki', format: 'der' }))) {
      throw new MwiError('INTERNAL', 'the Auth Service returned a certificate for another key');
    }
    return {
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

  /**
   * Renews the internal identity with a fresh key (or the pending one, if the last renewal's
   * answer was lost); the new generation is stored before use.
   */
  async renew(): Promise<void> {
    await this.mutex.run(() => this.renewNow());
    for (const fn of this.listeners) fn();
  }

  /** The renewal itself; the caller holds the mutex. */
  private async renewNow(): Promise<void> {
    const cur = this.state.identity;
    if (!cur || !this.client) throw new TypeError('renew before join');
    // platform methods join again for each identity, presenting the current one to continue the instance
    if (!joinMethodInfo(cur.join_method)?.renewable) return this.join(true);
    const keys = await this.pendingKeys();
    let next: BotCredential | undefined;
    // the connection that carried the renewal speaks as the new identity from here on (the
    // Auth Service carries it forward): the rest of the cycle needs no new TLS handshake
    const res = await this.client.call<BotCredentialResponse>(
      'POST',
      PATHS.renew,
      { public_key: keys.publicKeyPem, ttl_seconds: Math.round(this.cfg.credentialTtlMs / 1000) },
      {
        rekey: (answer) => {
          const { privateKeyPem, publicKeyPem } = keys;
          next = this.toCredential(answer, privateKeyPem, publicKeyPem, cur.join_method, cur.join_token_hash);
          return { ca: next.tls_ca_certs, cert: next.tls_cert, key: next.key };
        },
      },
    );
    this.state.identity = next!;
    // the answer and the end of the pending key are one write
    delete this.state.pending;
    await this.persist();
    this.log.info('renewed identity', {
      bot: res.bot_name,
      instance: res.instance_id,
      generation: res.generation,
      expires: res.expires,
    });
    if (res.rejoin_due) {
      this.log.info('the Auth Service asks for a refresh join (e.g. a key rotation is due)');
      await this.join(true);
    }
  }

  /**
   * Calls the Auth Service with the internal identity, serialized with renewals. A renewal whose
   * answer was lost is retried first: the Auth Service takes any other request made with the
   * previous generation after it issued the next one for a copy of the identity.
   */
  async call<T>(path: string, body: unknown): Promise<T> {
    return this.withClient((client) => client.call<T>('POST', path, body));
  }

  /** As `call`, with the client itself: for its typed methods (the Workload API's issuance, a GET). */
  async withClient<T>(fn: (client: ApiClient) => Promise<T>): Promise<T> {
    let renewed = false;
    const out = await this.mutex.run(async () => {
      if (!this.client) throw new TypeError('call before join');
      if (this.state.pending && this.state.identity && joinMethodInfo(this.state.identity.join_method)?.renewable) {
        this.log.info('retrying the renewal whose answer was lost, with the same key');
        await this.renewNow();
        renewed = true;
      }
      return fn(this.client);
    });
    if (renewed) for (const fn of this.listeners) fn();
    return out;
  }

  close(): void {
    this.client?.close();
  }
}

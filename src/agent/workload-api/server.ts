import {
  Server,
  ServerCredentials,
  status,
  type ConnectionInjector,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { generateKeys } from '../../crypto/keys.js';
import type { Logger } from '../../util/log.js';
import { attestKubernetes, type PodSource } from './attest/kubernetes.js';
import type { WorkloadAttributes } from './attest/types.js';
import { attestUnix, type UnixAttestorOptions } from './attest/unix.js';
import { cacheKey, SvidCache } from './cache.js';
import { GrpcError, requireSecurityHeader, toServiceError } from './grpc-errors.js';
import type { JwtSvid } from '../../api/workload-identity.js';
import type { Bundle, Selector, WorkloadIssuer } from './issuer.js';
import { peerCredentials, type PeerCredentials } from './peercred.js';
import { toStruct, workloadApiService } from './proto.js';
import { listenUnix } from './socket.js';

export interface WorkloadApiOptions {
  selector: Selector;
  /** The SVIDs' TTL (the service's credential_ttl). */
  ttlMs: number;
  unix: UnixAttestorOptions;
  /** Set when attestors.kubernetes is enabled. */
  kubernetes?: PodSource | undefined;
  issuer: WorkloadIssuer;
  log: Logger;
}

/** One accepted connection: who is at the other end, attested once. */
interface Conn {
  cred: PeerCredentials;
  attributes?: Promise<WorkloadAttributes>;
}

/** X.509-SVIDs as the proto carries them, and when the first of them should be renewed. */
interface X509Set {
  svids: { spiffe_id: string; hint: string; x509_svid: Buffer; x509_svid_key: Buffer; bundle: Buffer }[];
  expiresAt: number;
}

const der = (pem: string): Buffer => new X509Certificate(pem).raw;
const trustDomainId = (b: Bundle) => `spiffe://${b.trust_domain}`;
const bundleDer = (b: Bundle) => Buffer.concat(b.x509_authorities_pem.map(der));
const ttlText = (ms: number) => `${Math.max(1, Math.round(ms / 1000))}s`;

/**
 * The SPIFFE Workload API on a unix socket. Connections are accepted on tbot's own net.Server so
 * that it can read each peer's SO_PEERCRED, then handed to grpc-js (createConnectionInjector).
 * How a call finds its connection: each accepted socket gets a unique `remoteAddress`
 * (`workload-N`, set on the socket object before it is injected), which grpc-js reports as the
 * call's `getPeer()`; `conns` maps it to the peer's credentials until the socket closes.
 */
export class WorkloadApiServer {
  private readonly grpc = new Server();
  private readonly injector: ConnectionInjector;
  private readonly conns = new Map<string, Conn>();
  private next = 0;
  private readonly x509 = new SvidCache<X509Set>();
  private readonly jwt = new SvidCache<JwtSvid[]>();
  private bundle: Bundle | undefined;
  /** 'bundle' when the trust bundle's revision changes (the caches are cleared first). */
  private readonly events = new EventEmitter();
  private listener: { close(): Promise<void> } | undefined;

  constructor(private readonly o: WorkloadApiOptions) {
    this.events.setMaxListeners(0);
    this.grpc.addService(workloadApiService(), this.handlers());
    this.injector = this.grpc.createConnectionInjector(ServerCredentials.createInsecure());
  }

  async listen(path: string, mode: number, field: string): Promise<void> {
    this.listener = await listenUnix(path, mode, field, (socket) => this.accept(socket));
  }

  async close(): Promise<void> {
    this.events.removeAllListeners();
    this.injector.destroy();
    this.grpc.forceShutdown();
    await this.listener?.close();
  }

  /** Asks the Auth Service for the bundle; a new revision (a rotation) renews every stream. */
  async refreshBundle(): Promise<Bundle> {
    const b = await this.o.issuer.workloadBundle();
    this.setBundle(b);
    return b;
  }

  private setBundle(b: Bundle): void {
    const before = this.bundle?.revision;
    this.bundle = b;
    if (before === undefined || before === b.revision) return;
    this.o.log.info('workload-identity-api: the trust bundle changed; renewing every SVID', { revision: b.revision });
    this.x509.clear();
    this.jwt.clear();
    this.events.emit('bundle');
  }

  private accept(socket: Socket): void {
    let cred: PeerCredentials;
    try {
      cred = peerCredentials(socket);
    } catch (err) {
      this.o.log.warn('workload-identity-api: cannot read the peer credentials; closing', { error: String(err) });
      socket.destroy();
      return;
    }
    const id = `workload-${++this.next}`;
    Object.defineProperty(socket, 'remoteAddress', { value: id });
    this.conns.set(id, { cred });
    socket.once('close', () => this.conns.delete(id));
    this.injector.injectConnection(socket);
  }

  /** The workload's attested attributes (attested once per connection). */
  private attributes(peer: string): Promise<WorkloadAttributes> {
    const conn = this.conns.get(peer);
    if (!conn) return Promise.reject(new GrpcError(status.INTERNAL, 'unknown connection'));
    conn.attributes ??= (async () => {
      const unix = await attestUnix(conn.cred, this.o.unix);
      const kubernetes = this.o.kubernetes ? await attestKubernetes(conn.cred.pid, this.o.kubernetes) : undefined;
      return { unix, ...(kubernetes ? { kubernetes } : {}) };
    })();
    // (a failure, such as a kubelet that did not answer, is tried again on the next call)
    conn.attributes.catch(() => (conn.attributes = undefined));
    return conn.attributes;
  }

  private ready(): void {
    if (!this.o.issuer.ready()) throw new GrpcError(status.UNAVAILABLE, 'tbot has no identity yet; retry');
  }

  private async currentBundle(): Promise<Bundle> {
    return this.bundle ?? (await this.refreshBundle());
  }

  private async x509For(attributes: WorkloadAttributes): Promise<X509Set> {
    const { selector, ttlMs, issuer } = this.o;
    const key = cacheKey({ kind: 'x509', selector, attributes, ttlMs });
    return this.x509.get(
      key,
      async () => {
        const keys = await generateKeys('ec-p256');
        const res = await issuer.issueX509Svids({
          selector,
          public_key: keys.publicKeyPem,
          ttl: ttlText(ttlMs),
          attributes,
        });
        if (!this.bundle || this.bundle.revision !== res.bundle.revision) this.setBundle(res.bundle);
        const keyDer = createPrivateKey(keys.privateKeyPem).export({ type: 'pkcs8', format: 'der' });
        const bundle = bundleDer(res.bundle);
        return {
          svids: res.svids.map((s) => ({
            spiffe_id: s.spiffe_id,
            hint: s.hint,
            x509_svid: der(s.cert_pem),
            x509_svid_key: keyDer,
            bundle,
          })),
          expiresAt: Math.min(...res.svids.map((s) => Date.parse(s.expires_at))),
        };
      },
      (v) => v.expiresAt,
    );
  }

  private handlers(): UntypedServiceImplementation {
    return {
      FetchX509SVID: (call: ServerWritableStream<object, unknown>) => this.fetchX509Svid(call),
      FetchX509Bundles: (call: ServerWritableStream<object, unknown>) =>
        this.bundleStream(call, (b) => ({ crl: [], bundles: { [trustDomainId(b)]: bundleDer(b) } })),
      FetchJWTBundles: (call: ServerWritableStream<object, unknown>) =>
        this.bundleStream(call, (b) => ({ bundles: { [trustDomainId(b)]: Buffer.from(JSON.stringify(b.jwks)) } })),
      FetchJWTSVID: (
        call: ServerUnaryCall<{ audience: string[]; spiffe_id: string }, unknown>,
        cb: sendUnaryData<unknown>,
      ) => this.unary(call, cb, () => this.fetchJwtSvid(call)),
      ValidateJWTSVID: (
        call: ServerUnaryCall<{ audience: string; svid: string }, unknown>,
        cb: sendUnaryData<unknown>,
      ) => this.unary(call, cb, () => this.validateJwtSvid(call.request)),
    };
  }

  private unary<Req>(
    call: ServerUnaryCall<Req, unknown>,
    cb: sendUnaryData<unknown>,
    fn: () => Promise<unknown>,
  ): void {
    (async () => {
      requireSecurityHeader(call.metadata);
      return fn();
    })().then(
      (res) => cb(null, res),
      (err: unknown) => cb(this.failure(err, call.getPeer())),
    );
  }

  private failure(err: unknown, peer: string) {
    const e = toServiceError(err);
    if (e.code !== status.INVALID_ARGUMENT)
      this.o.log.warn('workload-identity-api: call failed', {
        peer,
        pid: this.conns.get(peer)?.cred.pid,
        uid: this.conns.get(peer)?.cred.uid,
        error: err instanceof Error ? err.message : String(err),
      });
    return e;
  }

  /** A server stream: `first` now, then `again` on each event until the client goes away. */
  private stream(call: ServerWritableStream<object, unknown>, send: () => Promise<number | void>): void {
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    let failures = 0;
    const finish = (err?: unknown) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      this.events.off('bundle', onBundle);
      if (err !== undefined) call.emit('error', this.failure(err, call.getPeer()));
    };
    const once = async (first: boolean) => {
      clearTimeout(timer);
      try {
        const renewAt = await send();
        if (done) return;
        failures = 0;
        if (typeof renewAt === 'number')
          timer = setTimeout(() => void once(false), Math.max(1000, renewAt - Date.now()));
      } catch (err) {
        // the first answer's error ends the call; later, a refusal ends it and anything else is retried
        const code = toServiceError(err).code;
        if (first || code === status.PERMISSION_DENIED || code === status.INVALID_ARGUMENT) return finish(err);
        failures++;
        this.o.log.warn('workload-identity-api: renewing a stream failed; retrying', { error: String(err) });
        timer = setTimeout(() => void once(false), Math.min(30_000, 1000 * 2 ** failures));
      }
    };
    const onBundle = () => void once(false);
    call.on('cancelled', () => finish());
    call.on('close', () => finish());
    call.on('error', () => finish());
    try {
      requireSecurityHeader(call.metadata);
      this.ready();
    } catch (err) {
      return finish(err);
    }
    this.events.on('bundle', onBundle);
    void once(true);
  }

  private fetchX509Svid(call: ServerWritableStream<object, unknown>): void {
    const peer = call.getPeer();
    this.stream(call, async () => {
      this.ready();
      const attributes = await this.attributes(peer);
      const set = await this.x509For(attributes);
      if (set.svids.length === 0) throw new GrpcError(status.PERMISSION_DENIED, 'no identity issued');
      call.write({ svids: set.svids, crl: [], federated_bundles: {} });
      // the next one at half the remaining life (the cache's own limit)
      return Date.now() + (set.expiresAt - Date.now()) / 2 + 50;
    });
  }

  private bundleStream(call: ServerWritableStream<object, unknown>, message: (b: Bundle) => object): void {
    this.stream(call, async () => {
      this.ready();
      call.write(message(await this.currentBundle()));
    });
  }

  private async fetchJwtSvid(call: ServerUnaryCall<{ audience: string[]; spiffe_id: string }, unknown>) {
    const { audience, spiffe_id: wanted } = call.request;
    if (!audience?.length) throw new GrpcError(status.INVALID_ARGUMENT, 'audience must be specified');
    this.ready();
    const attributes = await this.attributes(call.getPeer());
    const { selector, ttlMs, issuer } = this.o;
    const audiences = [...new Set(audience)].sort();
    const key = cacheKey({ kind: 'jwt', selector, attributes, audiences, ttlMs });
    const svids = await this.jwt.get(
      key,
      async () => (await issuer.issueJwtSvids({ selector, audiences, ttl: ttlText(ttlMs), attributes })).svids,
      (v) => Math.min(...v.map((s) => Date.parse(s.expires_at))),
    );
    const chosen = wanted ? svids.filter((s) => s.spiffe_id === wanted) : svids;
    if (chosen.length === 0)
      throw new GrpcError(status.PERMISSION_DENIED, wanted ? `no identity ${wanted} issued` : 'no identity issued');
    return { svids: chosen.map((s) => ({ spiffe_id: s.spiffe_id, svid: s.token, hint: s.hint })) };
  }

  /** Verifies a JWT-SVID against the bundle's JWKS: signature, audience, expiry, a SPIFFE ID of this trust domain. */
  private async validateJwtSvid(req: { audience: string; svid: string }) {
    if (!req.audience) throw new GrpcError(status.INVALID_ARGUMENT, 'audience must be specified');
    if (!req.svid) throw new GrpcError(status.INVALID_ARGUMENT, 'svid must be specified');
    this.ready();
    const bundle = await this.currentBundle();
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(req.svid, createLocalJWKSet(bundle.jwks), {
        audience: req.audience,
      }));
    } catch (err) {
      throw new GrpcError(
        status.INVALID_ARGUMENT,
        `invalid JWT-SVID: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    const sub = typeof payload.sub === 'string' ? payload.sub : '';
    if (!sub.startsWith(`${trustDomainId(bundle)}/`))
      throw new GrpcError(
        status.INVALID_ARGUMENT,
        `invalid JWT-SVID: sub "${sub}" is not a SPIFFE ID of ${bundle.trust_domain}`,
      );
    return { spiffe_id: sub, claims: toStruct(payload) };
  }
}

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
import { cgroupOf, podOf, type PodSource } from './attest/kubernetes.js';
import type { KubernetesAttestation, UnixAttestation, WorkloadAttributes } from './attest/types.js';
import { attestUnix, type UnixAttestorOptions } from './attest/unix.js';
import { cacheKey, RefusalCache, SvidCache } from './cache.js';
import { GrpcError, requireSecurityHeader, toServiceError } from './grpc-errors.js';
import type { JwtSvid } from '../../api/workload-identity.js';
import type { Bundle, Selector, WorkloadIssuer } from './issuer.js';
import { peerCredentials, type PeerCredentials } from './peercred.js';
import { checkPin, pinProcess, releasePin, type ProcessPin } from './process.js';
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

/** At most this many connections at once (beyond it, new ones are closed at accept). */
export const MAX_CONNECTIONS = 1024;
/** At most this many connections of one uid at once: a flood from one user leaves room for the others. */
export const MAX_CONNECTIONS_PER_UID = 128;
/** A connection that makes no call within this time of its accept is closed. */
export const FIRST_CALL_TIMEOUT_MS = 10_000;
/** A connection with no call in progress for this long is closed (grpc-js sends GOAWAY; clients reconnect). */
export const IDLE_TIMEOUT_MS = 5 * 60_000;

/** One accepted connection: who is at the other end, attested at accept, before any call. */
interface Conn {
  cred: PeerCredentials;
  pin: ProcessPin;
  unix: UnixAttestation;
  /** The container of the process (read at accept), when the kubernetes attestor is on. */
  cgroup?: { containerId?: string; podUid?: string } | undefined;
  /** Its pod, looked up at the first call (a kubelet failure is tried again on the next). */
  kubernetes?: Promise<KubernetesAttestation | undefined> | undefined;
  used: boolean;
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
  private readonly grpc = new Server({ 'grpc.max_connection_idle_ms': IDLE_TIMEOUT_MS });
  private readonly injector: ConnectionInjector;
  private readonly conns = new Map<string, Conn>();
  private next = 0;
  /** Open connections (attested or being attested): all, and per uid. */
  private open = 0;
  private readonly perUid = new Map<number, number>();
  private readonly limits = {
    total: MAX_CONNECTIONS,
    perUid: MAX_CONNECTIONS_PER_UID,
    firstCallMs: FIRST_CALL_TIMEOUT_MS,
  };
  /** When each rate-limited log line was last written, and how many were left out since. */
  private readonly logged = new Map<string, { at: number; skipped: number }>();
  private readonly x509 = new SvidCache<X509Set>();
  private readonly jwt = new SvidCache<JwtSvid[]>();
  private readonly refusals = new RefusalCache(
    undefined,
    undefined,
    (err) => toServiceError(err).code === status.PERMISSION_DENIED,
  );
  private bundle: Bundle | undefined;
  /** 'bundle' when the trust bundle's revision changes (the caches are cleared first). */
  private readonly events = new EventEmitter();
  private listener: { close(): Promise<void> } | undefined;

  constructor(
    private readonly o: WorkloadApiOptions,
    limits: Partial<WorkloadApiServer['limits']> = {},
  ) {
    Object.assign(this.limits, limits);
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

  /** A WARN line at most every 10 s per `key`, saying how many like it were left out. */
  private warnSampled(key: string, msg: string, fields: Record<string, unknown>): void {
    const now = Date.now();
    const last = this.logged.get(key);
    if (last && now - last.at < 10_000) {
      last.skipped++;
      return;
    }
    this.logged.set(key, { at: now, skipped: 0 });
    if (this.logged.size > 1024) this.logged.delete(this.logged.keys().next().value!);
    this.o.log.warn(msg, { ...fields, ...(last?.skipped ? { similar_lines_left_out: last.skipped } : {}) });
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
    const uidCount = this.perUid.get(cred.uid) ?? 0;
    if (this.open >= this.limits.total || uidCount >= this.limits.perUid) {
      const which =
        this.open >= this.limits.total ? `${this.limits.total} in all` : `${this.limits.perUid} of uid ${cred.uid}`;
      this.warnSampled(`limit:${cred.uid}`, `workload-identity-api: too many connections (${which}); closing`, {
        pid: cred.pid,
        uid: cred.uid,
      });
      socket.destroy();
      return;
    }
    this.open++;
    this.perUid.set(cred.uid, uidCount + 1);
    const closed = new AbortController();
    socket.once('close', () => {
      this.open--;
      const n = (this.perUid.get(cred.uid) ?? 1) - 1;
      if (n > 0) this.perUid.set(cred.uid, n);
      else this.perUid.delete(cred.uid);
      closed.abort();
    });
    // (no call can reach grpc-js before the attestation: the socket is injected after it)
    const firstCall = setTimeout(() => {
      if (!conn?.used) socket.destroy();
    }, this.limits.firstCallMs);
    firstCall.unref();
    socket.once('close', () => clearTimeout(firstCall));
    let conn: Conn | undefined;
    this.attest(cred, closed.signal).then(
      (c) => {
        if (typeof c === 'string') {
          this.warnSampled(`refused:${cred.uid}`, 'workload-identity-api: connection refused', {
            pid: cred.pid,
            uid: cred.uid,
            reason: c,
          });
          socket.destroy();
          return;
        }
        if (socket.destroyed) return releasePin(c.pin);
        conn = c;
        const id = `workload-${++this.next}`;
        Object.defineProperty(socket, 'remoteAddress', { value: id });
        this.conns.set(id, c);
        socket.once('close', () => {
          this.conns.delete(id);
          releasePin(c.pin);
        });
        this.injector.injectConnection(socket);
        socket.resume();
      },
      (err: unknown) => {
        this.o.log.warn('workload-identity-api: attestation failed; closing', { pid: cred.pid, error: String(err) });
        socket.destroy();
      },
    );
  }

  /**
   * Attests the process that connected, pinned (start time, pidfd, executable) first and checked
   * after: a process that exited or exec'd meanwhile is refused (the reason, as a string).
   */
  private async attest(cred: PeerCredentials, signal: AbortSignal): Promise<Conn | string> {
    const pin = pinProcess(cred.pid);
    if (!pin) return `the process ${cred.pid} exited before tbot could attest it`;
    try {
      const unix = await attestUnix(cred, this.o.unix, { signal, exe: pin.exe });
      const cgroup = this.o.kubernetes ? await cgroupOf(cred.pid) : undefined;
      const why = checkPin(pin);
      if (why) {
        releasePin(pin);
        return `${why} while tbot attested it`;
      }
      return { cred, pin, unix, cgroup, used: false };
    } catch (err) {
      releasePin(pin);
      throw err;
    }
  }

  /**
   * The workload's attested attributes, if the process that connected still runs the executable it
   * was attested with; the pod is looked up at the first call.
   */
  private async attributes(peer: string): Promise<WorkloadAttributes> {
    const conn = this.conns.get(peer);
    if (!conn) throw new GrpcError(status.INTERNAL, 'unknown connection');
    const why = checkPin(conn.pin);
    if (why)
      throw new GrpcError(
        status.PERMISSION_DENIED,
        `${why}: tbot attested that process when it connected and answers only it; connect again from the ` +
          'process that asks',
      );
    if (!this.o.kubernetes || !conn.cgroup) return { unix: conn.unix };
    conn.kubernetes ??= podOf(conn.cgroup, this.o.kubernetes);
    // (a failure, such as a kubelet that did not answer, is tried again on the next call)
    conn.kubernetes.catch(() => (conn.kubernetes = undefined));
    const kubernetes = await conn.kubernetes;
    return { unix: conn.unix, ...(kubernetes ? { kubernetes } : {}) };
  }

  /** Marks the connection of a call as used (the first-call timer then leaves it open). */
  private used(peer: string): void {
    const conn = this.conns.get(peer);
    if (conn) conn.used = true;
  }

  private ready(): void {
    if (!this.o.issuer.ready()) throw new GrpcError(status.UNAVAILABLE, 'tbot has no identity yet; retry');
  }

  private async currentBundle(): Promise<Bundle> {
    return this.bundle ?? (await this.refreshBundle());
  }

  /** Asks the Auth Service through the refusal cache (a refusal is answered again for 5 s). */
  private issue<T>(key: string, attributes: WorkloadAttributes, fn: () => Promise<T>): Promise<T> {
    const uid = attributes.unix?.uid ?? -1;
    return this.refusals.run(key, uid, fn, () => {
      return new GrpcError(status.UNAVAILABLE, `too many refused requests from uid ${uid}; retry in a few seconds`);
    });
  }

  private async x509For(attributes: WorkloadAttributes): Promise<X509Set> {
    const { selector, ttlMs, issuer } = this.o;
    const key = cacheKey({ kind: 'x509', selector, attributes, ttlMs });
    return this.issue(key, attributes, () =>
      this.x509.get(
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
      ),
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
    this.used(call.getPeer());
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
    const cred = this.conns.get(peer)?.cred;
    // (sampled per uid and code: a workload refused in a loop writes a line every 10 s, with a count)
    if (e.code !== status.INVALID_ARGUMENT)
      this.warnSampled(`call:${cred?.uid}:${e.code}`, 'workload-identity-api: call failed', {
        peer,
        pid: cred?.pid,
        uid: cred?.uid,
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
    this.used(call.getPeer());
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
    const svids = await this.issue(key, attributes, () =>
      this.jwt.get(
        key,
        async () => (await issuer.issueJwtSvids({ selector, audiences, ttl: ttlText(ttlMs), attributes })).svids,
        (v) => Math.min(...v.map((s) => Date.parse(s.expires_at))),
      ),
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

// Several Auth Service replicas (`mwi start` processes) on one PostgreSQL database, each with its
// own data dir (its local admin identity), as a highly available deployment runs them; and the
// programmatic join and renewal a bot does, to drive them without a tbot process per request.
import { join } from 'node:path';
import { ApiClient } from '../../src/api/client.js';
import { readIdentityFile } from '../../src/api/local.js';
import { PATHS, type BotCredentialResponse } from '../../src/api/wire.js';
import { generateKeys, type PemKeyPair } from '../../src/crypto/keys.js';
import { launchAuth, type LaunchedAuth } from './launch-auth.js';
import { startPostgres, type PgServer } from './postgres.js';
import { cli, type RunResult } from './procs.js';

export interface Replica extends LaunchedAuth {
  /** An admin client on this replica (its own local admin identity). */
  admin: ApiClient;
  tctl(args: string[]): Promise<RunResult>;
  tctlOk(args: string[]): Promise<string>;
}

export interface HaCluster {
  pg: PgServer;
  /** The storage URL every replica was started with. */
  storage: string;
  replicas: Replica[];
  caPin: string;
  /** The host CA: what a bot trusts before it joins. */
  hostCA: string[];
  /** Role `NAME-role` with `logins` and bot `NAME` with it, made through replica `via`. */
  addBot(name: string, opts?: { logins?: string[]; via?: number }): Promise<void>;
  /** `n` single-use `token` join tokens for `bot`, made through replica `via`. */
  tokens(bot: string, n: number, via?: number): Promise<string[]>;
  /** A client of replica `i` (or of the given addresses) that has not joined: for joins. */
  joinClient(i: number | string[]): ApiClient;
  stop(): Promise<void>;
}

export interface HaOptions {
  name?: string;
  replicas?: number;
  /** Listen address of each replica (default 127.0.0.1:0 each). */
  listens?: string[];
  /** An existing server (default: a new one, stopped with the cluster). */
  pg?: PgServer;
  env?: NodeJS.ProcessEnv;
  mwiYaml?: string;
  /** The storage URL replica `i` is started with (default: the database's URL, the same for all). */
  storageFor?: (url: string, i: number) => string;
}

async function replica(auth: LaunchedAuth): Promise<Replica> {
  const id = readIdentityFile(join(auth.dataDir, 'admin', 'identity.json'))!;
  const admin = new ApiClient({ addrs: [auth.addr], tls: { ca: id.ca_certs, cert: id.cert, key: id.key } });
  const tctl = (args: string[]) => cli('tctl', ['--data-dir', auth.dataDir, ...args]);
  return Object.assign(auth, {
    admin,
    tctl,
    async tctlOk(args: string[]) {
      const r = await tctl(args);
      if (r.code !== 0) throw new Error(`tctl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
      return r.stdout;
    },
  });
}

/** Starts the replicas at once (they race to create the CAs, as replicas started together do). */
export async function startHa(opts: HaOptions = {}): Promise<HaCluster> {
  const pg = opts.pg ?? (await startPostgres());
  const storage = await pg.createDatabase();
  const n = opts.replicas ?? 2;
  const launched = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      launchAuth({
        clusterName: opts.name ?? 'ha.example.com',
        args: [
          '--storage',
          opts.storageFor?.(storage, i) ?? storage,
          ...(opts.listens?.[i] ? ['--listen', opts.listens[i]] : []),
        ],
        prefix: `ha${i}`,
        env: { MWI_LOG_LEVEL: 'warn', ...opts.env },
        mwiYaml: opts.mwiYaml,
      }),
    ),
  );
  const replicas = await Promise.all(launched.map(replica));
  const pins = new Set(replicas.map((r) => r.caPin));
  if (pins.size !== 1) throw new Error(`replicas printed different CA pins: ${[...pins].join(', ')}`);
  const hostCA = [readIdentityFile(join(replicas[0]!.dataDir, 'admin', 'identity.json'))!.ca_certs[0]!];
  return {
    pg,
    storage,
    replicas,
    caPin: replicas[0]!.caPin,
    hostCA,
    async addBot(name, o = {}) {
      const admin = replicas[o.via ?? 0]!.admin;
      const logins = o.logins ?? ['deploy'];
      await admin.call('POST', '/v1/admin/resources', {
        resource: { kind: 'role', metadata: { name: `${name}-role` }, spec: { allow: { logins } } },
      });
      await admin.call('POST', '/v1/admin/resources', {
        resource: { kind: 'bot', metadata: { name }, spec: { roles: [`${name}-role`] } },
      });
    },
    async tokens(bot, count, via = 0) {
      const admin = replicas[via]!.admin;
      const out: string[] = [];
      for (let i = 0; i < count; i++) {
        const body = { bot_name: bot, join_method: 'token', ttl: '1h' };
        out.push((await admin.call<{ token: string }>('POST', '/v1/admin/tokens', body)).token);
      }
      return out;
    },
    joinClient(i) {
      const addrs = typeof i === 'number' ? [replicas[i]!.addr] : i;
      return new ApiClient({ addrs, tls: { ca: hostCA } });
    },
    async stop() {
      for (const r of replicas) r.admin.close();
      await Promise.all(replicas.map((r) => r.stop()));
      if (!opts.pg) await pg.stop();
    },
  };
}

/** A bot's renewable identity, driven by hand: join once, then renew through any replica. */
export class TestBot {
  /** The key of a renewal whose answer did not arrive: sent again, as tbot does (an idempotent retry). */
  private pending: PemKeyPair | undefined;

  private constructor(
    private readonly hostCA: string[],
    public cred: BotCredentialResponse,
    public keys: PemKeyPair,
  ) {}

  /** Joins with a `token` join token through `addrs`. */
  static async join(hostCA: string[], addrs: string[], token: string): Promise<TestBot> {
    const keys = await generateKeys('ec-p256');
    const api = new ApiClient({ addrs, tls: { ca: hostCA } });
    try {
      const cred = await api.call<BotCredentialResponse>('POST', PATHS.join, {
        token,
        join_method: 'token',
        public_key: keys.publicKeyPem,
      });
      return new TestBot(hostCA, cred, keys);
    } finally {
      api.close();
    }
  }

  /** Renews through `addrs` with the current identity (or `as`, a copy kept from before). */
  async renew(addrs: string[], as?: { cred: BotCredentialResponse; keys: PemKeyPair }): Promise<BotCredentialResponse> {
    const cur = as ?? { cred: this.cred, keys: this.keys };
    const next = (as ? undefined : this.pending) ?? (await generateKeys('ec-p256'));
    if (!as) this.pending = next;
    const api = new ApiClient({
      addrs,
      tls: { ca: cur.cred.tls_ca_certs ?? this.hostCA, cert: cur.cred.tls_cert, key: cur.keys.privateKeyPem },
    });
    try {
      const cred = await api.call<BotCredentialResponse>('POST', PATHS.renew, { public_key: next.publicKeyPem });
      if (!as) {
        this.cred = cred;
        this.keys = next;
        this.pending = undefined;
      }
      return cred;
    } finally {
      api.close();
    }
  }

  /** The identity as it is now (to play a copy of it later). */
  snapshot(): { cred: BotCredentialResponse; keys: PemKeyPair } {
    return { cred: this.cred, keys: this.keys };
  }
}

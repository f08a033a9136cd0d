import { createPrivateKey } from 'node:crypto';
import { z } from 'zod';
import {
  JWT_ALGORITHMS,
  selectorSchema,
  WORKLOAD_PATHS,
  type JwtSvidResponse,
  type Selector,
  type X509SvidResponse,
} from '../../api/workload-identity.js';
import { generateKeys, type PemKeyPair } from '../../crypto/keys.js';
import { isMwiError, MwiError } from '../../errors.js';
import type { Logger } from '../../util/log.js';
import type { BotIdentity } from '../bot-identity.js';
import type { Destination, OutputFile } from '../destinations/destination.js';
import { destinationSchema } from '../destinations/index.js';
import { lifetimeFields, resolveLifetime, type Lifetime } from '../lifetime.js';
import type { ConfigOf } from '../registry.js';
import type { ServiceType } from '../service.js';
import { OUTPUT_KEY_LIFETIME_MS } from './identity.js';
import { outputService } from './output.js';

/** File names of the `workload-identity-x509` output: Teleport's. */
export const X509_SVID_FILES = { svid: 'svid.pem', key: 'svid_key.pem', bundle: 'svid_bundle.pem' } as const;
/** File name of the `workload-identity-jwt` output: Teleport's. */
export const JWT_SVID_FILE = 'jwt_svid';

const selector = selectorSchema.describe('which workload_identity: {name: NAME} or {labels: {KEY: [VALUES]}}');

const common = {
  name: z.string().min(1).optional(),
  destination: destinationSchema,
  selector,
  ...lifetimeFields,
};

const x509Fields = {
  ...common,
  /** Teleport: also write the bundles of federated trust domains; mwi has no federation with other domains yet. */
  include_federated_trust_bundles: z.boolean().default(false),
};
const jwtFields = {
  ...common,
  audiences: z.array(z.string().min(1).max(256)).min(1, 'at least one audience').max(16, 'at most 16 audiences'),
  /** mwi's own: the JWS algorithm (ES256 by default; RS256 for a consumer that takes only RSA). */
  algorithm: z.enum(JWT_ALGORITHMS).default('ES256'),
};

export type X509OutputConfig = ConfigOf<typeof x509Fields> & Lifetime;
export type JwtOutputConfig = ConfigOf<typeof jwtFields> & Lifetime;

const describeSelector = (s: Selector): string =>
  s.name !== undefined ? `name ${s.name}` : `labels ${JSON.stringify(s.labels)}`;

/**
 * A refusal of the SVID itself (not granted, rules not matched) is a configuration problem of this
 * output: the output keeps retrying and shows it on /readyz, the bot's other outputs go on. A bot
 * refused for good is stopped by its identity renewal, which is refused too.
 */
function asOutputProblem(err: unknown, s: Selector): unknown {
  if (!isMwiError(err, 'ACCESS_DENIED')) return err;
  return new MwiError('BAD_CONFIG', `${err.message} (selector ${describeSelector(s)})`, { cause: err });
}

/** Logs an output's warnings when they differ from the last write's (each write returns them for /readyz). */
function warnOnChange(log: Logger, name: () => string): (warnings: string[]) => string[] {
  let last = '';
  return (warnings) => {
    if (warnings.join('\n') !== last) for (const w of warnings) log.warn(w, { output: name() });
    last = warnings.join('\n');
    return warnings;
  };
}

/** Renders the files of an X.509-SVID output: the leaf, its key (PKCS#8, 0600) and the trust bundle. */
export function renderX509SvidFiles(keyPkcs8: string, res: X509SvidResponse): OutputFile[] {
  const svid = res.svids[0]!;
  const key = createPrivateKey(keyPkcs8).export({ type: 'pkcs8', format: 'pem' }).toString();
  return [
    { name: X509_SVID_FILES.svid, data: svid.cert_pem, mode: 0o644 },
    { name: X509_SVID_FILES.key, data: key, mode: 0o600 },
    { name: X509_SVID_FILES.bundle, data: res.bundle.x509_authorities_pem.join(''), mode: 0o644 },
  ];
}

/** What both SVID outputs share: their name, their warnings, their request for SVIDs. */
abstract class SvidOutput<Cfg extends X509OutputConfig | JwtOutputConfig> {
  protected readonly warn: (warnings: string[]) => string[];

  constructor(
    readonly cfg: Cfg,
    protected readonly dest: Destination,
    private readonly botIdentity: BotIdentity,
    protected readonly log: Logger,
    private readonly type: string,
  ) {
    this.warn = warnOnChange(log, () => this.name);
  }

  get name(): string {
    return this.cfg.name ?? `${this.type} (${this.dest.description})`;
  }

  /** Asks for the selector's SVIDs with the output's TTL; a refusal of the SVID is this output's problem. */
  protected async request<T>(path: string, body: Record<string, unknown>): Promise<T> {
    try {
      return await this.botIdentity.call<T>(path, {
        selector: this.cfg.selector,
        ...body,
        ttl: `${Math.round(this.cfg.credentialTtlMs / 1000)}s`,
      });
    } catch (err) {
      throw asOutputProblem(err, this.cfg.selector);
    }
  }
}

/** Writes the `workload-identity-x509` output from a key made here (kept a day, as the identity output's). */
export class X509SvidOutput extends SvidOutput<X509OutputConfig> {
  private key: { pair: PemKeyPair; created: number } | undefined;

  constructor(cfg: X509OutputConfig, dest: Destination, botIdentity: BotIdentity, log: Logger) {
    super(cfg, dest, botIdentity, log, 'workload-identity-x509');
  }

  async generate(): Promise<string[]> {
    if (!this.key || Date.now() - this.key.created >= OUTPUT_KEY_LIFETIME_MS)
      this.key = { pair: await generateKeys('ec-p256'), created: Date.now() };
    const res = await this.request<X509SvidResponse>(WORKLOAD_PATHS.x509, { public_key: this.key.pair.publicKeyPem });
    await this.dest.writeAll(renderX509SvidFiles(this.key.pair.privateKeyPem, res));
    const svid = res.svids[0]!;
    this.log.info('wrote output', {
      output: this.name,
      spiffe_id: svid.spiffe_id,
      expires: svid.expires_at,
      bundle_revision: res.bundle.revision,
    });
    return this.warn(extraSvidsWarning(res.svids));
  }
}

/**
 * A labels selector may match several identities; a file output holds one SVID: the first by name.
 * The others are named in a warning (/readyz), so that a too-wide selector is seen.
 */
function extraSvidsWarning(svids: ReadonlyArray<{ name: string; spiffe_id: string }>): string[] {
  if (svids.length <= 1) return [];
  return [
    `the selector matches ${svids.length} workload identities; this output writes the first (${svids[0]!.name}) ` +
      `and not ${svids
        .slice(1)
        .map((s) => s.name)
        .join(', ')}: select one by name, or narrow the labels`,
  ];
}

/** Writes the `workload-identity-jwt` output: a JWT-SVID for the audiences (0600: it is a bearer credential). */
export class JwtSvidOutput extends SvidOutput<JwtOutputConfig> {
  constructor(cfg: JwtOutputConfig, dest: Destination, botIdentity: BotIdentity, log: Logger) {
    super(cfg, dest, botIdentity, log, 'workload-identity-jwt');
  }

  async generate(): Promise<string[]> {
    const res = await this.request<JwtSvidResponse>(WORKLOAD_PATHS.jwt, {
      audiences: this.cfg.audiences,
      algorithm: this.cfg.algorithm,
    });
    const svid = res.svids[0]!;
    await this.dest.writeAll([{ name: JWT_SVID_FILE, data: svid.token, mode: 0o600 }]);
    this.log.info('wrote output', { output: this.name, spiffe_id: svid.spiffe_id, expires: svid.expires_at });
    return this.warn(extraSvidsWarning(res.svids));
  }
}

/** `type: workload-identity-x509`, Teleport's: an X.509-SVID, its key and the trust bundle, renewed. */
export const workloadIdentityX509Output: ServiceType<typeof x509Fields, X509OutputConfig> = {
  type: 'workload-identity-x509',
  fields: x509Fields,
  resolve(raw, ctx) {
    if (raw.include_federated_trust_bundles)
      throw new MwiError(
        'BAD_CONFIG',
        'mwi does not federate with other trust domains yet, so there are no federated bundles to write: remove it',
        { field: `${ctx.where}.include_federated_trust_bundles` },
      );
    return { ...raw, ...resolveLifetime(raw, ctx.bot, ctx.where, ctx.oneshot) };
  },
  build(cfg, deps, name) {
    const output = new X509SvidOutput(cfg, deps.openDestination(cfg.destination), deps.botIdentity, deps.log);
    return outputService(name, deps, { label: `output ${output.name}`, cfg, generate: () => output.generate() });
  },
};

/** `type: workload-identity-jwt`, Teleport's: a JWT-SVID for `audiences`, renewed. */
export const workloadIdentityJwtOutput: ServiceType<typeof jwtFields, JwtOutputConfig> = {
  type: 'workload-identity-jwt',
  fields: jwtFields,
  resolve(raw, ctx) {
    return { ...raw, ...resolveLifetime(raw, ctx.bot, ctx.where, ctx.oneshot) };
  },
  build(cfg, deps, name) {
    const output = new JwtSvidOutput(cfg, deps.openDestination(cfg.destination), deps.botIdentity, deps.log);
    return outputService(name, deps, { label: `output ${output.name}`, cfg, generate: () => output.generate() });
  },
};

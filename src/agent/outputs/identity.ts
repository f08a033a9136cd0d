import { createPrivateKey, createPublicKey } from 'node:crypto';
import { z } from 'zod';
import { PATHS, type CertsResponse } from '../../api/wire.js';
import { generateKeys, type PemKeyPair } from '../../crypto/keys.js';
import { sshAuthorizedKey } from '../../crypto/ssh.js';
import { MwiError } from '../../errors.js';
import type { Logger } from '../../util/log.js';
import type { BotIdentity } from '../bot-identity.js';
import type { Destination, OutputFile } from '../destinations/destination.js';
import { destinationSchema } from '../destinations/index.js';
import { lifetimeFields, resolveLifetime, type Lifetime } from '../lifetime.js';
import type { ConfigOf } from '../registry.js';
import type { ServiceType } from '../service.js';
import { outputService } from './output.js';

/** File names of the `identity` output: Teleport's, so existing tooling finds them. */
export const IDENTITY_FILES = [
  'identity',
  'key',
  'key.pub',
  'key-cert.pub',
  'tlscert',
  'tlscacerts',
  'sshcacerts',
  'known_hosts',
  'ssh_config',
] as const;

/**
 * Renders the identity output's files from one key and its certificates. `ssh_config` and
 * `known_hosts` only with `sshConfig` (Teleport writes them when ssh_config is on and the
 * destination is a directory: the config names files by their paths on disk).
 */
export function renderIdentityFiles(
  keyPkcs8: string,
  certs: CertsResponse,
  pathOf: (name: string) => string,
  sshConfig = true,
): OutputFile[] {
  const priv = createPrivateKey(keyPkcs8);
  // SEC1 ("EC PRIVATE KEY") is the PEM form every OpenSSH, OpenSSL and curl build reads
  const keyPem = priv.export({ type: 'sec1', format: 'pem' }).toString();
  const pub = createPublicKey(priv);
  const tlsCAs = certs.tls_ca_certs.join('');
  const knownHosts = certs.ssh_host_ca_keys.map((k) => `@cert-authority * ${k}\n`).join('');
  const q = (p: string): string => `"${p.replace(/"/g, '\\"')}"`;
  const config = [
    `# ssh configuration for bot credentials of cluster ${certs.cluster_name}, written by tbot`,
    `# use: ssh -F ${pathOf('ssh_config')} USER@HOST`,
    'Host *',
    `    IdentityFile ${q(pathOf('key'))}`,
    `    CertificateFile ${q(pathOf('key-cert.pub'))}`,
    `    UserKnownHostsFile ${q(pathOf('known_hosts'))}`,
    '    GlobalKnownHostsFile /dev/null',
    '    IdentitiesOnly yes',
    '    StrictHostKeyChecking yes',
    '    HostKeyAlgorithms ssh-ed25519-cert-v01@openssh.com,ecdsa-sha2-nistp256-cert-v01@openssh.com,' +
      'rsa-sha2-512-cert-v01@openssh.com,rsa-sha2-256-cert-v01@openssh.com',
    '',
  ].join('\n');
  const files: OutputFile[] = [
    // tctl-style identity file: key, SSH certificate, TLS certificate, then CAs
    { name: 'identity', data: `${keyPem}${certs.ssh_cert}\n${certs.tls_cert}${tlsCAs}${knownHosts}`, mode: 0o600 },
    { name: 'key', data: keyPem, mode: 0o600 },
    { name: 'key.pub', data: `${sshAuthorizedKey(pub)}\n`, mode: 0o644 },
    { name: 'key-cert.pub', data: `${certs.ssh_cert}\n`, mode: 0o644 },
    { name: 'tlscert', data: certs.tls_cert, mode: 0o644 },
    { name: 'tlscacerts', data: tlsCAs, mode: 0o644 },
    { name: 'sshcacerts', data: certs.ssh_user_ca_keys.map((k) => `cert-authority ${k}\n`).join(''), mode: 0o644 },
    { name: 'known_hosts', data: knownHosts, mode: 0o644 },
    { name: 'ssh_config', data: config, mode: 0o644 },
  ];
  return sshConfig ? files : files.filter((f) => f.name !== 'known_hosts' && f.name !== 'ssh_config');
}

/**
 * How long an output keeps its key across renewals. Certificates renew on every interval; the
 * key only this often, because a program that opens `key` and `key-cert.pub` separately (ssh
 * does) would otherwise pair one renewal's key with the next one's certificate mid-swap.
 */
export const OUTPUT_KEY_LIFETIME_MS = 24 * 3600 * 1000;

const fields = {
  name: z.string().min(1).optional(),
  destination: destinationSchema,
  ...lifetimeFields,
  /** Teleport: write ssh_config and known_hosts (directory destinations only). */
  ssh_config: z.enum(['on', 'off'], { errorMap: () => ({ message: 'expected "on" or "off"' }) }).default('on'),
  /** Teleport: the output's certificates may be reissued (tsh); mwi reissues nothing: accepted, no effect. */
  allow_reissue: z.boolean().default(false),
  /** Teleport: which cluster (of a trusted-cluster setup) to write for; mwi has one: its own name only. */
  cluster: z.string().min(1).optional(),
  /** Teleport v19 refuses a non-empty list; kept so that the key gets that explanation, not "unknown key". */
  roles: z.array(z.string()).optional(),
};

/** A validated `identity` output. */
export type IdentityOutputConfig = ConfigOf<typeof fields> & Lifetime;

/** Writes the `identity` output: SSH and TLS credentials for workloads, from a key made here. */
export class IdentityOutput {
  private key: { pair: PemKeyPair; created: number } | undefined;
  /** The warnings of the last write, so that the log repeats one only when it changes. */
  private warned = '';

  constructor(
    readonly cfg: IdentityOutputConfig,
    private readonly dest: Destination,
    private readonly botIdentity: BotIdentity,
    private readonly log: Logger,
  ) {}

  get name(): string {
    return this.cfg.name ?? `identity (${this.dest.description})`;
  }

  async generate(): Promise<string[]> {
    if (!this.key || Date.now() - this.key.created >= OUTPUT_KEY_LIFETIME_MS) {
      this.key = { pair: await generateKeys('ec-p256'), created: Date.now() };
    }
    const keys = this.key.pair;
    const certs = await this.botIdentity.call<CertsResponse>(PATHS.certs, {
      public_key: keys.publicKeyPem,
      ttl_seconds: Math.round(this.cfg.credentialTtlMs / 1000),
    });
    const onDisk = this.dest.pathOf?.bind(this.dest);
    const pathOf = onDisk ?? ((n: string) => n);
    const sshConfig = this.cfg.ssh_config === 'on' && onDisk !== undefined;
    await this.dest.writeAll(renderIdentityFiles(keys.privateKeyPem, certs, pathOf, sshConfig));
    this.log.info('wrote output', {
      output: this.name,
      logins: certs.logins.join(',') || '(none)',
      expires: certs.expires,
    });
    const warnings = certs.logins.length === 0 ? [noLoginsWarning(this.botIdentity.current?.bot_name)] : [];
    if (warnings.join('\n') !== this.warned) for (const w of warnings) this.log.warn(w, { output: this.name });
    this.warned = warnings.join('\n');
    return warnings;
  }
}

/**
 * A bot without logins gets an SSH certificate whose one principal is a placeholder no account
 * has (never an empty list, which sshd would accept for any user: docs/security.md): it works,
 * and logs in nowhere. Said at tbot's start and on /readyz, because nothing else fails.
 */
export function noLoginsWarning(bot = 'NAME'): string {
  return (
    "the bot's roles grant no SSH logins: the SSH certificate can log in nowhere (its one principal is a " +
    `placeholder no account has); add logins to one of its roles (allow.logins), or give the bot logins ` +
    `for a role that uses {{internal.logins}}: tctl bots update ${bot} --add-logins LOGIN`
  );
}

/** `type: identity`, Teleport's output type: the files above, on the output's lifetime. */
export const identityOutput: ServiceType<typeof fields, IdentityOutputConfig> = {
  type: 'identity',
  fields,
  resolve(raw, ctx) {
    if (raw.roles?.length) {
      throw new MwiError(
        'BAD_CONFIG',
        'not supported (as in Teleport v19, which refuses it too): outputs and services use all of the ' +
          "bot's roles; remove roles, and give the bot only the roles its outputs need",
        { field: `${ctx.where}.roles` },
      );
    }
    return { ...raw, ...resolveLifetime(raw, ctx.bot, ctx.where, ctx.oneshot) };
  },
  async checkCluster(cfg, ctx) {
    if (cfg.cluster === undefined) return;
    const clusterName = await ctx.clusterName();
    if (cfg.cluster === clusterName) return;
    throw new MwiError(
      'BAD_CONFIG',
      `"${cfg.cluster}" is not this bot's cluster "${clusterName}": mwi has no trusted clusters (Teleport's ` +
        `cluster: chooses a leaf cluster), so an output writes for the cluster the bot joined; remove cluster ` +
        `or set it to "${clusterName}"`,
      { field: `${ctx.where}.cluster` },
    );
  },
  build(cfg, deps, name) {
    const output = new IdentityOutput(cfg, deps.openDestination(cfg.destination), deps.botIdentity, deps.log);
    return outputService(name, deps, { label: `output ${output.name}`, cfg, generate: () => output.generate() });
  },
};

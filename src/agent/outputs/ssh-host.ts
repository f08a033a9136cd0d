import { createPrivateKey } from 'node:crypto';
import { z } from 'zod';
import { hostPrincipalShapeProblem, MAX_HOST_PRINCIPALS } from '../../api/host-cert-rules.js';
import { PATHS, type HostCertResponse, type HostCertRequest } from '../../api/wire.js';
import { generateKeys, type PemKeyPair } from '../../crypto/keys.js';
import { MwiError } from '../../errors.js';
import type { Logger } from '../../util/log.js';
import type { BotIdentity } from '../bot-identity.js';
import type { Destination, OutputFile } from '../destinations/destination.js';
import { destinationSchema } from '../destinations/index.js';
import { lifetimeFields, resolveLifetime, type Lifetime } from '../lifetime.js';
import type { ConfigOf } from '../registry.js';
import type { ServiceType } from '../service.js';
import { OUTPUT_KEY_LIFETIME_MS } from './identity.js';
import { outputService } from './output.js';

/** File names of the `ssh_host` output: Teleport's (sshd_config's HostKey, HostCertificate, TrustedUserCAKeys). */
export const SSH_HOST_FILES = ['ssh_host', 'ssh_host-cert.pub', 'ssh_host-user-ca.pub'] as const;

const principal = z.string().superRefine((p, ctx) => {
  const problem = hostPrincipalShapeProblem(p);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** Teleport v19 refuses per-output roles; the same words as the identity output's. */
export function refuseOutputRoles(roles: string[] | undefined, where: string): void {
  if (roles?.length)
    throw new MwiError(
      'BAD_CONFIG',
      'not supported (as in Teleport v19, which refuses it too): outputs and services use all of the ' +
        "bot's roles; remove roles, and give the bot only the roles its outputs need",
      { field: `${where}.roles` },
    );
}

const fields = {
  name: z.string().min(1).optional(),
  destination: destinationSchema,
  ...lifetimeFields,
  /** Host names or addresses the certificate names; the bot's roles must allow them (a host_cert rule). */
  principals: z
    .array(principal)
    .min(1, 'at least one principal (a host name or address the certificate names)')
    .max(MAX_HOST_PRINCIPALS, `at most ${MAX_HOST_PRINCIPALS} principals`),
  /**
   * Teleport: which CA's keys ssh_host-user-ca.pub holds, `user` or `openssh` (its separate
   * OpenSSH user CA). mwi has one SSH user CA, which both name.
   */
  ca_type: z.enum(['user', 'openssh'], { errorMap: () => ({ message: 'expected "user" or "openssh"' }) }).optional(),
  roles: z.array(z.string()).optional(),
};

/** A validated `ssh_host` output. */
export type SshHostOutputConfig = ConfigOf<typeof fields> & Lifetime;

/** The files of the output: the host key (OpenSSH reads SEC1 PEM), its certificate, the user CA. */
export function renderSshHostFiles(keyPkcs8: string, res: HostCertResponse): OutputFile[] {
  const keyPem = createPrivateKey(keyPkcs8).export({ type: 'sec1', format: 'pem' }).toString();
  return [
    { name: 'ssh_host', data: keyPem, mode: 0o600 },
    { name: 'ssh_host-cert.pub', data: `${res.ssh_cert}\n`, mode: 0o644 },
    // TrustedUserCAKeys lines: the key alone, no `cert-authority` (Teleport's form)
    { name: 'ssh_host-user-ca.pub', data: res.ssh_user_ca_keys.map((k) => `${k}\n`).join(''), mode: 0o644 },
  ];
}

/** Writes the `ssh_host` output: a host key made here and its certificate from the SSH host CA. */
export class SshHostOutput {
  private key: { pair: PemKeyPair; created: number } | undefined;

  constructor(
    readonly cfg: SshHostOutputConfig,
    private readonly dest: Destination,
    private readonly botIdentity: BotIdentity,
    private readonly log: Logger,
  ) {}

  get name(): string {
    return this.cfg.name ?? `ssh_host (${this.dest.description})`;
  }

  async generate(): Promise<void> {
    // kept across renewals as the identity output's key: sshd reads the key and the certificate
    // as two files, and must not pair one renewal's key with the next one's certificate
    if (!this.key || Date.now() - this.key.created >= OUTPUT_KEY_LIFETIME_MS) {
      this.key = { pair: await generateKeys('ec-p256'), created: Date.now() };
    }
    const req: HostCertRequest = {
      public_key: this.key.pair.publicKeyPem,
      principals: this.cfg.principals,
      ttl_seconds: Math.round(this.cfg.credentialTtlMs / 1000),
    };
    const res = await this.botIdentity.call<HostCertResponse>(PATHS.hostCert, req);
    await this.dest.writeAll(renderSshHostFiles(this.key.pair.privateKeyPem, res));
    this.log.info('wrote output', { output: this.name, principals: res.principals.join(','), expires: res.expires });
  }
}

/** `type: ssh_host`, Teleport's output type: a host certificate for sshd, renewed on the output's lifetime. */
export const sshHostOutput: ServiceType<typeof fields, SshHostOutputConfig> = {
  type: 'ssh_host',
  fields,
  resolve(raw, ctx) {
    refuseOutputRoles(raw.roles, ctx.where);
    return { ...raw, ...resolveLifetime(raw, ctx.bot, ctx.where, ctx.oneshot) };
  },
  build(cfg, deps, name) {
    const output = new SshHostOutput(cfg, deps.openDestination(cfg.destination), deps.botIdentity, deps.log);
    return outputService(name, deps, { label: `output ${output.name}`, cfg, generate: () => output.generate() });
  },
};

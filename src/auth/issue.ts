import type { ClientKey } from '../crypto/keys.js';
import type { CertsResponse, BotCredentialResponse } from '../api/wire.js';
import { nologinPrincipal, sshBlobOfClientKey, signSshCertificate } from '../crypto/ssh.js';
import { BACKDATE_MS, issueCertificate } from '../crypto/x509.js';
import type { BotAccess } from './access.js';
import type { Claims } from './claims.js';
import type { AuthContext } from './context.js';
import { sshExtensions } from './ssh-permissions.js';

/** CA certificates a client needs: the host CA (to trust the Auth Service) and the user CA. */
export function caBundle(ctx: AuthContext): string[] {
  return [ctx.cas.tlsHost.certPem, ctx.cas.tlsUser.certPem];
}

/**
 * The OpenSSH key ID of a bot's certificates: names the bot and the instance, so sshd's log
 * ("Accepted publickey ... ID bot-robot/<instance> (serial N)") says which instance logged in.
 * "/" cannot occur in a bot name, so the two parts are unambiguous.
 */
function sshKeyId(botName: string, instanceId: string): string {
  return `bot-${botName}/${instanceId}`;
}

/** A bot identity and the serial of its X.509 certificate (hex), for the audit event. */
export interface IssuedIdentity {
  identity: BotCredentialResponse;
  tlsSerial: string;
}

/** Signs tbot's internal, renewable identity for its key; also returns the certificate serial. */
export async function signBotIdentity(
  ctx: AuthContext,
  botName: string,
  instanceId: string,
  generation: number,
  publicKey: ClientKey,
  ttlMs: number,
): Promise<IssuedIdentity> {
  const claims: Claims = { kind: 'bot', bot: botName, instance: instanceId, generation };
  const { certPem, notAfter, serial } = await issueCertificate({
    ca: ctx.cas.tlsUser,
    publicKey: publicKey.spki,
    commonName: `bot-${botName}`,
    organization: ['mwi-bot'],
    ttlMs,
    usage: 'client',
    identity: claims,
    now: ctx.now(),
  });
  const identity: BotCredentialResponse = {
    cluster_name: ctx.cas.clusterName,
    bot_name: botName,
    instance_id: instanceId,
    generation,
    tls_cert: certPem,
    tls_ca_certs: caBundle(ctx),
    expires: notAfter.toISOString(),
    renewable: true,
  };
  return { identity, tlsSerial: serial };
}

/** An output's credentials and their serials (X.509: hex; SSH: decimal), for the audit event. */
export interface IssuedOutputCerts {
  certs: CertsResponse;
  tlsSerial: string;
  sshSerial: string;
  /** The SSH certificate's principals: the bot's logins, or the one nologin placeholder. */
  sshPrincipals: string[];
}

/**
 * Signs an output's credentials (X.509 + OpenSSH user certificate) for one key. The SSH
 * certificate's principals are the bot's logins; with none, a placeholder no account can have
 * (finding 2: an empty list means "any user" to OpenSSH). Its extensions follow the roles'
 * options (sshExtensions), worked out only here: a renewal needs the roles' TTL, not their SSH options.
 */
export async function signOutputCerts(
  ctx: AuthContext,
  access: BotAccess,
  instanceId: string,
  publicKey: ClientKey,
  ttlMs: number,
): Promise<IssuedOutputCerts> {
  const botName = access.bot.metadata.name;
  const now = ctx.now();
  const claims: Claims = { kind: 'output', bot: botName, instance: instanceId };
  const principals = access.logins.length > 0 ? access.logins : [nologinPrincipal()];
  // both signatures run on the thread pool at once
  const [tls, ssh] = await Promise.all([
    issueCertificate({
      ca: ctx.cas.tlsUser,
      publicKey: publicKey.spki,
      commonName: `bot-${botName}`,
      organization: access.bot.spec.roles,
      ttlMs,
      usage: 'client',
      identity: claims,
      now,
    }),
    signSshCertificate({
      caKey: ctx.cas.sshUser.key,
      caBlob: ctx.cas.sshUser.blob,
      subjectBlob: sshBlobOfClientKey(publicKey),
      certType: 'user',
      keyId: sshKeyId(botName, instanceId),
      principals,
      validAfter: new Date(now - BACKDATE_MS),
      validBefore: new Date(now + ttlMs),
      extensions: sshExtensions(access.roles),
    }),
  ]);
  const certs: CertsResponse = {
    tls_cert: tls.certPem,
    tls_ca_certs: caBundle(ctx),
    ssh_cert: ssh.cert,
    ssh_user_ca_keys: [ctx.cas.sshUser.publicLine],
    ssh_host_ca_keys: [ctx.cas.sshHost.publicLine],
    logins: access.logins,
    expires: tls.notAfter.toISOString(),
    cluster_name: ctx.cas.clusterName,
  };
  return { certs, tlsSerial: tls.serial, sshSerial: ssh.serial, sshPrincipals: principals };
}

import type { ClientKey } from '../crypto/keys.js';
import type { CertsResponse, IdentityResponse } from '../api/wire.js';
import { DEFAULT_USER_EXTENSIONS, sshBlobOfClientKey, signSshCertificate } from '../crypto/ssh.js';
import { BACKDATE_MS, issueCertificate } from '../crypto/x509.js';
import type { BotAccess } from './access.js';
import type { Claims } from './claims.js';
import type { AuthContext } from './context.js';

/** CA certificates a client needs: the host CA (to trust the Auth Service) and the user CA. */
export function caBundle(ctx: AuthContext): string[] {
  return [ctx.cas.tlsHost.certPem, ctx.cas.tlsUser.certPem];
}

/** Signs tbot's internal, renewable identity for its key. */
export async function issueBotIdentity(
  ctx: AuthContext,
  botName: string,
  instanceId: string,
  generation: number,
  publicKey: ClientKey,
  ttlMs: number,
): Promise<IdentityResponse> {
  const claims: Claims = { kind: 'bot', bot: botName, instance: instanceId, generation };
  const { certPem, notAfter } = await issueCertificate({
    ca: ctx.cas.tlsUser,
    publicKey: publicKey.spki,
    commonName: `bot-${botName}`,
    organization: ['mwi-bot'],
    ttlMs,
    usage: 'client',
    identity: claims,
    now: ctx.now(),
  });
  return {
    cluster_name: ctx.cas.clusterName,
    bot_name: botName,
    instance_id: instanceId,
    generation,
    tls_cert: certPem,
    tls_ca_certs: caBundle(ctx),
    expires: notAfter.toISOString(),
    renewable: true,
  };
}

/** Signs an output's credentials (X.509 + OpenSSH user certificate) for one key. */
export async function issueOutputCerts(ctx: AuthContext, access: BotAccess, instanceId: string, publicKey: ClientKey, ttlMs: number): Promise<CertsResponse> {
  const botName = access.bot.metadata.name;
  const now = ctx.now();
  const claims: Claims = { kind: 'output', bot: botName, instance: instanceId };
  // both signatures run on the thread pool at once
  const [tls, sshCert] = await Promise.all([
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
      keyId: `bot-${botName}`,
      principals: access.logins,
      validAfter: new Date(now - BACKDATE_MS),
      validBefore: new Date(now + ttlMs),
      extensions: DEFAULT_USER_EXTENSIONS,
    }),
  ]);
  return {
    tls_cert: tls.certPem,
    tls_ca_certs: caBundle(ctx),
    ssh_cert: sshCert,
    ssh_user_ca_keys: [ctx.cas.sshUser.publicLine],
    ssh_host_ca_keys: [ctx.cas.sshHost.publicLine],
    logins: access.logins,
    expires: tls.notAfter.toISOString(),
    cluster_name: ctx.cas.clusterName,
  };
}

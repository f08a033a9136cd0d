import type { BotIdentity } from '../bot-identity.js';
import type { Bundle, JwtRequest, JwtSvid, WorkloadIssuer, X509Request, X509Svid } from './issuer.js';

/** The wire contract's paths (the Auth Service's workload-identity routes). */
export const WORKLOAD_PATHS = {
  x509: '/v1/workload-identity/x509',
  jwt: '/v1/workload-identity/jwt',
  bundle: '/v1/workload-identity/bundle',
} as const;

/** Issues SVIDs with the bot's identity, serialized with its renewals (BotIdentity.withClient). */
export function botIssuer(botIdentity: BotIdentity): WorkloadIssuer {
  return {
    ready: () => botIdentity.current !== undefined,
    issueX509Svids: (req: X509Request) =>
      botIdentity.withClient((c) => c.call<{ svids: X509Svid[]; bundle: Bundle }>('POST', WORKLOAD_PATHS.x509, req)),
    issueJwtSvids: (req: JwtRequest) =>
      botIdentity.withClient((c) => c.call<{ svids: JwtSvid[] }>('POST', WORKLOAD_PATHS.jwt, req)),
    workloadBundle: () => botIdentity.withClient((c) => c.call<Bundle>('GET', WORKLOAD_PATHS.bundle)),
  };
}

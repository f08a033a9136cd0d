import type { BotIdentity } from '../bot-identity.js';
import type { WorkloadIssuer } from './issuer.js';

/** Issues SVIDs with the bot's identity, serialized with its renewals (BotIdentity.withClient). */
export function botIssuer(botIdentity: BotIdentity): WorkloadIssuer {
  return {
    ready: () => botIdentity.current !== undefined,
    issueX509Svids: (req) => botIdentity.withClient((c) => c.issueX509Svids(req)),
    issueJwtSvids: (req) => botIdentity.withClient((c) => c.issueJwtSvids(req)),
    workloadBundle: () => botIdentity.withClient((c) => c.workloadBundle()),
  };
}

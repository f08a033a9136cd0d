// The resource schemas and types moved to src/api/resources.ts (tctl reads them too); this
// re-export keeps the imports of files being changed elsewhere working until they are updated.
export {
  botSchema,
  KINDS,
  lockSchema,
  LOGIN_PATTERN,
  parseKind,
  RESOURCE_NAME,
  roleSchema,
  tokenSchema,
  validateResource,
  type Bot,
  type BotInstance,
  type Kind,
  type Lock,
  type Role,
  type Token,
} from '../api/resources.js';
import type { Token } from '../api/resources.js';

/** Stored form of a token: the name of a `token`-method token is replaced by a hash. */
export interface StoredToken extends Token {
  /** sha256 hex of the secret, for `token`-method tokens only. */
  secret_hash?: string;
}

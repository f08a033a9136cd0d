import { MwiError } from '../errors.js';
import type { Destination } from './destinations/destination.js';

/**
 * The certificate set the bot identity holds now (its "internal identity" in Teleport's words):
 * the renewable TLS certificate, its key and CAs, and what they were issued for.
 */
export interface BotCredential {
  cluster_name: string;
  bot_name: string;
  instance_id: string;
  generation: number;
  renewable: boolean;
  expires: string;
  join_method: string;
  /** sha256 of the join token this credential came from: a changed token means join again. */
  join_token_hash: string;
  tls_cert: string;
  key: string;
  tls_ca_certs: string[];
}

/**
 * The key of a join or renewal whose answer is not stored yet. It is written before the request
 * is sent and removed in the same write that stores the answer, so a tbot that lost the answer
 * (a crash, a dropped connection) asks again with the same key: the Auth Service accepts a
 * repeated renewal only for the key it already certified (anything else is a copy).
 */
export interface PendingKey {
  private_key: string;
  public_key: string;
}

/** Everything tbot keeps in its storage: one file, written atomically, 0600. */
export interface BotState {
  version: 2;
  /** The current credential (the state file's key for it has always been `identity`). */
  identity?: BotCredential;
  pending?: PendingKey;
  /** Join-method state (bound keypair: keyring and join state document). */
  methods: Record<string, Record<string, unknown>>;
}

export const STATE_FILE = 'state.json';

/** Reads tbot's storage state (also used by `tbot keypair create`). */
export async function readState(storage: Destination): Promise<BotState> {
  const text = await storage.read(STATE_FILE);
  if (!text) return { version: 2, methods: {} };
  try {
    const s = JSON.parse(text) as BotState;
    const credential = s.identity ? { identity: s.identity } : {};
    return { version: 2, methods: s.methods ?? {}, ...credential, ...(s.pending ? { pending: s.pending } : {}) };
  } catch (cause) {
    const message = `tbot storage (${storage.description}) holds an unreadable ${STATE_FILE}`;
    throw new MwiError('BAD_CONFIG', message, { field: 'storage', cause });
  }
}

export async function writeState(storage: Destination, state: BotState): Promise<void> {
  await storage.writeAll([{ name: STATE_FILE, data: JSON.stringify(state, null, 2), mode: 0o600 }]);
}

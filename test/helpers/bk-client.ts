import type { Claims } from '../../src/auth/claims.js';
import { handleChallenge, handleJoin } from '../../src/auth/join.js';
import type { BotCredentialResponse } from '../../src/api/wire.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { boundKeypairClient, type BoundKeypairState } from '../../src/join/bound_keypair/client.js';
import type { ClientJoinContext } from '../../src/join/client-types.js';
import type { testContext } from './auth-context.js';

type T = Awaited<ReturnType<typeof testContext>>;

export { claimsOf } from './auth-context.js';

/**
 * tbot's real bound-keypair client half talking to the real server handlers, in process: the
 * keyring and join state live in `state`, as in tbot's storage.
 */
export function bkClient(t: T, token: string, options: Record<string, unknown> = {}, remoteAddr = '-') {
  let state: BoundKeypairState = {};
  const ctx: ClientJoinContext = {
    token,
    options,
    state: { read: () => state as Record<string, unknown>, write: async (s) => void (state = s as BoundKeypairState) },
    clusterName: async () => 'unit',
    challenge: (payload) => handleChallenge(t.ctx, { token, join_method: 'bound_keypair', payload }, remoteAddr),
    log: { info: () => {}, warn: () => {} },
  };
  /** The join request itself; `pub` is the TLS key to certify (a retry repeats tbot's pending key). */
  const send = async (pub: string | undefined, caller?: Claims): Promise<BotCredentialResponse> => {
    const payload = await boundKeypairClient.payload(ctx);
    pub ??= (await generateKeys('ec-p256')).publicKeyPem;
    return handleJoin(
      t.ctx,
      { token, join_method: 'bound_keypair', public_key: pub, ttl_seconds: 60, payload },
      remoteAddr,
      caller,
    );
  };
  return {
    ctx,
    get state() {
      return state;
    },
    set state(s: BoundKeypairState) {
      state = s;
    },
    /** A join whose answer tbot stores (afterJoin runs). */
    async join(caller?: Claims, pub?: string) {
      const res = await send(pub, caller);
      await boundKeypairClient.afterJoin!(ctx, res.method_data);
      return res;
    },
    /** A join whose answer never arrives (tbot killed): the server committed it, tbot stored nothing. */
    lostJoin: (pub: string) => send(pub),
  };
}

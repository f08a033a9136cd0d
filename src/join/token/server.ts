import { timingSafeEqual } from 'node:crypto';
import { sha256Hex } from '../../crypto/keys.js';
import { JoinRefusal, type JoinHandler, type JoinVerdict, type ServerJoinMethod } from '../types.js';

const handler: JoinHandler = {
  async verify(ctx): Promise<JoinVerdict> {
    const expected = ctx.token.secretHash;
    if (!expected) throw new JoinRefusal('token has no secret hash');
    const got = Buffer.from(sha256Hex(ctx.request.token), 'hex');
    // constant-time: the lookup key is only a prefix of the hash
    if (!timingSafeEqual(got, Buffer.from(expected, 'hex'))) throw new JoinRefusal('token secret does not match');
    // single-use: the conditional write that creates the instance also deletes the token
    return { consumesToken: true };
  },
};

/** Static single-use join token: the secret must hash to the stored hash, and is consumed once. */
export const tokenServer: ServerJoinMethod = { name: 'token', create: () => handler };

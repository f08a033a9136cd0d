import { JoinRefusal, type JoinRecord, type JoinVerdict, type ServerJoinContext } from '../types.js';
import type { InstanceIdentity } from './document.js';

/** Most tokens an EC2 instance's index lists (each token joins it once at a time). */
const MAX_INDEXED_TOKENS = 100;

/** The record of one token's join of one EC2 instance: `ACCOUNT-INSTANCE@TOKEN` (the token id URL-encoded). */
export function recordId(tokenId: string, id: InstanceIdentity): string {
  return `${id.accountId}-${id.instanceId}@${encodeURIComponent(tokenId)}`;
}

/** The record written before records were per token: `ACCOUNT-INSTANCE`, for every token. */
export function legacyRecordId(id: InstanceIdentity): string {
  return `${id.accountId}-${id.instanceId}`;
}

/** The tokens an EC2 instance has joined through (for the operator's warning): `ACCOUNT-INSTANCE+tokens`. */
export function indexRecordId(id: InstanceIdentity): string {
  return `${id.accountId}-${id.instanceId}+tokens`;
}

function refuseHeld(key: string, held: { instanceId: string; botName: string }, scope: string): never {
  throw new JoinRefusal(
    `EC2 instance ${key} already joined ${scope} as bot instance ${held.instanceId} of bot ${held.botName}, ` +
      'which is still valid (lock or end it to let the EC2 instance join again)',
    'the join was refused: this EC2 instance has already joined, and its bot instance is still valid; an ' +
      'administrator releases it by locking that bot instance (tctl locks add --bot-instance ID)',
  );
}

/**
 * Trust on first use, per token: an EC2 instance joins once through each token. The record
 * (`ACCOUNT-INSTANCE@TOKEN`) is written with the bot instance it creates; a later join of the same
 * EC2 instance through the same token is refused while that bot instance can still be used, so a
 * copied document cannot join a second time. A join through another token is not blocked by it
 * (whoever can read the instance's IMDS must not lock the intended bot out by spending the join
 * through some other ec2 token), but is reported: the verdict carries a warning event naming the
 * other tokens. A record from before this rule (`ACCOUNT-INSTANCE`) keeps blocking the token it
 * names, or every token if it names none (all such records), while its bot instance is valid; it is
 * never overwritten. Ending the bot instance (its tbot does at a one-shot run's end), locking it,
 * or its expiry releases the EC2 instance.
 */
export async function firstUse(
  ctx: ServerJoinContext,
  id: InstanceIdentity,
  data: Record<string, unknown>,
): Promise<Pick<JoinVerdict, 'records' | 'events'>> {
  const key = legacyRecordId(id);
  const token = ctx.token.id;
  // the three records read at once (one round trip where the storage batches reads in a turn)
  const [legacy, own, index] = await Promise.all([
    ctx.readRecord(key),
    ctx.readRecord(recordId(token, id)),
    ctx.readRecord(indexRecordId(id)),
  ]);
  if (legacy?.holder?.live && !legacy.holder.ended) {
    const recorded = legacy.data.token_id;
    if (typeof recorded !== 'string')
      refuseHeld(key, legacy, 'through some token (recorded before records were per token)');
    if (recorded === token) refuseHeld(key, legacy, `through token ${token}`);
  }
  if (own?.holder?.live && !own.holder.ended) refuseHeld(key, own, `through token ${token}`);
  const listed = Array.isArray(index?.data.tokens)
    ? index.data.tokens.filter((t): t is string => typeof t === 'string')
    : [];
  const others = listed.filter((t) => t !== token);
  const records: JoinRecord[] = [
    { id: recordId(token, id), data: { ...data, token_id: token }, ...(own ? { replaces: own.revision } : {}) },
  ];
  if (!listed.includes(token))
    records.push({
      id: indexRecordId(id),
      data: {
        aws_account: id.accountId,
        aws_instance_id: id.instanceId,
        tokens: [...listed, token].slice(-MAX_INDEXED_TOKENS),
      },
      ...(index ? { replaces: index.revision } : {}),
    });
  if (others.length === 0) return { records };
  return {
    records,
    events: [
      {
        event: 'ec2.instance_rejoined_other_token',
        severity: 'warning',
        aws_account: id.accountId,
        aws_instance_id: id.instanceId,
        other_tokens: others,
        reason:
          `EC2 instance ${key} joined through token ${token} after joining through ${others.join(', ')}: anything ` +
          "that reads the instance's metadata service can join through every ec2 token whose rules admit it",
      },
    ],
  };
}

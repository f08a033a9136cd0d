import { randomUUID } from 'node:crypto';
import { LOCAL_ADMIN, operatorNameProblem } from '../../api/admin.js';
import type { AdminClient } from '../../api/admin-client.js';
import type { Lock } from '../../api/resources.js';
import { isMwiError, MwiError } from '../../errors.js';
import { joinMethodInfo } from '../../join/catalog.js';
import { usageError } from '../common.js';
import { TELEPORT_LOCK_TARGETS } from '../help/tctl-table.js';
import { printResources } from './format.js';
import { cell, print, warn } from './output.js';
import { parseDuration } from '../../util/duration.js';
import { need, type Command, type Flags } from './shared.js';

type Target = Lock['spec']['target'];

/** RFC 3339 with a zone, as Teleport's `--expires` takes it. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i;

/** When a lock ends: `--expires` (RFC 3339) or `--ttl` (a duration from now), never both; none is never. */
export function lockExpiry(values: Pick<Flags, 'expires' | 'ttl'>, now = Date.now()): string | undefined {
  if (values.expires !== undefined && values.ttl !== undefined)
    throw usageError('give --expires or --ttl, not both', '--expires');
  if (values.expires !== undefined) {
    if (!RFC3339.test(values.expires) || Number.isNaN(Date.parse(values.expires)))
      throw usageError('expected an RFC 3339 time such as 2030-01-02T15:04:05Z', '--expires');
    return new Date(values.expires).toISOString();
  }
  if (values.ttl === undefined) return undefined;
  const ttl = parseDuration(values.ttl);
  if (ttl === undefined)
    throw usageError(`expected a duration such as 1h (got ${JSON.stringify(values.ttl)})`, '--ttl');
  if (ttl <= 0) throw usageError(`must be more than 0 (got ${JSON.stringify(values.ttl)})`, '--ttl');
  return new Date(now + ttl).toISOString();
}

/** Creates a lock with a new random name (as Teleport names them) and prints Teleport's line. */
async function createLock(admin: AdminClient, target: Target, message: string, expires: string | undefined) {
  const name = randomUUID();
  await admin.create({
    kind: 'lock',
    version: 'v2',
    metadata: { name },
    spec: { target, message, ...(expires ? { expires } : {}) },
  });
  print(`Created a lock with name "${name}".\n`);
}

const ONE_OF = "--user bot-NAME (or an operator's name), --bot-instance-id ID or --join-token NAME";

/**
 * The one target of `tctl lock`. mwi's lock has exactly one target (a Teleport lock may combine
 * several, matching what matches all of them), and its users are bots (`--user bot-NAME`,
 * Teleport's name for bot NAME's user) and operators (`--user NAME`, the name of an operator
 * identity from `tctl auth sign --admin`).
 */
export function lockTargetOf(values: Flags): Target {
  for (const t of TELEPORT_LOCK_TARGETS)
    if (values[t] !== undefined)
      throw usageError(`mwi locks bots, their instances and join tokens only: give ${ONE_OF}`, `--${t}`);
  const given: Target[] = [];
  if (values.user !== undefined) {
    const u = values.user;
    if (u.toLowerCase() === LOCAL_ADMIN)
      throw usageError(
        'the local admin identity cannot be locked (a lock on the only admin would also refuse its removal): ' +
          'it lasts 4 hours and is re-issued by the running Auth Service',
        '--user',
      );
    if (u === 'bot-' || (!u.startsWith('bot-') && operatorNameProblem(u)))
      throw usageError(
        "mwi's users are bots and operators: lock bot NAME as --user bot-NAME (its user name in Teleport), " +
          'an operator identity (tctl auth sign --admin) as --user NAME',
        '--user',
      );
    given.push({ user: values.user });
  }
  if (values['bot-instance-id'] !== undefined) given.push({ bot_instance_id: values['bot-instance-id'] });
  if (values['join-token'] !== undefined) given.push({ join_token: values['join-token'] });
  if (given.length > 1)
    throw usageError(
      `an mwi lock has one target (Teleport's may combine several): give one of ${ONE_OF}, and one lock per target`,
    );
  if (given.length === 0) throw usageError(`give the lock's target: ${ONE_OF}`);
  return given[0]!;
}

/**
 * `tctl lock` (Teleport's form). A join token is named as `tokens ls` shows it; a token that
 * still exists may also be named by its secret, which is replaced by its id.
 */
export async function lockCommand(admin: AdminClient, values: Flags): Promise<void> {
  let target = lockTargetOf(values);
  const expires = lockExpiry(values);
  if (target.join_token !== undefined) {
    try {
      const t = await admin.get('token', target.join_token);
      if (joinMethodInfo(t.spec.join_method)?.secretName) target = { join_token: t.metadata.name };
    } catch (err) {
      // a token that is gone (used, expired) still names the instances that joined with it
      if (!isMwiError(err, 'NOT_FOUND')) throw err;
    }
  }
  await checkLockTarget(admin, target, false);
  await createLock(admin, target, values.message ?? '', expires);
}

/** A bot instance's id: a UUID, as the Auth Service makes them. */
const INSTANCE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether a resource exists (NOT_FOUND is no; any other failure is thrown). */
async function exists(admin: AdminClient, kind: 'bot' | 'bot_instance', name: string): Promise<boolean> {
  try {
    await admin.get(kind, name);
    return true;
  } catch (err) {
    if (isMwiError(err, 'NOT_FOUND')) return false;
    throw err;
  }
}

/**
 * `--user NAME` without `bot-` names an operator. A bot of that name means `--user bot-NAME` was
 * meant (the lock would hold nothing of the bot): refused. Otherwise a warning: mwi keeps no list
 * of operator names to check against. The audit's `operator_identity/NAME` events are not one:
 * the log rotates away, so a name signed months ago would be missing and a check would refuse a
 * real operator, and finding them means reading the whole log on every lock.
 */
async function checkOperatorName(admin: AdminClient, user: string): Promise<void> {
  if (await exists(admin, 'bot', user))
    throw usageError(
      `${JSON.stringify(user)} is a bot: lock it as --user bot-${user} (Teleport's user name for bot ${user}); ` +
        '--user NAME alone names an operator identity (tctl auth sign --admin)',
      '--user',
    );
  warn(
    `warning: --user: mwi keeps no list of operator names, so ${JSON.stringify(user)} is not checked: the lock ` +
      'holds operator identities signed for this name (tctl auth sign --admin --user NAME), now or later; ' +
      'a bot is locked as --user bot-NAME\n',
  );
}

/**
 * What a lock's target names that does not exist now. A bot may be locked before it exists (a
 * lock on a name holds a bot created later with it, or a join with a token made for it), so that
 * is a warning; an instance id is a UUID never reused, so a lock on one that is not there can
 * hold nothing: `refuse` makes that an error (mwi's locks add), else a warning (Teleport's lock).
 */
export async function checkLockTarget(admin: AdminClient, target: Target, refuse: boolean): Promise<void> {
  const user = target.user;
  if (user !== undefined && !user.startsWith('bot-')) await checkOperatorName(admin, user);
  const bot = user?.startsWith('bot-') ? user.slice(4) : undefined;
  if (bot !== undefined && !(await exists(admin, 'bot', bot)))
    warn(
      `warning: no bot ${JSON.stringify(bot)} exists now: the lock holds a bot created later with this name, and ` +
        'joins with tokens made for it (tctl bots ls lists the bots)\n',
    );
  const id = target.bot_instance_id;
  if (id === undefined) return;
  const field = refuse ? '--bot-instance' : '--bot-instance-id';
  if (!INSTANCE_ID.test(id)) {
    const problem = `${JSON.stringify(id)} is not a bot instance id (a UUID, as tctl bots instances ls shows them)`;
    if (refuse) throw usageError(`${problem}: a lock on it would hold nothing`, field);
    return warn(`warning: ${field}: ${problem}: the lock holds nothing\n`);
  }
  if (await exists(admin, 'bot_instance', id)) return;
  const problem = `no bot instance ${JSON.stringify(id)} (tctl bots instances ls lists them)`;
  if (refuse) throw new MwiError('NOT_FOUND', `${problem}: a lock on it would hold nothing`, { field });
  warn(`warning: ${field}: ${problem}: the lock holds nothing\n`);
}

/** `tctl locks ...` */
export async function locks({ admin, sub, positionals, values, format }: Command): Promise<void> {
  if (sub === 'add') {
    if (Boolean(values.bot) === Boolean(values['bot-instance']))
      throw usageError('give exactly one of --bot or --bot-instance');
    const target = values.bot ? { user: `bot-${values.bot}` } : { bot_instance_id: values['bot-instance'] };
    const expires = lockExpiry(values);
    await checkLockTarget(admin, target, true);
    await createLock(admin, target, values.message ?? values.reason ?? '', expires);
    return;
  }
  if (sub === 'ls') {
    const items = await admin.listAll('lock');
    printResources(items, format, {
      headers: ['ID', 'Target', 'Message', 'Expires'],
      row: (l) => [l.metadata.name, lockTarget(l.spec.target), l.spec.message, l.spec.expires ?? 'never'],
    });
    return;
  }
  if (sub === 'rm') {
    const name = need(positionals[0], 'NAME');
    await admin.remove('lock', name);
    print(`lock "${cell(name)}" deleted\n`);
    return;
  }
  throw usageError(`unknown command "locks ${sub ?? ''}" (expected add, ls, rm)`);
}

/** A lock's one target as `field:value` (the Auth Service itself locks join tokens: a keypair used from two places). */
export function lockTarget(t: Lock['spec']['target']): string {
  if (t.user) return `user:${t.user}`;
  if (t.bot_instance_id) return `bot_instance_id:${t.bot_instance_id}`;
  return `join_token:${t.join_token ?? ''}`;
}

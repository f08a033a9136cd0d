import { randomUUID } from 'node:crypto';
import type { Lock } from '../../api/resources.js';
import { usageError } from '../common.js';
import { printResources } from './format.js';
import { cell, print } from './output.js';
import { parseDuration } from '../../util/duration.js';
import { need, type Command } from './shared.js';

/** `tctl locks ...` */
export async function locks({ admin, sub, positionals, values, format }: Command): Promise<void> {
  if (sub === 'add') {
    if (Boolean(values.bot) === Boolean(values['bot-instance']))
      throw usageError('give exactly one of --bot or --bot-instance');
    const ttl = values.ttl ? parseDuration(values.ttl) : undefined;
    if (values.ttl && ttl === undefined) throw usageError('expected a duration such as 1h', '--ttl');
    const name = randomUUID();
    await admin.create({
      kind: 'lock',
      version: 'v2',
      metadata: { name },
      spec: {
        target: values.bot ? { user: `bot-${values.bot}` } : { bot_instance_id: values['bot-instance'] },
        message: values.message ?? values.reason ?? '',
        ...(ttl ? { expires: new Date(Date.now() + ttl).toISOString() } : {}),
      },
    });
    print(`Created a lock with name "${name}".\n`);
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

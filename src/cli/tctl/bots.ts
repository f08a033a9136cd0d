import type { Bot } from '../../api/resources.js';
import { usageError } from '../common.js';
import { botInstances } from './bot-instances.js';
import { lockedCell, printResources } from './format.js';
import { joinAddresses, printJoinToken } from './join-help.js';
import { warnIfNoLogins } from './no-logins.js';
import { cell, print } from './output.js';
import { list, need, type Command } from './shared.js';

/** The values of a bot's `logins` trait. */
function loginsOf(bot: Bot): string[] {
  return bot.spec.traits.find((t) => t.name === 'logins')?.values ?? [];
}

/** `tctl bots ...` */
export async function bots({ admin, sub, positionals, values, format }: Command): Promise<void> {
  if (sub === 'instances' || sub === 'instance') return botInstances({ admin, sub, positionals, values, format });
  if (sub === 'ls') {
    const locked = new Map<string, string>();
    const items = await admin.listAll('bot', { locked });
    // Locked: the message of the lock that holds the bot (its name when it has none)
    printResources(items, format, {
      headers: ['Bot', 'Roles', 'Logins', 'Locked'],
      row: (b) => [b.metadata.name, b.spec.roles.join(','), loginsOf(b).join(','), lockedCell(locked, b.metadata.name)],
    });
    return;
  }
  const name = need(positionals[0], 'NAME');
  if (sub === 'add') {
    const out = await admin.addBot({
      name,
      roles: need(list(values.roles), '--roles'),
      logins: list(values.logins) ?? [],
      token_ttl: values.ttl ?? '1h',
      ...(values['max-session-ttl'] !== undefined ? { max_session_ttl: values['max-session-ttl'] } : {}),
      ...(values.token !== undefined ? { token: values.token } : {}),
    });
    if (values.token !== undefined && format !== 'json') print(`bot "${cell(name)}" has been created\n`);
    printJoinToken(out, await joinAddresses(admin, format), format, values.token !== undefined);
    await warnIfNoLogins(admin, name, list(values.roles)!, [{ name: 'logins', values: list(values.logins) ?? [] }]);
    return;
  }
  if (sub === 'rm') {
    await admin.remove('bot', name);
    print(`bot "${cell(name)}" deleted\n`);
    return;
  }
  if (sub === 'update') {
    const cur = await admin.get('bot', name);
    const curLogins = loginsOf(cur);
    const roles =
      list(values['set-roles']) ??
      (values['add-roles'] ? [...new Set([...cur.spec.roles, ...list(values['add-roles'])!])] : undefined);
    const logins =
      list(values['set-logins']) ??
      (values['add-logins'] ? [...new Set([...curLogins, ...list(values['add-logins'])!])] : undefined);
    if (!roles && !logins)
      throw usageError('nothing to update: give --set-roles, --add-roles, --set-logins or --add-logins');
    const updated = await admin.updateBot(name, { ...(roles ? { roles } : {}), ...(logins ? { logins } : {}) });
    print(`bot "${cell(name)}" updated\n`);
    await warnIfNoLogins(admin, name, updated.spec.roles, updated.spec.traits);
    return;
  }
  throw usageError(`unknown command "bots ${sub ?? ''}" (expected add, ls, rm, update, instances)`);
}

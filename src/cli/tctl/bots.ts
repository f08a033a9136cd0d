import type { Bot, BotInstance } from '../../api/resources.js';
import { usageError } from '../common.js';
import { ago, printPages, printResources } from './format.js';
import { cell, print, toJson } from './output.js';
import { list, need, type Command } from './shared.js';

/** The values of a bot's `logins` trait. */
function loginsOf(bot: Bot): string[] {
  return bot.spec.traits.find((t) => t.name === 'logins')?.values ?? [];
}

/** `tctl bots ...` */
export async function bots({ admin, sub, positionals, values, format }: Command): Promise<void> {
  if (sub === 'instances') {
    if (positionals[0] !== 'ls') throw usageError('expected "tctl bots instances ls [NAME]"');
    await printPages(admin.pages('bot_instance', positionals[1] ? { bot: positionals[1] } : {}), format, {
      headers: [
        'Bot',
        'Instance ID',
        'Join Method',
        'Recovery',
        'Joined',
        'Generation',
        'Last Heartbeat (self-reported)',
        'Expires',
      ],
      row: (i: BotInstance) => {
        const hb = i.status.latest_heartbeats[0];
        const m = i.status.initial_authentication.metadata as
          { recovery_count?: number; recovery_limit?: number; recovery_mode?: string } | undefined;
        return [
          i.spec.bot_name,
          i.spec.instance_id,
          i.status.initial_authentication.join_method,
          m?.recovery_count !== undefined
            ? `${m.recovery_count}/${m.recovery_mode === 'standard' ? m.recovery_limit : '∞'}`
            : '-',
          ago(i.status.initial_authentication.auth_at),
          String(i.status.generation),
          hb ? `${hb.hostname} ${hb.os} v${hb.version}${hb.one_shot ? ' one-shot' : ''} ${ago(hb.recorded_at)}` : '-',
          ago(i.metadata.expires),
        ];
      },
    });
    return;
  }
  if (sub === 'ls') {
    const items = await admin.listAll('bot');
    printResources(items, format, {
      headers: ['Bot', 'Roles', 'Logins'],
      row: (b) => [b.metadata.name, b.spec.roles.join(','), loginsOf(b).join(',')],
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
    });
    if (format === 'json') return void print(`${toJson(out)}\n`);
    const [token, pin] = [cell(out.token), cell(out.ca_pins[0])];
    const expires = `${ago(out.expires)} (${cell(out.expires)})`;
    print(
      `The bot token: ${token}\nThis token will expire ${expires}.\nCA pin: ${pin}\n\n` +
        tbotStartHelp(token, admin.addrs.join(','), pin),
    );
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
    await admin.updateBot(name, { ...(roles ? { roles } : {}), ...(logins ? { logins } : {}) });
    print(`bot "${cell(name)}" updated\n`);
    return;
  }
  throw usageError(`unknown command "bots ${sub ?? ''}" (expected add, ls, rm, update, instances ls)`);
}

/**
 * How to start tbot with a token. The token goes into a file (written by shell builtins, in a
 * subshell with a private umask) and tbot gets the file's absolute path: argv is readable by
 * every local user through `ps` and /proc, a 0600 file is not (issue #9, finding 13).
 */
export function tbotStartHelp(token: string, addr: string, pin: string): string {
  return (
    'Run this on the machine the bot runs on. The token goes in a file, not on the command line,\n' +
    'where ps shows it to every user (or set TELEPORT_BOT_TOKEN to the token or to the file path):\n\n' +
    `> (umask 077; echo ${token} > tbot-token)\n` +
    `> tbot start \\\n   --auth-server=${addr} \\\n   --join-method=token \\\n   --token="$PWD/tbot-token" \\\n` +
    `   --ca-pin=${pin} \\\n   --data-dir=./tbot-data \\\n   --destination-dir=./tbot-user\n`
  );
}

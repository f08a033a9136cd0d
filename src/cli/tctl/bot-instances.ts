import type { AdminClient } from '../../api/admin-client.js';
import type { BotInstance } from '../../api/resources.js';
import { isMwiError, MwiError } from '../../errors.js';
import { awaitsRegistrationSecret } from '../../join/bound_keypair/wire.js';
import { joinMethodInfo } from '../../join/catalog.js';
import { usageError } from '../common.js';
import { joinAddresses, printJoinToken } from './join-help.js';
import { ago, lockedCell, printPages } from './format.js';
import { cell, print, toJson } from './output.js';
import { need, type Command } from './shared.js';

const LIST_HEADERS = [
  'Bot',
  'Instance ID',
  'Join Method',
  'Recovery',
  'Joined',
  'Generation',
  'Last Heartbeat (self-reported)',
  'Expires',
  'Locked',
];

function recovery(i: BotInstance): string {
  const m = i.status.initial_authentication.metadata as
    { recovery_count?: number; recovery_limit?: number; recovery_mode?: string } | undefined;
  if (m?.recovery_count === undefined) return '-';
  return `${m.recovery_count}/${m.recovery_mode === 'standard' ? m.recovery_limit : '∞'}`;
}

function heartbeat(i: BotInstance): string {
  const hb = i.status.latest_heartbeats[0];
  return hb ? `${hb.hostname} ${hb.os} v${hb.version}${hb.one_shot ? ' one-shot' : ''} ${ago(hb.recorded_at)}` : '-';
}

/** `bots instances show`: one instance for people (`tctl get bot_instance/BOT/ID` has the whole record). */
function describe(i: BotInstance): string {
  const first = i.status.initial_authentication;
  const latest = i.status.latest_authentication;
  const id = `${i.spec.bot_name}/${i.spec.instance_id}`;
  return (
    `Bot: ${cell(i.spec.bot_name)}\nID:  ${cell(i.spec.instance_id)}\n\n` +
    `Initial authentication: ${cell(first.auth_at)} (${ago(first.auth_at)}), join method ` +
    `${cell(first.join_method)}, token ${cell(first.join_token_name)}\n` +
    `Latest authentication:  ${cell(latest.auth_at)} (${ago(latest.auth_at)}), join method ` +
    `${cell(latest.join_method)}, generation ${latest.generation}\n` +
    `Recoveries:             ${recovery(i)}\n` +
    `Latest heartbeat:       ${cell(heartbeat(i))}\n` +
    `Expires:                ${cell(i.metadata.expires)} (${ago(i.metadata.expires)})\n\n` +
    `The whole record: tctl get bot_instance/${cell(id)}\n` +
    `A new instance of this bot: tctl bots instances add ${cell(i.spec.bot_name)}\n`
  );
}

/** A listing of one bot's instances names a bot that exists: an empty table would read as "no instances". */
async function botMustExist(admin: AdminClient, bot: string): Promise<void> {
  try {
    await admin.get('bot', bot);
  } catch (err) {
    if (isMwiError(err, 'NOT_FOUND'))
      throw new MwiError('NOT_FOUND', `no bot ${JSON.stringify(bot)}: tctl bots ls lists the bots`);
    throw err;
  }
}

/**
 * `tctl bots instances ls|list [BOT]`, `show|get|describe BOT/ID`, `add|join BOT [--token NAME]`:
 * Teleport's names. `add` makes a single-use join token for an existing bot; with `--token` it
 * checks that an existing token is the bot's and prints how to join with it.
 */
export async function botInstances({ admin, positionals, values, format }: Command): Promise<void> {
  const [verb, arg] = positionals;
  if (verb === 'ls' || verb === 'list') {
    if (arg !== undefined) await botMustExist(admin, arg);
    const locked = new Map<string, string>();
    await printPages(admin.pages('bot_instance', { ...(arg ? { bot: arg } : {}), locked }), format, {
      headers: LIST_HEADERS,
      row: (i: BotInstance) => [
        i.spec.bot_name,
        i.spec.instance_id,
        i.status.initial_authentication.join_method,
        recovery(i),
        ago(i.status.initial_authentication.auth_at),
        String(i.status.generation),
        heartbeat(i),
        ago(i.metadata.expires),
        lockedCell(locked, i.metadata.name),
      ],
    });
    return;
  }
  if (verb === 'show' || verb === 'get' || verb === 'describe') {
    const i = await admin.get('bot_instance', need(arg, 'BOT/ID'));
    print(format === 'json' ? `${toJson(i)}\n` : describe(i));
    return;
  }
  if (verb === 'add' || verb === 'join') {
    const bot = need(arg, 'BOT');
    // an instance of an existing bot (a token alone may name a bot that does not exist yet)
    await admin.get('bot', bot);
    if (values.token === undefined) {
      const out = await admin.addToken({ bot_name: bot, join_method: 'token', ttl: values.ttl ?? '1h' });
      return printJoinToken(out, await joinAddresses(admin, format), format);
    }
    const t = await admin.get('token', values.token);
    if (joinMethodInfo(t.spec.join_method)?.secretName)
      throw usageError(
        `a ${t.spec.join_method} token's secret is stored only as a hash, so mwi cannot print how to join with it: ` +
          'leave out --token to get a new one',
        '--token',
      );
    if (t.spec.bot_name !== bot)
      throw usageError(
        `token ${JSON.stringify(values.token)} is for bot ${JSON.stringify(t.spec.bot_name)}`,
        '--token',
      );
    const { ca_pin, public_addrs: publicAddrs } = await admin.status();
    const reply = {
      token: t.metadata.name,
      id: t.metadata.name,
      join_method: t.spec.join_method,
      bot_name: bot,
      ...(t.metadata.expires ? { expires: t.metadata.expires } : {}),
      ca_pins: [ca_pin],
      ...(awaitsRegistrationSecret(t.spec, t.status) ? { awaits_registration_secret: true } : {}),
    };
    return printJoinToken(reply, { auth: admin.addrs.join(','), proxy: publicAddrs?.[0] }, format, true);
  }
  throw usageError('expected "tctl bots instances ls [BOT]", "show BOT/ID" or "add BOT [--token NAME]"');
}

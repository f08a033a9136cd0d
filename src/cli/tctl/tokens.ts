import { readFileSync } from 'node:fs';
import { MwiError } from '../../errors.js';
import { usageError } from '../common.js';
import { ago, printResources } from './format.js';
import { cell, print, toJson } from './output.js';
import { parseResources } from './resources-yaml.js';
import { need, type Command } from './shared.js';

/** `tctl tokens ...` */
export async function tokens({ admin, sub, positionals, values, format }: Command): Promise<void> {
  if (sub === 'add') {
    if (need(values.type, '--type') !== 'bot') throw usageError('only "bot" tokens are supported', '--type');
    let spec: Record<string, unknown> | undefined;
    if (values.spec) {
      let text: string;
      try {
        text = readFileSync(values.spec, 'utf8');
      } catch (cause) {
        throw new MwiError('BAD_CONFIG', `cannot read ${values.spec}`, { field: '--spec', cause });
      }
      // the same checked path as create -f: plain JSON data or an error naming the file
      spec = parseResources(text, values.spec)[0];
    }
    const out = await admin.addToken({
      bot_name: need(values['bot-name'], '--bot-name'),
      join_method: values['join-method'] ?? 'token',
      ttl: values.ttl ?? '30m',
      ...(spec ? { spec } : {}),
    });
    if (format === 'json') return void print(`${toJson(out)}\n`);
    print(
      `The invite token: ${cell(out.token)}\nThis token will expire ${ago(out.expires)} (${cell(out.expires)}).\n` +
        `CA pin: ${cell(out.ca_pins[0])}\n`,
    );
    // a secret on tbot's command line is readable by every local user (ps): point to a file
    if ((values['join-method'] ?? 'token') === 'token') {
      print(
        '(a secret: write it to a file and give tbot the absolute path as --token, or set TELEPORT_BOT_TOKEN; ' +
          'see tctl bots add)\n',
      );
    }
    if (out.registration_secret) {
      print(
        `Registration secret: ${cell(out.registration_secret)}\n` +
          '(shown once; write it to a file and give tbot the absolute path as --registration-secret, or set ' +
          'TBOT_REGISTRATION_SECRET)\n',
      );
    }
    return;
  }
  if (sub === 'ls') {
    const items = await admin.listAll('token');
    printResources(items, format, {
      headers: ['Token ID', 'Join Method', 'Bot', 'Expires'],
      row: (t) => {
        const expires = t.metadata.expires ? `${t.metadata.expires} (${ago(t.metadata.expires)})` : 'never';
        return [t.metadata.name, t.spec.join_method, t.spec.bot_name, expires];
      },
    });
    return;
  }
  if (sub === 'rm') {
    const id = need(positionals[0], 'ID');
    await admin.remove('token', id);
    print('token deleted\n');
    return;
  }
  throw usageError(`unknown command "tokens ${sub ?? ''}" (expected add, ls, rm)`);
}

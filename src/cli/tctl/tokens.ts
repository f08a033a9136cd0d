import { readFileSync } from 'node:fs';
import { ID_FORM_SECRET, TOKEN_ID_FORM, type JoinTokenReply } from '../../api/admin.js';
import { MwiError } from '../../errors.js';
import { joinMethodInfo } from '../../join/catalog.js';
import { usageError } from '../common.js';
import { ago, printResources } from './format.js';
import { cell, print, printNote, toJson, toYaml } from './output.js';
import { parseResources } from './resources-yaml.js';
import { list, need, type Command } from './shared.js';
import { tokensTest } from './tokens-test.js';
import { ioReason } from '../../util/io-reason.js';

/** `--labels k=v,k2=v2`, Teleport's label list for a token's metadata.labels. */
export function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of list(text) ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0)
      throw usageError(`expected KEY=VALUE pairs separated by commas (got ${JSON.stringify(pair)})`, '--labels');
    // defineProperty: a "__proto__" key stays a key and sets no prototype
    const value = pair.slice(eq + 1).trim();
    Object.defineProperty(out, pair.slice(0, eq).trim(), {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/** `tctl tokens ...` */
/** How long a new token lasts: its expiry, or (bound_keypair) the registration window. */
function lifetime(out: JoinTokenReply): string {
  if (out.expires) return `This token will expire ${ago(out.expires)} (${cell(out.expires)}).`;
  if (out.must_register_before)
    return (
      `The bot must register ${ago(out.must_register_before)} (before ${cell(out.must_register_before)}); ` +
      'the token does not expire: it holds the trust in the bound key (recovery bounded by recovery.limit), as in ' +
      'Teleport.'
    );
  return 'This token does not expire.';
}

export async function tokens(cmd: Command): Promise<number | void> {
  const { admin, sub, positionals, values, format } = cmd;
  if (sub === 'test') return tokensTest(cmd);
  if (sub === 'add') {
    const types = list(need(values.type, '--type')) ?? [];
    if (types.length !== 1 || types[0] !== 'bot')
      throw usageError(
        `mwi makes bot join tokens only (Teleport's node, app, db, ... tokens join Teleport services): --type=bot`,
        '--type',
      );
    let spec: Record<string, unknown> | undefined;
    if (values.spec) {
      let text: string;
      try {
        text = readFileSync(values.spec, 'utf8');
      } catch (cause) {
        throw new MwiError('BAD_CONFIG', `cannot read ${values.spec}: ${ioReason(cause)}`, { field: '--spec', cause });
      }
      // the same checked path as create -f: plain JSON data or an error naming the file
      spec = parseResources(text, values.spec)[0];
    }
    const method = values['join-method'] ?? 'token';
    // the id form is reserved (a re-applied name of that form is an id): refused before anything is sent
    if (values.value !== undefined && joinMethodInfo(method)?.secretName && TOKEN_ID_FORM.test(values.value))
      throw usageError(ID_FORM_SECRET, '--value');
    const labels = values.labels !== undefined ? parseLabels(values.labels) : undefined;
    const out = await admin.addToken({
      bot_name: need(values['bot-name'], '--bot-name'),
      join_method: method,
      ttl: values.ttl ?? '30m',
      ...(spec ? { spec } : {}),
      ...(values.value !== undefined ? { name: values.value } : {}),
      ...(labels ? { labels } : {}),
    });
    if (format === 'json') return void print(`${toJson(out)}\n`);
    if (format === 'yaml') return void print(toYaml(out));
    print(`The invite token: ${cell(out.token)}\n${lifetime(out)}\nCA pin: ${cell(out.ca_pins[0])}\n`);
    if (values.value !== undefined && out.id !== out.token)
      print(
        '(mwi stores only a hash of the value you chose: it is not shown again, and tokens ls shows its id; ' +
          "Teleport's tokens ls --with-secrets has no counterpart)\n",
      );
    // a secret on tbot's command line is readable by every local user (ps): point to a file
    if (method === 'token') {
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
    for (const note of out.notes ?? []) printNote(note);
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
  if (sub === 'rm' || sub === 'del') {
    const id = need(positionals[0], 'ID');
    await admin.remove('token', id);
    print('token deleted\n');
    return;
  }
  throw usageError(`unknown command "tokens ${sub ?? ''}" (expected add, ls, rm, test)`);
}

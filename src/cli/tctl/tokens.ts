import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { ApiClient } from '../../api/client.js';
import type { Token } from '../../auth/resources.js';
import { MwiError } from '../../errors.js';
import { usageError } from '../common.js';
import { ago, printResources } from './format.js';
import { listAll, need, type Flags, type Row } from './shared.js';

/** `tctl tokens ...` */
export async function tokens(api: ApiClient, sub: string | undefined, positionals: string[], values: Flags, format: 'text' | 'json'): Promise<void> {
  if (sub === 'add') {
    if (need(values.type, '--type') !== 'bot') throw usageError('only "bot" tokens are supported', '--type');
    let spec: unknown;
    if (values.spec) {
      try {
        spec = parseAllDocuments(readFileSync(values.spec, 'utf8'))[0]?.toJS();
      } catch (cause) {
        throw new MwiError('BAD_CONFIG', `cannot read ${values.spec}`, { field: '--spec', cause });
      }
    }
    const out = await api.call<Row>('POST', '/v1/admin/tokens', {
      bot_name: need(values['bot-name'], '--bot-name'),
      join_method: values['join-method'] ?? 'token',
      ttl: values.ttl ?? '30m',
      ...(spec ? { spec } : {}),
    });
    if (format === 'json') return void process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    process.stdout.write(`The invite token: ${out.token}\nThis token will expire ${ago(out.expires)} (${out.expires}).\nCA pin: ${out.ca_pins[0]}\n`);
    if (out.registration_secret) {
      process.stdout.write(`Registration secret: ${out.registration_secret}\n(shown once; give it to tbot as --registration-secret or TBOT_REGISTRATION_SECRET)\n`);
    }
    return;
  }
  if (sub === 'ls') {
    const items = await listAll<Token>(api, 'tokens');
    printResources(items, format, {
      headers: ['Token ID', 'Join Method', 'Bot', 'Expires'],
      row: (t: Token) => [t.metadata.name, t.spec.join_method, t.spec.bot_name, t.metadata.expires ? `${t.metadata.expires} (${ago(t.metadata.expires)})` : 'never'],
    });
    return;
  }
  if (sub === 'rm') {
    const id = need(positionals[0], 'ID');
    await api.call('DELETE', `/v1/admin/resources/tokens/${encodeURIComponent(id)}`);
    process.stdout.write('token deleted\n');
    return;
  }
  throw usageError(`unknown command "tokens ${sub ?? ''}" (expected add, ls, rm)`);
}

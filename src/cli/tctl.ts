#!/usr/bin/env node
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { ApiClient } from '../api/client.js';
import type { BotInstance, Lock, Token } from '../auth/resources.js';
import { MwiError } from '../errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { VERSION } from '../version.js';
import { parseFlags, runMain, table, usageError } from './common.js';
import { adminClient } from './tctl/client.js';
import { ago, checkFormat, printResources } from './tctl/format.js';

const HELP = `Usage: tctl [global flags] <command> [flags]

Commands:
  status                                  cluster name and CA pin
  bots add NAME --roles R1,R2 [--logins L1,L2] [--ttl 1h]
                                          create a bot and a single-use join token
  bots ls | bots rm NAME
  bots update NAME [--set-roles R] [--add-roles R] [--set-logins L] [--add-logins L]
  bots instances ls [NAME]                joined tbot instances
  tokens add --type=bot --bot-name NAME [--join-method token] [--ttl 30m] [--spec FILE]
  tokens ls | tokens rm ID
  create -f FILE [--force]                create roles, bots, tokens, locks (YAML, --- separated)
  get KIND[/NAME]                         print resources (roles, bots, tokens, locks, bot_instances)
  rm KIND/NAME                            delete a resource
  bound-keypair rotate TOKEN              make the bot rotate its bound keypair at its next renewal
  locks add (--bot NAME | --bot-instance ID) [--message TEXT] [--ttl D]
  locks ls | locks rm NAME
  ca export --type ssh-user|ssh-host|tls-user|tls-host
  auth sign --host NAMES --public-key FILE [--ttl 720h] [--out FILE]
                                          OpenSSH host certificate for an existing host key
  audit ls [--limit 50] [--type EVENT]    recent audit events
  version

Global flags:
  --data-dir DIR       local Auth Service data dir (default /var/lib/mwi, or $MWI_DATA_DIR)
  --auth-server ADDR   Auth Service address (with --identity)
  --identity FILE      admin identity file
  --format FMT         text (default), json; yaml for get
`;

const str = { type: 'string' } as const;
/** Every flag of every command: parsed once, so global flags may stand anywhere. */
const OPTIONS = {
  'data-dir': str, 'auth-server': str, identity: str, format: str, help: { type: 'boolean', short: 'h' },
  f: { type: 'string', short: 'f' }, force: { type: 'boolean' }, type: str, limit: str, host: str, 'public-key': str,
  ttl: str, out: str, roles: str, logins: str, 'set-roles': str, 'add-roles': str, 'set-logins': str, 'add-logins': str,
  'bot-name': str, 'join-method': str, spec: str, bot: str, 'bot-instance': str, message: str, reason: str,
} as const;
type Flags = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };

function list(v: string | undefined): string[] | undefined {
  return v === undefined ? undefined : v.split(',').map((s) => s.trim()).filter(Boolean);
}

function need<T>(v: T | undefined, flag: string): T {
  if (v === undefined || v === '') throw usageError('is required', flag);
  return v;
}

type Row = Record<string, any>;

/** Every item of a kind, fetched page by page (the Auth Service never sends a whole table at once). */
async function listAll<T>(api: ApiClient, kind: string, query: Record<string, string> = {}): Promise<T[]> {
  const out: T[] = [];
  let next: string | undefined;
  do {
    const q = new URLSearchParams({ ...query, limit: '5000', ...(next ? { start_after: next } : {}) });
    const page = await api.call<{ items: T[]; next?: string }>('GET', `/v1/admin/resources/${encodeURIComponent(kind)}?${q}`);
    out.push(...page.items);
    next = page.next;
  } while (next);
  return out;
}

async function bots(api: ApiClient, sub: string | undefined, positionals: string[], values: Flags, format: 'text' | 'json'): Promise<void> {
  if (sub === 'instances') {
    if (positionals[0] !== 'ls') throw usageError('expected "tctl bots instances ls [NAME]"');
    const items = await listAll<BotInstance>(api, 'bot_instances', positionals[1] ? { bot: positionals[1] } : {});
    printResources(items, format, {
      headers: ['Bot', 'Instance ID', 'Join Method', 'Recovery', 'Joined', 'Generation', 'Last Heartbeat (self-reported)', 'Expires'],
      row: (i: BotInstance) => {
        const hb = i.status.latest_heartbeats[0];
        const m = i.status.initial_authentication.metadata as { recovery_count?: number; recovery_limit?: number; recovery_mode?: string } | undefined;
        return [
          i.spec.bot_name,
          i.spec.instance_id,
          i.status.initial_authentication.join_method,
          m?.recovery_count !== undefined ? `${m.recovery_count}/${m.recovery_mode === 'standard' ? m.recovery_limit : '∞'}` : '-',
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
    const items = await listAll<Row>(api, 'bots');
    printResources(items, format, {
      headers: ['Bot', 'Roles', 'Logins'],
      row: (b) => [b.metadata.name, b.spec.roles.join(','), (b.spec.traits.find((t: Row) => t.name === 'logins')?.values ?? []).join(',')],
    });
    return;
  }
  const name = need(positionals[0], 'NAME');
  if (sub === 'add') {
    const out = await api.call<Row>('POST', '/v1/admin/bots', {
      name,
      roles: need(list(values.roles), '--roles'),
      logins: list(values.logins) ?? [],
      token_ttl: values.ttl ?? '1h',
    });
    if (format === 'json') return void process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    const pin = (out.ca_pins as string[])[0];
    const addr = api.addrs.join(',');
    process.stdout.write(
      `The bot token: ${out.token}\nThis token will expire ${ago(out.expires)} (${out.expires}).\nCA pin: ${pin}\n\n` +
        `Run this on the machine the bot runs on:\n\n> tbot start \\\n   --auth-server=${addr} \\\n   --join-method=token \\\n   --token=${out.token} \\\n` +
        `   --ca-pin=${pin} \\\n   --data-dir=./tbot-data \\\n   --destination-dir=./tbot-user\n`,
    );
    return;
  }
  if (sub === 'rm') {
    await api.call('DELETE', `/v1/admin/resources/bots/${encodeURIComponent(name)}`);
    process.stdout.write(`bot "${name}" deleted\n`);
    return;
  }
  if (sub === 'update') {
    const cur = await api.call<Row>('GET', `/v1/admin/resources/bots/${encodeURIComponent(name)}`);
    const curLogins: string[] = cur.spec.traits.find((t: Row) => t.name === 'logins')?.values ?? [];
    const roles = list(values['set-roles']) ?? (values['add-roles'] ? [...new Set([...cur.spec.roles, ...list(values['add-roles'])!])] : undefined);
    const logins = list(values['set-logins']) ?? (values['add-logins'] ? [...new Set([...curLogins, ...list(values['add-logins'])!])] : undefined);
    if (!roles && !logins) throw usageError('nothing to update: give --set-roles, --add-roles, --set-logins or --add-logins');
    await api.call('PUT', `/v1/admin/bots/${encodeURIComponent(name)}`, { ...(roles ? { roles } : {}), ...(logins ? { logins } : {}) });
    process.stdout.write(`bot "${name}" updated\n`);
    return;
  }
  throw usageError(`unknown command "bots ${sub ?? ''}" (expected add, ls, rm, update, instances ls)`);
}

async function tokens(api: ApiClient, sub: string | undefined, positionals: string[], values: Flags, format: 'text' | 'json'): Promise<void> {
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

async function locks(api: ApiClient, sub: string | undefined, positionals: string[], values: Flags, format: 'text' | 'json'): Promise<void> {
  if (sub === 'add') {
    if (Boolean(values.bot) === Boolean(values['bot-instance'])) throw usageError('give exactly one of --bot or --bot-instance');
    const { parseDuration } = await import('../util/duration.js');
    const ttl = values.ttl ? parseDuration(values.ttl) : undefined;
    if (values.ttl && ttl === undefined) throw usageError('expected a duration such as 1h', '--ttl');
    const name = randomUUID();
    await api.call('POST', '/v1/admin/resources', {
      resource: {
        kind: 'lock',
        version: 'v2',
        metadata: { name },
        spec: {
          target: values.bot ? { user: `bot-${values.bot}` } : { bot_instance_id: values['bot-instance'] },
          message: values.message ?? values.reason ?? '',
          ...(ttl ? { expires: new Date(Date.now() + ttl).toISOString() } : {}),
        },
      },
    });
    process.stdout.write(`Created a lock with name "${name}".\n`);
    return;
  }
  if (sub === 'ls') {
    const items = await listAll<Lock>(api, 'locks');
    printResources(items, format, {
      headers: ['ID', 'Target', 'Message', 'Expires'],
      row: (l: Lock) => [
        l.metadata.name,
        l.spec.target.user ? `user:${l.spec.target.user}` : `bot_instance_id:${l.spec.target.bot_instance_id}`,
        l.spec.message,
        l.spec.expires ?? 'never',
      ],
    });
    return;
  }
  if (sub === 'rm') {
    const name = need(positionals[0], 'NAME');
    await api.call('DELETE', `/v1/admin/resources/locks/${encodeURIComponent(name)}`);
    process.stdout.write(`lock "${name}" deleted\n`);
    return;
  }
  throw usageError(`unknown command "locks ${sub ?? ''}" (expected add, ls, rm)`);
}

/** Reads one or several `---`-separated resources; errors name the document. */
function readResources(file: string): unknown[] {
  let text: string;
  try {
    text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  } catch (cause) {
    throw new MwiError('BAD_CONFIG', `cannot read ${file}`, { field: '-f', cause });
  }
  const docs = parseAllDocuments(text);
  const out: unknown[] = [];
  docs.forEach((d, i) => {
    if (d.errors.length > 0) throw new MwiError('BAD_CONFIG', `document ${i + 1}: ${d.errors[0]!.message}`, { field: file });
    const v = d.toJS();
    if (v !== null && v !== undefined) out.push(v);
  });
  if (out.length === 0) throw new MwiError('BAD_CONFIG', 'no resources in the file', { field: file });
  return out;
}

runMain('tctl', async () => {
  const { values: g, positionals } = parseFlags(process.argv.slice(2), OPTIONS) as { values: Flags; positionals: string[] };
  const [cmd, sub, ...args] = positionals;
  if (!cmd || cmd === 'help' || g.help) {
    process.stdout.write(HELP);
    return cmd || g.help ? 0 : 2;
  }
  if (cmd === 'version') return void process.stdout.write(`tctl v${VERSION}\n`);
  const api = adminClient(g);
  try {
    const fmt = checkFormat(g.format, cmd === 'get' ? ['yaml', 'json', 'text'] : ['text', 'json'], cmd === 'get' ? 'yaml' : 'text') as 'text' | 'json';
    switch (cmd) {
      case 'status': {
        const s = await api.call<Row>('GET', '/v1/admin/status');
        if (fmt === 'json') return void process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
        process.stdout.write(`Cluster  ${s.cluster_name}\nVersion  ${s.server_version}\nCA pin   ${s.ca_pin}\n`);
        return;
      }
      case 'bots':
        return await bots(api, sub, args, g, fmt);
      case 'tokens':
        return await tokens(api, sub, args, g, fmt);
      case 'locks':
        return await locks(api, sub, args, g, fmt);
      case 'bound-keypair': {
        if (sub !== 'rotate') throw usageError('expected "tctl bound-keypair rotate TOKEN"');
        const name = need(args[0], 'TOKEN');
        const t = await api.call<Row>('GET', `/v1/admin/resources/tokens/${encodeURIComponent(name)}`);
        if (t.spec.join_method !== 'bound_keypair') throw usageError(`token ${name} is not a bound_keypair token`);
        t.spec.bound_keypair = { ...t.spec.bound_keypair, rotate_after: new Date().toISOString() };
        await api.call('POST', '/v1/admin/resources', { resource: t, upsert: true });
        process.stdout.write(`token "${name}": the bound keypair rotates at the bot's next renewal\n`);
        return;
      }
      case 'create': {
        for (const resource of readResources(need(g.f, '-f'))) {
          const out = await api.call<Row>('POST', '/v1/admin/resources', { resource, upsert: g.force === true });
          process.stdout.write(`${out.kind} "${out.name}" has been ${g.force ? 'created or updated' : 'created'}\n`);
        }
        return;
      }
      case 'get': {
        const [kind, name] = need(sub, 'KIND').split('/');
        const items = name
          ? [await api.call<unknown>('GET', `/v1/admin/resources/${encodeURIComponent(kind!)}/${encodeURIComponent(name)}`)]
          : await listAll<unknown>(api, kind!);
        printResources(items, fmt === 'text' ? 'yaml' : fmt);
        return;
      }
      case 'rm': {
        const [kind, name] = need(sub, 'KIND/NAME').split('/');
        await api.call('DELETE', `/v1/admin/resources/${encodeURIComponent(kind!)}/${encodeURIComponent(need(name, 'KIND/NAME'))}`);
        process.stdout.write(`${kind} "${name}" has been deleted\n`);
        return;
      }
      case 'ca': {
        if (sub !== 'export') throw usageError('expected "tctl ca export --type TYPE"');
        const out = await api.call<{ text: string }>('GET', `/v1/admin/ca/${encodeURIComponent(need(g.type, '--type'))}`);
        process.stdout.write(out.text);
        return;
      }
      case 'auth': {
        if (sub !== 'sign') throw usageError('expected "tctl auth sign --host NAMES --public-key FILE"');
        const file = need(g['public-key'], '--public-key');
        let publicKey: string;
        try {
          publicKey = readFileSync(file, 'utf8');
        } catch (cause) {
          throw new MwiError('BAD_CONFIG', `cannot read ${file}`, { field: '--public-key', cause });
        }
        const out = await api.call<{ ssh_cert: string }>('POST', '/v1/admin/sign/host', {
          public_key: publicKey,
          principals: list(need(g.host, '--host')),
          ...(g.ttl ? { ttl: g.ttl } : {}),
        });
        if (g.out) writeFileAtomic(g.out, `${out.ssh_cert}\n`, 0o644);
        else process.stdout.write(`${out.ssh_cert}\n`);
        return;
      }
      case 'audit': {
        if (sub !== 'ls') throw usageError('expected "tctl audit ls"');
        const q = new URLSearchParams({ limit: g.limit ?? '50', ...(g.type ? { type: g.type } : {}) });
        const events = await api.call<Row[]>('GET', `/v1/admin/audit?${q}`);
        if (fmt === 'json') return void process.stdout.write(`${JSON.stringify(events, null, 2)}\n`);
        process.stdout.write(
          table(
            ['Time', 'Event', 'OK', 'Bot', 'Instance', 'Detail'],
            events.map((e) => [e.time, e.event, e.success ? 'yes' : 'NO', e.bot_name ?? '', e.bot_instance_id ?? '', e.reason ?? e.resource ?? e.join_method ?? '']),
          ),
        );
        return;
      }
      default:
        throw usageError(`unknown command ${JSON.stringify(cmd)} (see tctl --help)`);
    }
  } finally {
    api.close();
  }
});


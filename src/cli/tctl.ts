#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { MwiError } from '../errors.js';
import type { BoundKeypairSpec } from '../join/bound_keypair/wire.js';
import { writeFileAtomic } from '../util/fs.js';
import { VERSION } from '../version.js';
import { parseFlags, runMain, usageError } from './common.js';
import { bots } from './tctl/bots.js';
import { locks } from './tctl/locks.js';
import { list, need, OPTIONS, type Flags } from './tctl/shared.js';
import { tokens } from './tctl/tokens.js';
import { adminClient } from './tctl/client.js';
import { checkFormat, printResources } from './tctl/format.js';
import { cell, print, printNote, safeError, safeTable, toJson } from './tctl/output.js';
import { readResources } from './tctl/resources-yaml.js';

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
  get KIND[/NAME]                         print resources (roles, bots, tokens, locks, bot_instances;
                                          an instance is bot_instance/BOT/ID, or bot_instance/ID)
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

runMain('tctl', () =>
  main().catch((err: unknown) => {
    throw safeError(err);
  }),
);

async function main(): Promise<number | void> {
  const { values, positionals } = parseFlags(process.argv.slice(2), OPTIONS);
  const g: Flags = values;
  const [cmd, sub, ...args] = positionals;
  if (!cmd || cmd === 'help' || g.help) {
    print(HELP);
    return cmd || g.help ? 0 : 2;
  }
  if (cmd === 'version') return void print(`tctl v${VERSION}\n`);
  const admin = adminClient(g);
  try {
    const fmt = checkFormat(
      g.format,
      cmd === 'get' ? ['yaml', 'json', 'text'] : ['text', 'json'],
      cmd === 'get' ? 'yaml' : 'text',
    ) as 'text' | 'json';
    switch (cmd) {
      case 'status': {
        const s = await admin.status();
        if (fmt === 'json') return void print(`${toJson(s)}\n`);
        print(`Cluster  ${cell(s.cluster_name)}\nVersion  ${cell(s.server_version)}\nCA pin   ${cell(s.ca_pin)}\n`);
        return;
      }
      case 'bots':
        return await bots({ admin, sub, positionals: args, values: g, format: fmt });
      case 'tokens':
        return await tokens({ admin, sub, positionals: args, values: g, format: fmt });
      case 'locks':
        return await locks({ admin, sub, positionals: args, values: g, format: fmt });
      case 'bound-keypair': {
        if (sub !== 'rotate') throw usageError('expected "tctl bound-keypair rotate TOKEN"');
        const name = need(args[0], 'TOKEN');
        const t = await admin.get('token', name);
        if (t.spec.join_method !== 'bound_keypair') throw usageError(`token ${name} is not a bound_keypair token`);
        // the Auth Service checked this spec when the token was written
        const bk = t.spec.bound_keypair as BoundKeypairSpec | undefined;
        t.spec.bound_keypair = { ...bk, rotate_after: new Date().toISOString() };
        await admin.create(t, true);
        print(`token "${cell(name)}": the bound keypair rotates at the bot's next renewal\n`);
        return;
      }
      case 'create': {
        for (const resource of readResources(need(g.f, '-f'))) {
          const out = await admin.create(resource, g.force === true);
          print(`${cell(out.kind)} "${cell(out.name)}" has been ${g.force ? 'created or updated' : 'created'}\n`);
          // a secret the Auth Service generated (a bound keypair's registration secret) exists only here
          for (const [k, v] of Object.entries(out.shown_once ?? {}))
            print(`${cell(k)}: ${cell(v)} (shown once: the Auth Service keeps only its hash)\n`);
          for (const note of out.notes ?? []) printNote(note);
        }
        return;
      }
      case 'get': {
        // bot instances are named BOT/ID
        const [kind, ...rest] = need(sub, 'KIND').split('/');
        const name = rest.join('/');
        const items = name ? [await admin.get(kind!, name)] : await admin.listAll(kind!);
        printResources(items, fmt === 'text' ? 'yaml' : fmt);
        return;
      }
      case 'rm': {
        const [kind, name] = need(sub, 'KIND/NAME').split('/');
        await admin.remove(kind!, need(name, 'KIND/NAME'));
        print(`${cell(kind)} "${cell(name)}" has been deleted\n`);
        return;
      }
      case 'ca': {
        if (sub !== 'export') throw usageError('expected "tctl ca export --type TYPE"');
        print(await admin.exportCA(need(g.type, '--type')));
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
        const principals = list(need(g.host, '--host')) ?? [];
        const cert = await admin.signHost({ public_key: publicKey, principals, ...(g.ttl ? { ttl: g.ttl } : {}) });
        if (g.out) writeFileAtomic(g.out, `${cert}\n`, 0o644);
        else print(`${cert}\n`);
        return;
      }
      case 'audit': {
        if (sub !== 'ls') throw usageError('expected "tctl audit ls"');
        const events = await admin.audit({ limit: Number(g.limit ?? 50), ...(g.type ? { type: g.type } : {}) });
        if (fmt === 'json') return void print(`${toJson(events)}\n`);
        print(
          safeTable(
            ['Time', 'Event', 'OK', 'Bot', 'Instance', 'Detail'],
            events.map((e) => {
              const detail = e.reason ?? e.resource ?? e.join_method ?? '';
              const ok = e.success ? 'yes' : 'NO';
              return [e.time ?? '', e.event, ok, e.bot_name ?? '', e.bot_instance_id ?? '', detail];
            }),
          ),
        );
        return;
      }
      default:
        throw usageError(`unknown command ${JSON.stringify(cmd)} (see tctl --help)`);
    }
  } finally {
    admin.close();
  }
}

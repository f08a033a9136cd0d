#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { MwiError } from '../errors.js';
import type { BoundKeypairSpec } from '../join/bound_keypair/wire.js';
import { writeFileAtomic } from '../util/fs.js';
import { VERSION } from '../version.js';
import { parseFlags, runMain, usageError } from './common.js';
import { authExport } from './tctl/auth-export.js';
import { authSignAdmin } from './tctl/auth-sign.js';
import { bots } from './tctl/bots.js';
import { editCommand } from './tctl/edit.js';
import { lockCommand, locks } from './tctl/locks.js';
import { createCommand, getCommand, rmCommand } from './tctl/resources.js';
import { list, need, OPTIONS, type Flags } from './tctl/shared.js';
import { tokens } from './tctl/tokens.js';
import { failuresTable } from './tctl/tokens-test.js';
import { adminClient } from './tctl/client.js';
import { checkFormat } from './tctl/format.js';
import { cell, print, safeError, safeTable, toJson } from './tctl/output.js';

const HELP = `Usage: tctl [global flags] <command> [flags]

Commands:
  status                                  cluster name and CA pin
  bots add NAME --roles R1,R2 [--logins L1,L2] [--ttl 1h] [--max-session-ttl D]
                                          create a bot and a single-use join token
  bots add NAME --roles R --token NAME    create a bot that joins with an existing token of its own
  bots ls | bots rm NAME
  bots update NAME [--set-roles R] [--add-roles R] [--set-logins L] [--add-logins L]
  bots instances ls [BOT]                 joined tbot instances (also: list)
  bots instances show BOT/ID              one instance (also: get, describe)
  bots instances add BOT [--token NAME] [--ttl 1h]
                                          a new single-use join token for an existing bot (also: join);
                                          with --token, how to join with an existing token of the bot
  tokens add --type=bot --bot-name NAME [--join-method token] [--ttl 30m] [--value V] [--labels k=v,...]
             [--spec FILE] [--format text|json|yaml]
  tokens ls | tokens rm|del ID
  tokens test NAME (--id-token FILE | --from-audit UID) [--format json]
                                          run a platform token's join checks on an identity token (FILE,
                                          or - for stdin) or on a refused join's claims, each shown; creates
                                          nothing; exit 0 if it would join, 1 if not
  create [FILE] [-f|--force]              create roles, bots, tokens, locks (YAML, --- separated; no FILE
                                          or - reads stdin); -f replaces existing ones; a file is applied
                                          all or none
  get RESOURCES                           print resources: KIND[/NAME] (kinds: roles, bots, tokens, locks,
                                          bot_instances; an instance is bot_instance/BOT/ID or
                                          bot_instance/ID), several separated by commas, or all
  edit KIND/NAME                          edit a resource in $EDITOR ($VISUAL, vi) and apply it as create -f
                                          (refused if it was changed meanwhile)
  rm KIND/NAME                            delete a resource (also: del)
  bound-keypair rotate TOKEN              make the bot rotate its bound keypair at its next renewal
  lock (--user bot-NAME|OPERATOR | --bot-instance-id ID | --join-token NAME) [--message TEXT]
       [--expires RFC3339 | --ttl D]       lock one target (Teleport's form)
  locks add (--bot NAME | --bot-instance ID) [--message TEXT] [--expires RFC3339 | --ttl D]
  locks ls | locks rm NAME
  ca export --type ssh-user|ssh-host|tls-user|tls-host
  auth export --type user|host|openssh|tls-user|tls-host
                                          the same, with Teleport's type names
  auth sign --host NAMES --public-key FILE [--ttl 720h] [--out FILE]
                                          OpenSSH host certificate for an existing host key
  auth sign --admin --user NAME --out FILE [--ttl 12h]
                                          an operator identity for tctl -i on another machine (mwi's
                                          --admin; at most 24h; run on the Auth Service host)
  audit ls [--limit 50] [--type EVENT] [--failures]
                                          recent audit events; --failures: refusals, with reasons and uids
  version                                 (also --version)

Global flags:
  --data-dir DIR       local Auth Service data dir (default /var/lib/mwi, or $MWI_DATA_DIR)
  --auth-server ADDR   Auth Service address (with --identity; $TELEPORT_AUTH_SERVER)
  -i, --identity FILE  admin identity file ($TELEPORT_IDENTITY_FILE)
  --format FMT         text (default), json; yaml for get and tokens add
`;

runMain('tctl', () =>
  main().catch((err: unknown) => {
    throw safeError(err);
  }),
);

async function main(): Promise<number | void> {
  const argv = process.argv.slice(2);
  const { values, positionals } = parseFlags(argv, OPTIONS);
  const g: Flags = values;
  const [cmd, sub, ...args] = positionals;
  if (cmd === 'version' || g.version) return void print(`tctl v${VERSION}\n`);
  if (g['with-secrets'])
    throw usageError(
      'mwi has no secrets to show: join secrets are stored only as hashes and shown once, when made ' +
        '(tctl bots add, tctl tokens add); a lost one is replaced with a new token',
      '--with-secrets',
    );
  if (!cmd || cmd === 'help' || g.help) {
    print(HELP);
    return cmd || g.help ? 0 : 2;
  }
  if (cmd === 'auth' && sub === 'sign' && (g.admin || g.user !== undefined)) return authSignAdmin(g);
  const fmt = checkFormat(
    g.format,
    cmd === 'get' ? ['yaml', 'json', 'text'] : cmd === 'tokens' ? ['text', 'json', 'yaml'] : ['text', 'json'],
    cmd === 'get' ? 'yaml' : 'text',
  );
  const admin = adminClient(g);
  try {
    switch (cmd) {
      case 'status': {
        const s = await admin.status();
        if (fmt === 'json') return void print(`${toJson(s)}\n`);
        print(`Cluster  ${cell(s.cluster_name)}\nVersion  ${cell(s.server_version)}\nCA pin   ${cell(s.ca_pin)}\n`);
        return;
      }
      case 'bots':
      case 'bot':
        return await bots({ admin, sub, positionals: args, values: g, format: fmt });
      case 'tokens':
        return await tokens({ admin, sub, positionals: args, values: g, format: fmt });
      case 'locks':
        return await locks({ admin, sub, positionals: args, values: g, format: fmt });
      case 'lock':
        if (sub !== undefined) throw usageError(`unexpected argument ${JSON.stringify(sub)} (see tctl --help)`);
        return await lockCommand(admin, g);
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
      case 'create':
        return await createCommand(admin, argv, positionals.slice(1), g.force === true);
      case 'get':
        return await getCommand(admin, need(sub, 'RESOURCES'), fmt);
      case 'edit':
        return await editCommand(admin, sub, process.env);
      case 'rm':
      case 'del':
        return await rmCommand(admin, sub);
      case 'ca': {
        if (sub !== 'export') throw usageError('expected "tctl ca export --type TYPE"');
        print(await admin.exportCA(need(g.type, '--type')));
        return;
      }
      case 'auth': {
        if (sub === 'export') return void print(await authExport(admin, need(g.type, '--type')));
        if (sub !== 'sign') throw usageError('expected "tctl auth export --type TYPE" or "tctl auth sign ..."');
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
        const filter = { ...(g.type ? { type: g.type } : {}), ...(g.failures ? { failures: true } : {}) };
        const events = await admin.audit({ limit: Number(g.limit ?? 50), ...filter });
        if (fmt === 'json') return void print(`${toJson(events)}\n`);
        if (g.failures) return void print(failuresTable(events));
        print(
          safeTable(
            ['Time', 'Event', 'OK', 'Bot', 'Instance', 'Detail'],
            events.map((e) => {
              // the actor of an administrator's event (an operator's name for an operator identity)
              const by = typeof e.user === 'string' ? ` (by ${e.user})` : '';
              const route = typeof e.route === 'string' ? e.route : undefined;
              const detail = `${e.reason ?? e.resource ?? route ?? e.join_method ?? ''}${by}`;
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

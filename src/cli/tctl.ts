#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { MwiError } from '../errors.js';
import { hostPrincipalProblem } from '../api/admin.js';
import type { BoundKeypairSpec } from '../join/bound_keypair/wire.js';
import { writeFileAtomic } from '../util/fs.js';
import { VERSION } from '../version.js';
import { ioReason } from '../util/io-reason.js';
import { runMain, usageError } from './common.js';
import { completionScript } from './help/completion.js';
import { parseCommandLine } from './help/parse.js';
import { helpFor, programHelp } from './help/render.js';
import { defaultOf } from './help/table.js';
import { CA_TYPES, TCTL } from './help/tctl-table.js';
import { authExport } from './tctl/auth-export.js';
import { authSignAdmin } from './tctl/auth-sign.js';
import { authSignDb } from './tctl/auth-sign-db.js';
import { authRotate } from './tctl/auth-rotate.js';
import { bots } from './tctl/bots.js';
import { editCommand } from './tctl/edit.js';
import { lockCommand, locks } from './tctl/locks.js';
import { createCommand, getCommand, rmCommand } from './tctl/resources.js';
import { auditList } from './tctl/audit.js';
import { list, need, type Flags } from './tctl/shared.js';
import { tokens } from './tctl/tokens.js';
import { adminClient } from './tctl/client.js';
import type { Format } from './tctl/format.js';
import { cell, print, safeError, toJson } from './tctl/output.js';

/** Teleport's `auth export` names of the CAs `ca export` knows by other names. */
const TELEPORT_CA_NAMES: Record<string, string> = { host: 'ssh-host', user: 'ssh-user', openssh: 'ssh-user' };
/** CAs that only `tctl auth export` writes (Teleport's command), by type, for ca export's pointer. */
const AUTH_EXPORT_ONLY: Record<string, string> = {
  spiffe: 'SPIFFE CA bundle',
  'tls-spiffe': 'SPIFFE CA bundle',
  jwt: 'JWT-SVID keys (JWKS)',
  'db-client': 'database client CA',
  db: 'database CA',
};

// `tctl ... | head` closes the pipe early: the reader has what it wanted; no stack trace, exit 0
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

runMain('tctl', () =>
  main().catch((err: unknown) => {
    throw safeError(err);
  }),
);

async function main(): Promise<number | void> {
  const argv = process.argv.slice(2);
  const line = parseCommandLine(TCTL, argv);
  const g: Flags = line.values;
  if (line.help) return void print(helpFor(TCTL, line.command));
  if (line.path === 'version' || g.version) return void print(`tctl v${VERSION}\n`);
  if (!line.command) {
    print(programHelp(TCTL));
    return 2;
  }
  if (g['with-secrets'])
    throw usageError(
      'mwi has no secrets to show: join secrets are stored only as hashes and shown once, when made ' +
        '(tctl bots add, tctl tokens add); a lost one is replaced with a new token',
      '--with-secrets',
    );
  if (line.path === 'completion') return void print(completionScript(TCTL, line.args[0]));
  if (line.path === 'auth sign' && (g.admin || g.user !== undefined)) return authSignAdmin(g);
  if (line.path === 'auth sign' && g.format === 'db') return authSignDb(g);
  if (line.path === 'ca export' && g.type !== undefined && !(CA_TYPES as readonly string[]).includes(g.type))
    throw usageError(
      `unknown CA type ${JSON.stringify(g.type)} (expected one of: ${CA_TYPES.join(', ')})` +
        (Object.hasOwn(TELEPORT_CA_NAMES, g.type)
          ? `; "${g.type}" is Teleport's name: tctl auth export --type ${g.type}, or ca export --type ` +
            TELEPORT_CA_NAMES[g.type]
          : Object.hasOwn(AUTH_EXPORT_ONLY, g.type)
            ? `; the ${AUTH_EXPORT_ONLY[g.type]} is exported with tctl auth export --type ${g.type}`
            : ''),
      '--type',
    );
  const fmt = (g.format ?? defaultOf(TCTL, line.command, 'format') ?? 'text') as Format;
  // the command's words, aliases replaced: `bots instances ls` is bots(sub: instances, ls, ...)
  const [cmd, sub, ...more] = line.path.split(' ');
  const args = [...more, ...line.args];
  const admin = adminClient(g);
  try {
    switch (cmd) {
      case 'status': {
        const s = await admin.status();
        if (fmt === 'json') return void print(`${toJson(s)}\n`);
        print(`Cluster  ${cell(s.cluster_name)}\nVersion  ${cell(s.server_version)}\nCA pin   ${cell(s.ca_pin)}\n`);
        const wi = s.workload_identity;
        if (wi)
          print(`SPIFFE   spiffe://${cell(wi.trust_domain)}${wi.issuer ? `  JWT issuer ${cell(wi.issuer)}` : ''}\n`);
        return;
      }
      case 'bots':
        return await bots({ admin, sub, positionals: args, values: g, format: fmt });
      case 'tokens':
        return await tokens({ admin, sub, positionals: args, values: g, format: fmt });
      case 'locks':
        return await locks({ admin, sub, positionals: args, values: g, format: fmt });
      case 'lock':
        return await lockCommand(admin, g);
      case 'bound-keypair': {
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
        return await createCommand(admin, argv, args, g.force === true);
      case 'get':
        return await getCommand(admin, need(args[0], 'RESOURCES'), fmt);
      case 'edit':
        return await editCommand(admin, args[0], process.env);
      case 'rm':
        return await rmCommand(admin, args[0]);
      case 'ca':
        print(await admin.exportCA(need(g.type, '--type')));
        return;
      case 'auth': {
        if (sub === 'export') return void print(await authExport(admin, need(g.type, '--type')));
        if (sub === 'rotate') return void print(await authRotate(admin, g));
        const file = need(g['public-key'], '--public-key');
        let publicKey: string;
        try {
          publicKey = readFileSync(file, 'utf8');
        } catch (cause) {
          throw new MwiError('BAD_CONFIG', `cannot read ${file}: ${ioReason(cause)}`, { field: '--public-key', cause });
        }
        const principals = list(need(g.host, '--host')) ?? [];
        const pattern = principals.map(hostPrincipalProblem).find(Boolean);
        if (pattern) throw new MwiError('BAD_CONFIG', pattern, { field: '--host' });
        const cert = await admin.signHost({ public_key: publicKey, principals, ...(g.ttl ? { ttl: g.ttl } : {}) });
        if (g.out) writeFileAtomic(g.out, `${cert}\n`, 0o644);
        else print(`${cert}\n`);
        return;
      }
      case 'audit':
        return await auditList(admin, g, fmt);
      default:
        // the table names a command this switch does not run: a programming error
        throw new TypeError(`tctl: no handler for ${line.path}`);
    }
  } finally {
    admin.close();
  }
}

import { generateKeys } from '../../crypto/keys.js';
import { OPERATOR_DEFAULT_TTL, OPERATOR_MAX_TTL, operatorNameProblem } from '../../api/admin.js';
import type { IdentityFile } from '../../api/local.js';
import { parseDuration } from '../../util/duration.js';
import { writeFileAtomic } from '../../util/fs.js';
import { usageError } from '../common.js';
import { adminClient } from './client.js';
import { cell, print } from './output.js';
import { need, type Flags } from './shared.js';

const MAX_TTL_MS = parseDuration(OPERATOR_MAX_TTL)!;

/**
 * `tctl auth sign --admin --user NAME [--ttl 12h] --out FILE`: an operator identity, written as
 * an identity file for `tctl --auth-server ADDR -i FILE` on another machine. Run on the Auth
 * Service host: only its local admin identity may sign one. The key is generated here and never
 * sent; the file is written (0600) only once the Auth Service has signed. `--admin` is mwi's own:
 * Teleport's `tctl auth sign --user` signs for a user and their roles, and mwi has no users, so
 * the flag says that the identity is an administrator's.
 */
export async function authSignAdmin(g: Flags): Promise<void> {
  if (!g.admin)
    throw usageError(
      'mwi has no users: Teleport\'s "tctl auth sign --user NAME" becomes "tctl auth sign --admin --user NAME ' +
        '--out FILE", an administrator identity carrying the operator\'s name',
      '--user',
    );
  const user = need(g.user, '--user');
  const problem = operatorNameProblem(user);
  if (problem) throw usageError(problem, '--user');
  const out = need(g.out, '--out');
  // Teleport's --format picks among its formats (file, openssh, tls, kubernetes, ...): an operator
  // identity is only of use to tctl, so there is one, Teleport's default name for it
  if (g.format !== undefined && g.format !== 'file')
    throw usageError(
      'an operator identity has one format, "file" (the identity file tctl -i reads); ' +
        "Teleport's other formats are for its users' tools",
      '--format',
    );
  const ttl = g.ttl ?? OPERATOR_DEFAULT_TTL;
  const ttlMs = parseDuration(ttl);
  if (ttlMs === undefined || ttlMs <= 0) throw usageError('expected a duration such as 8h', '--ttl');
  if (ttlMs > MAX_TTL_MS)
    throw usageError(
      `at most ${OPERATOR_MAX_TTL}, the cap on every credential mwi issues (sign a new one when it expires; ` +
        'tctl lock --user NAME revokes one before)',
      '--ttl',
    );
  const keys = await generateKeys('ec-p256');
  const admin = adminClient(g);
  try {
    const signed = await admin.signAdmin({ user, public_key: keys.publicKeyPem, ttl });
    const file: IdentityFile = { ...signed, key: keys.privateKeyPem };
    writeFileAtomic(out, `${JSON.stringify(file, null, 2)}\n`, 0o600);
    print(
      `The operator identity of "${cell(user)}" is in ${cell(out)} (0600), valid until ${signed.expires}.\n` +
        "Copy it to the operator's machine (it holds a private key) and run there:\n" +
        `  tctl --auth-server HOST:PORT -i ${cell(out)} status\n` +
        "where HOST:PORT is this Auth Service's address as that machine reaches it " +
        `(it listens on ${cell(admin.addrs.join(','))}).\n` +
        `Each use is audited under "${cell(user)}"; revoke it before it expires with: tctl lock --user ${cell(user)}\n`,
    );
  } finally {
    admin.close();
  }
}

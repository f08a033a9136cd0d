import { readFileSync, statSync } from 'node:fs';
import { AdminClient } from '../../api/admin-client.js';
import { ApiClient } from '../../api/client.js';
import { adminIdentityPath, authInfoPath, DEFAULT_DATA_DIR, readIdentityFile } from '../../api/local.js';
import type { AuthInfo, IdentityFile } from '../../api/local.js';
import { MwiError } from '../../errors.js';
import { ioReason } from '../../util/io-reason.js';
import { warn } from './output.js';

export interface ConnectFlags {
  'data-dir'?: string | undefined;
  'auth-server'?: string | undefined;
  identity?: string | undefined;
}

/**
 * An admin client: `--auth-server` + `--identity FILE` when given (or Teleport's
 * $TELEPORT_AUTH_SERVER and $TELEPORT_IDENTITY_FILE), otherwise the local Auth Service's data dir
 * (its address and the admin identity it wrote at start).
 */
export function adminClient(given: ConnectFlags, env: NodeJS.ProcessEnv = process.env): AdminClient {
  const flags: ConnectFlags = {
    ...given,
    'auth-server': given['auth-server'] ?? (env.TELEPORT_AUTH_SERVER || undefined),
    identity: given.identity ?? (env.TELEPORT_IDENTITY_FILE || undefined),
  };
  const dataDir = flags['data-dir'] ?? env.MWI_DATA_DIR ?? DEFAULT_DATA_DIR;
  const identityPath = flags.identity ?? adminIdentityPath(dataDir);
  let identity: IdentityFile | undefined;
  try {
    identity = readIdentityFile(identityPath);
  } catch (cause) {
    throw new MwiError('BAD_CONFIG', `cannot read identity file ${identityPath}: ${ioReason(cause)}`, {
      field: '--identity',
      cause,
    });
  }
  // --auth-server alone: the local data dir had no identity to go with it (the usual case on another machine)
  if (!identity && flags['auth-server'] && !flags.identity)
    throw new MwiError(
      'BAD_CONFIG',
      'is required with --auth-server: the operator identity file to connect with (or $TELEPORT_IDENTITY_FILE), ' +
        'made for you on the Auth Service host with tctl auth sign --admin --user NAME --out FILE ' +
        `(docs/remote-admin.md; ${identityPath} does not exist)`,
      { field: '--identity' },
    );
  if (!identity) {
    throw new MwiError(
      'BAD_CONFIG',
      `no admin identity at ${identityPath}: start the Auth Service with this --data-dir first, or pass ` +
        `--auth-server and --identity`,
      {
        field: flags.identity ? '--identity' : '--data-dir',
      },
    );
  }
  // it holds a private key: say so when others may read it (mwi writes identity files 0600)
  const mode = statSync(identityPath).mode & 0o777;
  if (mode & 0o077) {
    const octal = mode.toString(8).padStart(4, '0');
    const fix = `chmod 600 ${identityPath}`;
    warn(`warning: ${identityPath} holds a private key and others may read it (mode ${octal}): ${fix}\n`);
  }
  // an expired certificate is refused at the TLS handshake, which says nothing of why: say it here
  const expires = Date.parse(identity.expires);
  if (flags.identity && expires <= Date.now())
    throw new MwiError(
      'ACCESS_DENIED',
      `the identity in ${identityPath} expired at ${identity.expires}: an operator identity is signed anew ` +
        'on the Auth Service host (tctl auth sign --admin --user NAME --out FILE)',
    );
  let addr = flags['auth-server'];
  if (!addr) {
    try {
      addr = (JSON.parse(readFileSync(authInfoPath(dataDir), 'utf8')) as AuthInfo).addr;
    } catch (cause) {
      throw new MwiError(
        'BAD_CONFIG',
        `cannot find the Auth Service address in ${authInfoPath(dataDir)}; pass --auth-server`,
        { field: '--auth-server', cause },
      );
    }
  }
  const tls = { ca: identity.ca_certs, cert: identity.cert, key: identity.key };
  return new AdminClient(new ApiClient({ addrs: addr.split(','), tls }));
}

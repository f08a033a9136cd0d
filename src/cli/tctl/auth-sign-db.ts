import { createPrivateKey } from 'node:crypto';
import { hostPrincipalProblem } from '../../api/admin.js';
import { generateKeys } from '../../crypto/keys.js';
import { writeFileAtomic } from '../../util/fs.js';
import { usageError } from '../common.js';
import { adminClient } from './client.js';
import { cell, print } from './output.js';
import { list, need, type Flags } from './shared.js';

/**
 * `tctl auth sign --format db --host NAMES --out PREFIX [--ttl 2190h]` (Teleport's command for a
 * self-hosted database): PREFIX.crt (the server certificate, from the cluster's db CA), PREFIX.key
 * (made here, 0600) and PREFIX.cas (the db-client CA, for the server's ssl_ca_file). Clients of
 * tbot's database output verify this certificate with their tls.cas. Nothing is written unless
 * the Auth Service signed.
 */
export async function authSignDb(g: Flags): Promise<void> {
  if (g['public-key'] !== undefined)
    throw usageError('--format db makes its own key (PREFIX.key); it takes no --public-key', '--public-key');
  const hosts = list(need(g.host, '--host')) ?? [];
  const problem = hosts.map(hostPrincipalProblem).find(Boolean);
  if (problem) throw usageError(problem, '--host');
  const out = need(g.out, '--out');
  const keys = await generateKeys('ec-p256');
  const admin = adminClient(g);
  try {
    const signed = await admin.signDb({ public_key: keys.publicKeyPem, hosts, ...(g.ttl ? { ttl: g.ttl } : {}) });
    const keyPem = createPrivateKey(keys.privateKeyPem).export({ type: 'sec1', format: 'pem' }).toString();
    writeFileAtomic(`${out}.key`, keyPem, 0o600);
    writeFileAtomic(`${out}.crt`, signed.cert, 0o644);
    writeFileAtomic(`${out}.cas`, signed.client_ca, 0o644);
    print(
      `Database server credentials for ${cell(hosts.join(', '))}, valid until ${signed.expires}:\n` +
        `  ${cell(out)}.crt, ${cell(out)}.key: postgresql.conf ssl_cert_file, ssl_key_file\n` +
        `  ${cell(out)}.cas: ssl_ca_file (the db-client CA that signs tbot's database output)\n`,
    );
  } finally {
    admin.close();
  }
}

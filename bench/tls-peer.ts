// The TLS ceiling, measured in the same run: a bare Node.js HTTPS server in its own process that
// asks for a client certificate (TLS 1.3, ECDSA P-256, like the Auth Service) and answers every
// request with `{}`. New-connection renewals cannot beat its handshake rate.
import { fork, type ChildProcess } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { AUTH_SERVER_NAME } from '../src/api/wire.js';
import { generateKeys } from '../src/crypto/keys.js';
import { createCA, issueCertificate, loadCA } from '../src/crypto/x509.js';
import type { ClientTLS } from '../src/api/client.js';

interface PeerTLS {
  ca: string;
  cert: string;
  key: string;
}

if (process.argv.includes('--child')) {
  process.once('message', (tls: PeerTLS) => {
    const server = createServer(
      { ...tls, ca: [tls.ca], requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' },
      (req, res) => {
        req.resume();
        req.on('end', () => res.end('{}'));
      },
    );
    server.listen(0, '127.0.0.1', () => process.send!((server.address() as AddressInfo).port));
  });
}

async function leaf(ca: Awaited<ReturnType<typeof loadCA>>, usage: 'client' | 'server') {
  const keys = await generateKeys('ec-p256');
  const { certPem } = await issueCertificate({
    ca,
    publicKey: createPublicKey(keys.publicKeyPem).export({ type: 'spki', format: 'der' }),
    commonName: usage,
    ttlMs: 3600_000,
    usage,
    ...(usage === 'server' ? { dnsNames: [AUTH_SERVER_NAME] } : {}),
  });
  return { cert: certPem, key: keys.privateKeyPem };
}

/** Starts the bare peer; returns its address, its pid, client credentials it accepts, and stop. */
export async function startTlsPeer(): Promise<{ addr: string; pid: number; client: ClientTLS; stop: () => void }> {
  const pair = await createCA('bench', 'bench TLS peer CA');
  const ca = await loadCA(pair);
  const [server, client] = await Promise.all([leaf(ca, 'server'), leaf(ca, 'client')]);
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--child'], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (p) => resolve(p as number));
    child.once('exit', (code) => reject(new Error(`TLS peer exited ${code}`)));
    child.send({ ca: pair.certPem, ...server } satisfies PeerTLS);
  });
  return {
    addr: `127.0.0.1:${port}`,
    pid: child.pid!,
    client: { ca: [pair.certPem], ...client },
    stop: () => child.kill(),
  };
}

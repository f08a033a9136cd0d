// A stand-in for a public CA, made with openssl the way an operator's certificates are: a root (to
// put in tbot's trust store with NODE_EXTRA_CA_CERTS), an intermediate, and server certificates
// whose files hold the leaf then the intermediate (a full chain, as Let's Encrypt hands it out).
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './procs.js';

export interface PublicPki {
  /** The root CA certificate file (PEM). */
  root: string;
  /**
   * A key and a chain file (`<name>.pem`: leaf, intermediate) for `san` (openssl syntax, e.g.
   * `DNS:localhost,IP:127.0.0.1`), signed by the intermediate.
   */
  issue(name: string, san: string): Promise<{ cert: string; key: string }>;
}

async function openssl(args: string[]): Promise<void> {
  const r = await run('openssl', args);
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
const serial = () => `0x${randomBytes(12).toString('hex')}`;

/** Makes the root and intermediate in `dir`. */
export async function makePublicPki(dir: string): Promise<PublicPki> {
  const p = (f: string) => join(dir, f);
  await openssl(
    ['req', '-x509', ...EC, '-keyout', p('root.key'), '-out', p('root.pem')].concat([
      '-subj',
      '/CN=Test Public Root',
      '-days',
      '2',
    ]),
  );
  writeFileSync(
    p('int.ext'),
    'basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n' +
      'subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n',
  );
  await openssl(['req', ...EC, '-keyout', p('int.key'), '-out', p('int.csr'), '-subj', '/CN=Test Public R1']);
  await openssl(
    ['x509', '-req', '-in', p('int.csr'), '-CA', p('root.pem'), '-CAkey', p('root.key')].concat([
      '-set_serial',
      serial(),
      '-days',
      '2',
      '-extfile',
      p('int.ext'),
      '-out',
      p('int.pem'),
    ]),
  );
  return {
    root: p('root.pem'),
    async issue(name, san) {
      writeFileSync(
        p(`${name}.ext`),
        'basicConstraints=CA:false\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' +
          `subjectAltName=${san}\nauthorityKeyIdentifier=keyid\n`,
      );
      const key = p(`${name}.key`);
      await openssl(['req', ...EC, '-keyout', key, '-out', p(`${name}.csr`), '-subj', `/CN=${name}`]);
      await openssl(
        ['x509', '-req', '-in', p(`${name}.csr`), '-CA', p('int.pem'), '-CAkey', p('int.key')].concat([
          '-set_serial',
          serial(),
          '-days',
          '1',
          '-extfile',
          p(`${name}.ext`),
          '-out',
          p(`${name}.leaf`),
        ]),
      );
      const cert = p(`${name}.pem`);
      writeFileSync(cert, readFileSync(p(`${name}.leaf`), 'utf8') + readFileSync(p('int.pem'), 'utf8'));
      return { cert, key };
    },
  };
}

import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext } from 'node:tls';
import { AUTH_SERVER_NAME } from '../api/wire.js';
import { splitPemBundle } from '../crypto/pem.js';
import { MwiError } from '../errors.js';

// The certificate an operator gives the Auth Service for its public address (`mwi start
// --tls-cert/--tls-key`, mwi.yaml `https_keypairs`), next to the Auth Service's own certificate
// from its host CA. Which one a connection gets is decided by the name the client asks for (SNI):
// mwi's own clients (tbot after its first join, tctl, a pinned first contact) always ask for
// AUTH_SERVER_NAME and get the Auth Service's own certificate, which they verify with the
// cluster's CA; every other client (a tbot joining through `proxy_server`, curl, a browser) gets
// the operator's, which they verify with their system trust store. Client certificates are
// verified against the user CA on both.

/** One keypair's files, and how the operator named each (a flag or an mwi.yaml key), for errors. */
export interface KeypairFiles {
  certFile: string;
  keyFile: string;
  certField: string;
  keyField: string;
}

/** A keypair read and checked: the PEM texts as served (the whole chain) and the parsed leaf. */
export interface LoadedKeypair {
  files: KeypairFiles;
  cert: string;
  key: string;
  leaf: X509Certificate;
}

function readPem(file: string, field: string): string {
  if (!existsSync(file)) throw new MwiError('BAD_CONFIG', `file ${file} does not exist`, { field });
  try {
    return readFileSync(file, 'utf8');
  } catch (cause) {
    const reason = (cause as NodeJS.ErrnoException).code ?? String(cause);
    throw new MwiError('BAD_CONFIG', `cannot read ${file}: ${reason}`, { field, cause });
  }
}

/**
 * Reads and checks one keypair: a PEM certificate chain (leaf first, then intermediates, served
 * whole) and the leaf's private key. Refuses, naming the flag or key, a missing or unreadable
 * file, a file without a certificate or key, a key that is not the leaf's, and a leaf that is not
 * valid at `now`: a public client would refuse it anyway, and later, with a vaguer error.
 */
export function loadKeypair(files: KeypairFiles, now: number): LoadedKeypair {
  const certText = readPem(files.certFile, files.certField);
  const keyText = readPem(files.keyFile, files.keyField);
  const chain = splitPemBundle(certText);
  if (chain.length === 0)
    throw new MwiError('BAD_CONFIG', `no PEM certificate in ${files.certFile}`, { field: files.certField });
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(chain[0]!);
    for (const c of chain.slice(1)) new X509Certificate(c);
  } catch (cause) {
    throw new MwiError('BAD_CONFIG', `${files.certFile} holds a certificate that cannot be parsed`, {
      field: files.certField,
      cause,
    });
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyText);
  } catch (cause) {
    throw new MwiError('BAD_CONFIG', `no PEM private key in ${files.keyFile} (an encrypted key is not supported)`, {
      field: files.keyField,
      cause,
    });
  }
  if (!leaf.checkPrivateKey(key))
    throw new MwiError(
      'BAD_CONFIG',
      `the key in ${files.keyFile} does not match the certificate in ${files.certFile} (the first certificate ` +
        'of the file must be the server certificate, followed by its intermediates)',
      { field: files.keyField },
    );
  if (Date.parse(leaf.validTo) <= now)
    throw new MwiError('BAD_CONFIG', `the certificate in ${files.certFile} expired at ${isoDate(leaf.validTo)}`, {
      field: files.certField,
    });
  if (Date.parse(leaf.validFrom) > now)
    throw new MwiError(
      'BAD_CONFIG',
      `the certificate in ${files.certFile} is not valid before ${isoDate(leaf.validFrom)}`,
      { field: files.certField },
    );
  // the whole file is served: the leaf and every intermediate, in the operator's order
  return { files, cert: chain.join(''), key: keyText, leaf };
}

function isoDate(openssl: string): string {
  return new Date(Date.parse(openssl)).toISOString();
}

/** The names a certificate is valid for, for the log. */
export function certNames(leaf: X509Certificate): string {
  return leaf.subjectAltName ?? leaf.subject.replace(/\n/g, ', ');
}

/** A certificate and key as `createSecureContext` and `setSecureContext` take them. */
export interface ServingPair {
  cert: string;
  key: string;
}

/**
 * Which certificate a connection is served (see the top of this file). `options()` is the
 * server's default context (for clients that send no name: the operator's first keypair when
 * there is one); `sni` picks per name. Both follow `setOwn` (the hourly re-issue) and
 * `setOperator` (a reload).
 */
export class ServingCertificates {
  private own: { pair: ServingPair; context: SecureContext };
  private operator: Array<{ leaf: X509Certificate; pair: ServingPair; context: SecureContext }> = [];

  /** `clientCa`: the CA client certificates are verified against, the same on every certificate. */
  constructor(
    private readonly clientCa: string[],
    own: ServingPair,
  ) {
    this.own = { pair: own, context: this.context(own) };
  }

  private context(pair: ServingPair): SecureContext {
    return createSecureContext({ ...pair, ca: this.clientCa, minVersion: 'TLSv1.3' });
  }

  get hasOperator(): boolean {
    return this.operator.length > 0;
  }

  setOwn(pair: ServingPair): void {
    this.own = { pair, context: this.context(pair) };
  }

  setOperator(pairs: LoadedKeypair[]): void {
    this.operator = pairs.map((p) => ({ leaf: p.leaf, pair: { cert: p.cert, key: p.key }, context: this.context(p) }));
  }

  /**
   * HOST:PORT for each name the operator's certificates are for (DNS names without wildcards,
   * then IP addresses), in their order, each once: the addresses a client may reach the Auth
   * Service by and verify with its trust store (tctl prints one as tbot's `--proxy-server`).
   */
  publicAddrs(port: number): string[] {
    const dns: string[] = [];
    const ips: string[] = [];
    for (const { leaf } of this.operator) {
      for (const m of (leaf.subjectAltName ?? '').matchAll(/(?:^|, )(DNS|IP Address):([^,\s"]+)/g)) {
        const [, type, name] = m as unknown as [string, string, string];
        if (type === 'DNS' && !name.includes('*')) dns.push(name.toLowerCase());
        else if (type === 'IP Address') ips.push(name.includes(':') ? `[${name.toLowerCase()}]` : name);
      }
    }
    return [...new Set([...dns, ...ips])].map((host) => `${host}:${port}`);
  }

  /** The default context's options: for `https.createServer` and `server.setSecureContext`. */
  options(): ServingPair & { ca: string[] } {
    return { ...(this.operator[0]?.pair ?? this.own.pair), ca: this.clientCa };
  }

  /** The context for a client that asked for `servername`; undefined: the default one. */
  pick(servername: string): SecureContext | undefined {
    if (servername.toLowerCase() === AUTH_SERVER_NAME) return this.own.context;
    return this.operator.find((o) => o.leaf.checkHost(servername) !== undefined)?.context;
  }

  /** For the server's `SNICallback` option. */
  readonly sni = (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void): void => {
    cb(null, this.pick(servername));
  };
}

import { createPublicKey, randomBytes, randomUUID, sign, type KeyObject } from 'node:crypto';
import { MwiError } from '../errors.js';
import { assertValidKey, type ClientKey } from './keys.js';
import { isEd25519Key, isP256Point } from './points.js';

/** OpenSSH wire-format writer (RFC 4251 section 5). */
class SshWriter {
  private parts: Buffer[] = [];
  string(v: string | Uint8Array): this {
    const b = typeof v === 'string' ? Buffer.from(v) : Buffer.from(v);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    this.parts.push(len, b);
    return this;
  }
  uint32(n: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    this.parts.push(b);
    return this;
  }
  uint64(n: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(n);
    this.parts.push(b);
    return this;
  }
  raw(b: Uint8Array): this {
    this.parts.push(Buffer.from(b));
    return this;
  }
  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function readString(buf: Buffer, offset: number): { value: Buffer; next: number } {
  if (offset + 4 > buf.length) throw new RangeError('truncated');
  const len = buf.readUInt32BE(offset);
  const next = offset + 4 + len;
  if (next > buf.length) throw new RangeError('truncated');
  return { value: buf.subarray(offset + 4, next), next };
}

/** The OpenSSH public key blob of an Ed25519 or ECDSA P-256 key. */
export function sshPublicKeyBlob(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  if (key.asymmetricKeyType === 'ed25519') {
    return new SshWriter().string('ssh-ed25519').string(Buffer.from(jwk.x!, 'base64url')).bytes();
  }
  if (key.asymmetricKeyType === 'ec' && jwk.crv === 'P-256') {
    const q = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
    return new SshWriter().string('ecdsa-sha2-nistp256').string('nistp256').string(q).bytes();
  }
  throw new TypeError(`unsupported SSH key type ${key.asymmetricKeyType}`);
}

/** The OpenSSH public key blob of a client key, from its raw bytes (no KeyObject). */
export function sshBlobOfClientKey(key: ClientKey): Buffer {
  return key.type === 'ed25519'
    ? new SshWriter().string('ssh-ed25519').string(key.raw).bytes()
    : new SshWriter().string('ecdsa-sha2-nistp256').string('nistp256').string(key.raw).bytes();
}

/** `type base64 [comment]`, the authorized_keys / .pub form. */
export function sshAuthorizedKey(key: KeyObject, comment = ''): string {
  const blob = sshPublicKeyBlob(key);
  const type = readString(blob, 0).value.toString();
  return `${type} ${blob.toString('base64')}${comment ? ` ${comment}` : ''}`;
}

/** Parses an authorized_keys-style line into its blob, checking the type matches the blob. */
export function parseSshPublicKey(line: string, field: string): { type: string; blob: Buffer } {
  const [type, b64] = line.trim().split(/\s+/);
  if (!type || !b64) throw new MwiError('BAD_REQUEST', 'expected an OpenSSH public key ("TYPE BASE64")', { field });
  const blob = Buffer.from(b64, 'base64');
  let inner: string;
  try {
    inner = readString(blob, 0).value.toString();
  } catch {
    throw new MwiError('BAD_REQUEST', 'malformed OpenSSH public key', { field });
  }
  const allowed = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'ssh-rsa'];
  if (inner !== type || !allowed.includes(type)) {
    throw new MwiError('BAD_REQUEST', `unsupported or inconsistent OpenSSH key type ${JSON.stringify(type)}`, {
      field,
    });
  }
  return { type, blob };
}

export interface SshCertOptions {
  /** Ed25519 CA private key. */
  caKey: KeyObject;
  /** The CA's public key blob, computed once (derived from caKey when absent). */
  caBlob?: Buffer;
  /** Public key blob to certify (from sshPublicKeyBlob or parseSshPublicKey). */
  subjectBlob: Buffer;
  certType: 'user' | 'host';
  keyId: string;
  principals: string[];
  validAfter: Date;
  validBefore: Date;
  extensions?: string[];
  criticalOptions?: Record<string, string>;
}

/**
 * Signs an OpenSSH certificate (PROTOCOL.certkeys) with an Ed25519 CA. The certified key's own
 * fields are copied verbatim from its blob, so any key type OpenSSH knows can be certified.
 * Returns the certificate line and its serial (decimal, as `ssh-keygen -L` and sshd's log print
 * it).
 *
 * @throws TypeError when `principals` is empty or holds an empty string: OpenSSH reads an empty
 * principal list as "any principal" where the CA is trusted by an authorized_keys
 * `cert-authority` line, so a caller with nothing to grant must add a placeholder principal
 * (see nologinPrincipal), never sign without one.
 */
export async function signSshCertificate(o: SshCertOptions): Promise<{ cert: string; serial: string }> {
  // rule: no certificate without principals (finding 2), enforced here so no caller can forget
  if (o.principals.length === 0) throw new TypeError('refusing to sign an SSH certificate without principals');
  if (o.principals.some((p) => p.length === 0))
    throw new TypeError('refusing to sign an SSH certificate with an empty principal');
  const keyType = readString(o.subjectBlob, 0);
  const certType = `${keyType.value.toString()}-cert-v01@openssh.com`;
  const caBlob = o.caBlob ?? sshPublicKeyBlob(createPublicKey(o.caKey));
  const principals = new SshWriter();
  for (const p of o.principals) principals.string(p);
  const critical = new SshWriter();
  for (const name of Object.keys(o.criticalOptions ?? {}).sort()) {
    critical.string(name).string(new SshWriter().string(o.criticalOptions![name]!).bytes());
  }
  const extensions = new SshWriter();
  for (const name of [...new Set(o.extensions ?? [])].sort()) extensions.string(name).string('');
  const serial = randomBytes(8).readBigUInt64BE();
  const body = new SshWriter()
    .string(certType)
    .string(randomBytes(32))
    .raw(o.subjectBlob.subarray(keyType.next))
    .uint64(serial)
    .uint32(o.certType === 'user' ? 1 : 2)
    .string(o.keyId)
    .string(principals.bytes())
    .uint64(BigInt(Math.floor(o.validAfter.getTime() / 1000)))
    .uint64(BigInt(Math.floor(o.validBefore.getTime() / 1000)))
    .string(critical.bytes())
    .string(extensions.bytes())
    .string('')
    .string(caBlob)
    .bytes();
  // the callback form runs on the libuv thread pool: signing uses every core, not the event loop
  const sig = await new Promise<Buffer>((resolve, reject) =>
    sign(null, body, o.caKey, (err, out) => (err ? reject(err) : resolve(out))),
  );
  const signature = new SshWriter().string('ssh-ed25519').string(sig).bytes();
  const cert = Buffer.concat([body, new SshWriter().string(signature).bytes()]);
  return { cert: `${certType} ${cert.toString('base64')}`, serial: serial.toString() };
}

/**
 * A principal no account can have, for a user certificate that grants no login: a leading "-"
 * is refused by useradd and read as an option by ssh. Unique per certificate, as Teleport's
 * `-teleport-nologin-<uuid>`.
 */
export function nologinPrincipal(): string {
  return `-mwi-nologin-${randomUUID()}`;
}

/**
 * Parses an `ssh-ed25519` or `ecdsa-sha2-nistp256` authorized-key line into a public KeyObject
 * (for verifying signatures made by that key). Other types, and keys that are no valid key (a
 * P-256 point off the curve, a small-order or non-canonical Ed25519 key), are a bad request
 * naming `field`.
 */
export function sshPublicKeyToKeyObject(line: string, field: string): KeyObject {
  const { type, blob } = parseSshPublicKey(line, field);
  try {
    let off = readString(blob, 0).next;
    if (type === 'ssh-ed25519') {
      const pk = readString(blob, off).value;
      if (pk.length !== 32) throw new RangeError('bad length');
      assertValidKey(isEd25519Key(pk), field);
      return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: pk.toString('base64url') }, format: 'jwk' });
    }
    if (type === 'ecdsa-sha2-nistp256') {
      const curve = readString(blob, off);
      off = curve.next;
      const q = readString(blob, off).value;
      if (curve.value.toString() !== 'nistp256' || q.length !== 65 || q[0] !== 4) throw new RangeError('bad point');
      assertValidKey(isP256Point(q), field);
      return createPublicKey({
        key: {
          kty: 'EC',
          crv: 'P-256',
          x: q.subarray(1, 33).toString('base64url'),
          y: q.subarray(33).toString('base64url'),
        },
        format: 'jwk',
      });
    }
  } catch (cause) {
    if (cause instanceof MwiError) throw cause;
    throw new MwiError('BAD_REQUEST', 'malformed OpenSSH public key', { field, cause });
  }
  throw new MwiError('BAD_REQUEST', `unsupported key type ${type} (expected ssh-ed25519 or ecdsa-sha2-nistp256)`, {
    field,
  });
}

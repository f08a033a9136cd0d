import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { claimsFromCert } from '../../src/auth/claims.js';
import { findUtf8Extension } from '../../src/crypto/der.js';
import { parseClientKey } from '../../src/crypto/keys.js';
import {
  parseSshPublicKey,
  signSshCertificate,
  sshPublicKeyBlob,
  sshPublicKeyToKeyObject,
} from '../../src/crypto/ssh.js';
import { createCA, IDENTITY_OID, issueCertificate, loadCA, type LoadedCA } from '../../src/crypto/x509.js';
import { isMwiError } from '../../src/errors.js';
import { run, tempDir } from '../helpers/procs.js';

const tmp = tempDir('prop');
after(tmp.cleanup);

/** Each run spawns ssh-keygen or openssl: keep the count modest. */
const SPAWNING_RUNS = 40;
const chars = (set: string) => fc.constantFrom(...set.split(''));
const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const login = fc.string({ unit: chars(`${ALNUM}._@-`), minLength: 1, maxLength: 16 });
const printable = (maxLength: number) =>
  fc.string({
    unit: chars(Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join('')),
    minLength: 1,
    maxLength,
  });
const iso = (d: Date) => d.toISOString().slice(0, 19);

describe('property: OpenSSH certificates round-trip through ssh-keygen -L', () => {
  const ca = createPrivateKey(generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const subjects = [
    generateKeyPairSync('ed25519').publicKey,
    generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey,
  ];

  it('principals, key ID, serial, validity, critical options and extensions read back as signed', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(login, { minLength: 1, maxLength: 5 }),
        printable(64).filter((s) => s.trim() === s),
        fc.integer({ min: Date.UTC(2000, 0, 1) / 1000, max: Date.UTC(2099, 0, 1) / 1000 }),
        fc.integer({ min: 1, max: 10 * 365 * 24 * 3600 }),
        fc.subarray([
          'permit-X11-forwarding',
          'permit-agent-forwarding',
          'permit-port-forwarding',
          'permit-pty',
          'permit-user-rc',
        ]),
        fc.uniqueArray(
          fc
            .string({ unit: chars('abcdefghijklmnopqrstuvwxyz-'), minLength: 1, maxLength: 10 })
            .map((s) => `${s}@example.com`),
          { maxLength: 2 },
        ),
        fc.option(
          printable(40).filter((s) => s.trim() === s),
          { nil: undefined },
        ),
        fc.constantFrom(0, 1),
        async (principals, keyId, after, lifetime, std, custom, forceCommand, which) => {
          const validAfter = new Date(after * 1000);
          const validBefore = new Date((after + lifetime) * 1000);
          const { cert, serial } = await signSshCertificate({
            caKey: ca,
            subjectBlob: sshPublicKeyBlob(subjects[which]!),
            certType: 'user',
            keyId,
            principals,
            validAfter,
            validBefore,
            extensions: [...std, ...custom],
            ...(forceCommand ? { criticalOptions: { 'force-command': forceCommand } } : {}),
          });
          const file = join(tmp.path, `c${n++}-cert.pub`);
          writeFileSync(file, `${cert}\n`);
          const r = await run('ssh-keygen', ['-L', '-f', file], { env: { ...process.env, TZ: 'UTC' } });
          assert.equal(r.code, 0, r.stderr);
          const out = r.stdout;
          const list = (name: string) =>
            new RegExp(`${name}: ?\\n((?:\\s{16}.*\\n)*)`)
              .exec(out)?.[1]
              ?.split('\n')
              .map((l) => l.trim())
              .filter(Boolean) ?? [];
          assert.match(out, /Type: (ssh-ed25519|ecdsa-sha2-nistp256)-cert-v01@openssh\.com user certificate/);
          assert.equal(/Key ID: "(.*)"\n/.exec(out)?.[1], keyId);
          assert.equal(/Serial: (\d+)/.exec(out)?.[1], serial);
          assert.equal(
            /Valid: from (\S+) to (\S+)/.exec(out)?.slice(1).join(' '),
            `${iso(validAfter)} ${iso(validBefore)}`,
          );
          assert.deepEqual(list('Principals'), principals);
          // ssh-keygen marks extensions it does not know: "name UNKNOWN FLAG OPTION"
          assert.deepEqual(
            list('Extensions').map((l) => l.split(' ')[0]),
            [...new Set([...std, ...custom])].sort(),
          );
          assert.deepEqual(list('Critical Options'), forceCommand ? [`force-command ${forceCommand}`] : []);
        },
      ),
      { numRuns: SPAWNING_RUNS },
    );
  });

  it('ssh-keygen -L checks the CA signature (so the round trip above covers it): a flipped signature byte is refused', async () => {
    const { cert } = await signSshCertificate({
      caKey: ca,
      subjectBlob: sshPublicKeyBlob(subjects[0]!),
      certType: 'user',
      keyId: 'k',
      principals: ['p'],
      validAfter: new Date(),
      validBefore: new Date(Date.now() + 60_000),
    });
    const [type, b64] = cert.split(' ') as [string, string];
    const blob = Buffer.from(b64, 'base64');
    blob[blob.length - 5] = blob[blob.length - 5]! ^ 1;
    const file = join(tmp.path, 'bad-cert.pub');
    writeFileSync(file, `${type} ${blob.toString('base64')}\n`);
    assert.notEqual((await run('ssh-keygen', ['-L', '-f', file])).code, 0);
  });
});

/** An IPv6 address as openssl prints it: 8 groups, uppercase, no leading zeros. */
function opensslIPv6(ip: string): string {
  // the WHATWG URL parser is an independent normaliser (embedded IPv4 included)
  const norm = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  const [head, tail] = norm.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => parseInt(g, 16).toString(16).toUpperCase()).join(':');
}

describe('property: X.509 leaves round-trip through openssl x509 -text and pass openssl verify', () => {
  let ca: LoadedCA;
  const caFile = join(tmp.path, 'ca.pem');
  before(async () => {
    ca = await loadCA(await createCA('prop', 'mwi user CA'));
    writeFileSync(caFile, ca.certPem);
  });

  it('subject, SANs, validity, key usage, EKU and the identity extension read back as issued', async () => {
    let n = 0;
    const name = fc.string({ unit: chars(`${ALNUM} ._@-`), minLength: 1, maxLength: 40 }).filter((s) => s.trim() === s);
    await fc.assert(
      fc.asyncProperty(
        name,
        fc.array(name, { maxLength: 3 }),
        fc.constantFrom('client', 'server', 'client+server'),
        fc.integer({ min: 1, max: 40 * 365 * 24 * 3600 }),
        fc.array(fc.domain(), { maxLength: 3 }),
        fc.array(fc.oneof(fc.ipV4(), fc.ipV6()), { maxLength: 3 }),
        fc.array(fc.webUrl(), { maxLength: 2 }),
        fc.dictionary(
          fc.string({ unit: chars(ALNUM), minLength: 1, maxLength: 8 }),
          fc.oneof(fc.string(), fc.integer(), fc.boolean()),
          { maxKeys: 4 },
        ),
        fc.constantFrom<'ec' | 'ed25519'>('ec', 'ed25519'),
        async (commonName, organization, usage, ttlSeconds, dnsNames, ipAddresses, uris, extra, alg) => {
          const key =
            alg === 'ec'
              ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey
              : generateKeyPairSync('ed25519').publicKey;
          const identity = { kind: 'output', ...extra };
          const now = Date.now();
          const { certPem, notAfter, serial } = await issueCertificate({
            ca,
            publicKey: key.export({ type: 'spki', format: 'der' }),
            commonName,
            organization,
            ttlMs: ttlSeconds * 1000,
            usage,
            dnsNames,
            ipAddresses,
            uris,
            identity,
            now,
          });
          const file = join(tmp.path, `leaf${n++}.pem`);
          writeFileSync(file, certPem);
          const text = await run('openssl', [
            'x509',
            '-in',
            file,
            '-noout',
            '-text',
            '-serial',
            '-subject',
            '-nameopt',
            'multiline',
          ]);
          assert.equal(text.code, 0, text.stderr);
          const out = text.stdout;
          const subject = [...out.slice(out.lastIndexOf('subject=')).matchAll(/^\s+(\w+)\s+= (.*)$/gm)].map(
            (m) => `${m[1]}=${m[2]}`,
          );
          assert.deepEqual(subject, [`commonName=${commonName}`, ...organization.map((o) => `organizationName=${o}`)]);
          assert.equal(/^serial=([0-9A-F]+)$/m.exec(out)?.[1]?.toLowerCase(), serial);
          assert.equal(/X509v3 Key Usage: critical\n\s+(.*)\n/.exec(out)?.[1], 'Digital Signature');
          const eku = {
            client: 'TLS Web Client Authentication',
            server: 'TLS Web Server Authentication',
            'client+server': 'TLS Web Server Authentication, TLS Web Client Authentication',
          }[usage];
          assert.equal(/X509v3 Extended Key Usage: \n\s+(.*)\n/.exec(out)?.[1], eku);
          const sans = [
            ...dnsNames.map((d) => `DNS:${d}`),
            ...ipAddresses.map((ip) => `IP Address:${ip.includes(':') ? opensslIPv6(ip) : ip}`),
            ...uris.map((u) => `URI:${u}`),
          ];
          assert.equal(
            /X509v3 Subject Alternative Name: \n\s+(.*)\n/.exec(out)?.[1],
            sans.length > 0 ? sans.join(', ') : undefined,
          );
          const x = new X509Certificate(certPem);
          assert.equal(Date.parse(x.validTo), Math.floor(notAfter.getTime() / 1000) * 1000);
          assert.equal(Date.parse(x.validFrom), Math.floor((now - 60_000) / 1000) * 1000);
          assert.deepEqual(JSON.parse(findUtf8Extension(x.raw, IDENTITY_OID)!), identity);
          assert.deepEqual(claimsFromCert(x.raw), identity);
          for (const purpose of ['sslclient', 'sslserver'] as const) {
            const v = await run('openssl', ['verify', '-purpose', purpose, '-CAfile', caFile, file]);
            const expected = usage === 'client+server' || (purpose === 'sslclient') === (usage === 'client');
            assert.equal(v.code === 0, expected, `${purpose} for ${usage}: ${v.stdout}${v.stderr}`);
          }
        },
      ),
      { numRuns: SPAWNING_RUNS },
    );
  });
});

describe('property: the key and certificate parsers fail only with BAD_REQUEST', () => {
  const P256_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');
  const ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
  const pem = (der: Uint8Array) =>
    `-----BEGIN PUBLIC KEY-----\n${Buffer.from(der).toString('base64')}\n-----END PUBLIC KEY-----\n`;
  const sshString = (b: Uint8Array | string) => {
    const v = Buffer.from(b);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(v.length);
    return Buffer.concat([len, v]);
  };
  const realSpki = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({
    type: 'spki',
    format: 'der',
  });
  /** A real key's bytes with some flipped, some dropped, or some appended. */
  const mutated = (base: Buffer) =>
    fc.oneof(
      fc
        .array(fc.tuple(fc.nat({ max: base.length - 1 }), fc.integer({ min: 1, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        })
        .map((flips) => {
          const b = Buffer.from(base);
          for (const [i, x] of flips) b[i] = b[i]! ^ x;
          return b;
        }),
      fc.nat({ max: base.length - 1 }).map((n) => base.subarray(0, n)),
      fc.uint8Array({ minLength: 1, maxLength: 8 }).map((extra) => Buffer.concat([base, extra])),
    );
  const only = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      assert.ok(isMwiError(e, 'BAD_REQUEST'), `threw ${String(e)}`);
      assert.equal((e as { field?: string }).field, 'public_key');
    }
  };

  it('parseClientKey: anything, random DER, random points and mutated keys', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.anything(),
          fc.string(),
          fc.uint8Array({ maxLength: 120 }).map(pem),
          fc
            .uint8Array({ minLength: 64, maxLength: 64 })
            .map((q) => pem(Buffer.concat([P256_PREFIX, Buffer.from([4]), q]))),
          fc.uint8Array({ minLength: 32, maxLength: 32 }).map((k) => pem(Buffer.concat([ED25519_PREFIX, k]))),
          mutated(realSpki).map(pem),
        ),
        (input) => only(() => parseClientKey(input, 'public_key')),
      ),
      { numRuns: 2000 },
    );
  });

  it('parseClientKey accepts a P-256 point exactly when OpenSSL does', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ minLength: 64, maxLength: 64 }).map((q) => Buffer.concat([Buffer.from([4]), q])),
          mutated(realSpki.subarray(P256_PREFIX.length)).filter((q) => q.length === 65),
        ),
        (q) => {
          let ours = true;
          try {
            parseClientKey(pem(Buffer.concat([P256_PREFIX, q])), 'public_key');
          } catch {
            ours = false;
          }
          let openssl = true;
          try {
            createPublicKey({ key: Buffer.concat([P256_PREFIX, q]), format: 'der', type: 'spki' });
          } catch {
            openssl = false;
          }
          assert.equal(ours, openssl, q.toString('hex'));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('parseSshPublicKey and sshPublicKeyToKeyObject: random lines and blobs', () => {
    const types = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ssh-rsa', 'ecdsa-sha2-nistp384'];
    const realBlob = sshPublicKeyBlob(generateKeyPairSync('ed25519').publicKey);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc
            .tuple(fc.constantFrom(...types), fc.uint8Array({ maxLength: 120 }))
            .map(([t, b]) => `${t} ${Buffer.from(b).toString('base64')}`),
          fc
            .tuple(fc.constantFrom(...types), fc.uint8Array({ maxLength: 100 }))
            .map(([t, b]) => `${t} ${Buffer.concat([sshString(t), b]).toString('base64')}`),
          fc
            .tuple(fc.constantFrom(...types), fc.array(fc.uint8Array({ maxLength: 70 }), { maxLength: 3 }))
            .map(([t, parts]) => `${t} ${Buffer.concat([sshString(t), ...parts.map(sshString)]).toString('base64')}`),
          mutated(realBlob).map((b) => `ssh-ed25519 ${b.toString('base64')}`),
        ),
        (line) => {
          only(() => parseSshPublicKey(line, 'public_key'));
          only(() => sshPublicKeyToKeyObject(line, 'public_key'));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('claimsFromCert never throws on random or mutated DER', async () => {
    const ca = await loadCA(await createCA('prop', 'mwi user CA'));
    const { certPem } = await issueCertificate({
      ca,
      publicKey: realSpki,
      commonName: 'bot-robot',
      ttlMs: 60_000,
      usage: 'client',
      identity: { kind: 'output', bot: 'robot', instance: 'i' },
    });
    const der = Buffer.from(new X509Certificate(certPem).raw);
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), mutated(der)), (bytes) => {
        const c = claimsFromCert(bytes);
        assert.ok(c === undefined || typeof c.kind === 'string');
      }),
      { numRuns: 2000 },
    );
  });
});

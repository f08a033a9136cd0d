// Azure on 127.0.0.1: a PKI (root -> issuing CA -> metadata.azure.com) that signs attested
// documents in the shape IMDS signs them (PKCS#7 SignedData, attached JSON content, the signer's
// certificate only, Azure's digest algorithm quirk), an IMDS (versions, attested document, managed
// identity tokens), the tenant's token issuer (OIDC discovery and keys) and Azure Resource Manager
// (arm.ts).
import 'reflect-metadata';
import { randomUUID, webcrypto } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import * as asn1js from 'asn1js';
import type { JWTPayload } from 'jose';
import * as pkijs from 'pkijs';
import { joinHandlers } from '../../src/auth/platform.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { testContext } from './auth-context.js';
import { startArm, type TestArm } from './arm.js';
import { startIssuer, type TestIssuer } from './oidc-issuer.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/** Key usage flags for makeChain's `leafKeyUsage`. */
export const KeyUsage = x509.KeyUsageFlags;

export const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
export const SUBSCRIPTION = '0b1f6471-1bf0-4dda-aec3-cb9272f09590';
export const VM_ID = '02aab8a4-74ef-476e-8182-f6d2ba4166a6';
export const RESOURCE_GROUP = 'Prod-RG';
export const STS = `https://sts.windows.net/${TENANT}/`;

/** A VM's resource id as Azure Resource Manager spells it (`resourceGroups`). */
export const armVmId = (sub = SUBSCRIPTION, rg = RESOURCE_GROUP, name = 'web-1') =>
  `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.Compute/virtualMachines/${name}`;

/** The user-assigned identity the test VM holds (tokenClaims({ userAssigned: true })'s xms_mirid). */
export const identityId = (sub = SUBSCRIPTION) =>
  `/subscriptions/${sub}/resourcegroups/identities/providers/Microsoft.ManagedIdentity/userAssignedIdentities/deployer`;

/** A system-assigned identity's VM resource id (as a token's xms_mirid writes it). */
export const vmResourceId = (sub = SUBSCRIPTION, rg = RESOURCE_GROUP, name = 'web-1') =>
  `/subscriptions/${sub}/resourcegroups/${rg}/providers/Microsoft.Compute/virtualMachines/${name}`;

const RSA = {
  name: 'RSASSA-PKCS1-v1_5',
  hash: 'SHA-256',
  publicExponent: new Uint8Array([1, 0, 1]),
  modulusLength: 2048,
};
const HOUR = 3600_000;

export interface CertAndKey {
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
  /** DER. */
  der: Buffer;
  pem: string;
}

async function certificate(opts: {
  subject: string;
  issuer?: CertAndKey;
  ca: boolean;
  aia?: string;
  notBefore?: Date;
  notAfter?: Date;
  /** Key usage flags (x509.KeyUsageFlags); CAs get keyCertSign unless this says otherwise. */
  keyUsage?: number;
}): Promise<CertAndKey> {
  const keys = await webcrypto.subtle.generateKey(RSA, true, ['sign', 'verify']);
  const now = Date.now();
  const extensions: x509.Extension[] = [new x509.BasicConstraintsExtension(opts.ca, undefined, true)];
  const usage = opts.keyUsage ?? (opts.ca ? x509.KeyUsageFlags.keyCertSign : undefined);
  if (usage !== undefined) extensions.push(new x509.KeyUsagesExtension(usage, true));
  if (opts.aia)
    extensions.push(new x509.AuthorityInfoAccessExtension({ caIssuers: [new x509.GeneralName('url', opts.aia)] }));
  const common = {
    serialNumber: randomUUID().replace(/-/g, '').slice(0, 16),
    notBefore: opts.notBefore ?? new Date(now - HOUR),
    notAfter: opts.notAfter ?? new Date(now + 24 * HOUR),
    signingAlgorithm: RSA,
    extensions,
  };
  const cert = opts.issuer
    ? await x509.X509CertificateGenerator.create({
        ...common,
        subject: opts.subject,
        issuer: opts.issuer.cert.subject,
        publicKey: keys.publicKey,
        signingKey: opts.issuer.keys.privateKey,
      })
    : await x509.X509CertificateGenerator.createSelfSigned({ ...common, name: opts.subject, keys });
  return { cert, keys, der: Buffer.from(cert.rawData), pem: cert.toString('pem') };
}

/**
 * A chain as Azure's: a root, an issuing CA, and the signer `CN=<name>`. With `links` (a base
 * URL), each certificate's issuer link points to its issuer there (`/pkiops/certs/issuing.crt`,
 * `/pkiops/certs/root.crt`), as Microsoft's point to its PKI repository.
 */
export async function makeChain(
  opts: {
    name?: string;
    links?: string;
    rootName?: string;
    leafNotAfter?: Date;
    under?: Chain;
    /** The signer is a CA (basicConstraints CA:TRUE). */
    leafCa?: boolean;
    /** The signer's key usage flags (x509.KeyUsageFlags); none by default, as Azure's. */
    leafKeyUsage?: number;
  } = {},
): Promise<{ root: CertAndKey; issuing: CertAndKey; signer: CertAndKey }> {
  const link = (name: string) => (opts.links ? { aia: `${opts.links}/pkiops/certs/${name}.crt` } : {});
  // `under`: another signer from the same root and issuing CA (RSA keys are slow to make)
  const root =
    opts.under?.root ?? (await certificate({ subject: `CN=${opts.rootName ?? 'Test Azure Root G2'}`, ca: true }));
  const issuing =
    opts.under?.issuing ??
    (await certificate({ subject: 'CN=Test Azure RSA TLS Issuing CA 03', issuer: root, ca: true, ...link('root') }));
  const signer = await certificate({
    subject: `CN=${opts.name ?? 'metadata.azure.com'}`,
    issuer: issuing,
    ca: opts.leafCa ?? false,
    ...(opts.leafKeyUsage !== undefined ? { keyUsage: opts.leafKeyUsage } : {}),
    ...link('issuing'),
    ...(opts.leafNotAfter ? { notAfter: opts.leafNotAfter } : {}),
  });
  return { root, issuing, signer };
}

export interface Chain {
  root: CertAndKey;
  issuing: CertAndKey;
  signer: CertAndKey;
}

/** The attested document's JSON, with Azure's field names. */
export function documentJson(fields: Record<string, unknown>): string {
  const stamp = (d: Date) => d.toISOString().replace(/^\d\d(\d\d)-(\d\d)-(\d\d)T([\d:]{8}).*$/, '$2/$3/$1 $4 -0000');
  return JSON.stringify({
    licenseType: '',
    nonce: '',
    plan: { name: '', product: '', publisher: '' },
    sku: '22_04-lts-gen2',
    subscriptionId: SUBSCRIPTION,
    timeStamp: { createdOn: stamp(new Date()), expiresOn: stamp(new Date(Date.now() + 6 * HOUR)) },
    vmId: VM_ID,
    ...fields,
  });
}

export interface SignOptions {
  /** Signed attributes (content type, message digest) as CMS signers usually add; default true. */
  signedAttrs?: boolean;
  /** Azure's quirk: sha256WithRSAEncryption as the SignerInfo's digest algorithm; default true. */
  quirk?: boolean;
  /** Certificates carried besides the signer's. */
  extraCerts?: CertAndKey[];
  /** Sign with this key (e.g. not the certificate's). */
  key?: CryptoKey;
  /** The SignerInfo names the signature algorithm rsaEncryption (the hash then comes from the digest field). */
  rsaEncryption?: boolean;
}

/** The `signature` of an attested document (base64 DER PKCS#7 SignedData) over `content`, by `signer`. */
export async function signDocument(content: string | Buffer, signer: CertAndKey, o: SignOptions = {}): Promise<string> {
  const cert = pkijs.Certificate.fromBER(new Uint8Array(signer.der));
  const data = Buffer.from(content);
  const sd = new pkijs.SignedData({
    version: 1,
    encapContentInfo: new pkijs.EncapsulatedContentInfo({
      eContentType: '1.2.840.113549.1.7.1',
      eContent: new asn1js.OctetString({ valueHex: new Uint8Array(data) }),
    }),
    signerInfos: [
      new pkijs.SignerInfo({
        version: 1,
        sid: new pkijs.IssuerAndSerialNumber({ issuer: cert.issuer, serialNumber: cert.serialNumber }),
      }),
    ],
    certificates: [cert, ...(o.extraCerts ?? []).map((c) => pkijs.Certificate.fromBER(new Uint8Array(c.der)))],
  });
  if (o.signedAttrs !== false) {
    const digest = await webcrypto.subtle.digest('SHA-256', data);
    sd.signerInfos[0]!.signedAttrs = new pkijs.SignedAndUnsignedAttributes({
      type: 0,
      attributes: [
        new pkijs.Attribute({
          type: '1.2.840.113549.1.9.3',
          values: [new asn1js.ObjectIdentifier({ value: '1.2.840.113549.1.7.1' })],
        }),
        new pkijs.Attribute({ type: '1.2.840.113549.1.9.4', values: [new asn1js.OctetString({ valueHex: digest })] }),
      ],
    });
  }
  await sd.sign(o.key ?? signer.keys.privateKey, 0, 'SHA-256');
  if (o.rsaEncryption)
    sd.signerInfos[0]!.signatureAlgorithm = new pkijs.AlgorithmIdentifier({
      algorithmId: '1.2.840.113549.1.1.1',
      algorithmParams: new asn1js.Null(),
    });
  if (o.quirk !== false)
    sd.signerInfos[0]!.digestAlgorithm = new pkijs.AlgorithmIdentifier({
      algorithmId: '1.2.840.113549.1.1.11',
      algorithmParams: new asn1js.Null(),
    });
  const info = new pkijs.ContentInfo({ contentType: pkijs.ContentInfo.SIGNED_DATA, content: sd.toSchema(true) });
  return Buffer.from(info.toSchema().toBER(false)).toString('base64');
}

/** Claims of a managed identity access token for the VM (system-assigned unless `userAssigned`). */
export function tokenClaims(o: { userAssigned?: boolean; sub?: string; rg?: string } = {}): JWTPayload {
  const vm = vmResourceId(o.sub, o.rg);
  const identity = identityId(o.sub);
  return {
    aud: 'https://management.azure.com/',
    tid: TENANT,
    oid: randomUUID(),
    sub: randomUUID(),
    appid: randomUUID(),
    idtyp: 'app',
    ver: '1.0',
    xms_mirid: o.userAssigned ? identity : vm,
    ...(o.userAssigned ? { xms_az_rid: vm } : {}),
  };
}

export interface TestAzure {
  /** The IMDS base URL, for $TBOT_AZURE_IMDS_ENDPOINT. */
  imdsUrl: string;
  chain: Chain;
  /** The tenant's token issuer (for oidc.endpoint_overrides). */
  sts: TestIssuer;
  /** A PEM file with the test root, for mwi.yaml azure.root_cas. */
  rootFile: string;
  /** mwi.yaml sections pointing the Auth Service at this Azure. */
  mwiYaml: string;
  /** Fields the next attested documents get (besides the nonce). */
  documentFields: Record<string, unknown>;
  /** Claims of the tokens the identity endpoint hands out (by client id; '' is the system-assigned one). */
  identities: Map<string, JWTPayload>;
  /** Azure Resource Manager, knowing the test VM (armVmId(), VM_ID, both identities). */
  arm: TestArm;
  /** Makes ARM know VM `name` of resource group `rg` as the test VM (its vmId, both identities). */
  vmIn(rg: string, name?: string): void;
  /** Requests IMDS served: path and query. */
  requests: Array<{ path: string; query: Record<string, string> }>;
  close(): Promise<void>;
}

/** Starts IMDS, the issuing CA's certificate download and the tenant's issuer; writes the root to `dir`. */
export async function startAzure(dir: string): Promise<TestAzure> {
  const sts = await startIssuer({ issuer: STS });
  const arm = await startArm(dir, STS, () => sts.jwks());
  const vmIn = (rg: string, name = 'web-1') =>
    arm.addVm({ id: armVmId(SUBSCRIPTION, rg, name), vmId: VM_ID, userAssigned: [identityId()] });
  vmIn(RESOURCE_GROUP);
  const requests: TestAzure['requests'] = [];
  const identities = new Map<string, JWTPayload>([['', tokenClaims()]]);
  const self = { documentFields: {} as Record<string, unknown> };
  // made once the server's address is known (the certificates' issuer links point to it)
  const made: { chain?: Chain } = {};
  // IMDS caches a token until it nears expiry: the same one for every request of a client id
  const issued = new Map<string, string>();
  const server: Server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const query = Object.fromEntries(u.searchParams);
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (u.pathname === '/pkiops/certs/issuing.crt') {
      res.writeHead(200, { 'content-type': 'application/pkix-cert' });
      return res.end(made.chain!.issuing.der);
    }
    if (u.pathname === '/pkiops/certs/root.crt') {
      res.writeHead(200, { 'content-type': 'application/pkix-cert' });
      return res.end(made.chain!.root.der);
    }
    requests.push({ path: u.pathname, query });
    if (req.headers.metadata !== 'true')
      return json(400, { error: 'Bad request. Required metadata header not specified' });
    if (u.pathname === '/metadata/versions')
      return json(200, { apiVersions: ['2017-03-01', '2021-02-01', '2019-06-04'] });
    if (!query['api-version']) return json(400, { error: 'Bad request. api-version was not specified in the request' });
    if (u.pathname === '/metadata/attested/document') {
      const content = documentJson({ nonce: query.nonce ?? '', ...self.documentFields });
      void signDocument(content, made.chain!.signer).then((signature) => json(200, { encoding: 'pkcs7', signature }));
      return;
    }
    if (u.pathname === '/metadata/identity/oauth2/token') {
      if (query.resource !== 'https://management.azure.com/') return json(400, { error: 'invalid_resource' });
      const claims = identities.get(query.client_id ?? '');
      if (!claims) return json(400, { error: 'invalid_request', error_description: 'Identity not found' });
      const key = `${query.client_id ?? ''}:${JSON.stringify(claims)}`;
      const cached = issued.get(key);
      const send = (t: string) => json(200, { access_token: t, token_type: 'Bearer', resource: query.resource });
      if (cached) return send(cached);
      void sts.sign({ ...claims, exp: Math.floor(Date.now() / 1000) + 24 * 3600 }).then((t) => {
        issued.set(key, t);
        send(t);
      });
      return;
    }
    json(404, { error: 'Not found' });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const chain = (made.chain = await makeChain({ links: base }));
  const rootFile = join(dir, 'azure-test-root.pem');
  writeFileSync(rootFile, chain.root.pem);
  return Object.assign(self, {
    imdsUrl: `${base}/metadata`,
    chain,
    sts,
    rootFile,
    arm,
    vmIn,
    mwiYaml:
      `azure:\n  root_cas: [${JSON.stringify(rootFile)}]\n` +
      `  arm_endpoint: ${JSON.stringify(arm.url)}\n  arm_ca_path: ${JSON.stringify(arm.caFile)}\n` +
      `oidc:\n  endpoint_overrides:\n    ${JSON.stringify(STS)}: ${JSON.stringify(sts.url)}\n`,
    identities,
    requests,
    async close() {
      await new Promise<void>((r) => server.close(() => r()));
      await sts.close();
      await arm.close();
    },
  });
}

/** A key that is not the signer's (a document "signed" by someone else). */
export async function foreignKey(): Promise<CryptoKey> {
  return (await webcrypto.subtle.generateKey(RSA, true, ['sign', 'verify'])).privateKey;
}

/** What a join payload is made of, each part replaceable (the hostile corpus). */
export interface PayloadOptions {
  /** Fields of the attested document (besides the nonce); `nonce` here replaces the challenge's. */
  fields?: Record<string, unknown>;
  /** The attested document's content as is (instead of documentJson). */
  content?: string;
  signer?: CertAndKey;
  sign?: SignOptions;
  intermediates?: unknown;
  /** The access token's claims (default: the system-assigned identity of the VM). */
  claims?: JWTPayload;
  accessToken?: unknown;
  encoding?: string;
}

/** A join payload answering `ch` as tbot on the test VM would, with `o` changing any part. */
export async function joinPayload(
  az: TestAzure,
  ch: { challenge_id: string; nonce: string },
  o: PayloadOptions = {},
): Promise<Record<string, unknown>> {
  const content = o.content ?? documentJson({ nonce: ch.nonce, ...o.fields });
  return {
    challenge_id: ch.challenge_id,
    attested_data: {
      encoding: o.encoding ?? 'pkcs7',
      signature: await signDocument(content, o.signer ?? az.chain.signer, o.sign),
    },
    intermediates: o.intermediates ?? [az.chain.issuing.der.toString('base64')],
    access_token: 'accessToken' in o ? o.accessToken : await az.sts.sign(o.claims ?? tokenClaims()),
  };
}

/** The parsed mwi.yaml sections (`oidc`, `azure`) that point an in-process Auth Service at `az`. */
export function azureSections(az: TestAzure): Record<string, unknown> {
  return {
    oidc: { endpointOverrides: { [STS]: az.sts.url } },
    azure: { root_cas: [az.rootFile], arm_endpoint: az.arm.url, arm_ca_path: az.arm.caFile },
  };
}

/**
 * An in-process Auth Service core (testContext) whose azure join trusts `az`, holding bot `vm`
 * (role `vm`, login deploy), and a P-256 public key to join with.
 */
export async function azureJoinContext(az: TestAzure): Promise<{
  t: Awaited<ReturnType<typeof testContext>>;
  pub: string;
}> {
  const t = await testContext();
  t.ctx.methods = joinHandlers(t.ctx.backend, t.ctx.now, azureSections(az), {});
  const pub = (await generateKeys('ec-p256')).publicKeyPem;
  await t.admin.create(
    { kind: 'role', metadata: { name: 'vm' }, spec: { allow: { logins: ['deploy'] } } },
    false,
    'admin',
  );
  await t.admin.create({ kind: 'bot', metadata: { name: 'vm' }, spec: { roles: ['vm'] } }, false, 'admin');
  return { t, pub };
}

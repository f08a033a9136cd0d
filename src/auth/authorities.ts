import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { generateKeys, spkiPin } from '../crypto/keys.js';
import { sshAuthorizedKey, sshPublicKeyBlob } from '../crypto/ssh.js';
import { createCA, loadCA, type CAKeyPair, type LoadedCA } from '../crypto/x509.js';
import { isMwiError, MwiError } from '../errors.js';
import { key, type Backend } from '../storage/backend.js';
import { challengeMacKey } from './challenges.js';

export interface SshCA {
  key: KeyObject;
  /** OpenSSH blob of the CA's public key, computed once. */
  blob: Buffer;
  /** `ssh-ed25519 AAAA... comment` */
  publicLine: string;
}

/** All CAs of a cluster, loaded once at startup and reused for every request. */
export interface Authorities {
  clusterName: string;
  tlsUser: LoadedCA;
  tlsHost: LoadedCA;
  sshUser: SshCA;
  sshHost: SshCA;
  /** `sha256:<hex>` of the host TLS CA's SPKI: what tbot pins on first contact. */
  caPin: string;
  /** Signs bound-keypair join state documents (ES256); never leaves the Auth Service. */
  joinState: { privateKey: KeyObject; publicKey: KeyObject };
  /** MAC key for stateless join challenges and keyed token fingerprints (derived from joinState). */
  challengeMac: Buffer;
}

export const CA_TYPES = ['tls-user', 'tls-host', 'ssh-user', 'ssh-host'] as const;
export type CAType = (typeof CA_TYPES)[number];

/** Reads a stored CA, or creates it (one replica wins a race; the others use its value). */
export async function getOrCreate<T>(backend: Backend, k: string, make: () => Promise<T>): Promise<T> {
  const existing = await backend.get(k);
  if (existing) return JSON.parse(existing.value) as T;
  const value = await make();
  try {
    await backend.create(k, JSON.stringify(value));
    return value;
  } catch (err) {
    // another replica created it first: use theirs so every replica shares one CA
    if (!isMwiError(err, 'ALREADY_EXISTS')) throw err;
    return JSON.parse((await backend.get(k))!.value) as T;
  }
}

async function sshCA(backend: Backend, type: CAType, clusterName: string): Promise<SshCA> {
  const stored = await getOrCreate(backend, key('cas', type), async () => {
    const k = await generateKeys('ed25519');
    return { key_pem: k.privateKeyPem };
  });
  const priv = createPrivateKey(stored.key_pem);
  const pub = createPublicKey(priv);
  return { key: priv, blob: sshPublicKeyBlob(pub), publicLine: sshAuthorizedKey(pub, `${clusterName} ${type}`) };
}

async function tlsCA(backend: Backend, type: CAType, clusterName: string, label: string): Promise<LoadedCA> {
  const stored = await getOrCreate<CAKeyPair>(backend, key('cas', type), () => createCA(clusterName, label));
  return loadCA(stored);
}

/**
 * Loads the cluster's CAs, generating them on first start. The cluster name is fixed at first
 * start; starting with another name against the same storage is refused.
 */
export async function loadAuthorities(backend: Backend, clusterName: string): Promise<Authorities> {
  const nameKey = key('cluster', 'name');
  const stored = await backend.get(nameKey);
  if (stored && JSON.parse(stored.value) !== clusterName) {
    throw new MwiError(
      'BAD_CONFIG',
      `this data dir belongs to cluster ${stored.value}, not ${JSON.stringify(clusterName)}`,
      { field: 'cluster_name' },
    );
  }
  if (!stored) await getOrCreate(backend, nameKey, async () => clusterName);
  const tlsHost = await tlsCA(backend, 'tls-host', clusterName, 'mwi host CA');
  const tlsUser = await tlsCA(backend, 'tls-user', clusterName, 'mwi user CA');
  return {
    clusterName,
    tlsHost,
    tlsUser,
    sshUser: await sshCA(backend, 'ssh-user', clusterName),
    sshHost: await sshCA(backend, 'ssh-host', clusterName),
    caPin: spkiPin(createPublicKey(tlsHost.cert.publicKey.export({ type: 'spki', format: 'pem' }))),
    ...(await joinStateKeys(backend)),
  };
}

async function joinStateKeys(backend: Backend): Promise<Pick<Authorities, 'joinState' | 'challengeMac'>> {
  const stored = await getOrCreate(backend, key('cas', 'bound-keypair-state'), async () => ({
    key_pem: (await generateKeys('ec-p256')).privateKeyPem,
  }));
  const privateKey = createPrivateKey(stored.key_pem);
  return {
    joinState: { privateKey, publicKey: createPublicKey(privateKey) },
    challengeMac: challengeMacKey(privateKey),
  };
}

/** The public part of a CA, in the format its consumers read (`tctl ca export`). */
export function exportCA(a: Authorities, type: CAType): string {
  switch (type) {
    case 'tls-user':
      return a.tlsUser.certPem;
    case 'tls-host':
      return a.tlsHost.certPem;
    case 'ssh-user':
      // the line sshd's TrustedUserCAKeys reads
      return `${a.sshUser.publicLine}\n`;
    case 'ssh-host':
      // a known_hosts line trusting every host certificate this CA signs
      return `@cert-authority * ${a.sshHost.publicLine}\n`;
  }
}

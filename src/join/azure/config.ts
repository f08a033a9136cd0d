import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { MwiError } from '../../errors.js';
import { splitPemBundle } from '../../crypto/pem.js';
import { ioReason } from '../../util/io-reason.js';
import type { ServerSection } from '../types.js';
import { ARM_DEFAULT, httpsArmClient, type ArmClient } from './arm.js';
import { AZURE_ROOTS } from './roots.js';

/**
 * The names an attested document's signing certificate may carry (its subject's common name, or a
 * name under it): Azure's public cloud and its sovereign clouds (US Government, China, Germany).
 */
export const DEFAULT_SIGNER_NAMES: readonly string[] = Object.freeze([
  'metadata.azure.com',
  'metadata.azure.us',
  'metadata.azure.cn',
  'metadata.microsoftazure.de',
]);

/** mwi.yaml `azure`, as written. */
export interface AzureOptions {
  /** PEM files whose certificates replace the built-in roots. */
  root_cas?: string[] | undefined;
  /** Replace the default signer names. */
  signer_names?: string[] | undefined;
  /** Azure Resource Manager's base URL (https). */
  arm_endpoint?: string | undefined;
  /** A PEM file whose certificates are the only ones trusted for arm_endpoint. */
  arm_ca_path?: string | undefined;
}

/** What the `azure` join trusts in one Auth Service process. */
export interface AzureTrust {
  roots: readonly X509Certificate[];
  signerNames: readonly string[];
}

/** What the `azure` join uses in one Auth Service process. */
export interface AzureSettings extends AzureTrust {
  /** Where the token's VM is looked up. */
  arm: ArmClient;
}

/** The certificates of the PEM files `azure.root_cas` names; each file must hold at least one. */
function readRoots(files: readonly string[]): X509Certificate[] {
  return files.flatMap((file, i) => {
    const field = `azure.root_cas[${i}]`;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (cause) {
      throw new MwiError('BAD_CONFIG', `cannot read ${file}: ${ioReason(cause)}`, { field, cause });
    }
    const blocks = splitPemBundle(text);
    if (blocks.length === 0) throw new MwiError('BAD_CONFIG', `${file} holds no PEM certificate`, { field });
    return blocks.map((pem) => {
      try {
        return new X509Certificate(pem);
      } catch (cause) {
        throw new MwiError('BAD_CONFIG', `${file} holds a certificate that does not parse`, { field, cause });
      }
    });
  });
}

const armEndpoint = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return u.protocol === 'https:' && u.pathname === '/' && !u.search && !u.hash && !u.username && !u.password;
  } catch {
    return false;
  }
}, 'expected https://HOST[:PORT], without a path');

const DNS_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/i;

function readCa(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new MwiError('BAD_CONFIG', `cannot read ${file}: ${ioReason(cause)}`, { field: 'azure.arm_ca_path', cause });
  }
  if (splitPemBundle(text).length === 0)
    throw new MwiError('BAD_CONFIG', `${file} holds no PEM certificate`, { field: 'azure.arm_ca_path' });
  return text;
}

/**
 * mwi.yaml `azure`: the roots and signer names attested documents are checked against, and the
 * Azure Resource Manager a token's VM is looked up in (`arm_endpoint`, default Azure's public
 * cloud; `arm_ca_path` for a test stand-in).
 */
export const azureSection: ServerSection<AzureOptions, AzureSettings> = {
  key: 'azure',
  schema: z
    .object({
      root_cas: z.array(z.string().min(1)).min(1, 'at least one file (leave the key out for the built-in roots)'),
      signer_names: z
        .array(z.string().regex(DNS_NAME, 'expected a DNS name, like metadata.azure.com'))
        .min(1, 'at least one name (leave the key out for the defaults)'),
      arm_endpoint: armEndpoint,
      arm_ca_path: z.string().min(1),
    })
    .partial()
    .strict()
    .default({}),
  build: (o) => ({
    roots: o.root_cas ? readRoots(o.root_cas) : AZURE_ROOTS.map((r) => new X509Certificate(r.pem)),
    signerNames: o.signer_names ?? DEFAULT_SIGNER_NAMES,
    arm: httpsArmClient({
      endpoint: new URL(o.arm_endpoint ?? ARM_DEFAULT),
      ca: o.arm_ca_path ? readCa(o.arm_ca_path) : undefined,
    }),
  }),
};

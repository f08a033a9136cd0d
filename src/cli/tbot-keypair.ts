import { existsSync, readFileSync } from 'node:fs';
import { destinationFromUri } from '../agent/destination-uri.js';
import { DirectoryDestination } from '../agent/destinations/directory.js';
import { readState, writeState } from '../agent/state.js';
import { isMwiError, MwiError } from '../errors.js';
import { newStoredKey, staticKey, type BoundKeypairState } from '../join/bound_keypair/client.js';
import { writeFileAtomic } from '../util/fs.js';
import { usageError } from './common.js';

type Format = 'text' | 'json';

/** The flags of `tbot keypair create`, parsed and checked against tbot's command table. */
export interface KeypairFlags {
  storage?: string | undefined;
  static?: boolean | undefined;
  'static-key-path'?: string | undefined;
  overwrite?: boolean | undefined;
  format?: string | undefined;
}

/** The key as Teleport's `--format json` prints it: the private key is base64 of the whole PEM file. */
function printKey(format: Format, publicKey: string, privatePem?: string): void {
  if (format === 'json') {
    const doc = {
      public_key: publicKey,
      ...(privatePem ? { private_key: Buffer.from(privatePem).toString('base64') } : {}),
    };
    process.stdout.write(`${JSON.stringify(doc)}\n`);
  } else process.stdout.write(`${privatePem ?? ''}${publicKey}\n`);
}

const STATIC_HOWTO =
  'register the public key as spec.bound_keypair.onboarding.initial_public_key of a token with\n' +
  'recovery.mode: insecure (CI runs share the key) and no rotate_after (a static key cannot rotate).\n';

/** `--static-key-path FILE`: an existing key is printed (unless --overwrite), a new one written 0600. */
async function staticKeyFile(path: string, overwrite: boolean, format: Format): Promise<void> {
  if (existsSync(path) && !overwrite) {
    let publicKey: string;
    try {
      publicKey = staticKey(readFileSync(path, 'utf8')).public_key;
    } catch (cause) {
      const why = isMwiError(cause) ? cause.message : 'cannot be read';
      throw new MwiError('BAD_CONFIG', `${path}: ${why} (--overwrite replaces it)`, {
        field: '--static-key-path',
        cause,
      });
    }
    process.stderr.write(`A key already exists in ${path}; its public key is below (--overwrite makes a new one).\n`);
    return printKey(format, publicKey);
  }
  const key = await newStoredKey('current');
  try {
    writeFileAtomic(path, key.private_key, 0o600);
  } catch (cause) {
    throw new MwiError('BAD_CONFIG', `cannot write ${path}`, { field: '--static-key-path', cause });
  }
  process.stderr.write(
    `Wrote the private key to ${path} (0600). Give it to tbot as onboarding.bound_keypair.static_private_key_path;\n` +
      STATIC_HOWTO,
  );
  printKey(format, key.public_key);
}

/**
 * `tbot keypair create --storage URI`: the keypair for bound_keypair joining, kept in tbot's
 * storage (0600); prints the public key to register as initial_public_key. `--static` prints a
 * private key for a CI secret store instead and writes nothing; `--static-key-path` writes it to
 * a file of its own.
 */
export async function keypairCreate(values: KeypairFlags): Promise<void> {
  // (the command table allows text and json only)
  const format = (values.format ?? 'text') as Format;
  const overwrite = values.overwrite === true;
  if (values.static || values['static-key-path']) {
    if (values.storage) throw usageError('a static key goes to no storage: drop --storage', '--storage');
    if (values['static-key-path']) return staticKeyFile(values['static-key-path'], overwrite, format);
    const key = await newStoredKey('current');
    printKey(format, key.public_key, key.private_key);
    process.stderr.write(
      'Store the private key as a CI secret and give it to tbot as TBOT_BOUND_KEYPAIR_STATIC_KEY;\n' + STATIC_HOWTO,
    );
    return;
  }
  if (!values.storage) throw usageError('is required (the storage tbot uses: file:///PATH or a path)', '--storage');
  const where = destinationFromUri(values.storage, '--storage');
  if (where.type !== 'directory')
    throw usageError(
      where.type === 'memory'
        ? 'memory:// keeps nothing: the key would be lost when this command ends'
        : 'mwi keeps the keypair in a directory storage only (file:///PATH or a path); in Kubernetes, join with ' +
            'the kubernetes method, which needs no keypair (docs/deploy/kubernetes.md)',
      '--storage',
    );
  const storage = new DirectoryDestination(where.path);
  const state = await readState(storage);
  const bk = (state.methods.bound_keypair ?? {}) as BoundKeypairState;
  const current = bk.keys?.find((k) => k.role === 'current');
  if (current && !overwrite) {
    process.stderr.write(
      `A keypair already exists in ${storage.path}; its public key is below (--overwrite makes a new one).\n`,
    );
    return printKey(format, current.public_key);
  }
  const key = await newStoredKey('current');
  state.methods.bound_keypair = { ...bk, keys: [key] };
  await writeState(storage, state);
  process.stderr.write(
    `Wrote a new keypair to ${storage.path}. Register its public key as ` +
      `spec.bound_keypair.onboarding.initial_public_key:\n`,
  );
  printKey(format, key.public_key);
}

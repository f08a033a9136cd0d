import { existsSync, readFileSync } from 'node:fs';
import { destinationFromUri } from '../agent/destination-uri.js';
import { DirectoryDestination } from '../agent/destinations/directory.js';
import { readState, writeState } from '../agent/state.js';
import { isMwiError, MwiError } from '../errors.js';
import { newStoredKey, staticKey, type BoundKeypairState } from '../join/bound_keypair/client.js';
import { writeFileAtomic } from '../util/fs.js';
import { parseFlags, usageError } from './common.js';

export const KEYPAIR_HELP = `Usage: tbot keypair create [flags]

  --storage URI           tbot's storage (file:///PATH or a path): the keypair is kept there (0600)
                          and tbot uses it at its first bound_keypair join
  --static                a key for CI secret stores instead: printed (PEM), written to no storage
  --static-key-path FILE  (implies --static) write the private key to FILE (0600) instead of printing it;
                          tbot reads it as onboarding.bound_keypair.static_private_key_path
  --overwrite             replace an existing key; without it the existing key's public key is printed
  --format FORMAT         text (default) or json: {"public_key": ..., "private_key": base64 PEM (--static)}
  --proxy-server ADDR     accepted for Teleport's command lines; mwi needs no address to make a key
                          (its keys are Ed25519, not the cluster's algorithm suite)

The public key (SSH authorized_keys form) goes in a token's spec.bound_keypair.onboarding.initial_public_key.
`;

type Format = 'text' | 'json';

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
export async function keypairCommand(args: string[]): Promise<number | void> {
  const [sub, ...rest] = args;
  if (sub === '--help' || sub === '-h') return void process.stdout.write(KEYPAIR_HELP);
  if (sub !== 'create') throw usageError(`unknown command "keypair ${sub ?? ''}" (expected keypair create)`);
  const { values, positionals } = parseFlags(rest, {
    storage: { type: 'string' },
    static: { type: 'boolean' },
    'static-key-path': { type: 'string' },
    overwrite: { type: 'boolean' },
    format: { type: 'string' },
    'proxy-server': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) return void process.stdout.write(KEYPAIR_HELP);
  if (positionals.length > 0) throw usageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  const format = (values.format ?? 'text') as Format;
  if (format !== 'text' && format !== 'json') throw usageError('expected text or json', '--format');
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
    throw usageError('memory:// keeps nothing: the key would be lost when this command ends', '--storage');
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

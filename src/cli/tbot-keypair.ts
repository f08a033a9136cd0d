import { createPublicKey } from 'node:crypto';
import { DirectoryDestination } from '../agent/destinations/directory.js';
import { readState, writeState } from '../agent/state.js';
import { sshAuthorizedKey } from '../crypto/ssh.js';
import { generateKeys } from '../crypto/keys.js';
import { newStoredKey, type BoundKeypairState } from '../join/bound_keypair/client.js';
import { parseFlags, usageError } from './common.js';

/**
 * `tbot keypair create --storage DIR`: the keypair for bound_keypair joining, kept in tbot's
 * storage (0600); prints the public key to register as initial_public_key. `--static` prints a
 * private key for a CI secret store instead and writes nothing.
 */
export async function keypairCommand(args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  if (sub !== 'create') throw usageError(`unknown command "keypair ${sub ?? ''}" (expected keypair create)`);
  const { values, positionals } = parseFlags(rest, {
    storage: { type: 'string' },
    static: { type: 'boolean' },
    overwrite: { type: 'boolean' },
  });
  if (positionals.length > 0) throw usageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  if (values.static) {
    if (values.storage) throw usageError('--static writes nothing: drop --storage');
    const k = await generateKeys('ed25519');
    process.stdout.write(`${k.privateKeyPem}${sshAuthorizedKey(createPublicKey(k.publicKeyPem))}\n`);
    process.stderr.write(
      'Store the private key (the PEM block) as a CI secret and give it to tbot as TBOT_BOUND_KEYPAIR_STATIC_KEY;\n' +
        'register the public key (the last line) as spec.bound_keypair.onboarding.initial_public_key of a token\n' +
        'with recovery.mode: insecure (CI runs share the key) and no rotate_after (a static key cannot rotate).\n',
    );
    return;
  }
  if (!values.storage) throw usageError('is required (the directory tbot uses as storage)', '--storage');
  const storage = new DirectoryDestination(values.storage);
  const state = await readState(storage);
  const bk = (state.methods.bound_keypair ?? {}) as BoundKeypairState;
  const current = bk.keys?.find((k) => k.role === 'current');
  if (current && !values.overwrite) {
    process.stderr.write(
      `A keypair already exists in ${storage.path}; its public key is below (--overwrite makes a new one).\n`,
    );
    process.stdout.write(`${current.public_key}\n`);
    return;
  }
  const key = await newStoredKey('current');
  state.methods.bound_keypair = { ...bk, keys: [key] };
  await writeState(storage, state);
  process.stderr.write(
    `Wrote a new keypair to ${storage.path}. Register its public key as ` +
      `spec.bound_keypair.onboarding.initial_public_key:\n`,
  );
  process.stdout.write(`${key.public_key}\n`);
}

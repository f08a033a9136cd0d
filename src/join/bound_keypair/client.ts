import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CompactSign } from 'jose';
import { z } from 'zod';
import { generateKeys } from '../../crypto/keys.js';
import { sshAuthorizedKey } from '../../crypto/ssh.js';
import { MwiError } from '../../errors.js';
import type { ClientJoinContext, ClientJoinMethod, ClientOptions } from '../client-types.js';
import type { BKChallenge, BKJoinPayload, BKJoinResult } from './wire.js';

/** One key of tbot's bound keyring. The private key stays in tbot's storage (0600). */
export interface StoredKey {
  private_key: string;
  public_key: string;
  created: string;
  role: 'current' | 'pending' | 'previous';
}

export interface BoundKeypairState {
  keys?: StoredKey[];
  join_state?: string;
}

/** What `options.resolve` makes of onboarding.bound_keypair and the environment. */
export interface BoundKeypairOptions {
  /** The registration secret as given (tbot.yaml, a flag, a join URI, $TBOT_REGISTRATION_SECRET). */
  registration_secret?: string;
  /**
   * A file holding it (registration_secret_path, or a registration_secret naming an absolute path),
   * read only when tbot registers: a restart with a bound key in storage needs no secret, nor its file.
   */
  registration_secret_file?: { path: string; field: string };
  /** PEM of a static key (CI): used from memory, never written anywhere. */
  static_private_key?: string;
}

/** `onboarding.bound_keypair` of tbot.yaml. */
const BLOCK = 'onboarding.bound_keypair';
const onboardingBlock = z
  .object({
    registration_secret: z.string().min(1).optional(),
    /**
     * Teleport's: a file holding the registration secret, read at the first join only; a relative
     * path is from the working directory tbot was started in, as Teleport's tbot reads it.
     */
    registration_secret_path: z.string().min(1).optional(),
    static_private_key_path: z.string().min(1).optional(),
  })
  .strict();

/** A secret read from a `*_path` file, trimmed; a missing, unreadable or empty file names `field`. */
function readSecretFile(path: string, field: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (cause) {
    const reason = (cause as NodeJS.ErrnoException).code ?? String(cause);
    throw new MwiError('BAD_CONFIG', `cannot read ${path}: ${reason}`, { field });
  }
  if (!text) throw new MwiError('BAD_CONFIG', `file ${path} is empty`, { field });
  return text;
}

/**
 * The registration secret and a static key, from tbot.yaml, flags, files or the environment, in
 * Teleport's order: registration_secret_path (`--registration-secret-path`), then
 * registration_secret (`--registration-secret`, inline or an absolute file path; or the parameter
 * of a join URI, always literal), then $TBOT_REGISTRATION_SECRET; static_private_key_path
 * (`--static-key-path`), then $TBOT_BOUND_KEYPAIR_STATIC_KEY. A configured value beats the
 * variable, with a warning; the path and the value together are an error. A secret's file is only
 * noted here, and read by `registrationSecret` when tbot registers.
 */
const options: ClientOptions<z.infer<typeof onboardingBlock>> = {
  schema: onboardingBlock,
  flags: {
    'registration-secret': 'registration_secret',
    'registration-secret-path': 'registration_secret_path',
    'static-key-path': 'static_private_key_path',
  },
  uriParameter: { key: 'registration_secret', conflicts: ['registration_secret_path'] },
  resolve(block, { env, secretPath, warn }) {
    const out: Record<string, unknown> = {};
    if (block?.registration_secret_path && block.registration_secret)
      throw new MwiError(
        'BAD_CONFIG',
        'give registration_secret_path (--registration-secret-path) or registration_secret ' +
          "(--registration-secret, or a join URI's parameter), not both, as in Teleport",
        { field: `${BLOCK}.registration_secret_path` },
      );
    const field = `${BLOCK}.${block?.registration_secret_path ? 'registration_secret_path' : 'registration_secret'}`;
    const path = block?.registration_secret_path ?? secretPath(block?.registration_secret, field);
    if ((path ?? block?.registration_secret) && env.TBOT_REGISTRATION_SECRET)
      warn?.(`${field} and $TBOT_REGISTRATION_SECRET are both set: the configured one is used`);
    if (path) out.registration_secret_file = { path, field };
    else if (block?.registration_secret) out.registration_secret = block.registration_secret;
    else if (env.TBOT_REGISTRATION_SECRET) out.registration_secret = env.TBOT_REGISTRATION_SECRET;
    if (block?.static_private_key_path) {
      out.static_private_key = readSecretFile(block.static_private_key_path, `${BLOCK}.static_private_key_path`);
      if (env.TBOT_BOUND_KEYPAIR_STATIC_KEY)
        warn?.(
          `${BLOCK}.static_private_key_path and $TBOT_BOUND_KEYPAIR_STATIC_KEY are both set: the configured one ` +
            'is used',
        );
    } else if (env.TBOT_BOUND_KEYPAIR_STATIC_KEY) {
      out.static_private_key = staticKeyFromEnv(env.TBOT_BOUND_KEYPAIR_STATIC_KEY);
    }
    return out;
  },
};

/**
 * TBOT_BOUND_KEYPAIR_STATIC_KEY: Teleport's form is the whole PEM key file in standard base64 (one
 * line, as CI secret stores want it); the PEM itself is accepted too.
 */
export function staticKeyFromEnv(value: string): string {
  const text = value.trim();
  if (text.startsWith('-----BEGIN ')) return value;
  const compact = text.replace(/\s+/g, '');
  const decoded = /^[A-Za-z0-9+/]+={0,2}$/.test(compact) ? Buffer.from(compact, 'base64').toString('utf8') : '';
  if (!decoded.trimStart().startsWith('-----BEGIN ')) {
    throw new MwiError(
      'BAD_CONFIG',
      'expected the private key file (PEM), in standard base64 as Teleport takes it, or as it is',
      { field: 'TBOT_BOUND_KEYPAIR_STATIC_KEY' },
    );
  }
  return decoded;
}

/**
 * The registration secret for a join that registers, its file read now (not at startup: a bound
 * tbot may restart without it). A missing, unreadable or empty file names its field and path.
 */
export function registrationSecret(opts: BoundKeypairOptions): string | undefined {
  const file = opts.registration_secret_file;
  return file ? readSecretFile(file.path, file.field) : opts.registration_secret;
}

/** Said when tbot has nothing a first bound_keypair join could succeed with (the server would refuse it). */
const NOTHING_TO_REGISTER =
  'nothing to register with: no registration secret (--registration-secret-path FILE, ' +
  'onboarding.bound_keypair.registration_secret_path, or $TBOT_REGISTRATION_SECRET: the secret shown when the ' +
  'token was made), no static key (--static-key-path) and no key in storage (tbot keypair create, for a token ' +
  'with initial_public_key); a key tbot makes now would be refused by a token that waits for its secret';

const PREVIOUS_KEPT = 2;

function sameKey(a: string, b: string): boolean {
  return a.split(/\s+/).slice(0, 2).join(' ') === b.split(/\s+/).slice(0, 2).join(' ');
}

/** A new Ed25519 key for the keyring. */
export async function newStoredKey(role: StoredKey['role']): Promise<StoredKey> {
  const k = await generateKeys('ed25519');
  return {
    private_key: k.privateKeyPem,
    public_key: sshAuthorizedKey(createPublicKey(k.publicKeyPem)),
    created: new Date().toISOString(),
    role,
  };
}

/** The static key from its PEM; a clear error for anything else. */
export function staticKey(pem: string): StoredKey {
  let priv: KeyObject;
  try {
    priv = createPrivateKey(pem);
  } catch (cause) {
    throw new MwiError('BAD_CONFIG', 'not a PEM private key', {
      field: 'onboarding.bound_keypair.static_private_key_path (or TBOT_BOUND_KEYPAIR_STATIC_KEY)',
      cause,
    });
  }
  if (
    priv.asymmetricKeyType !== 'ed25519' &&
    !(priv.asymmetricKeyType === 'ec' && priv.asymmetricKeyDetails?.namedCurve === 'prime256v1')
  ) {
    throw new MwiError(
      'BAD_CONFIG',
      `unsupported key type ${priv.asymmetricKeyType} (expected Ed25519 or ECDSA P-256)`,
      { field: 'onboarding.bound_keypair.static_private_key_path' },
    );
  }
  return { private_key: pem, public_key: sshAuthorizedKey(createPublicKey(priv)), created: '', role: 'current' };
}

async function sign(claims: string, key: StoredKey): Promise<string> {
  const priv = createPrivateKey(key.private_key);
  return new CompactSign(Buffer.from(claims))
    .setProtectedHeader({ alg: priv.asymmetricKeyType === 'ed25519' ? 'EdDSA' : 'ES256' })
    .sign(priv);
}

/** Client half of bound_keypair: proves possession of the bound key over a server challenge. */
export const boundKeypairClient: ClientJoinMethod = {
  name: 'bound_keypair',
  options,
  expiredRecovery: 'recovering with the bound keypair (this uses one recovery)',

  async payload(ctx: ClientJoinContext): Promise<BKJoinPayload> {
    const opts = ctx.options as BoundKeypairOptions;
    const state = ctx.state.read() as BoundKeypairState;
    // registering (no join has bound a key yet): the secret is read now, before any key is made
    const registering = !state.join_state;
    const secret = registering ? registrationSecret(opts) : undefined;
    if (registering && !secret && !opts.static_private_key && !state.keys?.length)
      throw new MwiError('BAD_CONFIG', NOTHING_TO_REGISTER, { field: BLOCK });
    let keys: StoredKey[];
    if (opts.static_private_key) {
      keys = [staticKey(opts.static_private_key)];
    } else {
      keys = state.keys ?? [];
      if (keys.length === 0) {
        // first registration: the key is stored before it is sent, so a crash cannot lose it
        keys = [await newStoredKey('current')];
        await ctx.state.write({ ...state, keys });
      }
    }
    const ch = (await ctx.challenge({ public_keys: keys.map((k) => k.public_key) })) as unknown as BKChallenge & {
      challenge_id: string;
    };
    const key = keys.find((k) => sameKey(k.public_key, ch.public_key));
    if (!key) throw new MwiError('JOIN_DENIED', 'the Auth Service asked for a key this tbot does not hold');
    const out: BKJoinPayload = { challenge_id: ch.challenge_id, signature: await sign(ch.claims, key) };
    if (secret) out.registration_secret = secret;
    if (state.join_state) out.join_state = state.join_state;
    if (ch.rotate) {
      if (opts.static_private_key) {
        throw new MwiError(
          'BAD_CONFIG',
          'the token asks for a key rotation (rotate_after), but a static key cannot rotate: remove rotate_after ' +
            'from the token, or use a keypair kept in tbot storage',
          { field: 'onboarding.bound_keypair' },
        );
      }
      // the new key is kept (as pending) before the server binds it: a crash mid-rotation loses nothing
      const fresh = await newStoredKey('pending');
      await ctx.state.write({ ...state, keys: [...keys.filter((k) => k.role !== 'pending'), fresh] });
      out.new_public_key = fresh.public_key;
      out.new_signature = await sign(ch.claims, fresh);
      ctx.log.info('rotating the bound keypair (rotate_after passed)');
    }
    return out;
  },

  async afterJoin(ctx: ClientJoinContext, data: Record<string, unknown> | undefined): Promise<void> {
    const result = data as unknown as BKJoinResult | undefined;
    if (!result) return;
    const opts = ctx.options as BoundKeypairOptions;
    const state = ctx.state.read() as BoundKeypairState;
    let keys = state.keys ?? [];
    if (!opts.static_private_key) {
      // the bound key becomes current; the others are kept a little while (restored backups)
      const bound = keys.find((k) => sameKey(k.public_key, result.bound_public_key));
      const others = keys.filter((k) => k !== bound).map((k) => ({ ...k, role: 'previous' as const }));
      keys = [...(bound ? [{ ...bound, role: 'current' as const }] : []), ...others.slice(-PREVIOUS_KEPT)];
    }
    await ctx.state.write({ ...state, ...(opts.static_private_key ? {} : { keys }), join_state: result.join_state });
    const remaining =
      result.recovery_mode === 'standard'
        ? `${Math.max(0, result.recovery_limit - result.recovery_count)} of ${result.recovery_limit} remaining`
        : `mode ${result.recovery_mode}, no limit`;
    ctx.log.info('bound keypair join', {
      recoveries_used: result.recovery_count,
      recoveries: remaining,
      ...(result.rotated ? { rotated: true } : {}),
    });
  },
};

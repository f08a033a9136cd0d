import { isMwiError, MwiError } from '../errors.js';

/**
 * tbot.yaml keys that a start/configure flag sets, and that flag: the keys whose errors are about
 * the value alone (auth_server and proxy_server are refused together, which no one flag explains).
 */
const FLAG_OF_FIELD: ReadonlyArray<readonly [RegExp, string]> = [
  [/^credential_ttl$/, 'certificate-ttl'],
  [/^renewal_interval$/, 'renewal-interval'],
  [/^onboarding\.join_method$/, 'join-method'],
  [/^onboarding\.token$/, 'token'],
  [/^onboarding\.ca_pins\b/, 'ca-pin'],
  [/^onboarding\.bound_keypair\.registration_secret$/, 'registration-secret'],
  [/^diag_addr$/, 'diag-addr'],
];

/**
 * A configuration error in the terms the user wrote it: a value that came from a flag is named
 * by the flag (`--certificate-ttl: at most 24h (got 25h) (tbot.yaml credential_ttl)`), not by
 * the tbot.yaml key the flag set. Flags override the file, so when the flag was given the value
 * at fault is the flag's. Anything else is returned as it is.
 */
export function inFlagTerms(err: unknown, given: Readonly<Record<string, unknown>>): unknown {
  if (!isMwiError(err, 'BAD_CONFIG') || !err.field) return err;
  const field = err.field;
  const hit = FLAG_OF_FIELD.find(([re, flag]) => re.test(field) && given[flag] !== undefined && given[flag] !== false);
  if (!hit) return err;
  const message = err.message.startsWith(`${field}: `) ? err.message.slice(field.length + 2) : err.message;
  return new MwiError('BAD_CONFIG', `${message} (tbot.yaml ${field})`, { field: `--${hit[1]}`, cause: err });
}

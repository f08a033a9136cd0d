import type { AdminClient } from '../../api/admin-client.js';
import { usageError } from '../common.js';
import type { Format } from './format.js';

const str = { type: 'string' } as const;
/** Every flag of every command: parsed once, so global flags may stand anywhere. */
export const OPTIONS = {
  'data-dir': str,
  'auth-server': str,
  identity: { type: 'string', short: 'i' },
  format: str,
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
  // -f is --force, as in Teleport (it named create's file before: see create in resources.ts)
  force: { type: 'boolean', short: 'f' },
  type: str,
  limit: str,
  host: str,
  'public-key': str,
  // tctl auth sign --admin (mwi's own: an operator identity)
  admin: { type: 'boolean' },
  ttl: str,
  out: str,
  roles: str,
  logins: str,
  'set-roles': str,
  'add-roles': str,
  'set-logins': str,
  'add-logins': str,
  'bot-name': str,
  'join-method': str,
  spec: str,
  bot: str,
  'bot-instance': str,
  message: str,
  reason: str,
  // Teleport's; refused with the reason (see main)
  'with-secrets': { type: 'boolean' },
  // tctl lock: mwi's three targets, and Teleport's others (each refused with why)
  user: str,
  'bot-instance-id': str,
  'join-token': str,
  role: str,
  login: str,
  'mfa-device': str,
  'windows-desktop': str,
  'access-request': str,
  device: str,
  'server-id': str,
  expires: str,
  token: str,
  'max-session-ttl': str,
  value: str,
  labels: str,
  // tctl tokens test; tctl audit ls --failures
  'id-token': str,
  'from-audit': str,
  failures: { type: 'boolean' },
} as const;
export type Flags = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };

/** What a `tctl GROUP SUB ...` command gets (bots, tokens, locks). */
export interface Command {
  admin: AdminClient;
  sub: string | undefined;
  positionals: string[];
  values: Flags;
  format: Format;
}

export function list(v: string | undefined): string[] | undefined {
  return v === undefined
    ? undefined
    : v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
}

export function need<T>(v: T | undefined, flag: string): T {
  if (v === undefined || v === '') throw usageError('is required', flag);
  return v;
}

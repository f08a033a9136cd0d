import type { AdminClient } from '../../api/admin-client.js';
import { usageError } from '../common.js';
import type { TctlFlags } from '../help/tctl-table.js';
import type { Format } from './format.js';

/** tctl's flags, as its command table (src/cli/help/tctl-table.ts) defines and parses them. */
export type Flags = TctlFlags;

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

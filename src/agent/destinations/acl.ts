import { execFile } from 'node:child_process';
import { z } from 'zod';
import { MwiError } from '../../errors.js';

/** `acls:` of a directory destination (Teleport's names). */
export const ACL_MODES = ['off', 'try', 'required'] as const;
export type AclMode = (typeof ACL_MODES)[number];

/**
 * Teleport's default: `try` where POSIX ACLs exist (Linux), else `off`. `try` with no readers
 * does nothing, so the default changes nothing until readers are named.
 */
export const DEFAULT_ACL_MODE: AclMode = process.platform === 'linux' ? 'try' : 'off';

const NAME_OR_ID = 'expected a user or group name, or a numeric id';
const nameOrId = z.union(
  [
    z.number().int(NAME_OR_ID).nonnegative(NAME_OR_ID),
    z.string().regex(/^[A-Za-z0-9._][A-Za-z0-9._-]*\$?$/, NAME_OR_ID),
  ],
  { errorMap: () => ({ message: NAME_OR_ID }) },
);

/** One entry of `readers:`: `{user: NAME_OR_UID}` or `{group: NAME_OR_GID}`, exactly one. */
export const readerSchema = z
  .object({ user: nameOrId.optional(), group: nameOrId.optional() })
  .strict()
  .refine((r) => (r.user === undefined) !== (r.group === undefined), 'exactly one of user or group per entry');
export type Reader = z.output<typeof readerSchema>;

/** A reader resolved to the id setfacl is given. */
export interface AclEntry {
  tag: 'u' | 'g';
  id: number;
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 10_000 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const code = (err as NodeJS.ErrnoException).code;
      const why =
        code === 'ENOENT'
          ? `${cmd} not found (install Debian's acl package)`
          : String(stderr).trim().split('\n')[0] || err.message;
      reject(new Error(why));
    });
  });
}

/** A name looked up the way setfacl would (NSS, through getent); a number is taken as the id, as Teleport does. */
async function idOf(kind: 'user' | 'group', v: string | number): Promise<number> {
  if (typeof v === 'number') return v;
  if (/^\d+$/.test(v)) return Number(v);
  let line: string;
  try {
    line = await run('getent', [kind === 'user' ? 'passwd' : 'group', v]);
  } catch {
    throw new Error(`no ${kind} named "${v}"`);
  }
  const id = Number(line.split(':')[2]);
  if (!Number.isInteger(id)) throw new Error(`no ${kind} named "${v}"`);
  return id;
}

export async function resolveReaders(readers: readonly Reader[]): Promise<AclEntry[]> {
  const out: AclEntry[] = [];
  for (const r of readers) {
    if (r.user !== undefined) out.push({ tag: 'u', id: await idOf('user', r.user) });
    else if (r.group !== undefined) out.push({ tag: 'g', id: await idOf('group', r.group) });
  }
  return out;
}

/**
 * The whole ACL of a file or directory: the owner keeps rw (rwx), the owning group and others
 * get nothing, each reader (and the mask) read (read and search on directories). Set with
 * `setfacl --set`, which replaces every entry, so nothing else is left able to read.
 */
export function aclSpec(entries: readonly AclEntry[], dir: boolean): string {
  const read = dir ? 'r-x' : 'r--';
  const owner = dir ? 'rwx' : 'rw-';
  return [`u::${owner}`, 'g::---', 'o::---', `m::${read}`, ...entries.map((e) => `${e.tag}:${e.id}:${read}`)].join(',');
}

/** Sets the ACL on `paths` (all directories, or all files). */
export async function setAcl(paths: readonly string[], entries: readonly AclEntry[], dir: boolean): Promise<void> {
  if (paths.length === 0) return;
  await run('setfacl', ['--set', aclSpec(entries, dir), '--', ...paths]);
}

/** The error for `acls: required` when ACLs cannot be set; `why` says what failed. */
export function aclsRequiredError(path: string, why: string, field: string): MwiError {
  return new MwiError(
    'BAD_CONFIG',
    `acls: required, but POSIX ACLs cannot be set on ${path}: ${why} (install the acl package, use a file system ` +
      'mounted with ACL support, or set acls: try to write without them)',
    { field },
  );
}

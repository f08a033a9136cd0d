/**
 * Why a file could not be read or written, for a message: `no such file or directory (ENOENT)`,
 * `permission denied (EACCES)`, `is a directory (EISDIR)`; otherwise the error's own message.
 */
export function ioReason(err: unknown): string {
  const e = err as NodeJS.ErrnoException | undefined;
  const known: Record<string, string> = {
    ENOENT: 'no such file or directory',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    EISDIR: 'is a directory',
    ENOTDIR: 'a part of the path is not a directory',
    ELOOP: 'too many symbolic links',
    ENAMETOOLONG: 'the name is too long',
    EMFILE: 'too many open files',
  };
  if (e?.code && Object.hasOwn(known, e.code)) return `${known[e.code]} (${e.code})`;
  return e instanceof Error ? e.message : String(err);
}

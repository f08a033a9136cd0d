import { readFileSync } from 'node:fs';
import { MwiError } from '../../errors.js';
import { ioReason } from '../../util/io-reason.js';

/** Reads a file a Kubernetes connection needs; errors name the field and the file. */
export function readFor(path: string, what: string, field: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (cause) {
    throw new MwiError('BAD_CONFIG', `cannot read ${what} ${path}: ${ioReason(cause)}`, { field, cause });
  }
}

import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { MwiError } from '../../errors.js';
import { fsyncDir, writeFileAtomic } from '../../util/fs.js';
import type { Destination, OutputFile } from './destination.js';

const DATA = '..data';
const VERSION_PREFIX = '..v-';

/**
 * A directory destination that swaps whole file sets atomically, as Kubernetes' AtomicWriter
 * does: files go into a fresh hidden version directory, the `..data` symlink is renamed onto it,
 * and each visible name is a symlink through `..data`. A crash at any step leaves the previous
 * complete set in place.
 */
export class DirectoryDestination implements Destination {
  readonly path: string;

  constructor(path: string) {
    this.path = resolve(path);
  }

  get description(): string {
    return `directory ${this.path}`;
  }

  pathOf(name: string): string {
    return join(this.path, name);
  }

  private ensureDir(): void {
    if (!existsSync(this.path)) {
      mkdirSync(this.path, { recursive: true, mode: 0o700 });
      return;
    }
    if (!lstatSync(this.path).isDirectory()) throw new MwiError('BAD_CONFIG', `${this.path} exists and is not a directory`, { field: 'destination.path' });
  }

  async writeAll(files: OutputFile[]): Promise<void> {
    this.ensureDir();
    const version = `${VERSION_PREFIX}${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
    const vdir = join(this.path, version);
    mkdirSync(vdir, { mode: 0o700 });
    for (const f of files) {
      if (f.name.includes('/') || f.name.startsWith('..')) throw new TypeError(`invalid output file name ${f.name}`);
      writeFileAtomic(join(vdir, f.name), f.data, f.mode);
      chmodSync(join(vdir, f.name), f.mode);
    }
    chmodSync(vdir, 0o755 & ~0o022);
    fsyncDir(vdir);
    // the one atomic step: ..data now names the complete new set
    const tmpLink = join(this.path, `..data-${randomBytes(4).toString('hex')}`);
    symlinkSync(version, tmpLink);
    renameSync(tmpLink, join(this.path, DATA));
    for (const f of files) this.linkName(f.name);
    fsyncDir(this.path);
    this.removeOldVersions(version);
  }

  /** Makes `name` a symlink to `..data/name`, replacing a plain file from an older layout atomically. */
  private linkName(name: string): void {
    const target = join(DATA, name);
    const p = join(this.path, name);
    try {
      const st = lstatSync(p);
      if (st.isSymbolicLink()) return;
    } catch {
      // absent: create below
    }
    const tmp = join(this.path, `.${name}.${randomBytes(4).toString('hex')}.lnk`);
    symlinkSync(target, tmp);
    renameSync(tmp, p);
  }

  private removeOldVersions(current: string): void {
    for (const entry of readdirSync(this.path)) {
      if (entry.startsWith(VERSION_PREFIX) && entry !== current) rmSync(join(this.path, entry), { recursive: true, force: true });
      else if ((entry.startsWith('..data-') || entry.endsWith('.lnk')) && entry !== DATA) {
        try {
          unlinkSync(join(this.path, entry));
        } catch {
          // a concurrent writer's temp link; leave it
        }
      }
    }
  }

  async read(name: string): Promise<string | undefined> {
    try {
      return readFileSync(join(this.path, name), 'utf8');
    } catch {
      return undefined;
    }
  }
}

import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  type Stats,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { MwiError } from '../../errors.js';
import { checkDirTrusted, fsyncDir, writeFileAtomic } from '../../util/fs.js';
import type { Destination, DestinationType, OutputFile } from './destination.js';

const DATA = '..data';
const VERSION_PREFIX = '..v-';

/**
 * A directory destination that swaps whole file sets atomically, as Kubernetes' AtomicWriter
 * does: files go into a fresh hidden version directory, the `..data` symlink is renamed onto it,
 * and each visible name is a symlink through `..data`. A crash at any step leaves the previous
 * complete set in place.
 *
 * Nothing found in the directory is trusted as it is (issue #9, finding 15): the directory must
 * be a real directory (not a symlink) owned by this user or root and writable by no one else;
 * a visible name or `..data` that is not the link this class makes is never read or written
 * through: reads treat it as absent and the next write replaces it atomically.
 */
export class DirectoryDestination implements Destination {
  readonly path: string;

  /** `field` names the setting in errors (`storage.path` for tbot's storage). */
  constructor(
    path: string,
    private readonly field = 'destination.path',
  ) {
    this.path = resolve(path);
  }

  get description(): string {
    return `directory ${this.path}`;
  }

  pathOf(name: string): string {
    return join(this.path, name);
  }

  /**
   * Makes the directory (0700) when `create` and it is absent; checks an existing one. Returns
   * false when it is absent and not created.
   */
  private ensureDir(create: boolean): boolean {
    let st: Stats;
    try {
      st = lstatSync(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      if (!create) return false;
      mkdirSync(this.path, { recursive: true, mode: 0o700 });
      st = lstatSync(this.path);
    }
    if (st.isSymbolicLink()) {
      // whoever can change the link chooses where keys are written: name the real directory
      throw new MwiError('BAD_CONFIG', `${this.path} is a symlink: give the path of the directory itself`, {
        field: this.field,
      });
    }
    checkDirTrusted(this.path, this.field, st);
    return true;
  }

  async writeAll(files: OutputFile[]): Promise<void> {
    this.ensureDir(true);
    const version = `${VERSION_PREFIX}${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
    const vdir = join(this.path, version);
    mkdirSync(vdir, { mode: 0o700 });
    try {
      for (const f of files) {
        if (f.name.includes('/') || f.name.startsWith('..')) throw new TypeError(`invalid output file name ${f.name}`);
        writeFileAtomic(join(vdir, f.name), f.data, f.mode);
        chmodSync(join(vdir, f.name), f.mode);
      }
      chmodSync(vdir, 0o755 & ~0o022);
      fsyncDir(vdir);
    } catch (err) {
      // a set that never became ..data is nobody's: it must not pile up with each failed write
      rmSync(vdir, { recursive: true, force: true });
      throw err;
    }
    // the one atomic step: ..data now names the complete new set
    const tmpLink = join(this.path, `..data-${randomBytes(4).toString('hex')}`);
    symlinkSync(version, tmpLink);
    renameSync(tmpLink, join(this.path, DATA));
    for (const f of files) this.linkName(f.name);
    fsyncDir(this.path);
    this.removeOldVersions(version);
  }

  /**
   * Makes `name` the symlink `..data/name`. Anything else found there (a plain file from an
   * older layout, a symlink someone planted) is replaced atomically by a rename, which replaces
   * the name itself and never writes through it.
   */
  private linkName(name: string): void {
    const target = join(DATA, name);
    const p = join(this.path, name);
    if (this.isOwnLink(p, target)) return;
    const tmp = join(this.path, `.${name}.${randomBytes(4).toString('hex')}.lnk`);
    symlinkSync(target, tmp);
    renameSync(tmp, p);
  }

  private isOwnLink(p: string, target: string): boolean {
    try {
      return lstatSync(p).isSymbolicLink() && readlinkSync(p) === target;
    } catch {
      return false;
    }
  }

  /**
   * Where `name`'s content is, through this class's own links only: `name` -> `..data/name`,
   * `..data` -> a `..v-*` directory here. A plain file (older layout) is itself. Anything else
   * is not ours: undefined.
   */
  private ownFile(name: string): string | undefined {
    const p = join(this.path, name);
    let st: Stats;
    try {
      st = lstatSync(p);
    } catch {
      return undefined;
    }
    if (st.isFile()) return p;
    if (!this.isOwnLink(p, join(DATA, name))) return undefined;
    let version: string;
    try {
      version = readlinkSync(join(this.path, DATA));
    } catch {
      return undefined;
    }
    if (!version.startsWith(VERSION_PREFIX) || version.includes('/')) return undefined;
    try {
      if (!lstatSync(join(this.path, version)).isDirectory()) return undefined;
    } catch {
      return undefined;
    }
    return join(this.path, version, name);
  }

  private removeOldVersions(current: string): void {
    for (const entry of readdirSync(this.path)) {
      if (entry.startsWith(VERSION_PREFIX) && entry !== current)
        rmSync(join(this.path, entry), { recursive: true, force: true });
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
    if (name.includes('/') || name.startsWith('..')) throw new TypeError(`invalid output file name ${name}`);
    if (!this.ensureDir(false)) return undefined;
    const file = this.ownFile(name);
    if (!file) return undefined;
    let fd: number;
    try {
      // O_NOFOLLOW: the last component is a file this class wrote, never a link it did not make
      fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch {
      return undefined;
    }
    try {
      return readFileSync(fd, 'utf8');
    } finally {
      closeSync(fd);
    }
  }
}

/** `type: directory`: files on disk, swapped atomically. */
export const directoryDestination: DestinationType<{ path: z.ZodString }> = {
  type: 'directory',
  fields: { path: z.string().min(1) },
  build: (cfg) => new DirectoryDestination(cfg.path),
  paths: (cfg) => [cfg.path],
};

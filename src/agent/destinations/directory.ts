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
  rmdirSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  type Stats,
} from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { z } from 'zod';
import { MwiError } from '../../errors.js';
import { checkDirTrusted, fsyncDir, writeFileAtomic } from '../../util/fs.js';
import type { Logger } from '../../util/log.js';
import {
  ACL_MODES,
  aclsRequiredError,
  DEFAULT_ACL_MODE,
  readerSchema,
  resolveReaders,
  setAcl,
  type AclEntry,
  type AclMode,
  type Reader,
} from './acl.js';
import type { Destination, DestinationType, OutputFile } from './destination.js';
import { acquireLockFile, LOCK_FILE, type HeldLock } from './lock-file.js';
import { cannotWrite, writeTest } from './write-test.js';

const DATA = '..data';
const VERSION_PREFIX = '..v-';

/** `symlinks:` of a directory destination (Teleport's names). */
export const SYMLINK_MODES = ['secure', 'try-secure', 'insecure'] as const;
export type SymlinksMode = (typeof SYMLINK_MODES)[number];

/**
 * What `symlinks: secure` rests on: O_NOFOLLOW (reads never follow a last link) and file owners
 * (the check that nobody else can put a link on the path after it was walked). Node.js has no
 * openat2(RESOLVE_NO_SYMLINKS), so the path is walked with lstat instead; without these two
 * (Windows) nothing can make that walk hold, and `secure` is refused.
 */
export function secureSymlinksSupported(): boolean {
  return typeof constants.O_NOFOLLOW === 'number' && typeof process.geteuid === 'function';
}

/** How a directory destination treats links, and who else may read what it writes. */
export interface DirectoryOptions {
  /** Default `try-secure`. */
  symlinks?: SymlinksMode;
  /** Default `try` on Linux, else `off`; only acts when there are readers. */
  acls?: AclMode;
  readers?: readonly Reader[];
  /** Where the `try-secure` and `acls: try` fallbacks are reported. */
  log?: Logger;
}

/** `try-secure` falls back once per process, with one warning (as Teleport's sync.Once). */
let fallbackWarned = false;

/**
 * A directory destination that swaps whole file sets atomically, as Kubernetes' AtomicWriter
 * does: files go into a fresh hidden version directory, the `..data` symlink is renamed onto it,
 * and each visible name is a symlink through `..data`. A crash at any step leaves the previous
 * complete set in place.
 *
 * Nothing found in the directory is trusted as it is (issue #9, finding 15): the directory must
 * be owned by this user or root and writable by no one else, and (`symlinks: secure`, the
 * default where supported) be no link and have none on its path; a visible name or `..data`
 * that is not the link this class makes is never read or written through: reads treat it as
 * absent and the next write replaces it atomically. With `readers` (and `acls` not off), every
 * set gets POSIX ACLs that let those readers, and nobody else, read it.
 */
export class DirectoryDestination implements Destination {
  readonly path: string;
  /** `try-secure` resolved: secure where this platform supports it, else insecure. */
  readonly symlinks: 'secure' | 'insecure';
  private readonly acls: AclMode;
  private readonly readers: readonly Reader[];
  private readonly log: Logger | undefined;
  /** The readers' ACL entries once the test passed; undefined when ACLs are not used. */
  private acl: Promise<AclEntry[] | undefined> | undefined;
  /** The first directory this instance made (mkdir -p), for discard. */
  private created: string | undefined;

  /** `field` names the setting in errors (`storage.path` for tbot's storage). */
  constructor(
    path: string,
    private readonly field = 'destination.path',
    opts: DirectoryOptions = {},
  ) {
    this.path = resolve(path);
    this.acls = opts.acls ?? DEFAULT_ACL_MODE;
    this.readers = opts.readers ?? [];
    this.log = opts.log;
    const mode = opts.symlinks ?? 'try-secure';
    if (mode === 'insecure') this.symlinks = 'insecure';
    else if (secureSymlinksSupported()) this.symlinks = 'secure';
    else if (mode === 'secure') {
      throw new MwiError('BAD_CONFIG', 'symlinks: secure is not supported on this system (no O_NOFOLLOW)', {
        field: this.sibling('symlinks'),
      });
    } else {
      if (!fallbackWarned && this.log) {
        fallbackWarned = true;
        this.log?.warn('symlinks cannot be refused securely on this system; following them (set symlinks: insecure)', {
          path: this.path,
        });
      }
      this.symlinks = 'insecure';
    }
  }

  /** `destination.acls` next to `destination.path`. */
  private sibling(key: string): string {
    return this.field.replace(/path$/, key);
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
   *
   * `symlinks: secure` (and `try-secure` here): no component of the path may be a symlink,
   * checked with lstat before anything is created and again after the ownership check, which
   * makes the walk hold: nobody but this user or root can change any directory on the path, so
   * nobody else can put a link there afterwards. `insecure`: the path may be or contain links;
   * a last-component link must belong to this user or root, and its target is checked as below.
   */
  private ensureDir(create: boolean): boolean {
    let st: Stats;
    try {
      st = lstatSync(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw cannotWrite(err, this.path, this.field, 'use');
      if (!create) return false;
      // mkdir -p follows links on the way: refuse them before anything is created through one
      if (this.symlinks === 'secure') this.refuseLinksOnPath();
      try {
        this.created ??= mkdirSync(this.path, { recursive: true, mode: 0o700 });
      } catch (e) {
        throw cannotWrite(e, this.path, this.field, 'create');
      }
      st = lstatSync(this.path);
    }
    if (st.isSymbolicLink()) {
      if (this.symlinks === 'secure') {
        // whoever can change the link chooses where keys are written: name the real directory
        throw new MwiError(
          'BAD_CONFIG',
          `${this.path} is a symlink: give the path of the directory itself (symlinks: secure, and try-secure ` +
            `where the system supports it, refuse links; symlinks: insecure follows them)`,
          { field: this.field },
        );
      }
      const uid = process.geteuid?.();
      if (uid !== undefined && st.uid !== uid && st.uid !== 0) {
        throw new MwiError(
          'BAD_CONFIG',
          `${this.path} is a symlink owned by uid ${st.uid}: its owner could point it elsewhere; ` +
            'use a link this user or root owns, or the directory itself',
          { field: this.field },
        );
      }
      st = statSync(this.path);
    }
    checkDirTrusted(this.path, this.field, st);
    if (this.symlinks === 'secure') this.refuseLinksOnPath();
    return true;
  }

  /** Every existing component of the path, as given: none may be a symlink (`symlinks: secure`). */
  private refuseLinksOnPath(): void {
    const parts = this.path.split(sep).filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const p = `${sep}${parts.slice(0, i).join(sep)}`;
      let st: Stats;
      try {
        st = lstatSync(p);
      } catch {
        return;
      }
      if (st.isSymbolicLink()) {
        const what = i === parts.length ? ' is a symlink' : `, on the path to ${this.path}, is a symlink`;
        throw new MwiError(
          'BAD_CONFIG',
          `${p}${what}: symlinks: secure (and try-secure where the system supports it) refuses every link on ` +
            'the path, as Teleport does; give the real path, or set symlinks: insecure to follow links',
          { field: this.field },
        );
      }
    }
  }

  /**
   * Checks at start what a write will need, so that a run that cannot write stops before it
   * joins: the directory is made (0700) if absent, or checked (links, owner, mode); every step of
   * a write is tried on a test directory (create, write, mode, rename, symlink); with readers and
   * ACLs on, ACLs are tried on a test file. A directory made for the test is removed again: the
   * first write makes it, and a run that stops before writing leaves nothing.
   */
  async prepare(): Promise<void> {
    if (this.readers.length > 0 && this.acls === 'off') {
      this.log?.info('readers are configured but acls: off: no ACLs are set, the readers cannot read', {
        path: this.path,
      });
    }
    const existed = this.created !== undefined || this.ensureDir(false);
    this.ensureDir(true);
    try {
      writeTest(this.path, this.field);
      await this.aclEntries();
    } finally {
      if (!existed) this.discard();
    }
  }

  /**
   * Takes the storage lock (the directory is made first if absent): one tbot per storage.
   *
   * @throws MwiError BAD_CONFIG "storage in use by PID N", naming the field
   */
  lock(): HeldLock {
    this.ensureDir(true);
    try {
      return acquireLockFile(join(this.path, LOCK_FILE), this.field, this.log);
    } catch (err) {
      throw err instanceof MwiError ? err : cannotWrite(err, this.path, this.field, 'write in');
    }
  }

  /** Removes the directories this instance made, from the destination up, while they are empty. */
  discard(): void {
    if (!this.created) return;
    for (let dir = this.path; ; dir = dirname(dir)) {
      try {
        rmdirSync(dir);
      } catch {
        return; // not empty (or not ours to remove): stop there
      }
      if (dir === this.created) break;
    }
    this.created = undefined;
  }

  private aclsWanted(): boolean {
    return this.readers.length > 0 && this.acls !== 'off';
  }

  /**
   * The readers' ACL entries, after one test on a file in the directory (Teleport's TestACL).
   * `try`: a failure is warned about once and the destination is written without ACLs;
   * `required`: a failure is an error. After a passed test, a failure to set ACLs is an error.
   */
  private aclEntries(): Promise<AclEntry[] | undefined> {
    if (!this.aclsWanted()) return Promise.resolve(undefined);
    this.acl ??= (async () => {
      const test = join(this.path, `.acl-test-${randomBytes(4).toString('hex')}`);
      try {
        const entries = await resolveReaders(this.readers);
        closeSync(openSync(test, 'wx', 0o600));
        await setAcl([test], entries, false);
        return entries;
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        if (this.acls === 'required') throw aclsRequiredError(this.path, why, this.sibling('acls'));
        this.log?.warn('acls: try: ACLs cannot be set, writing without them: the readers cannot read', {
          path: this.path,
          error: why,
        });
        return undefined;
      } finally {
        try {
          unlinkSync(test);
        } catch {
          // never made
        }
      }
    })();
    // a failed required test is not remembered: the next write tries again (and fails the same way)
    this.acl.catch(() => (this.acl = undefined));
    return this.acl;
  }

  async writeAll(files: OutputFile[]): Promise<void> {
    this.ensureDir(true);
    const acl = await this.aclEntries();
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
      if (acl) {
        // before the swap: the set is never visible with other permissions than these (chmod
        // after setfacl would change the mask, so this comes last)
        await setAcl([this.path, vdir], acl, true).catch((e: Error) => this.aclFailed(e));
        await setAcl(
          files.map((f) => join(vdir, f.name)),
          acl,
          false,
        ).catch((e: Error) => this.aclFailed(e));
      }
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

  private aclFailed(e: Error): never {
    throw new MwiError('BAD_CONFIG', `cannot set ACLs in ${this.path}: ${e.message}`, { field: this.sibling('acls') });
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

const fields = {
  path: z.string().min(1),
  symlinks: z
    .enum(SYMLINK_MODES)
    .default('try-secure')
    .refine(
      (m) => m !== 'secure' || secureSymlinksSupported(),
      'secure is not supported on this system (no O_NOFOLLOW): use try-secure or insecure',
    ),
  acls: z
    .enum(ACL_MODES)
    .default(DEFAULT_ACL_MODE)
    .refine(
      (m) => m !== 'required' || process.platform === 'linux',
      'required is not supported on this system (POSIX ACLs are set with setfacl on Linux)',
    ),
  readers: z.array(readerSchema).default([]),
};

/** `type: directory`: files on disk, swapped atomically; Teleport's `symlinks`, `acls` and `readers`. */
export const directoryDestination: DestinationType<typeof fields> = {
  type: 'directory',
  fields,
  build: (cfg, ctx) =>
    new DirectoryDestination(cfg.path, ctx?.field ?? 'destination.path', {
      symlinks: cfg.symlinks,
      acls: cfg.acls,
      readers: cfg.readers,
      log: ctx?.log,
    }),
  paths: (cfg) => [cfg.path],
};

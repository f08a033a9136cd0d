import {
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';

/** A rotation lock older than this was left by a writer that died mid-rotation. */
const STALE_LOCK_MS = 10_000;

/**
 * An append-only file rotated by size: `PATH` is renamed to `PATH.1` (`PATH.1` to `PATH.2`, ...;
 * `PATH.MAX_FILES` is deleted) before a write would take it past `maxBytes`.
 *
 * Several processes may append to the same path (`mwi start --workers`). Each writes whole
 * batches with O_APPEND, so lines never interleave. Rotation is rename-based: one writer at a
 * time (an exclusive-create lock file `PATH.lock`) renames the files, checking first that `PATH`
 * is still the file it found full, and moves that file out of the way first; every writer stats
 * `PATH` before each write (one syscall) and reopens when its inode changed, so nothing is
 * lost. A writer that finds the file full while another rotates it is told so (`append` returns
 * false) and can hold its lines back for a moment rather than overfill the file.
 */
export class RotatingFile {
  private fd = -1;
  private ino = -1;

  constructor(
    readonly path: string,
    private readonly maxBytes: number,
    private readonly maxFiles: number,
  ) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.reopen();
  }

  /** The current file and its rotated copies, newest first. */
  paths(): string[] {
    return [this.path, ...Array.from({ length: this.maxFiles }, (_, i) => `${this.path}.${i + 1}`)];
  }

  /**
   * Appends `text` (whole lines) in one write, rotating first if it would not fit. Returns false,
   * writing nothing, if the file is full and another writer is rotating it right now (try again
   * in a moment rather than overfill it); with `force`, writes to the current file anyway.
   */
  append(text: string, force = false): boolean {
    const data = Buffer.from(text);
    // a few rounds: another writer may rotate between our looks; then write where we are
    for (let round = 0; round < 3; round++) {
      const st = statSync(this.path, { throwIfNoEntry: false });
      if (!st || st.ino !== this.ino) {
        this.reopen();
        continue;
      }
      if (st.size === 0 || st.size + data.length <= this.maxBytes) break;
      if (!this.rotate()) {
        if (!force) return false;
        break;
      }
    }
    let off = 0;
    while (off < data.length) off += writeSync(this.fd, data, off);
    return true;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  private reopen(): void {
    this.close();
    this.fd = openSync(this.path, 'a', 0o600);
    this.ino = fstatSync(this.fd).ino;
  }

  /** Rotates the full file at the path; false if another writer holds the rotation lock. */
  private rotate(): boolean {
    const lock = `${this.path}.lock`;
    let held: number;
    try {
      held = openSync(lock, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // another writer is rotating; or died doing it, long ago
      const st = statSync(lock, { throwIfNoEntry: false });
      if (st && Date.now() - st.mtimeMs > STALE_LOCK_MS) rmSync(lock, { force: true });
      return false;
    }
    try {
      const st = statSync(this.path, { throwIfNoEntry: false });
      // only the file this writer found full: if another writer rotated meanwhile, just reopen
      if (st?.ino === this.ino) {
        // the full file leaves the path first: from here on every writer opens a fresh one,
        // instead of appending to the full one while the older files are renamed
        const aside = `${this.path}.rotating`;
        renameSync(this.path, aside);
        let k = 0;
        while (k < this.maxFiles && existsSync(`${this.path}.${k + 1}`)) k++;
        if (k === this.maxFiles) rmSync(`${this.path}.${k--}`, { force: true });
        for (; k >= 1; k--) renameSync(`${this.path}.${k}`, `${this.path}.${k + 1}`);
        renameSync(aside, `${this.path}.1`);
      }
    } finally {
      closeSync(held);
      // force: a writer that took over a lock it thought stale may have removed it already
      rmSync(lock, { force: true });
    }
    this.reopen();
    return true;
  }
}

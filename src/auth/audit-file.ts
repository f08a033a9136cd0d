import { closeSync, fstatSync, mkdirSync, openSync, renameSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
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
 * is still the file it found full; every writer stats `PATH` before each write (one syscall) and
 * reopens when its inode changed, so a writer that did not rotate appends at most one batch to
 * the file just renamed, and nothing is lost.
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

  /** Appends `text` (whole lines) in one write, rotating first if it would not fit. */
  append(text: string): void {
    const data = Buffer.from(text);
    const st = statSync(this.path, { throwIfNoEntry: false });
    if (!st || st.ino !== this.ino) this.reopen();
    else if (st.size > 0 && st.size + data.length > this.maxBytes) this.rotate();
    let off = 0;
    while (off < data.length) off += writeSync(this.fd, data, off);
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

  private rotate(): void {
    const lock = `${this.path}.lock`;
    let held: number;
    try {
      held = openSync(lock, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // another writer is rotating (this batch goes to the current file); or died doing it
      const st = statSync(lock, { throwIfNoEntry: false });
      if (st && Date.now() - st.mtimeMs > STALE_LOCK_MS) rmSync(lock, { force: true });
      return;
    }
    try {
      const st = statSync(this.path, { throwIfNoEntry: false });
      // only the file this writer found full: if another writer rotated meanwhile, just reopen
      if (st?.ino === this.ino) {
        rmSync(`${this.path}.${this.maxFiles}`, { force: true });
        for (let k = this.maxFiles - 1; k >= 1; k--) renameIfExists(`${this.path}.${k}`, `${this.path}.${k + 1}`);
        renameSync(this.path, `${this.path}.1`);
      }
    } finally {
      closeSync(held);
      unlinkSync(lock);
    }
    this.reopen();
  }
}

function renameIfExists(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

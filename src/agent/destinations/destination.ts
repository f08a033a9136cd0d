/** One file of an output: content and permission bits. */
export interface OutputFile {
  name: string;
  data: string;
  /** 0o600 for keys, 0o644 for public material. */
  mode: number;
}

/**
 * Where an output's files go. `writeAll` replaces the whole set atomically: a reader (or a crash)
 * sees the previous set or the new one, never a certificate without its key.
 */
export interface Destination {
  readonly description: string;
  writeAll(files: OutputFile[]): Promise<void>;
  read(name: string): Promise<string | undefined>;
  /** Absolute path of a file, for destinations on disk (used in ssh_config). */
  pathOf?(name: string): string;
}

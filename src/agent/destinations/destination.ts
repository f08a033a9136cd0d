import type { z } from 'zod';
import type { ConfigOf, Typed } from '../registry.js';

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

/** A validated `destination:` (or `storage:`) of tbot.yaml; its type's entry knows the rest. */
export interface DestinationConfig {
  readonly type: string;
}

/** A destination type: its `type:` and fields in tbot.yaml, how it opens, and where it writes. */
export interface DestinationType<F extends z.ZodRawShape = z.ZodRawShape> extends Typed<F> {
  build(cfg: ConfigOf<F>): Destination;
  /** The directories it writes: no two writers may share one (checked when tbot.yaml is read). */
  paths(cfg: ConfigOf<F>): string[];
}

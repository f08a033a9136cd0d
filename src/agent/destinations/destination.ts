import type { z } from 'zod';
import type { Logger } from '../../util/log.js';
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
  /**
   * Checks at start what writing will need (a directory: links, owner and mode, ACLs for its
   * readers), so that tbot stops before it joins rather than at its first write.
   */
  prepare?(): Promise<void>;
  /**
   * Takes an exclusive lock for this process (tbot's storage: one tbot per storage). A destination
   * that keeps nothing across runs (memory) has none.
   */
  lock?(): { release(): void };
  /** Undoes what `prepare` or `lock` made when tbot stops before writing (directories still empty). */
  discard?(): void;
}

/** What opening a destination may be told: where it sits in tbot.yaml, and where to report. */
export interface OpenContext {
  /** `outputs[0].destination.path`, `storage.path`: how errors name the setting. */
  field?: string;
  log?: Logger;
  /** tbot's stop signal: a destination that waits on the network stops waiting (soon) after it. */
  signal?: AbortSignal;
}

/** A validated `destination:` (or `storage:`) of tbot.yaml; its type's entry knows the rest. */
export interface DestinationConfig {
  readonly type: string;
}

/** A destination type: its `type:` and fields in tbot.yaml, how it opens, and where it writes. */
export interface DestinationType<F extends z.ZodRawShape = z.ZodRawShape> extends Typed<F> {
  build(cfg: ConfigOf<F>, ctx?: OpenContext): Destination;
  /** The directories it writes: no two writers may share one (checked when tbot.yaml is read). */
  paths(cfg: ConfigOf<F>): string[];
  /** What else it writes that no two writers may share, as messages name it (`the Kubernetes Secret NS/NAME`). */
  targets?(cfg: ConfigOf<F>): string[];
}

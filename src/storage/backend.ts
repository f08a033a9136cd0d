/**
 * The storage contract (DESIGN.md section 8): a small key-value store with revisions. Every
 * atomic rule in mwi (single-use tokens, generation counters) is one conditional write here, so
 * it holds for any implementation and across Auth Service replicas sharing one backend.
 */
export interface Item {
  key: string;
  /** JSON text of the resource. */
  value: string;
  /** Increases on every write to any key; compare it with `compareAndSwap`. */
  revision: number;
  /** Epoch ms after which the item is treated as absent. */
  expires?: number | undefined;
}

export interface WriteOptions {
  expires?: number | undefined;
}

export interface RangeOptions {
  /** Return only keys strictly after this one (for paging). */
  startAfter?: string;
  limit?: number;
}

/** One step of an all-or-nothing `transact`. */
export type TxOp =
  | { op: 'create'; key: string; value: string; expires?: number | undefined }
  | { op: 'delete'; key: string; revision: number }
  | { op: 'compareAndSwap'; key: string; revision: number; value: string; expires?: number | undefined };

export type WatchEvent = { type: 'put'; item: Item } | { type: 'delete'; key: string };

export interface Backend {
  get(key: string): Promise<Item | undefined>;
  /** Unconditional write. */
  put(key: string, value: string, opts?: WriteOptions): Promise<Item>;
  /** Writes only if the key is absent (or expired); otherwise throws ALREADY_EXISTS. */
  create(key: string, value: string, opts?: WriteOptions): Promise<Item>;
  /** Writes only if the stored revision equals `revision`; otherwise throws COMPARE_FAILED. */
  compareAndSwap(key: string, revision: number, value: string, opts?: WriteOptions): Promise<Item>;
  /** Deletes; with `revision`, only if it still matches. Returns whether an item was deleted. */
  delete(key: string, revision?: number): Promise<boolean>;
  /**
   * Applies every op or none: each op's condition (absent for create, same revision for delete
   * and compareAndSwap) must hold. Returns false, changing nothing, if one does not.
   */
  transact(ops: TxOp[]): Promise<boolean>;
  /** Items whose key starts with `prefix`, in key order, expired ones left out. */
  range(prefix: string, opts?: RangeOptions): Promise<Item[]>;
  /** Calls `fn` for every change under `prefix`; returns a function that stops watching. */
  watch(prefix: string, fn: (event: WatchEvent) => void): () => void;
  /**
   * Reclaims space held by expired items (reads already ignore them); resolves to how many were
   * removed. Runs in small steps: other work goes on meanwhile. Once `signal` fires it stops
   * between two steps and resolves to what it removed so far; the next call takes up the rest.
   */
  purgeExpired(signal?: AbortSignal): Promise<number>;
  close(): Promise<void>;
}

/** Key-prefix helper so callers never build keys by hand. */
export function key(...parts: string[]): string {
  for (const p of parts) {
    if (p.length === 0 || p.includes('/')) throw new TypeError(`invalid key part ${JSON.stringify(p)}`);
  }
  return `/${parts.join('/')}`;
}

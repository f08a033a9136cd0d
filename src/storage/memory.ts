import { MwiError } from '../errors.js';
import type { Backend, Item, RangeOptions, TxOp, WatchEvent, WriteOptions } from './backend.js';
import { Watchers } from './watchers.js';

/** In-memory backend for tests and `--storage memory://`. Not shared between processes. */
export class MemoryBackend implements Backend {
  private readonly items = new Map<string, Item>();
  private revision = 0;
  private readonly watchers = new Watchers();

  constructor(private readonly now: () => number = Date.now) {}

  private live(key: string): Item | undefined {
    const item = this.items.get(key);
    if (item?.expires !== undefined && item.expires <= this.now()) {
      this.items.delete(key);
      return undefined;
    }
    return item;
  }

  private write(key: string, value: string, opts?: WriteOptions): Item {
    const item: Item = { key, value, revision: ++this.revision, expires: opts?.expires };
    this.items.set(key, item);
    this.watchers.emit({ type: 'put', item });
    return { ...item };
  }

  async get(key: string): Promise<Item | undefined> {
    const item = this.live(key);
    return item && { ...item };
  }

  async put(key: string, value: string, opts?: WriteOptions): Promise<Item> {
    return this.write(key, value, opts);
  }

  async create(key: string, value: string, opts?: WriteOptions): Promise<Item> {
    if (this.live(key)) throw new MwiError('ALREADY_EXISTS', `${key} already exists`);
    return this.write(key, value, opts);
  }

  async compareAndSwap(key: string, revision: number, value: string, opts?: WriteOptions): Promise<Item> {
    if (this.live(key)?.revision !== revision) throw new MwiError('COMPARE_FAILED', `${key} changed concurrently`);
    return this.write(key, value, opts);
  }

  async delete(key: string, revision?: number): Promise<boolean> {
    const item = this.live(key);
    if (!item || (revision !== undefined && item.revision !== revision)) return false;
    this.items.delete(key);
    this.watchers.emit({ type: 'delete', key });
    return true;
  }

  async transact(ops: TxOp[]): Promise<boolean> {
    const holds = ops.every((o) => (o.op === 'create' ? !this.live(o.key) : this.live(o.key)?.revision === o.revision));
    if (!holds) return false;
    for (const o of ops) {
      if (o.op === 'delete') {
        this.items.delete(o.key);
        this.watchers.emit({ type: 'delete', key: o.key });
      } else this.write(o.key, o.value, { expires: o.expires });
    }
    return true;
  }

  async range(prefix: string, opts: RangeOptions = {}): Promise<Item[]> {
    const keys = [...this.items.keys()]
      .filter((k) => k.startsWith(prefix) && (!opts.startAfter || k > opts.startAfter))
      .sort();
    const out: Item[] = [];
    for (const k of keys) {
      const item = this.live(k);
      if (item) out.push({ ...item });
      if (opts.limit !== undefined && out.length >= opts.limit) break;
    }
    return out;
  }

  /** One step (a pass over the map, no I/O): a signal that already fired stops it before it starts. */
  async purgeExpired(signal?: AbortSignal): Promise<number> {
    if (signal?.aborted) return 0;
    let removed = 0;
    for (const [k, item] of this.items) {
      if (item.expires !== undefined && item.expires <= this.now()) {
        this.items.delete(k);
        removed++;
      }
    }
    return removed;
  }

  watch(prefix: string, fn: (event: WatchEvent) => void): () => void {
    return this.watchers.add(prefix, fn);
  }

  async close(): Promise<void> {}
}

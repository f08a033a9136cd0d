import type { Backend } from '../storage/backend.js';

/**
 * An in-memory copy of every resource under a prefix, kept current by the backend's watch, so
 * the hot path (join, renew) reads roles, bots and locks without a storage round trip. With
 * `indexOf`, items can also be found by the keys it gives (e.g. a lock by its target) without
 * a scan.
 */
export class ResourceCache<T> {
  private readonly items = new Map<string, T>();
  /** index key -> names of the items with it */
  private readonly index = new Map<string, Set<string>>();
  private stop: (() => void) | undefined;

  private constructor(
    private readonly backend: Backend,
    private readonly prefix: string,
    private readonly indexOf?: (item: T) => string[],
  ) {}

  static async open<T>(backend: Backend, prefix: string, indexOf?: (item: T) => string[]): Promise<ResourceCache<T>> {
    const cache = new ResourceCache<T>(backend, prefix, indexOf);
    // subscribe first so no change between the load and the subscription is lost
    cache.stop = backend.watch(prefix, (e) => {
      if (e.type === 'put') cache.set(e.item.key.slice(prefix.length), JSON.parse(e.item.value) as T);
      else cache.remove(e.key.slice(prefix.length));
    });
    for (const item of await backend.range(prefix))
      cache.set(item.key.slice(prefix.length), JSON.parse(item.value) as T);
    return cache;
  }

  private set(name: string, item: T): void {
    this.remove(name);
    this.items.set(name, item);
    for (const k of this.indexOf?.(item) ?? []) {
      let names = this.index.get(k);
      if (!names) this.index.set(k, (names = new Set()));
      names.add(name);
    }
  }

  private remove(name: string): void {
    const old = this.items.get(name);
    if (old === undefined) return;
    this.items.delete(name);
    for (const k of this.indexOf?.(old) ?? []) {
      const names = this.index.get(k);
      names?.delete(name);
      if (names?.size === 0) this.index.delete(k);
    }
  }

  /**
   * The item by name, from memory; a miss is read from storage: another Auth Service process
   * may have written it a moment ago and its change has not arrived here yet (read your writes
   * across workers and replicas). Hits, the hot path, cost nothing more.
   */
  async fresh(name: string): Promise<T | undefined> {
    const hit = this.items.get(name);
    if (hit !== undefined) return hit;
    const item = await this.backend.get(`${this.prefix}${name}`);
    return item ? (JSON.parse(item.value) as T) : undefined;
  }

  /** The items with this index key. */
  *lookup(indexKey: string): Generator<T> {
    for (const name of this.index.get(indexKey) ?? []) yield this.items.get(name)!;
  }

  close(): void {
    this.stop?.();
  }
}

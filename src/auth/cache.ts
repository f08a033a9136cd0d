import type { Backend } from '../storage/backend.js';

/**
 * An in-memory copy of every resource under a prefix, kept current by the backend's watch, so
 * the hot path (join, renew) reads roles, bots and locks without a storage round trip.
 */
export class ResourceCache<T> {
  private readonly items = new Map<string, T>();
  private stop: (() => void) | undefined;

  private constructor(
    private readonly backend: Backend,
    private readonly prefix: string,
  ) {}

  static async open<T>(backend: Backend, prefix: string): Promise<ResourceCache<T>> {
    const cache = new ResourceCache<T>(backend, prefix);
    // subscribe first so no change between the load and the subscription is lost
    cache.stop = backend.watch(prefix, (e) => {
      if (e.type === 'put') cache.items.set(e.item.key.slice(prefix.length), JSON.parse(e.item.value) as T);
      else cache.items.delete(e.key.slice(prefix.length));
    });
    for (const item of await backend.range(prefix)) {
      cache.items.set(item.key.slice(prefix.length), JSON.parse(item.value) as T);
    }
    return cache;
  }

  get(name: string): T | undefined {
    return this.items.get(name);
  }

  /**
   * Like get, but a miss is read from storage: another Auth Service process may have written it
   * a moment ago and its change has not arrived here yet (read your writes across workers and
   * replicas). Hits, the hot path, cost nothing more.
   */
  async fresh(name: string): Promise<T | undefined> {
    const hit = this.items.get(name);
    if (hit !== undefined) return hit;
    const item = await this.backend.get(`${this.prefix}${name}`);
    return item ? (JSON.parse(item.value) as T) : undefined;
  }

  values(): IterableIterator<T> {
    return this.items.values();
  }

  close(): void {
    this.stop?.();
  }
}

import type { WatchEvent } from './backend.js';

/** Fan-out of change events to prefix watchers, shared by the in-process backends. */
export class Watchers {
  private readonly subs = new Set<{ prefix: string; fn: (e: WatchEvent) => void }>();

  add(prefix: string, fn: (e: WatchEvent) => void): () => void {
    const sub = { prefix, fn };
    this.subs.add(sub);
    return () => this.subs.delete(sub);
  }

  emit(event: WatchEvent): void {
    const k = event.type === 'put' ? event.item.key : event.key;
    for (const sub of this.subs) {
      if (k.startsWith(sub.prefix)) {
        try {
          sub.fn(event);
        } catch {
          // a watcher's failure must not break the write that triggered it
        }
      }
    }
  }
}

// Bounded LRUs of decoded pages and of small values. Pages are immutable while any snapshot can
// reach them, so a cached node is valid until its page id is reused, and reuse replaces the entry at
// commit. Values have a cache of their own, so that gets of many small values cannot push the
// branch and leaf pages (which every get needs) out.
import type { Node } from './node';
import { PAGE_SIZE } from './layout';

/** A small overflow value, kept with the checksum and length of the cell that points to it: a
 *  reused page id can never serve a stale value, because the new cell's crc will differ. */
export interface CachedValue {
  crc: number;
  value: Buffer;
}


export class PageCache<T> {
  private readonly map = new Map<number, T>();
  hits = 0;
  misses = 0;

  constructor(readonly capacity: number) {}

  get(id: number): T | undefined {
    const n = this.map.get(id);
    if (n === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    // Refresh recency only now and then: a delete+set per hit would cost more than the lookup.
    if ((this.hits & 7) === 0) {
      this.map.delete(id);
      this.map.set(id, n);
    }
    return n;
  }

  set(id: number, node: T): void {
    this.map.delete(id);
    this.map.set(id, node);
    if (this.map.size > this.capacity) {
      const oldest = this.map.keys().next().value as number;
      this.map.delete(oldest);
    }
  }

  delete(id: number): void {
    this.map.delete(id);
  }

  clear(): void {
    this.map.clear();
  }

  get size(): number {
    return this.map.size;
  }
}

export interface Caches {
  nodes: PageCache<Node>;
  values: PageCache<CachedValue>;
}

/** Splits a budget of `cacheMB` MiB: three quarters for tree pages, the rest for values. */
export function makeCaches(cacheMB: number): Caches {
  const pages = Math.floor((cacheMB * 1024 * 1024) / PAGE_SIZE);
  const nodes = Math.max(16, Math.floor((pages * 3) / 4));
  return { nodes: new PageCache<Node>(nodes), values: new PageCache<CachedValue>(Math.max(16, pages - nodes)) };
}

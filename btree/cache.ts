// LRUs of decoded pages and of small values, bounded together by the memory they keep alive. Pages
// are immutable while any snapshot can reach them, so a cached node is valid until its page id is
// reused, and reuse replaces the entry at commit. Values have a cache of their own, so that gets of
// many small values cannot push the branch and leaf pages (which every get needs) out; it may use
// whatever of the budget the pages leave (makeCaches).
import type { Node } from './node';
import { PAGE_SIZE } from './layout';

/** A small overflow value, kept with the checksum and length of the cell that points to it: a
 *  reused page id can never serve a stale value, because the new cell's crc will differ. */
export interface CachedValue {
  crc: number;
  value: Buffer;
}


/** What an entry is charged against the budget, in bytes of memory it keeps alive. */
export type CostOf<T> = (item: T) => number;

export class PageCache<T> {
  private readonly map = new Map<number, { item: T; cost: number }>();
  /** Walks the map in insertion order, oldest first, across evictions. A fresh keys().next() per
   *  eviction would step over every slot that deletions (evictions, refreshes) have emptied at the
   *  front of V8's table since it was last rebuilt: thousands of slots in a full cache. One kept
   *  iterator steps over each such slot once. Every key it passes is deleted at once, and new or
   *  refreshed entries go behind it, so the next key it yields is always the oldest one. */
  private oldest: Iterator<number> | undefined;
  /** Bytes charged for the entries held now. */
  bytes = 0;
  hits = 0;
  misses = 0;

  /** `capacity`: the bytes it may hold now (asked at every set, so it may move); `afterSet` runs
   *  after each set has trimmed this cache (makeCaches: the values make room for a grown tree). */
  constructor(private readonly capacity: () => number, private readonly costOf: CostOf<T>, private readonly afterSet: () => void = () => undefined) {}

  get(id: number): T | undefined {
    const e = this.map.get(id);
    if (e === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    // Refresh recency only now and then: a delete+set per hit would cost more than the lookup.
    if ((this.hits & 7) === 0) {
      this.map.delete(id);
      this.map.set(id, e);
    }
    return e.item;
  }

  set(id: number, item: T): void {
    this.delete(id);
    const cost = this.costOf(item);
    this.map.set(id, { item, cost });
    this.bytes += cost;
    this.trim();
    this.afterSet();
  }

  /** Evicts the oldest entries until the cache is within its capacity. The newest entry always
   *  stays, so a budget smaller than one page still caches something. */
  trim(): void {
    const capacity = this.capacity();
    while (this.bytes > capacity && this.map.size > 1) this.evictOldest();
  }

  private evictOldest(): void {
    for (;;) {
      this.oldest ??= this.map.keys();
      const next = this.oldest.next();
      if (!next.done) {
        this.delete(next.value);
        return;
      }
      // Not reached while the walk is kept as above (every live entry lies behind it, and eviction
      // leaves at least one); were it ever exhausted, it would stay so whatever came after: start
      // another rather than loop for ever.
      this.oldest = undefined;
    }
  }

  delete(id: number): void {
    const e = this.map.get(id);
    if (e === undefined) return;
    this.map.delete(id);
    this.bytes -= e.cost;
  }

  clear(): void {
    this.map.clear();
    this.oldest = undefined;
    this.bytes = 0;
  }

  get size(): number {
    return this.map.size;
  }
}

/** Heap bytes of one Buffer object (a view: the bytes it shows are paid for by its page). Measured
 *  on Node 20 x64: a million subarrays of one buffer took 107 bytes each, plus an array slot. */
const BUFFER_OBJECT_BYTES = 112;
const OBJECT_BYTES = 64;

/** A decoded node keeps its page image alive and one Buffer view (or overflow reference) per key
 *  and per value: a leaf of 200 small cells costs ten times its page, so pages are not the unit. */
export function nodeCost(n: Node): number {
  return PAGE_SIZE + OBJECT_BYTES + BUFFER_OBJECT_BYTES * (n.keys.length + n.vals.length) + 8 * n.children.length;
}

const valueCost = (v: CachedValue): number => v.value.length + BUFFER_OBJECT_BYTES + OBJECT_BYTES;

export interface Caches {
  nodes: PageCache<Node>;
  values: PageCache<CachedValue>;
}

/** One budget of `cacheMB` MiB for both caches. Tree pages may take up to three quarters of it, and
 *  values whatever the pages leave, at least the last quarter: a store whose branches and leaves
 *  need a few MiB leaves nearly all of the budget to values (a fixed quarter left 48 of the default
 *  64 MiB unused while gets of 4 KiB values missed), and a tree that grows takes its room back from
 *  the values, never the other way round. */
export function makeCaches(cacheMB: number): Caches {
  const bytes = Math.max(64 * PAGE_SIZE, cacheMB * 1024 * 1024);
  const nodesMax = Math.floor((bytes * 3) / 4);
  const nodes: PageCache<Node> = new PageCache<Node>(() => nodesMax, nodeCost, () => values.trim());
  const values: PageCache<CachedValue> = new PageCache<CachedValue>(() => bytes - nodes.bytes, valueCost);
  return { nodes, values };
}

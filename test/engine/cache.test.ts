// The page cache's LRU against a plain model: which entries it holds after random sets, hits (every
// eighth of which refreshes the entry), deletes and clears, and its byte count. Eviction walks one
// kept iterator across calls, so the model checks that it still always takes the oldest entry.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeCaches, PageCache } from '../../btree/cache';
import type { Node } from '../../btree/node';

/** An array in recency order, oldest first, with the cache's rules spelled out plainly. */
class ModelLru {
  order: number[] = [];
  costs = new Map<number, number>();
  bytes = 0;
  hits = 0;
  constructor(readonly capacity: number) {}
  get(id: number): boolean {
    if (!this.costs.has(id)) return false;
    this.hits++;
    if ((this.hits & 7) === 0) {
      this.order.splice(this.order.indexOf(id), 1);
      this.order.push(id);
    }
    return true;
  }
  set(id: number, cost: number): void {
    this.delete(id);
    this.order.push(id);
    this.costs.set(id, cost);
    this.bytes += cost;
    while (this.bytes > this.capacity && this.order.length > 1) this.delete(this.order[0]);
  }
  delete(id: number): void {
    const cost = this.costs.get(id);
    if (cost === undefined) return;
    this.order.splice(this.order.indexOf(id), 1);
    this.costs.delete(id);
    this.bytes -= cost;
  }
  clear(): void {
    this.order = [];
    this.costs.clear();
    this.bytes = 0;
  }
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

test('holds exactly what an LRU with the same rules holds, over random sets, hits, deletes and clears', () => {
  for (const seed of [1, 2, 3]) {
    const rand = rng(seed);
    const capacity = 5_000;
    const cache = new PageCache<{ id: number; cost: number }>(() => capacity, (x) => x.cost);
    const model = new ModelLru(capacity);
    for (let step = 0; step < 60_000; step++) {
      const r = rand();
      // Ids from a range a few times what fits, so that sets evict and hits both find and miss.
      const id = Math.floor(rand() * 400);
      if (r < 0.45) {
        const cost = 10 + Math.floor(rand() * 40);
        cache.set(id, { id, cost });
        model.set(id, cost);
      } else if (r < 0.9) {
        const got = cache.get(id);
        assert.is(got !== undefined, model.get(id), `seed ${seed} step ${step}: get(${id})`);
        if (got) assert.is(got.id, id);
      } else if (r < 0.999) {
        cache.delete(id);
        model.delete(id);
      } else {
        cache.clear();
        model.clear();
      }
      assert.is(cache.bytes, model.bytes, `seed ${seed} step ${step}: bytes`);
      assert.is(cache.size, model.order.length, `seed ${seed} step ${step}: size`);
    }
    for (let id = 0; id < 400; id++) assert.is(cache.get(id) !== undefined, model.get(id), `seed ${seed}: holds ${id}`);
  }
});

test('evicts oldest first, also after every entry was deleted and new ones came in behind the walk', () => {
  const cache = new PageCache<number>(() => 3, () => 1);
  for (const id of [1, 2, 3, 4]) cache.set(id, id);
  assert.is(cache.get(1), undefined);
  for (const id of [2, 3, 4]) cache.delete(id);
  assert.is(cache.size, 0);
  for (const id of [5, 6, 7, 8, 9]) cache.set(id, id);
  assert.equal([5, 6, 7, 8, 9].map((id) => cache.get(id) !== undefined), [false, false, true, true, true]);
  assert.is(cache.bytes, 3);
});

test('tree pages and values share one budget: values take what the pages leave, and give it back when the tree grows', () => {
  const budget = 1024 * 1024;
  const { nodes, values } = makeCaches(1);
  const node = () => ({ keys: [], vals: [], children: [] }) as unknown as Node;
  const value = () => ({ crc: 0, value: Buffer.alloc(4096) });
  for (let id = 0; id < 10; id++) nodes.set(id, node());
  for (let id = 0; id < 240; id++) values.set(id, value());
  // A small tree leaves nearly all of the budget to values: far more than a fixed quarter.
  assert.ok(values.bytes > budget * 0.9 - nodes.bytes && nodes.bytes + values.bytes <= budget, `nodes ${nodes.bytes}, values ${values.bytes}`);
  assert.is(nodes.size, 10);
  // The tree grows past three quarters: it stops there, and the values shrink to what it leaves.
  for (let id = 10; id < 210; id++) nodes.set(id, node());
  assert.ok(nodes.bytes <= budget * 0.75, `nodes ${nodes.bytes}`);
  assert.ok(nodes.bytes + values.bytes <= budget, `nodes ${nodes.bytes} + values ${values.bytes}`);
  assert.ok(values.bytes >= budget / 4 - 4272, `values ${values.bytes}`);
  // Values never push tree pages out.
  const held = nodes.size;
  for (let id = 1000; id < 1300; id++) values.set(id, value());
  assert.is(nodes.size, held);
  assert.ok(nodes.bytes + values.bytes <= budget);
});

test.run();

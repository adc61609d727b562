// Randomized model test: thousands of operations against the real engine on a real file, checked
// against an in-memory Map after every step that reads. The seed is printed so a failure replays.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { Store } from '../../btree';
import { tempDir } from '../support/tmp';
import { mulberry32, randInt } from '../support/fault-fs';

const SEED = Number(process.env.LBKV_SEED ?? Date.now() % 1_000_000);
const OPS = Number(process.env.LBKV_MODEL_OPS ?? 3000);

function sizeFor(rng: () => number): number {
  const r = rng();
  if (r < 0.5) return randInt(rng, 0, 300);
  if (r < 0.8) return randInt(rng, 300, 9000);
  if (r < 0.99) return randInt(rng, 9000, 200_000);
  return randInt(rng, 1 << 20, 4 << 20);
}

function valueFor(rng: () => number, tag: number): Buffer {
  const v = Buffer.alloc(sizeFor(rng));
  for (let i = 0; i < v.length; i += 997) v[i] = (tag + i) & 0xff;
  if (v.length >= 4) v.writeUInt32LE(tag >>> 0, 0);
  return v;
}

function keyFor(rng: () => number): Buffer {
  const r = rng();
  if (r < 0.1) return Buffer.from([0xff, 0xff, randInt(rng, 0, 3)]);
  const len = r < 0.2 ? randInt(rng, 1, 1024) : randInt(rng, 1, 24);
  const k = Buffer.alloc(len);
  for (let i = 0; i < len; i++) k[i] = randInt(rng, 0, 3) * 85; // small alphabet: shared prefixes
  return k;
}

const hexOf = (b: Buffer) => b.toString('hex');

test(`random operations match a Map (seed ${SEED}, ${OPS} ops)`, async () => {
  const rng = mulberry32(SEED);
  const file = path.join(tempDir('model'), 'db');
  let store = await Store.open({ path: file, cacheMB: 1 });
  const model = new Map<string, Buffer>();
  let tag = 0;
  try {
    for (let op = 0; op < OPS; op++) {
      const r = rng();
      if (r < 0.45) {
        // A burst of concurrent puts: one or more group commits.
        const n = randInt(rng, 1, 20);
        const ps: Promise<void>[] = [];
        for (let i = 0; i < n; i++) {
          const k = rng() < 0.4 && model.size > 0 ? Buffer.from([...model.keys()][randInt(rng, 0, model.size - 1)], 'hex') : keyFor(rng);
          const v = valueFor(rng, ++tag);
          model.set(hexOf(k), v);
          ps.push(store.put(k, v));
        }
        await Promise.all(ps);
      } else if (r < 0.8) {
        const k = rng() < 0.7 && model.size > 0 ? Buffer.from([...model.keys()][randInt(rng, 0, model.size - 1)], 'hex') : keyFor(rng);
        const got = await store.get(k);
        const want = model.get(hexOf(k));
        assert.ok(want === undefined ? got === undefined : got !== undefined && got.equals(want), `seed ${SEED} op ${op}: get ${hexOf(k).slice(0, 40)}`);
      } else if (r < 0.97) {
        const prefix = keyFor(rng).subarray(0, rng() < 0.05 ? 0 : randInt(rng, 1, 3));
        const limit = rng() < 0.3 || prefix.length === 0 ? randInt(rng, 1, 50) : 0;
        const want = [...model.keys()].filter((k) => k.startsWith(hexOf(prefix))).sort();
        const expect = limit ? want.slice(0, limit) : want;
        const snap = store.snapshot();
        const got: string[] = [];
        try {
          for await (const e of snap.range({ prefix, limit })) {
            got.push(hexOf(e.key));
            assert.ok(e.value.equals(model.get(hexOf(e.key))!), `seed ${SEED} op ${op}: value in scan`);
          }
        } finally {
          snap.release();
        }
        assert.equal(got, expect, `seed ${SEED} op ${op}: prefix ${hexOf(prefix)} limit ${limit}`);
      } else {
        await store.close();
        store = await Store.open({ path: file, cacheMB: 1 });
        assert.is(store.stats().keys, model.size, `seed ${SEED} op ${op}: key count after reopen`);
      }
    }
    // Final full check after a reopen.
    await store.close();
    store = await Store.open({ path: file });
    for (const [k, v] of model) assert.ok((await store.get(Buffer.from(k, 'hex')))?.equals(v), `seed ${SEED}: final ${k.slice(0, 40)}`);
  } catch (err) {
    console.error(`model test failed; replay with LBKV_SEED=${SEED}`);
    throw err;
  } finally {
    await store.close();
  }
});

test.run();

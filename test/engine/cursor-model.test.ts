// Range and prefix iteration against a sorted model: keys from a four-byte alphabet (0x00, 0x01,
// 0xfe, 0xff) so that keys are prefixes of each other, prefixes end in 0xff, and truncated branch
// separators fall between keys; some keys are 1000+ bytes with a long shared head, so branches hold
// only a few cells and the tree is deep. Random start/end/prefix/limit combinations, iterated while
// other commits land (including overwrites of the keys being read).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { Store } from '../../btree';
import { tempDir } from '../support/tmp';
import { mulberry32, randInt, type Rng } from '../support/fault-fs';

const SEED = Number(process.env.LBKV_SEED ?? Date.now() % 1_000_000);
const ALPHABET = [0x00, 0x01, 0xfe, 0xff];
const hex = (b: Buffer) => b.toString('hex');

function shortKey(rng: Rng, min = 0): Buffer {
  const n = randInt(rng, min, 6);
  return Buffer.from(Array.from({ length: n }, () => ALPHABET[randInt(rng, 0, 3)]!));
}

function keyOf(rng: Rng): Buffer {
  if (rng() < 0.3) return Buffer.concat([Buffer.alloc(randInt(rng, 990, 1010), 0xfe), shortKey(rng, 1)]).subarray(0, 1024);
  return shortKey(rng, 1);
}

function valueOf(rng: Rng, tag: number): Buffer {
  const r = rng();
  const n = r < 0.6 ? randInt(rng, 0, 40) : r < 0.9 ? randInt(rng, 900, 5000) : randInt(rng, 8000, 20000);
  const v = Buffer.alloc(n, tag & 0xff);
  if (n >= 4) v.writeUInt32LE(tag, 0);
  return v;
}

test(`range/prefix iteration matches a sorted model, with commits landing during the scan (seed ${SEED})`, async () => {
  const rng = mulberry32(SEED);
  const store = await Store.open({ path: path.join(tempDir('audit-range'), 'db'), cacheMB: 1 });
  const model = new Map<string, Buffer>();
  let tag = 0;
  const putBatch = async (n: number) => {
    const entries = Array.from({ length: n }, () => ({ key: keyOf(rng), value: valueOf(rng, ++tag) }));
    await store.putMany(entries);
    for (const e of entries) model.set(hex(e.key), e.value);
  };
  try {
    for (let i = 0; i < 30; i++) await putBatch(randInt(rng, 1, 60));
    for (let q = 0; q < 400; q++) {
      const opts: { start?: Buffer; end?: Buffer; prefix?: Buffer; limit?: number } = {};
      if (rng() < 0.5) opts.start = shortKey(rng);
      if (rng() < 0.5) opts.end = shortKey(rng);
      if (rng() < 0.6) opts.prefix = rng() < 0.3 ? Buffer.concat([Buffer.alloc(randInt(rng, 990, 1000), 0xfe), shortKey(rng)]) : shortKey(rng);
      if (rng() < 0.3) opts.limit = randInt(rng, 1, 30);
      // Hex strings sort as their bytes do (two digits per byte, '0' < 'a').
      const keys = [...model.keys()].sort();
      const startHex = opts.start && hex(opts.start);
      const endHex = opts.end && hex(opts.end);
      let want = keys.filter((k) => {
        if (startHex !== undefined && k < startHex) return false;
        if (endHex !== undefined && k >= endHex) return false;
        if (opts.prefix && !k.startsWith(hex(opts.prefix))) return false;
        return true;
      });
      if (opts.limit) want = want.slice(0, opts.limit);
      const frozen = new Map(model);
      const snap = store.snapshot();
      const got: string[] = [];
      try {
        let pending: Promise<void> | undefined;
        for await (const e of snap.range(opts)) {
          got.push(hex(e.key));
          assert.ok(e.value.equals(frozen.get(hex(e.key))!), `query ${q}: value of ${hex(e.key).slice(0, 20)}`);
          // Commits land while the scan is in the middle of the tree.
          if (got.length < 60 && got.length % 7 === 3 && !pending) pending = putBatch(randInt(rng, 1, 10));
          if (pending && got.length % 7 === 6) { await pending; pending = undefined; }
        }
        await pending;
      } finally {
        snap.release();
      }
      const show = (o: typeof opts) => JSON.stringify({ start: o.start && hex(o.start).slice(0, 24), end: o.end && hex(o.end), prefix: o.prefix && hex(o.prefix).slice(-24), limit: o.limit });
      assert.equal(got, want, `seed ${SEED} query ${q} ${show(opts)}`);
      if (rng() < 0.2) await putBatch(randInt(rng, 1, 30));
    }
  } finally {
    await store.close();
  }
});

test.run();

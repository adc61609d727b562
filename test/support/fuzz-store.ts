// The stores the corruption fuzz tests damage (engine/corruption-fuzz, engine/corruption-structure-
// fuzz): built on a real file from a seed, with the contents of every commit kept as the model.
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Store } from '../../btree';
import { type Meta } from '../../btree/meta';
import { segmentTuning } from '../../btree/freelist';
import { tempDir } from './tmp';
import { mulberry32, pick, randInt, randomBytes, type Rng } from './fault-fs';
import { startWatchdog } from './watchdog';
import { validMetas } from './store-image';

export const PAGE = 4096;

/** Keys as hex: hex order is bytewise order, so a sorted list of them is the cursor's order. */
export type State = Map<string, Buffer>;

export interface Image {
  name: string;
  bytes: Buffer;
  /** Contents by txid, for every txid a meta page of the image may name. */
  states: Map<number, State>;
  metas: Meta[];
}

function keyFor(rng: Rng, i: number): Buffer {
  const r = rng();
  if (r < 0.08) return Buffer.concat([Buffer.from(`L${i}:`), randomBytes(rng, randInt(rng, 200, 1018))]).subarray(0, 1024);
  if (r < 0.12) return Buffer.from([0xff, 0xff, i & 0xff, i >> 8]);
  return Buffer.from(`k/${randInt(rng, 0, 9)}/${i.toString(36)}/${'x'.repeat(randInt(rng, 0, 30))}`);
}

export function valueFor(rng: Rng, tag: number): Buffer {
  const r = rng();
  const n = r < 0.55 ? randInt(rng, 0, 300)
    : r < 0.65 ? randInt(rng, 1900, 2100) // around the inline/overflow boundary
    : r < 0.75 ? PAGE
    : r < 0.8 ? 2 * PAGE
    : r < 0.95 ? randInt(rng, 4097, 20_000)
    : randInt(rng, 20_000, 70_000);
  const v = randomBytes(rng, n);
  if (n >= 4) v.writeUInt32LE(tag >>> 0, 0);
  return v;
}

/** Builds one store and returns two images of it: as a crash would leave it after the last commit
 *  (no sealing meta), and after a clean close. */
export async function buildImages(rng: Rng, syncMode: 'one' | 'two'): Promise<Image[]> {
  const file = path.join(tempDir('fuzz-build'), 'lbkv.db');
  const saved = { ...segmentTuning };
  // Small segments, so a few hundred overwrites under one snapshot make nested ones.
  segmentTuning.freezeEntries = 4;
  segmentTuning.fanout = 2;
  const s = await Store.open({ path: file, syncMode, cacheMB: 1 });
  const model: State = new Map();
  const states = new Map<number, State>();
  const keys: Buffer[] = [];
  let tag = 0;
  const commit = async (entries: { key: Buffer; value: Buffer }[]) => {
    await s.putMany(entries);
    for (const e of entries) model.set(e.key.toString('hex'), e.value);
    states.set(s.stats().txid, new Map(model));
  };
  try {
    for (let i = 0; i < 500; i++) keys.push(keyFor(rng, i));
    await commit(keys.map((key) => ({ key, value: valueFor(rng, tag++) })));
    // Long shared prefixes make long separators: few per branch, a tree of four or five levels.
    const deep = Array.from({ length: 160 }, (_, i) => Buffer.from(`d${'.'.repeat(900)}${String(i).padStart(4, '0')}`));
    keys.push(...deep);
    await commit(deep.map((key) => ({ key, value: valueFor(rng, tag++) })));
    const overwrite = (n: number) => commit(Array.from({ length: n }, () => ({ key: pick(rng, keys), value: valueFor(rng, tag++) })));
    for (let c = 0; c < 4; c++) await overwrite(randInt(rng, 1, 60));
    // Pages freed under a held snapshot go into freelist segments.
    const snap = s.snapshot();
    for (let c = 0; c < 16; c++) await overwrite(randInt(rng, 1, 12));
    const st = s.stats();
    assert.ok(st.freelistSegments > 0 && st.freePages + st.pendingFreePages > 0, `the freelist has segments and free pages: ${JSON.stringify(st)}`);
    if (process.env.LBKV_FUZZ_VERBOSE) console.log(`  [fuzz] built ${syncMode}-sync: ${st.pageCount} pages, ${st.keys} keys, ${st.freePages} free, ${st.pendingFreePages} pending, ${st.freelistSegments} segments over ${st.freelistLevels} levels`);
    const crashed = fs.readFileSync(file);
    snap.release();
    await s.close();
    const closed = fs.readFileSync(file);
    const last = new Map(model);
    return [['crashed', crashed], ['closed', closed]].map(([name, bytes]) => {
      const metas = validMetas(bytes as Buffer);
      const own = new Map(states);
      // close() seals: one more meta, for the state of the last commit.
      for (const m of metas) if (!own.has(m.txid)) own.set(m.txid, last);
      return { name: `${syncMode}-sync ${name as string}`, bytes: bytes as Buffer, states: own, metas };
    });
  } finally {
    Object.assign(segmentTuning, saved);
  }
}

/** A fuzz test's body: builds a one-sync and a two-sync store from `seed`, then runs `rounds` rounds
 *  of `round` over their images in turn under a watchdog, and logs how often each outcome came. */
export async function runRounds(label: string, seed: number, rounds: number, round: (img: Image, rng: Rng, r: number, beat: (what: string) => void) => Promise<string>): Promise<void> {
  const dog = startWatchdog({ hangMs: 20_000, maxRssMB: 1500, context: `seed ${seed}` });
  try {
    const started = Date.now();
    const rng = mulberry32(seed);
    dog.beat('building stores');
    const images = [...await buildImages(rng, 'one'), ...await buildImages(rng, 'two')];
    const outcomes = new Map<string, number>();
    for (let r = 0; r < rounds; r++) {
      const o = await round(images[r % images.length]!, rng, r, dog.beat);
      outcomes.set(o, (outcomes.get(o) ?? 0) + 1);
    }
    console.log(`  [${label}] seed ${seed}, ${rounds} rounds in ${((Date.now() - started) / 1000).toFixed(1)} s: ${[...outcomes].map(([o, n]) => `${o} ${n}`).join(', ')}`);
  } finally {
    dog.stop();
  }
}

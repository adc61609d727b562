// Randomized corruption audit ("file fuzz"): the promise is that a damaged data file is detected,
// never served. A few stores are built once per seed on real files (inline values, values of exactly
// one and two pages, multi-page overflow values, 1 KiB keys, a deep tree, overwrites under a held
// snapshot so the freelist has segments); each round copies one, damages it (bit flips, a page
// zeroed, filled with noise or with a copy of another page, two pages swapped, a torn range, the
// file cut short or extended with garbage), then opens it and reads everything. Every outcome must
// be one of: the exact contents of a commit one of its meta pages names (the newest, unless the
// damage touched a page that commit's open depends on), or a StoreError CORRUPTION; a failed open
// leaves the file byte for byte as it was. Then a few puts, a close and a reopen must hold them.
// LBKV_FUZZ_SEED and LBKV_FUZZ_ROUNDS replay or widen a run; the seed is in the test's name.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Store, StoreError } from '../../btree';
import type { Meta } from '../../btree/meta';
import { tempDir } from '../support/tmp';
import { pick, randInt, randomBytes, type Rng } from '../support/fault-fs';
import { PAGE, runRounds, valueFor, type Image, type State } from '../support/fuzz-store';

const SEED = Number(process.env.LBKV_FUZZ_SEED ?? Date.now() % 1_000_000);
const ROUNDS = Number(process.env.LBKV_FUZZ_ROUNDS ?? 500);

/** Pages an open of meta `m` reads (besides the other meta page): if damage misses them, open must
 *  take `m`. */
function openPages(m: Meta): Set<number> {
  const out = new Set<number>([2 * (m.txid % 2)]);
  if (m.root) out.add(m.root);
  for (const e of m.commitExtents) for (let p = 0; p < e.count; p++) out.add(e.start + p);
  for (let p = 0; p < m.freelistPages; p++) out.add(m.freelistPage + p);
  return out;
}

interface Damage {
  what: string;
  pages: number[];
}

function damage(rng: Rng, data: Buffer, allHot: number[]): { data: Buffer; d: Damage } {
  const pages = Math.floor(data.length / PAGE);
  if (pages === 0) return { data, d: { what: 'nothing (no whole page left)', pages: [] } };
  const hot = allHot.filter((p) => p < pages);
  const anyPage = () => (rng() < 0.35 && hot.length > 0 ? pick(rng, hot) : randInt(rng, 0, Math.max(0, pages - 1)));
  const kind = randInt(rng, 0, 8);
  const out = Buffer.from(data);
  switch (kind) {
    case 0: {
      const flips = randInt(rng, 1, 8);
      const at: number[] = [];
      for (let i = 0; i < flips; i++) {
        const p = anyPage();
        const off = p * PAGE + randInt(rng, 0, PAGE - 1);
        if (off < out.length) {
          out[off] ^= 1 << randInt(rng, 0, 7);
          at.push(Math.floor(off / PAGE));
        }
      }
      return { data: out, d: { what: `flip ${flips} bits in pages ${at.join(',')}`, pages: at } };
    }
    case 1: case 2: {
      const p = anyPage();
      out.fill(0, p * PAGE, (p + 1) * PAGE);
      if (kind === 2) randomBytes(rng, PAGE).copy(out, p * PAGE);
      return { data: out, d: { what: `${kind === 1 ? 'zero' : 'noise over'} page ${p}`, pages: [p] } };
    }
    case 3: {
      const from = anyPage();
      const to = anyPage();
      data.copy(out, to * PAGE, from * PAGE, (from + 1) * PAGE);
      return { data: out, d: { what: `copy page ${from} over page ${to}`, pages: from === to ? [] : [to] } };
    }
    case 4: {
      const a = anyPage();
      const b = anyPage();
      data.copy(out, a * PAGE, b * PAGE, (b + 1) * PAGE);
      data.copy(out, b * PAGE, a * PAGE, (a + 1) * PAGE);
      return { data: out, d: { what: `swap pages ${a} and ${b}`, pages: a === b ? [] : [a, b] } };
    }
    case 5: {
      const p = anyPage();
      const at = p * PAGE + (rng() < 0.5 ? 0 : randInt(rng, 0, PAGE - 1));
      const len = randInt(rng, 1, 700);
      randomBytes(rng, len).copy(out, at);
      const hit: number[] = [];
      for (let q = Math.floor(at / PAGE); q * PAGE < Math.min(at + len, out.length); q++) hit.push(q);
      return { data: out, d: { what: `${len} noise bytes at offset ${at}`, pages: hit } };
    }
    case 6: case 7: {
      const p = rng() < 0.5 && hot.length > 0 ? pick(rng, hot) : randInt(rng, 0, pages);
      const cut = Math.min(data.length, p * PAGE + (kind === 6 ? 0 : randInt(rng, 1, PAGE - 1)));
      const hit: number[] = [];
      for (let q = Math.floor(cut / PAGE); q < pages; q++) if (q * PAGE + PAGE > cut) hit.push(q);
      return { data: out.subarray(0, cut), d: { what: `cut the file at byte ${cut} (page ${p})`, pages: hit } };
    }
    default: {
      const extra = randInt(rng, 1, 3 * PAGE);
      return { data: Buffer.concat([out, randomBytes(rng, extra)]), d: { what: `append ${extra} garbage bytes`, pages: [] } };
    }
  }
}

/** null: the promise rejected with StoreError CORRUPTION; throws on any other rejection. */
async function orCorruption<T>(p: Promise<T> | T, what: string): Promise<{ ok: T } | null> {
  try {
    return { ok: await p };
  } catch (e) {
    if (e instanceof StoreError && e.code === 'CORRUPTION') return null;
    throw new Error(`${what}: ${e instanceof StoreError ? `StoreError ${e.code}` : 'non-StoreError'}: ${(e as Error)?.stack ?? String(e)}`);
  }
}

function sortedEntries(st: State, from?: string, to?: string): [string, Buffer][] {
  return [...st].filter(([k]) => (from === undefined || k >= from) && (to === undefined || k < to)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** What a cursor yielded before it ended or failed must be the model's entries in order: a prefix
 *  of them if it failed, all of them if it did not. */
async function checkRange(s: Store, st: State, opts: { start?: Buffer; end?: Buffer; prefix?: Buffer; keysOnly?: boolean }, what: string): Promise<void> {
  let from = opts.start?.toString('hex');
  let to = opts.end?.toString('hex');
  if (opts.prefix) {
    const p = opts.prefix.toString('hex');
    if (from === undefined || p > from) from = p;
    const end = Buffer.from(opts.prefix);
    let n = end.length;
    while (n > 0 && end[n - 1] === 0xff) n--;
    if (n > 0) {
      end[n - 1]++;
      const e = end.subarray(0, n).toString('hex');
      if (to === undefined || e < to) to = e;
    }
  }
  const want = sortedEntries(st, from, to);
  const got: [string, Buffer][] = [];
  const snap = s.snapshot();
  try {
    const done = await orCorruption((async () => { for await (const e of snap.range(opts)) got.push([e.key.toString('hex'), e.value]); })(), what);
    if (done) assert.is(got.length, want.length, `${what}: the cursor ended after ${got.length} of ${want.length} entries without an error`);
    assert.ok(got.length <= want.length, `${what}: ${got.length} entries, the commit has ${want.length}`);
    got.forEach(([k, v], i) => {
      assert.is(k, want[i]![0], `${what}: entry ${i} has key ${k.slice(0, 40)}, want ${want[i]![0].slice(0, 40)}`);
      if (!opts.keysOnly) assert.ok(v.equals(want[i]![1]), `${what}: entry ${i} (${k.slice(0, 40)}): wrong value`);
    });
  } finally {
    snap.release();
  }
}

/** Every read of the opened commit: gets, absent keys, full and partial scans, salvage. */
async function readAll(s: Store, st: State, rng: Rng, wholeFile: boolean, beat: (w: string) => void): Promise<void> {
  beat('gets');
  for (const [k, v] of st) {
    const got = await orCorruption(s.get(Buffer.from(k, 'hex')), `get ${k.slice(0, 40)}`);
    if (got) assert.ok(got.ok?.equals(v), `get ${k.slice(0, 40)}: ${got.ok === undefined ? 'absent' : `${got.ok.length} wrong bytes`}, want ${v.length} bytes`);
    else assert.not.ok(wholeFile, `get ${k.slice(0, 40)}: CORRUPTION, but no page of the file was damaged`);
  }
  for (let i = 0; i < 20; i++) {
    const k = i % 2 ? randomBytes(rng, randInt(rng, 1, 40)) : Buffer.concat([Buffer.from(pick(rng, [...st.keys()]) ?? '00', 'hex'), Buffer.from([randInt(rng, 0, 255)])]);
    if (st.has(k.toString('hex'))) continue;
    const got = await orCorruption(s.get(k), `get of absent ${k.toString('hex').slice(0, 40)}`);
    if (got) assert.is(got.ok, undefined, `get of absent key ${k.toString('hex').slice(0, 40)} returned a value`);
  }
  beat('full scan');
  await checkRange(s, st, {}, 'full scan');
  await checkRange(s, st, { keysOnly: true }, 'keys-only scan');
  beat('partial scans');
  const keys = [...st.keys()];
  for (const prefix of ['6b2f', '64', 'ff', '4c', '6b2f33']) await checkRange(s, st, { prefix: Buffer.from(prefix, 'hex') }, `prefix ${prefix}`);
  for (let i = 0; i < 3 && keys.length > 0; i++) {
    const [a, b] = [pick(rng, keys), pick(rng, keys)].sort();
    await checkRange(s, st, { start: Buffer.from(a!, 'hex'), end: Buffer.from(b!, 'hex') }, `range ${a!.slice(0, 20)}..${b!.slice(0, 20)}`);
  }
  beat('salvage');
  const snap = s.snapshot();
  try {
    let last: string | undefined;
    for await (const e of snap.salvage(() => undefined)) {
      const k = e.key.toString('hex');
      assert.ok(last === undefined || k > last, `salvage: key ${k.slice(0, 40)} after ${last?.slice(0, 40)}`);
      assert.ok(st.get(k)?.equals(e.value), `salvage yielded ${k.slice(0, 40)} with a value the commit does not hold`);
      last = k;
    }
  } finally {
    snap.release();
  }
}

async function round(img: Image, rng: Rng, r: number, beat: (w: string) => void): Promise<string> {
  const newest = img.metas.reduce((a, b) => (b.txid > a.txid ? b : a));
  const hot = [0, 1, 2, 3, ...openPages(newest), ...img.metas.flatMap((m) => [...openPages(m)])];
  let data = img.bytes;
  const done: Damage[] = [];
  for (let n = randInt(rng, 1, 3); n > 0; n--) {
    const { data: next, d } = damage(rng, data, hot);
    data = next;
    done.push(d);
  }
  const what = `round ${r} (${img.name}): ${done.map((d) => d.what).join('; ')}`;
  const hit = new Set(done.flatMap((d) => d.pages).filter((p) => p * PAGE < img.bytes.length));
  const file = path.join(tempDir('fuzz'), 'lbkv.db');
  fs.writeFileSync(file, data);
  try {
    beat(`${what}: open`);
    let s: Store;
    try {
      s = await Store.open({ path: file, cacheMB: 1 });
    } catch (e) {
      if (!(e instanceof StoreError && e.code === 'CORRUPTION')) throw new Error(`${what}: open failed with ${(e as Error)?.stack ?? e}`);
      assert.ok(e.message.includes(file), `${what}: the error does not name the file: ${e.message}`);
      assert.ok([...openPages(newest)].some((p) => hit.has(p)), `${what}: open refused, but no page it reads was damaged: ${e.message}`);
      assert.ok(fs.readFileSync(file).equals(data), `${what}: a refused open modified the file`);
      return 'refused';
    }
    const txid = s.stats().txid;
    const st = img.states.get(txid);
    try {
      assert.ok(st, `${what}: opened txid ${txid}, which no meta page of the file names`);
      if (![...openPages(newest)].some((p) => hit.has(p))) assert.is(txid, newest.txid, `${what}: fell back from txid ${newest.txid} though nothing its open reads was damaged`);
      await readAll(s, st!, rng, hit.size === 0, (w) => beat(`${what}: ${w}`));
      beat(`${what}: puts`);
      const after = new Map(st!);
      const put: string[] = [];
      for (let i = 0; i < 5; i++) {
        const key = i < 2 && st!.size > 0 ? Buffer.from(pick(rng, [...st!.keys()])!, 'hex') : Buffer.from(`new/${r}/${i}`);
        const value = valueFor(rng, 1_000_000 + i);
        if (await orCorruption(s.put(key, value), `${what}: put`)) {
          after.set(key.toString('hex'), value);
          put.push(key.toString('hex'));
        }
      }
      await s.close();
      if (put.length === 0) return 'opened, every put failed';
      beat(`${what}: reopen`);
      const again = await Store.open({ path: file, cacheMB: 1 });
      try {
        for (const k of put) assert.ok((await again.get(Buffer.from(k, 'hex')))?.equals(after.get(k)!), `${what}: after reopen, put key ${k.slice(0, 40)}`);
        await checkRange(again, after, {}, `${what}: full scan after reopen`);
      } finally {
        await again.close();
      }
      return txid === newest.txid ? 'opened newest' : 'fell back';
    } finally {
      await s.close();
    }
  } catch (e) {
    throw new Error(`seed ${SEED}: ${what}: ${(e as Error)?.message ?? e}\n(replay: LBKV_FUZZ_SEED=${SEED} LBKV_FUZZ_ROUNDS=${r + 1})`);
  } finally {
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
}

test(`damaged files are detected, never served (seed ${SEED}, ${ROUNDS} rounds)`, async () => {
  await runRounds('fuzz', SEED, ROUNDS, round);
});

test.run();

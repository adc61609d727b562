// Randomized structural damage: pages that pass their checksum (the crc is recomputed after the
// edit, as a buggy writer would leave them) but whose fields are wrong: child page ids, overflow
// runs and lengths, cell counts, key bytes, freelist entries in the meta page. Checksums cannot tell,
// so a read may legitimately return what the damaged page says; the promise here is the one that
// still holds: no hang, no unbounded allocation (a watchdog kills the process on either), nothing
// thrown but a StoreError CORRUPTION, a cursor's keys strictly ascending, a refused open leaving the
// file as it was, and puts then a reopen working or failing with CORRUPTION.
// LBKV_FUZZ_SEED and LBKV_FUZZ_ROUNDS replay or widen a run.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Store, StoreError } from '../../btree';
import { encodeMeta, type Meta } from '../../btree/meta';
import { decodeNode, encodeNode, type Node, type OverflowRef } from '../../btree/node';
import { checkPage, crc32 } from '../../btree/checksum';
import { MAX_PAGE_ID } from '../../btree/layout';
import { tempDir } from '../support/tmp';
import { pick, randInt, randomBytes, type Rng } from '../support/fault-fs';
import { PAGE, runRounds, valueFor, type Image } from '../support/fuzz-store';

const SEED = Number(process.env.LBKV_FUZZ_SEED ?? Date.now() % 1_000_000);
const ROUNDS = Number(process.env.LBKV_FUZZ_ROUNDS ?? 300);

/** Live tree pages under the newest meta of `data` (root first). */
function treePages(data: Buffer, m: Meta): Map<number, { node: Node; txid: number }> {
  const out = new Map<number, { node: Node; txid: number }>();
  const walk = (id: number) => {
    const page = data.subarray(id * PAGE, (id + 1) * PAGE);
    const h = checkPage(page, id);
    if (typeof h === 'string' || out.has(id)) return;
    const node = decodeNode(page, h.type, h.count, id);
    if (typeof node === 'string') return;
    out.set(id, { node, txid: h.txid });
    if (!node.leaf) for (const c of node.children) walk(c as number);
  };
  if (m.root) walk(m.root);
  return out;
}

/** A page id worth trying in a field that names a page. */
function somePage(rng: Rng, data: Buffer, self: number, others: number[]): number {
  const pages = Math.floor(data.length / PAGE);
  return pick(rng, [0, 1, 2, 3, self, pick(rng, others), randInt(rng, 4, pages - 1), pages + randInt(rng, 0, 100), 2 ** 40, 2 ** 47, 2 ** 48 - 1]);
}

function someLength(rng: Rng): number {
  return pick(rng, [0, 1, 4095, 4096, 8193, randInt(rng, 1, 1 << 20), 2 ** 31, 3 * 2 ** 30, 2 ** 40, 2 ** 48 - 1]);
}

/** One edit of a tree page (re-encoded or resealed: a valid checksum); describes it. */
function editTree(rng: Rng, data: Buffer, pages: Map<number, { node: Node; txid: number }>): string {
  const ids = [...pages.keys()];
  const id = rng() < 0.15 ? ids[0]! : pick(rng, ids); // the root too, now and then
  const { node, txid } = pages.get(id)!;
  const n = { ...node, keys: node.keys.slice(), vals: node.vals.map((v) => (Buffer.isBuffer(v) ? v : { ...v })), children: node.children.slice(), patch: undefined } as Node;
  const i = randInt(rng, 0, n.keys.length - 1);
  const kind = randInt(rng, 0, 5);
  let what: string;
  let page: Buffer;
  if (kind <= 2) {
    if (!n.leaf) {
      n.children[i] = somePage(rng, data, id, ids);
      what = `child ${i} := ${n.children[i]}`;
    } else if (Buffer.isBuffer(n.vals[i])) {
      n.keys[i] = randomBytes(rng, randInt(rng, 1, n.keys[i]!.length)); // no longer: the page must still hold it
      what = `key ${i} := random`;
    } else {
      const ref = n.vals[i] as OverflowRef;
      if (kind === 0) ref.page = somePage(rng, data, id, ids);
      else ref.length = someLength(rng);
      what = `overflow ${i} := page ${ref.page}, ${ref.length} bytes`;
    }
    page = encodeNode(n, id, txid);
  } else {
    page = Buffer.from(data.subarray(id * PAGE, (id + 1) * PAGE));
    if (kind === 3) {
      const count = pick(rng, [0, 1, n.keys.length - 1, n.keys.length + 1, 0xffff]);
      page.writeUInt16LE(Math.max(0, count), 6);
      what = `count := ${count}`;
    } else {
      const at = randInt(rng, 24, PAGE - 1);
      page[at] = randInt(rng, 0, 255);
      what = `byte ${at} := ${page[at]}`;
    }
    page.writeUInt32LE(crc32(page.subarray(4)), 0);
  }
  page.copy(data, id * PAGE);
  return `${n.leaf ? 'leaf' : 'branch'} ${id}: ${what}`;
}

/** One edit of the newest meta's freelist or page count (re-encoded: a valid checksum). */
function editMeta(rng: Rng, data: Buffer, m: Meta, pages: number[]): string {
  const free = (m.inlineFree ?? []).slice();
  const far = somePage(rng, data, 4, pages);
  const kind = randInt(rng, 0, 3);
  let changed: Meta;
  if (kind === 0) changed = { ...m, inlineFree: [...free, { start: far, count: randInt(rng, 1, 8), txid: 0 }] };
  else if (kind === 1) changed = { ...m, inlineFree: [...free, { start: far, count: 1, txid: randInt(rng, 0, m.txid), ref: { level: pick(rng, [0, 1, 5, 2 ** 32 - 1]), listed: randInt(rng, 0, 1000), taken: randInt(rng, 0, 300) } }] };
  // A count far past the end reads as a file cut short, which commits refuse to fill (commit.ts,
  // unfillableCut); 2^48 - 1 is past any file, a meta page open refuses.
  else if (kind === 2) changed = { ...m, pageCount: pick(rng, [0, 2, 4, m.pageCount - 10, m.pageCount * 2, 2 ** 40, MAX_PAGE_ID + 1, 2 ** 48 - 1]) };
  else changed = { ...m, inlineFree: free.map((e) => ({ ...e, count: e.count + randInt(rng, 1, 50) })) };
  if (!m.inlineFree && kind !== 2) return 'meta: no inline freelist to edit';
  encodeMeta(changed).copy(data, 2 * (m.txid % 2) * PAGE);
  return `meta ${m.txid}: ${kind === 2 ? `page count := ${changed.pageCount}` : JSON.stringify(changed.inlineFree?.slice(-1))}`;
}

/** Runs `p`; a StoreError other than CORRUPTION, or anything else thrown, fails the round. */
async function safely<T>(p: () => Promise<T>, what: string): Promise<T | undefined> {
  try {
    return await p();
  } catch (e) {
    if (e instanceof StoreError && e.code === 'CORRUPTION') return undefined;
    throw new Error(`${what}: ${e instanceof StoreError ? `StoreError ${e.code}` : 'not a StoreError'}: ${(e as Error)?.stack ?? e}`);
  }
}

/** A scan (or salvage) whose keys must ascend strictly, up to the end or a CORRUPTION. */
async function ascending(it: () => AsyncIterable<{ key: Buffer }>, what: string): Promise<void> {
  let last: Buffer | undefined;
  await safely(async () => {
    for await (const e of it()) {
      assert.ok(!last || Buffer.compare(last, e.key) < 0, `${what}: key ${e.key.toString('hex').slice(0, 40)} after ${last?.toString('hex').slice(0, 40)}`);
      last = e.key;
    }
  }, what);
}

async function round(img: Image, rng: Rng, r: number, beat: (w: string) => void): Promise<string> {
  const data = Buffer.from(img.bytes);
  const newest = img.metas.reduce((a, b) => (b.txid > a.txid ? b : a));
  const pages = treePages(data, newest);
  const edits: string[] = [];
  for (let n = randInt(rng, 1, 2); n > 0; n--) edits.push(rng() < 0.8 ? editTree(rng, data, pages) : editMeta(rng, data, newest, [...pages.keys()]));
  const what = `seed ${SEED}, round ${r} (${img.name}): ${edits.join('; ')}`;
  const file = path.join(tempDir('sfuzz'), 'lbkv.db');
  fs.writeFileSync(file, data);
  try {
    beat(`${what}: open`);
    const s = await safely(() => Store.open({ path: file, cacheMB: 1 }), `${what}: open`);
    if (!s) {
      assert.ok(fs.readFileSync(file).equals(data), `${what}: a refused open modified the file`);
      return 'refused';
    }
    try {
      const st = img.states.get(s.stats().txid);
      assert.ok(st, `${what}: opened txid ${s.stats().txid}, which no meta page names`);
      beat(`${what}: gets`);
      for (const k of st!.keys()) await safely(() => s.get(Buffer.from(k, 'hex')), `${what}: get`);
      beat(`${what}: scans`);
      const snap = s.snapshot();
      try {
        await ascending(() => snap.range(), `${what}: scan`);
        await ascending(() => snap.range({ prefix: Buffer.from('k/') }), `${what}: prefix scan`);
        await ascending(() => snap.salvage(() => undefined), `${what}: salvage`);
      } finally {
        snap.release();
      }
      beat(`${what}: puts`);
      const keys = [...st!.keys()];
      await Promise.all(Array.from({ length: 6 }, (_, i) => safely(() => s.put(i < 3 ? Buffer.from(pick(rng, keys)!, 'hex') : Buffer.from(`new/${i}`), valueFor(rng, i)), `${what}: put`)));
    } finally {
      await s.close();
    }
    beat(`${what}: reopen`);
    const again = await safely(() => Store.open({ path: file, cacheMB: 1 }), `${what}: reopen`);
    if (again) {
      try {
        const snap = again.snapshot();
        try {
          await ascending(() => snap.range(), `${what}: scan after reopen`);
        } finally {
          snap.release();
        }
      } finally {
        await again.close();
      }
    }
    return 'opened';
  } catch (e) {
    throw new Error(`${(e as Error)?.message ?? e}\n(replay: LBKV_FUZZ_SEED=${SEED} LBKV_FUZZ_ROUNDS=${r + 1})`);
  } finally {
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
}

test(`pages that pass their checksum but hold wrong fields: no hang, no crash, keys in order (seed ${SEED}, ${ROUNDS} rounds)`, async () => {
  await runRounds('structure fuzz', SEED, ROUNDS, round);
});

test.run();

// Damage that checksums cannot catch: pages that pass their checksum but whose structure is wrong,
// as a buggy or malicious writer could leave them (the crc is recomputed after the edit). The
// engine must still never hang, never allocate without bound, never throw anything but a
// StoreError, and never serve a wrong answer where a cheap structural check (bounds, child page ids,
// key order) can tell. Each case edits a page or two of a closed store (a three-level tree, one
// large value, an inline freelist), then reads everything, puts, and reads everything again; a
// watchdog kills the process on a hang or runaway memory.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Store, StoreError } from '../../btree';
import { encodeMeta, type Meta } from '../../btree/meta';
import { writeFreeEntry, type FreeEntry } from '../../btree/freelist';
import { decodeNode, encodeNode, type Node, type OverflowRef } from '../../btree/node';
import { checkPage, crc32 } from '../../btree/checksum';
import { tempDir } from '../support/tmp';
import { startWatchdog } from '../support/watchdog';
import { newestMeta } from '../support/store-image';

const PAGE = 4096;
const dog = startWatchdog({ hangMs: 15_000, maxRssMB: 1500, context: 'corruption-crafted' });
const key = (i: number) => Buffer.from(`k${'.'.repeat(250)}${String(i).padStart(6, '0')}`);
const BIG = Buffer.from('big-value');

interface Built {
  data: Buffer;
  model: Map<string, Buffer>;
  meta: Meta;
  /** Live tree pages below the root, with their depth (1: the root's children). */
  pages: Map<number, { node: Node; txid: number; depth: number }>;
}

let base: Built | undefined;

/** 3,000 long keys (a tree of three levels or more), a 20 kB value, a few overwrites; closed. */
async function build(): Promise<Built> {
  if (base) return base;
  const file = path.join(tempDir('crafted'), 'lbkv.db');
  const s = await Store.open({ path: file });
  const model = new Map<string, Buffer>();
  const entries = Array.from({ length: 3000 }, (_, i) => ({ key: key(i), value: Buffer.from(`v${i}`) }));
  entries.push({ key: BIG, value: Buffer.alloc(20_000, 7) });
  await s.putMany(entries);
  for (let i = 0; i < 3; i++) {
    const e = { key: key(i * 7), value: Buffer.from(`w${i}`) };
    entries.push(e);
    await s.put(e.key, e.value);
  }
  for (const e of entries) model.set(e.key.toString('latin1'), e.value);
  await s.close();
  const data = fs.readFileSync(file);
  const meta = newestMeta(data);
  const pages: Built['pages'] = new Map();
  const walk = (id: number, depth: number) => {
    const page = data.subarray(id * PAGE, (id + 1) * PAGE);
    const h = checkPage(page, id);
    if (typeof h === 'string') throw new Error(`page ${id}: ${h}`);
    const node = decodeNode(page, h.type, h.count, id) as Node;
    if (depth > 0) pages.set(id, { node, txid: h.txid, depth });
    if (!node.leaf) for (const c of node.children) walk(c as number, depth + 1);
  };
  walk(meta.root, 0);
  base = { data, model, meta, pages };
  return base;
}

/** A copy of the store's file with pages replaced (`[id, page]`), each resealed: a valid checksum. */
function withPages(b: Built, edits: [number, Buffer][]): string {
  const file = path.join(tempDir('crafted'), 'lbkv.db');
  const data = Buffer.from(b.data);
  for (const [id, page] of edits) {
    page.writeUInt32LE(crc32(page.subarray(4)), 0);
    page.copy(data, id * PAGE);
  }
  fs.writeFileSync(file, data);
  return file;
}

const withPage = (b: Built, id: number, page: Buffer): string => withPages(b, [[id, page]]);

/** Page `id` re-encoded from its node after `edit` (encodeNode seals it). */
function edited(b: Built, id: number, edit: (n: Node) => void): Buffer {
  const p = b.pages.get(id)!;
  const n = p.node;
  const copy = { ...n, keys: n.keys.slice(), vals: n.vals.map((v) => (Buffer.isBuffer(v) ? v : { ...v })), children: n.children.slice(), patch: undefined } as Node;
  edit(copy);
  return encodeNode(copy, id, p.txid);
}

const withNode = (b: Built, id: number, edit: (n: Node) => void): string => withPage(b, id, edited(b, id, edit));

const firstOf = (b: Built, pred: (id: number, p: { node: Node; depth: number }) => boolean): number => {
  for (const [id, p] of b.pages) if (pred(id, p)) return id;
  throw new Error('no such page');
};
const leafWith = (k: Buffer) => (_: number, p: { node: Node }) => p.node.leaf && p.node.keys.some((x) => x.equals(k));

/** What an operation came to: a value (or undefined), or the StoreError code; anything else fails. */
async function outcome<T>(what: string, p: () => Promise<T> | T): Promise<{ ok: T } | { code: string; message: string }> {
  dog.beat(what);
  try {
    return { ok: await p() };
  } catch (e) {
    if (e instanceof StoreError) return { code: e.code, message: e.message };
    throw new Error(`${what}: threw ${(e as Error)?.constructor?.name}, not a StoreError: ${(e as Error)?.stack ?? e}`);
  }
}

/** Gets of every key give its value or CORRUPTION; a full scan yields the entries in order up to
 *  where it fails with CORRUPTION; salvage yields only entries of `model`, in order. The messages of
 *  the CORRUPTION errors go to `errors`. */
async function check(s: Store, model: Map<string, Buffer>, what: string, errors: string[]): Promise<void> {
  for (const [k, v] of model) {
    const got = await outcome(`${what}: get`, () => s.get(Buffer.from(k, 'latin1')));
    if ('ok' in got) assert.ok(got.ok?.equals(v), `${what}: get ${k.slice(-8)} returned ${got.ok === undefined ? 'nothing' : 'a wrong value'}`);
    else {
      assert.is(got.code, 'CORRUPTION', `${what}: get: ${got.message}`);
      errors.push(got.message);
    }
  }
  const want = [...model.keys()].sort();
  const seen: string[] = [];
  const scan = await outcome(`${what}: scan`, async () => {
    const snap = s.snapshot();
    try {
      for await (const e of snap.range()) {
        const k = e.key.toString('latin1');
        assert.is(k, want[seen.length], `${what}: scan entry ${seen.length}`);
        assert.ok(e.value.equals(model.get(k)!), `${what}: scan value of ${k.slice(-8)}`);
        seen.push(k);
      }
    } finally {
      snap.release();
    }
  });
  if ('ok' in scan) assert.is(seen.length, want.length, `${what}: the scan ended early without an error`);
  else {
    assert.is(scan.code, 'CORRUPTION', `${what}: scan: ${scan.message}`);
    errors.push(scan.message);
  }
  const salvaged = await outcome(`${what}: salvage`, async () => {
    const snap = s.snapshot();
    let last: string | undefined;
    try {
      for await (const e of snap.salvage(() => undefined)) {
        const k = e.key.toString('latin1');
        assert.ok(last === undefined || k > last, `${what}: salvage yielded ${k.slice(-8)} after ${last?.slice(-8)}`);
        assert.ok(model.has(k) && e.value.equals(model.get(k)!), `${what}: salvage value of ${k.slice(-8)}`);
        last = k;
      }
    } finally {
      snap.release();
    }
  });
  assert.ok('ok' in salvaged, `${what}: salvage: ${JSON.stringify(salvaged)}`);
}

/** Opens `file` and checks every read (check()); then concurrent puts, overwrites and new keys
 *  (they share commits, and one whose path is damaged fails alone, with CORRUPTION), and every read
 *  again with what they applied. Returns the CORRUPTION messages (open's, or the reads'). */
async function readAll(file: string, model: Map<string, Buffer>, what: string): Promise<string[]> {
  const opened = await outcome(`${what}: open`, () => Store.open({ path: file }));
  if (!('ok' in opened)) {
    assert.is(opened.code, 'CORRUPTION', `${what}: open: ${opened.message}`);
    return [opened.message];
  }
  const s = opened.ok;
  const errors: string[] = [];
  try {
    await check(s, model, what, errors);
    dog.beat(`${what}: puts`);
    const entries = Array.from({ length: 30 }, (_, i) => ({ key: i % 2 ? Buffer.concat([key(i * 100), Buffer.from('+')]) : key(i * 100), value: Buffer.from(`new${i}`) }));
    const puts = await Promise.allSettled(entries.map((e) => s.put(e.key, e.value)));
    const after = new Map(model);
    puts.forEach((p, i) => {
      if (p.status === 'fulfilled') after.set(entries[i]!.key.toString('latin1'), entries[i]!.value);
      else assert.ok(p.reason instanceof StoreError && p.reason.code === 'CORRUPTION', `${what}: put: ${p.reason?.stack ?? p.reason}`);
    });
    await check(s, after, `${what}, after the puts`, errors);
  } finally {
    await s.close();
  }
  return errors;
}

async function expectDetected(file: string, what: string, pattern?: RegExp): Promise<void> {
  const b = await build();
  const errors = await readAll(file, b.model, what);
  assert.ok(errors.length > 0, `${what}: nothing noticed the damage`);
  if (pattern) assert.ok(errors.some((e) => pattern.test(e)), `${what}: ${errors[0]}`);
}

test('the undamaged store reads back whole (the harness itself)', async () => {
  const b = await build();
  const depth = Math.max(...[...b.pages.values()].map((p) => p.depth));
  assert.ok(depth >= 2, `a tree of three levels or more (depth below the root: ${depth})`);
  const id = [...b.pages.keys()][0]!;
  const file = withPage(b, id, Buffer.from(b.data.subarray(id * PAGE, (id + 1) * PAGE)));
  assert.equal(await readAll(file, b.model, 'undamaged'), []);
});

test('an overflow cell whose length runs past the end of the file: CORRUPTION, before anything that size is allocated', async () => {
  const b = await build();
  const id = firstOf(b, leafWith(BIG));
  for (const length of [2 ** 40, 3 * 2 ** 30, 200 * PAGE]) {
    const file = withNode(b, id, (n) => {
      const ref = n.vals[n.keys.findIndex((k) => k.equals(BIG))] as OverflowRef;
      ref.length = length;
    });
    const what = `overflow length ${length}`;
    await expectDetected(file, what, /overflow/);
    // A caller's allocator (a server's send buffer) must not be asked for the bogus length.
    const s = await Store.open({ path: file });
    try {
      let asked = 0;
      const size = fs.statSync(file).size;
      const got = await outcome(`${what}: get with alloc`, () => s.get(BIG, { alloc: (n) => { asked = n; return Buffer.alloc(n <= size ? n : 1); } }));
      assert.ok(!('ok' in got) && got.code === 'CORRUPTION', `${what}: ${JSON.stringify(got)}`);
      assert.ok(asked <= size, `${what}: GetOptions.alloc was asked for ${asked} bytes, in a file of ${size}`);
    } finally {
      await s.close();
    }
  }
});

/** A leaf page for `id` holding one inline cell that ends at byte `end`, and a cell count of two:
 *  the second cell's header starts where too few bytes are left for it. */
function leafEndingAt(b: Built, id: number, end: number): Buffer {
  const page = Buffer.alloc(PAGE);
  page.writeUInt8(3, 4); // PageType.Leaf
  page.writeUInt16LE(2, 6);
  page.writeUIntLE(id, 8, 6);
  page.writeUIntLE(b.pages.get(id)!.txid, 16, 6);
  page.writeUInt16LE(1, 24); // key length
  page.writeUInt8(0, 26); // inline
  page.writeUInt16LE(end - 24 - 5 - 1, 27);
  page.write('k', 29);
  return page;
}

test('a leaf whose last cell header is cut by the end of the page, or whose cell count is too large: CORRUPTION, not RangeError', async () => {
  const b = await build();
  const id = firstOf(b, leafWith(key(2000)));
  for (const end of [PAGE - 2, PAGE - 3, PAGE - 4]) await expectDetected(withPage(b, id, leafEndingAt(b, id, end)), `leaf cells ending at ${end}`, /runs past the page/);
  const page = Buffer.from(b.data.subarray(id * PAGE, (id + 1) * PAGE));
  page.writeUInt16LE(0xffff, 6);
  await expectDetected(withPage(b, id, page), 'leaf cell count 65535', /runs past the page|out of order/);
});

test('a branch whose child is a slot page (meta or root), past the end of the file, or far past any file: CORRUPTION', async () => {
  const b = await build();
  const id = firstOf(b, (_, p) => !p.node.leaf);
  const pages = Math.ceil(b.data.length / PAGE);
  for (const child of [0, 1, 2, 3, pages + 100, 2 ** 47]) {
    await expectDetected(withNode(b, id, (n) => { n.children[1] = child; }), `branch ${id}: child 1 is page ${child}`);
  }
});

test('a branch whose first child is itself: CORRUPTION, no endless descent', async () => {
  const b = await build();
  const x = firstOf(b, (_, p) => !p.node.leaf);
  await expectDetected(withNode(b, x!, (n) => { n.children[0] = x!; }), `branch ${x}: child 0 is itself`);
});

test('a branch page with no cells: CORRUPTION', async () => {
  const b = await build();
  const id = firstOf(b, (_, p) => !p.node.leaf);
  await expectDetected(withNode(b, id, (n) => { n.keys = []; n.children = []; }), `branch ${id} emptied`);
});

test('a node whose keys are out of order (a leaf, or a branch\'s separators): CORRUPTION, not a key reported absent', async () => {
  const b = await build();
  const leaf = firstOf(b, leafWith(key(2000)));
  const swap = (xs: unknown[], i: number, j: number) => { [xs[i], xs[j]] = [xs[j], xs[i]]; };
  await expectDetected(withNode(b, leaf, (n) => { swap(n.keys, 2, 5); swap(n.vals, 2, 5); }), `leaf ${leaf}: cells 2 and 5 swapped`, /order/);
  await expectDetected(withNode(b, leaf, (n) => { n.keys[3] = n.keys[2]!; }), `leaf ${leaf}: a key twice`, /order/);
  const branch = [...b.pages].find(([, p]) => !p.node.leaf && p.node.keys.length > 4)![0];
  await expectDetected(withNode(b, branch, (n) => { swap(n.keys, 2, 3); }), `branch ${branch}: separators 2 and 3 swapped`, /order/);
});

test('a branch child that names a page of another place in the tree (itself, a sibling, another branch\'s leaf, a branch that names it back): CORRUPTION, no key missed or yielded twice', async () => {
  const b = await build();
  const branches = [...b.pages].filter(([, p]) => !p.node.leaf && p.node.keys.length > 3).map(([id]) => id);
  const [x, y] = [branches[0]!, branches[1]!];
  const nx = b.pages.get(x)!.node;
  const ny = b.pages.get(y)!.node;
  await expectDetected(withNode(b, x, (n) => { n.children[1] = x; }), `branch ${x}: child 1 is itself`);
  await expectDetected(withNode(b, x, (n) => { n.children[2] = n.children[1]!; }), `branch ${x}: child 2 is child 1`);
  await expectDetected(withNode(b, x, (n) => { n.children[1] = ny.children[2]!; }), `branch ${x}: child 1 is a child of branch ${y}`);
  await expectDetected(withNode(b, y, (n) => { n.children[n.children.length - 1] = nx.children[0]!; }), `branch ${y}: its last child is branch ${x}'s first`);
  await expectDetected(withPages(b, [[x, edited(b, x, (n) => { n.children[0] = y; })], [y, edited(b, y, (n) => { n.children[0] = x; })]]), `branches ${x} and ${y} name each other`);
});

/** The store's file with its newest meta page rewritten (a valid checksum) with `free` as its inline
 *  freelist, and pages `extra` written over it (each resealed). */
function withFreelist(b: Built, free: FreeEntry[], extra: [number, Buffer][] = []): string {
  assert.ok(b.meta.inlineFree, 'the newest meta holds its freelist inline');
  return withPages(b, [[2 * (b.meta.txid % 2), encodeMeta({ ...b.meta, inlineFree: free })], ...extra]);
}

test('a freelist that lists a slot page, a page past the end, or a page twice: open refuses with CORRUPTION, nothing is written', async () => {
  const b = await build();
  const free = b.meta.inlineFree!;
  const end = b.meta.pageCount;
  const cases: [string, FreeEntry[]][] = [
    ['meta page 0', [...free, { start: 0, count: 1, txid: 0 }]],
    ['root page 3', [...free, { start: 3, count: 1, txid: 0 }]],
    ['pages past the end', [...free, { start: end - 2, count: 5, txid: 0 }]],
    ['a page twice', [...free, { start: end - 10, count: 4, txid: 0 }, { start: end - 8, count: 1, txid: 3 }]],
    ['a segment past the end', [...free, { start: end + 1, count: 1, txid: 0, ref: { level: 0, listed: 10, taken: 0 } }]],
  ];
  for (const [what, list] of cases) {
    const file = withFreelist(b, list);
    const before = fs.readFileSync(file);
    const got = await outcome(`freelist lists ${what}: open`, () => Store.open({ path: file }));
    if ('ok' in got) await got.ok.close();
    assert.ok(!('ok' in got) && got.code === 'CORRUPTION' && /freelist/.test(got.message), `freelist lists ${what}: ${'ok' in got ? 'opened' : got.message}`);
    assert.ok(fs.readFileSync(file).equals(before), `freelist lists ${what}: the file was written`);
  }
});

test('a freelist segment that lists itself as a segment of its own level: CORRUPTION, no endless loading', async () => {
  const b = await build();
  // A free page becomes the segment's page; its reference is reusable at once (txid 1).
  const [spare, ...rest] = b.meta.inlineFree!.filter((e) => !e.ref);
  assert.ok(spare, 'a free extent');
  const page = Buffer.alloc(PAGE);
  const self: FreeEntry = { start: spare!.start, count: 1, txid: 1, ref: { level: 1, listed: 100, taken: 0 } };
  writeFreeEntry(page, 24, self);
  page.writeUInt8(4, 4); // PageType.Freelist
  page.writeUInt16LE(2, 6); // a reference takes two slots
  page.writeUIntLE(spare!.start, 8, 6);
  const rem = spare!.count > 1 ? [{ start: spare!.start + 1, count: spare!.count - 1, txid: spare!.txid }] : [];
  const file = withFreelist(b, [...rest, ...rem, self, ...b.meta.inlineFree!.filter((e) => e.ref)], [[spare!.start, page]]);
  // Reads do not touch segments; commits load them when they need pages.
  assert.equal(await readAll(file, b.model, 'a segment that lists itself'), []);
  const s = await Store.open({ path: file });
  try {
    const put = await outcome('a segment that lists itself: put', () => s.put(key(5), Buffer.alloc(50_000, 1)));
    assert.ok(!('ok' in put) && put.code === 'CORRUPTION' && /segment/.test(put.message), JSON.stringify(put));
  } finally {
    await s.close();
  }
});

test('a meta page whose commit extents, freelist pages or page count lie outside any file, or cover the slots: open takes the other meta, says why, and nothing is lost', async () => {
  const b = await build();
  const far = 2 ** 47;
  const slot = b.meta.txid % 2;
  const cases: [string, Partial<Meta>, RegExp][] = [
    ['commit extents far past the end', { commitExtents: [{ start: far, count: 1 }], commitHash: 1 }, /commit extents: pages \d+\.\.\d+ run past the last page/],
    ['commit extents on the slots', { commitExtents: [{ start: 0, count: 4 }], commitHash: 1 }, /commit extents: pages 0\.\.3 include a slot page/],
    ['freelist pages far past the end', { inlineFree: null, freelistPage: far, freelistPages: 1 }, /freelist pages: pages \d+\.\.\d+ run past the last page/],
    ['a page count far past any file', { pageCount: far }, new RegExp(`page count ${far} is impossible`)],
    ['a page count of 2 (inside the slots)', { pageCount: 2 }, /page count 2 is impossible/],
  ];
  for (const [what, change, why] of cases) {
    const file = withPages(b, [[2 * slot, encodeMeta({ ...b.meta, ...change })]]);
    // The other slot holds the last commit, of the same contents (close() sealed it with one more
    // meta): falling back to it loses nothing, so refusing to open would be wrong too.
    const s = await outcome(`meta with ${what}: open`, () => Store.open({ path: file }));
    assert.ok('ok' in s, `meta with ${what}: open refused: ${JSON.stringify(s)}`);
    try {
      const warning = s.ok.openWarnings.find((w) => w.includes(`the other was not usable: meta page ${2 * slot} (offset ${2 * slot * PAGE}): `));
      assert.ok(warning && why.test(warning), `meta with ${what}: open warnings ${JSON.stringify(s.ok.openWarnings)}`);
      assert.is(s.ok.stats().txid, b.meta.txid - 1, `meta with ${what}: the commit opened`);
    } finally {
      await s.ok.close();
    }
    assert.equal(await readAll(file, b.model, `meta with ${what}`), [], `meta with ${what}: reads failed`);
    for (const slot of [0, 1]) {
      const page = fs.readFileSync(file).subarray(2 * slot * PAGE, (2 * slot + 1) * PAGE);
      assert.is(page[4], 1, `meta with ${what}: page ${2 * slot} is no longer a meta page`);
    }
  }
});

test('a freelist segment reference of an impossible level (2^32 - 1): open refuses with CORRUPTION, commits do not count up to it', async () => {
  const b = await build();
  const [spare, ...rest] = b.meta.inlineFree!.filter((e) => !e.ref);
  const ref: FreeEntry = { start: spare!.start, count: 1, txid: b.meta.txid, ref: { level: 2 ** 32 - 1, listed: 1, taken: 0 } };
  const rem = spare!.count > 1 ? [{ start: spare!.start + 1, count: spare!.count - 1, txid: spare!.txid }] : [];
  const file = withFreelist(b, [...rest, ...rem, ref, ...b.meta.inlineFree!.filter((e) => e.ref)]);
  await expectDetected(file, 'a segment of level 2^32 - 1', /level/);
});

test.after(() => dog.stop());

test.run();

// Corruption detection at the engine level (issue 2 "corrupt page and corrupt meta detection",
// issue 4 item 4), on real files in a temp dir through the default node fs. The store is closed,
// bytes of the data file are damaged, and the store is opened again:
// - one bad meta page: open falls back to the other meta (the older commit), nothing wrong served;
// - both bad: Store.open rejects with StoreError 'CORRUPTION' naming the file and what is wrong,
//   and the file is byte-for-byte unchanged;
// - a damaged B-tree leaf: reading a key on it rejects with 'CORRUPTION', other keys still read;
// - a damaged overflow page (large value): get rejects with 'CORRUPTION'.
// Layout facts used (btree/layout.ts): 4 KiB pages, slot s is the meta page 2s and the root page
// 2s + 1, commit txid N writes slot N % 2, the page header holds the txid as u48 at offset 16.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import * as zlib from 'node:zlib';
import { Store, StoreError, type Loss } from '../btree';
import { decodeNode, encodeNode, Node } from '../btree/node';
import { mulberry32, randomBytes } from './support/fault-fs';
import { LBSERVER_JS, logs, runClient, runNode, runServerExpectingFailure, startServer, tempDir } from './support/server';
import { GrpcStatus, isServiceError } from '../lib/client';
import { DATA_FILE_NAME } from '../lib/config';
import { newestMeta } from './support/store-image';

const PAGE = 4096;
/** Byte offset of slot `slot`'s meta page. */
const metaAt = (slot: number) => 2 * slot * PAGE;
const dirs: string[] = [];

function tmpFile(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'lbkv-corrupt-'));
  dirs.push(d);
  return path.join(d, 'data.lbkv');
}

const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
const key = (i: number) => Buffer.from(`key-${String(i).padStart(5, '0')}`);
const marker = (i: number, gen: number) => `<<V${gen}:${String(i).padStart(5, '0')}>>`;
const smallValue = (i: number, gen: number) => Buffer.from(marker(i, gen) + '.'.repeat(60 + (i % 40)));

function patch(file: string, pos: number, bytes: Buffer): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, bytes, 0, bytes.length, pos);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function metaTxid(file: string, slot: number): number {
  const b = Buffer.alloc(PAGE);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, b, 0, PAGE, metaAt(slot));
  } finally {
    fs.closeSync(fd);
  }
  return b.readUIntLE(16, 6);
}

/** Pages (indexes) whose bytes contain `needle`. */
function pagesContaining(file: string, needle: Buffer): number[] {
  const data = fs.readFileSync(file);
  const out = new Set<number>();
  let at = data.indexOf(needle);
  while (at >= 0) {
    out.add(Math.floor(at / PAGE));
    if (Math.floor((at + needle.length - 1) / PAGE) !== Math.floor(at / PAGE)) out.add(Math.floor((at + needle.length - 1) / PAGE));
    at = data.indexOf(needle, at + 1);
  }
  return [...out].sort((a, b) => a - b);
}

/** Flips `mask` in byte `offset` of key `victim`'s generation-0 value wherever it is in the file (its
 *  leaf page; a store that skipped the check would serve wrong bytes); returns those pages. */
function damageValue(file: string, victim: number, offset: number, mask: number): number[] {
  const needle = Buffer.from(marker(victim, 0));
  const pages = pagesContaining(file, needle);
  const data = fs.readFileSync(file);
  for (const p of pages) {
    const at = data.indexOf(needle, p * PAGE);
    patch(file, at + offset, Buffer.from([data[at + offset]! ^ mask]));
  }
  return pages;
}

/**
 * Two more commits that touch none of the pages under test. In syncMode 'one' open verifies the
 * pages of the newest commit against the hash in its meta and falls back to the previous commit when
 * they do not match, so damage to a page of the newest commit reads as a torn commit (see the test
 * 'damage to a page of the newest commit' below). Pages under test must be older than that.
 */
async function settle(s: Store): Promise<void> {
  await s.put(Buffer.from('zzz-settle-1'), Buffer.from('settle'));
  await s.put(Buffer.from('zzz-settle-2'), Buffer.from('settle'));
}

/** Keys with a long shared prefix: long separators, so branches hold few and 3,000 keys make a
 *  three-level tree. */
const k = (i: number) => Buffer.from(`k${'.'.repeat(250)}${String(i).padStart(6, '0')}`);

/** 3,000 keys k(i) -> `v${i}` in one commit, settled and closed; the file and its bytes. */
async function threeLevelTree(): Promise<{ file: string; N: number; data: Buffer }> {
  const file = tmpFile();
  const s = await Store.open({ path: file });
  const N = 3000;
  await s.putMany(Array.from({ length: N }, (_, i) => ({ key: k(i), value: Buffer.from(`v${i}`) })));
  await settle(s);
  await s.close();
  return { file, N, data: fs.readFileSync(file) };
}

async function expectCorruption(p: Promise<unknown>, what: string): Promise<StoreError> {
  let got: unknown;
  try {
    const v = await p;
    got = v;
  } catch (e) {
    if (e instanceof StoreError && e.code === 'CORRUPTION') return e;
    assert.unreachable(`${what}: rejected with ${e instanceof StoreError ? `StoreError ${e.code}` : String(e)}, want StoreError CORRUPTION`);
  }
  assert.unreachable(`${what}: resolved (${Buffer.isBuffer(got) ? `${got.length} bytes` : String(got)}) instead of rejecting with CORRUPTION: damaged bytes were served`);
  throw new Error('unreachable');
}

async function readEverything(s: Store): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const snap = s.snapshot();
  try {
    for await (const e of snap.range()) out.set(e.key.toString('latin1'), Buffer.from(e.value));
  } finally {
    snap.release();
  }
  return out;
}

function sameMap(a: Map<string, Buffer>, b: Map<string, Buffer>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (!b.get(k)?.equals(v)) return false;
  return true;
}

/**
 * A store with two known final commits: bulk data, then two single-put commits. Returns the
 * contents by txid (as reported by stats() after each commit) and the file.
 */
async function buildTwoCommits(): Promise<{ file: string; byTxid: Map<number, Map<string, Buffer>>; last: Map<string, Buffer> }> {
  const file = tmpFile();
  const s = await Store.open({ path: file });
  const kv = new Map<string, Buffer>();
  const byTxid = new Map<number, Map<string, Buffer>>();
  const ps: Promise<void>[] = [];
  for (let i = 0; i < 300; i++) {
    kv.set(key(i).toString('latin1'), smallValue(i, 0));
    ps.push(s.put(key(i), smallValue(i, 0)));
  }
  await Promise.all(ps);
  byTxid.set(s.stats().txid, new Map(kv));
  for (const [i, v] of [[7, smallValue(7, 1)], [500, Buffer.alloc(9000, 0x42)]] as const) {
    await s.put(key(i), v);
    kv.set(key(i).toString('latin1'), v);
    byTxid.set(s.stats().txid, new Map(kv));
  }
  await s.close();
  return { file, byTxid, last: kv };
}

const damages: Record<string, (file: string, slot: number) => void> = {
  'one flipped byte': (file, slot) => {
    const b = Buffer.alloc(1);
    const fd = fs.openSync(file, 'r');
    fs.readSync(fd, b, 0, 1, metaAt(slot) + 40);
    fs.closeSync(fd);
    patch(file, metaAt(slot) + 40, Buffer.from([b[0]! ^ 0x10]));
  },
  'zeroed page': (file, slot) => patch(file, metaAt(slot), Buffer.alloc(PAGE)),
  'random garbage': (file, slot) => patch(file, metaAt(slot), randomBytes(mulberry32(slot + 99), PAGE)),
  'torn (first sector only)': (file, slot) => patch(file, metaAt(slot) + 512, randomBytes(mulberry32(slot + 7), 512)),
};

for (const [dname, damage] of Object.entries(damages)) {
  test(`one bad meta (${dname}): open falls back to the other meta; writes continue from there`, async () => {
    const { file, byTxid, last } = await buildTwoCommits();
    const t0 = metaTxid(file, 0);
    const t1 = metaTxid(file, 1);
    const newest = Math.max(t0, t1);
    const older = Math.min(t0, t1);
    assert.is(newest - older, 1, `meta txids ${t0} and ${t1}`);
    const stateOf = (t: number) => byTxid.get(t) ?? (t > Math.max(...byTxid.keys()) ? last : undefined);
    for (const bad of [newest % 2, older % 2]) {
      // Work on a copy so both slots can be tried from the same file.
      const f = file + `.slot${bad}`;
      fs.copyFileSync(file, f);
      damage(f, bad);
      const s = await Store.open({ path: f });
      const expectTxid = bad === newest % 2 ? older : newest;
      assert.is(s.stats().txid, expectTxid, `damaged slot ${bad}: opened txid ${s.stats().txid}, want ${expectTxid}`);
      if (bad === newest % 2 && !s.recoveryNote) {
        // Not required by the issue, but an operator would want to know (reported to the engine owner).
        console.log(`  [corruption] note: falling back past the damaged newest meta (${dname}, slot ${bad}) left Store.recoveryNote unset`);
      }
      const want = stateOf(expectTxid);
      assert.ok(want, `no model state for txid ${expectTxid}`);
      const got = await readEverything(s);
      assert.ok(sameMap(got, want!), `damaged slot ${bad}: contents differ from commit ${expectTxid}`);
      for (const [k, v] of want!) assert.ok((await s.get(Buffer.from(k, 'latin1')))?.equals(v), `get ${k}`);
      // The store keeps working: a new commit overwrites the damaged slot and survives a reopen.
      await s.put(key(9999), Buffer.from('after-fallback'));
      await s.close();
      const s2 = await Store.open({ path: f });
      const got2 = await readEverything(s2);
      const want2 = new Map(want!);
      want2.set(key(9999).toString('latin1'), Buffer.from('after-fallback'));
      assert.ok(sameMap(got2, want2), 'after a commit on the fallback meta and a reopen');
      await s2.close();
    }
  });
}

for (const [dname, damage] of Object.entries(damages)) {
  test(`both metas bad (${dname}): open rejects with CORRUPTION naming the file, file untouched`, async () => {
    const { file } = await buildTwoCommits();
    damage(file, 0);
    damage(file, 1);
    const before = sha(file);
    const st = fs.statSync(file);
    const e = await expectCorruption(Store.open({ path: file }), 'Store.open with both metas damaged');
    assert.ok(e.message.includes(file), `message does not name the file: ${e.message}`);
    assert.match(e.message, /meta/i, `message does not say what is wrong: ${e.message}`);
    assert.is(sha(file), before, 'the damaged file was modified');
    assert.is(fs.statSync(file).size, st.size);
    assert.is(fs.statSync(file).mtimeMs, st.mtimeMs);
    // And again: still refuses, still untouched.
    await expectCorruption(Store.open({ path: file }), 'second open');
    assert.is(sha(file), before);
  });
}

test('damaged leaf page: keys on it reject with CORRUPTION, keys elsewhere still read', async () => {
  const file = tmpFile();
  const s = await Store.open({ path: file });
  const N = 2000;
  const ps: Promise<void>[] = [];
  for (let i = 0; i < N; i++) ps.push(s.put(key(i), smallValue(i, 0)));
  await Promise.all(ps);
  await settle(s);
  await s.close();
  const victim = 1234;
  const pages = pagesContaining(file, Buffer.from(marker(victim, 0)));
  assert.ok(pages.length >= 1, 'victim value not found in the file');
  assert.ok(!pages.includes(0) && !pages.includes(1));
  // Keys whose value is on none of the damaged pages.
  const safe: number[] = [];
  for (const i of [0, 1, 500, 1999, 1000, 1600]) {
    const theirs = pagesContaining(file, Buffer.from(marker(i, 0)));
    if (!theirs.some((p) => pages.includes(p))) safe.push(i);
  }
  assert.ok(safe.length >= 3, `too few keys away from the damaged pages: ${safe}`);
  damageValue(file, victim, 3, 0x01);
  const damaged = fs.readFileSync(file);
  const s2 = await Store.open({ path: file });
  const e = await expectCorruption(s2.get(key(victim)), `get(${key(victim)}) on a damaged leaf`);
  assert.ok(e.message.length > 0);
  for (const i of safe) assert.equal(await s2.get(key(i)), smallValue(i, 0), `key ${i} away from the damage`);
  // A full scan must not silently skip or serve the damaged leaf.
  await expectCorruption(readEverything(s2).then(() => 'scan completed'), 'full range scan over the damaged leaf');
  // Puts that share a commit with a put onto the damaged leaf: only that one (and the atomic
  // putMany holding another) fails; the others are applied.
  const healthy = Array.from({ length: 6 }, (_, i) => ({ key: Buffer.from(`new-${i}`), value: Buffer.from(`v${i}`) }));
  const statsBefore = s2.stats();
  const calls = [
    s2.put(key(victim), Buffer.from('over the damage')),
    ...healthy.map((e) => s2.put(e.key, e.value)),
    s2.putMany([{ key: Buffer.from('atomic-ok'), value: Buffer.from('x') }, { key: key(victim), value: Buffer.from('y') }]),
    s2.put(key(safe[0]), Buffer.from('rewritten')),
  ];
  const settled = await Promise.allSettled(calls);
  const failed = settled.map((r, i) => (r.status === 'rejected' ? i : -1)).filter((i) => i >= 0);
  assert.equal(failed, [0, healthy.length + 1], `only the puts onto the damaged leaf fail: ${settled.map((r) => r.status)}`);
  const statsAfter = s2.stats();
  assert.is(statsAfter.failedCommits - statsBefore.failedCommits, 1, 'one commit failed: all nine calls were one batch');
  assert.is(statsAfter.commits - statsBefore.commits, 1, 'the seven healthy callers then committed together (one fdatasync, not one each)');
  for (const i of failed) assert.ok((settled[i] as PromiseRejectedResult).reason instanceof StoreError && (settled[i] as PromiseRejectedResult).reason.code === 'CORRUPTION');
  for (const e of healthy) assert.equal(await s2.get(e.key), e.value, `${e.key} was applied`);
  assert.equal(await s2.get(key(safe[0])), Buffer.from('rewritten'));
  assert.is(await s2.get(Buffer.from('atomic-ok')), undefined, 'a failed putMany applies none of its entries');
  await s2.close();
  // Reading never rewrote (or "repaired") the damaged pages.
  const after = fs.readFileSync(file);
  for (const p of pages) assert.ok(after.subarray(p * PAGE, (p + 1) * PAGE).equals(damaged.subarray(p * PAGE, (p + 1) * PAGE)), `page ${p} changed`);
});

test('Snapshot.salvage: a damaged branch page is skipped with the key range it held; every other entry is read, none twice', async () => {
  const { file, N, data } = await threeLevelTree();
  // Branch pages (type 2 at byte 4) other than the two slots' root pages (1 and 3).
  const branches: number[] = [];
  for (let p = 4; p * PAGE < data.length; p++) if (data[p * PAGE + 4] === 2) branches.push(p);
  assert.ok(branches.length >= 2, `a three-level tree: ${branches.length} branch pages below the root`);
  for (const victim of [branches[0]!, branches[branches.length - 1]!]) {
    fs.writeFileSync(file, data);
    patch(file, victim * PAGE + 100, Buffer.from([data[victim * PAGE + 100]! ^ 0xff]));
    const s2 = await Store.open({ path: file });
    const snap = s2.snapshot();
    const losses: { from?: Buffer; to?: Buffer; page?: number }[] = [];
    const got: Buffer[] = [];
    for await (const e of snap.salvage((l) => losses.push(l))) got.push(e.key);
    snap.release();
    await s2.close();
    assert.is(losses.length, 1, `one loss for page ${victim}`);
    assert.is(losses[0]!.page, victim);
    const inLoss = (key: Buffer) => (!losses[0]!.from || Buffer.compare(key, losses[0]!.from) >= 0) && (!losses[0]!.to || Buffer.compare(key, losses[0]!.to) < 0);
    const all = [...Array.from({ length: N }, (_, i) => k(i)), Buffer.from('zzz-settle-1'), Buffer.from('zzz-settle-2')];
    const expected = all.filter((key) => !inLoss(key));
    assert.ok(expected.length < all.length && expected.length > all.length / 2, `the loss covers some keys: ${all.length - expected.length}`);
    assert.equal(got.map((b) => b.toString('latin1')), expected.map((b) => b.toString('latin1')), 'exactly the keys outside the lost range, in order');
  }
});

test('Snapshot.salvage: a damaged leaf anywhere in a three-level tree loses exactly its own keys, and the range reported holds exactly those', async () => {
  const file = tmpFile();
  const s = await Store.open({ path: file });
  const N = 3000;
  // In shuffled order over several commits, so that leaves sit under branches at every position.
  const order = Array.from({ length: N }, (_, i) => i);
  const r = mulberry32(9);
  for (let i = N - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [order[i], order[j]] = [order[j]!, order[i]!]; }
  for (let c = 0; c < 10; c++) await s.putMany(order.slice(c * 300, (c + 1) * 300).map((i) => ({ key: k(i), value: Buffer.from(`v${i}`) })));
  await settle(s);
  await s.close();
  const data = fs.readFileSync(file);
  const all = [...Array.from({ length: N }, (_, i) => k(i)), Buffer.from('zzz-settle-1'), Buffer.from('zzz-settle-2')];
  // Leaf pages (type 3 at byte 4); freed ones, old copies outside the tree, are skipped below.
  const leaves: number[] = [];
  for (let p = 4; p * PAGE < data.length; p++) if (data[p * PAGE + 4] === 3) leaves.push(p);
  let checked = 0;
  for (const victim of leaves.filter((_, i) => i % 4 === 0)) {
    fs.writeFileSync(file, data);
    patch(file, victim * PAGE + 200, Buffer.from([data[victim * PAGE + 200]! ^ 0xff]));
    const s2 = await Store.open({ path: file });
    const snap = s2.snapshot();
    const losses: { from?: Buffer; to?: Buffer; page?: number }[] = [];
    const got = new Set<string>();
    for await (const e of snap.salvage((l) => losses.push(l))) got.add(e.key.toString('latin1'));
    snap.release();
    await s2.close();
    if (losses.length === 0) continue; // a freed copy of a leaf: not in the tree
    checked++;
    assert.is(losses.length, 1);
    assert.is(losses[0]!.page, victim);
    const page = data.subarray(victim * PAGE, (victim + 1) * PAGE);
    const inRange = (key: Buffer) => (!losses[0]!.from || Buffer.compare(key, losses[0]!.from) >= 0) && (!losses[0]!.to || Buffer.compare(key, losses[0]!.to) < 0);
    for (const key of all) {
      const onPage = page.includes(key);
      assert.is(got.has(key.toString('latin1')), !onPage, `page ${victim}: ${key.subarray(251)} is ${onPage ? 'on the damaged leaf' : 'elsewhere'}`);
      assert.is(inRange(key), onPage, `page ${victim}: the reported range holds exactly the leaf's keys (${key.subarray(251)})`);
    }
  }
  assert.ok(checked >= 20, `${checked} live leaves damaged in turn`);
});

test('Snapshot.salvage: a stale branch whose separator points back to a key already read does not yield that key again', async () => {
  const { file, data } = await threeLevelTree();
  const pageAt = (id: number) => data.subarray(id * PAGE, (id + 1) * PAGE);
  const txidOf = (id: number) => pageAt(id).readUIntLE(16, 6);
  const node = (id: number) => {
    const p = pageAt(id);
    const n = decodeNode(p, p.readUInt8(4), p.readUInt16LE(6), id);
    if (typeof n === 'string') throw new Error(`page ${id}: ${n}`);
    return n;
  };
  const write = (n: Node, id: number) => patch(file, id * PAGE, encodeNode(n, id, txidOf(id)));
  // The newest root (the slot with the larger txid), three levels: root, branches, leaves.
  const rootId = txidOf(1) > txidOf(3) ? 1 : 3;
  const root = node(rootId);
  assert.not.ok(root.leaf);
  const [b0Id, b1Id] = [root.children[0] as number, root.children[1] as number];
  const b0 = node(b0Id);
  const b1 = node(b1Id);
  assert.ok(!b0.leaf && !b1.leaf && b1.children.length >= 3, 'a three-level tree');
  const lastLeaf = node(b0.children[b0.children.length - 1] as number);
  const lastRead = lastLeaf.keys[lastLeaf.keys.length - 1]!; // the last key of the first branch's subtree
  // A stale second branch: its second separator is that key (below the branch's own range), and its
  // second leaf starts with it.
  const xId = b1.children[1] as number;
  const x = node(xId);
  write(new Node(true, [Buffer.from(lastRead), ...x.keys.slice(0, -1)], [Buffer.from('stale'), ...x.vals.slice(0, -1)], [], xId, true), xId);
  write(new Node(false, [b1.keys[0]!, Buffer.from(lastRead), ...b1.keys.slice(2)], [], [...b1.children], b1Id, true), b1Id);

  const s2 = await Store.open({ path: file });
  const snap = s2.snapshot();
  const losses: Loss[] = [];
  const got: Buffer[] = [];
  try {
    for await (const e of snap.salvage((l) => losses.push(l))) got.push(Buffer.from(e.key));
  } finally {
    snap.release();
    await s2.close();
  }
  for (let i = 1; i < got.length; i++) {
    assert.ok(Buffer.compare(got[i - 1]!, got[i]!) < 0, `keys ascending, none twice: ${got[i - 1]!.subarray(251)} then ${got[i]!.subarray(251)}`);
  }
  assert.is(got.filter((g) => g.equals(lastRead)).length, 1, 'the key the stale leaf repeats is read once');
  assert.ok(losses.some((l) => l.page === xId && /stale page/.test(l.reason)), `the stale leaf is reported: ${JSON.stringify(losses.map((l) => [l.page, l.reason]))}`);
});

test('damaged leaf page (zeroed): CORRUPTION, not "key absent"', async () => {
  const file = tmpFile();
  const s = await Store.open({ path: file });
  const ps: Promise<void>[] = [];
  for (let i = 0; i < 1000; i++) ps.push(s.put(key(i), smallValue(i, 0)));
  await Promise.all(ps);
  await settle(s);
  await s.close();
  const pages = pagesContaining(file, Buffer.from(marker(321, 0)));
  for (const p of pages) patch(file, p * PAGE, Buffer.alloc(PAGE));
  const s2 = await Store.open({ path: file });
  await expectCorruption(s2.get(key(321)), 'get on a zeroed leaf');
  await s2.close();
});

test('damaged overflow page: get of the large value rejects with CORRUPTION; other values fine', async () => {
  const file = tmpFile();
  const s = await Store.open({ path: file });
  const big = randomBytes(mulberry32(1), 50_000);
  const other = randomBytes(mulberry32(2), 30_000);
  const exact = randomBytes(mulberry32(3), 4096);
  await Promise.all([s.put(key(1), big), s.put(key(2), other), s.put(key(3), exact), s.put(key(4), Buffer.from('small'))]);
  await settle(s);
  await s.close();
  const data = fs.readFileSync(file);
  const at = data.indexOf(big.subarray(0, 64));
  assert.ok(at > 0, 'large value not found');
  assert.is(at % PAGE, 0, 'overflow runs start on a page boundary');
  assert.ok(data.subarray(at, at + big.length).equals(big), 'overflow run is contiguous');
  // Damage one byte in the third page of the run.
  patch(file, at + 2 * PAGE + 100, Buffer.from([data[at + 2 * PAGE + 100]! ^ 0xff]));
  const s2 = await Store.open({ path: file });
  await expectCorruption(s2.get(key(1)), 'get of a value with a damaged overflow page');
  assert.equal(await s2.get(key(2)), other);
  assert.equal(await s2.get(key(3)), exact);
  assert.equal(await s2.get(key(4)), Buffer.from('small'));
  await s2.close();
});

test('damaged last byte of an exact-page overflow value: CORRUPTION', async () => {
  const file = tmpFile();
  const s = await Store.open({ path: file });
  const exact = randomBytes(mulberry32(4), 8192);
  await s.put(key(1), exact);
  await settle(s);
  await s.close();
  const at = fs.readFileSync(file).indexOf(exact.subarray(0, 64));
  assert.ok(at > 0);
  patch(file, at + 8191, Buffer.from([exact[8191]! ^ 0x01]));
  const s2 = await Store.open({ path: file });
  await expectCorruption(s2.get(key(1)), 'get of an 8192-byte value with its last byte damaged');
  assert.equal(await s2.get(Buffer.from('zzz-settle-1')), Buffer.from('settle'));
  await s2.close();
});

test('a root page that passes its checksum and carries its meta\'s txid but is not the page that meta names is refused: open falls back', async () => {
  // The meta records the checksum of the root page written with it (Meta.rootCrc), so that a slot
  // whose root is some other valid page of the same txid (a torn slot write, a failed commit of the
  // same txid, a misdirected write) is not taken for that commit's root.
  const file = tmpFile();
  let store = await Store.open({ path: file });
  await store.put(Buffer.from('k'), Buffer.from('value-AAAA'));
  await store.put(Buffer.from('k2'), Buffer.from('value-CCCC'));
  await store.close();
  const slot = metaTxid(file, 0) > metaTxid(file, 1) ? 0 : 1;
  const rootAt = (2 * slot + 1) * PAGE;
  const page = Buffer.alloc(PAGE);
  const fd = fs.openSync(file, 'r');
  try { fs.readSync(fd, page, 0, PAGE, rootAt); } finally { fs.closeSync(fd); }
  const at = page.indexOf('value-AAAA');
  assert.ok(at > 0, 'the value is inline in the root leaf');
  page.write('value-BBBB', at);
  page.writeUInt32LE(zlib.crc32(page.subarray(4)), 0); // a valid page: same id, same txid, new checksum
  patch(file, rootAt, page);
  store = await Store.open({ path: file });
  try {
    assert.is((await store.get(Buffer.from('k')))?.toString(), 'value-AAAA', 'the page the meta does not name is not read');
    assert.match(store.openWarnings.join('\n'), /not the one its meta page names/);
  } finally {
    await store.close();
  }
});

test('damage to a page of the newest commit after a clean close: reads fail with CORRUPTION, no silent rollback', async () => {
  const file = tmpFile();
  const s = await Store.open({ path: file });
  await s.put(key(1), Buffer.from('old'));
  const big = randomBytes(mulberry32(9), 20_000);
  await s.put(key(2), big); // the newest commit: a leaf and an overflow run
  const newest = s.stats().txid;
  await s.close(); // seals: one more meta for the same state, which needs no verification
  const at = fs.readFileSync(file).indexOf(big.subarray(0, 64));
  assert.ok(at > 0);
  patch(file, at + 5000, Buffer.from([big[5000]! ^ 0x01]));
  const s2 = await Store.open({ path: file });
  assert.is(s2.stats().txid, newest + 1, 'the sealing meta is used');
  await expectCorruption(s2.get(key(2)), 'get of the damaged value');
  assert.equal(await s2.get(key(1)), Buffer.from('old'));
  await s2.close();
});

test('damage to a page of the newest commit after a crash (no clean close) reads as a torn commit: open falls back, nothing wrong served', async () => {
  const file = tmpFile();
  const s = await Store.open({ path: file });
  await s.put(key(1), Buffer.from('old'));
  const before = s.stats().txid;
  const big = randomBytes(mulberry32(9), 20_000);
  await s.put(key(2), big);
  // The process "dies" here, as after kill -9: what it leaves is the file as it is now, unsealed.
  const crashed = `${file}.crashed`;
  fs.copyFileSync(file, crashed);
  await s.close();
  const at = fs.readFileSync(crashed).indexOf(big.subarray(0, 64));
  patch(crashed, at + 5000, Buffer.from([big[5000]! ^ 0x01]));
  const s2 = await Store.open({ path: crashed });
  assert.is(s2.stats().txid, before);
  assert.match(s2.recoveryNote ?? '', /hash|torn/, `recoveryNote: ${s2.recoveryNote}`);
  assert.is(await s2.get(key(2)), undefined);
  assert.equal(await s2.get(key(1)), Buffer.from('old'));
  await s2.close();
});

// ---------------------------------------------------------------------------------------------
// The same through the real server (issue 4 item 4): damage while lbserver is down, then start it.

async function serverDataDir(): Promise<{ dir: string; file: string }> {
  const dir = tempDir('lbkv-corrupt-srv-');
  const file = path.join(dir, DATA_FILE_NAME);
  const s = await Store.open({ path: file });
  const ps: Promise<void>[] = [];
  for (let i = 0; i < 1500; i++) ps.push(s.put(key(i), smallValue(i, 0)));
  ps.push(s.put(key(99999), randomBytes(mulberry32(5), 40_000)));
  await Promise.all(ps);
  await settle(s);
  await s.close();
  return { dir, file };
}

/** lbserver's salvage said where it kept the damaged original, and that file is it, byte for byte. */
function assertKeptOriginal(stderr: string, file: string, damagedSha: string): void {
  const keptAs = /the damaged original stays as (\S+)/.exec(stderr)?.[1];
  assert.ok(keptAs?.startsWith(`${file}.damaged-`), stderr);
  assert.is(sha(keptAs!), damagedSha, 'the damaged original, byte for byte');
}

async function expectStatus(p: Promise<unknown>, code: number, what: string): Promise<string> {
  try {
    const v = await p;
    assert.unreachable(`${what}: succeeded (${Buffer.isBuffer(v) ? `${v.length} bytes` : Array.isArray(v) ? `${v.length} entries` : String(v)}) instead of failing with status ${code}`);
  } catch (e) {
    if (!isServiceError(e)) throw e;
    assert.is(e.code, code, `${what}: status ${e.code} (${e.details}), want ${code}`);
    return e.details;
  }
  return '';
}

test('server: both metas bad -> lbserver refuses to start, names the file and offset, file untouched', async () => {
  const { dir, file } = await serverDataDir();
  damages['zeroed page']!(file, 0);
  damages['one flipped byte']!(file, 1);
  const before = sha(file);
  const r = await runServerExpectingFailure(['--listen', '127.0.0.1:0', '--data', dir]);
  assert.is(r.code, 4, 'exit 4: the data file cannot be opened');
  assert.ok(r.stderr.includes(file), `stderr does not name the file: ${r.stderr}`);
  assert.match(r.stderr, /offset/i, `stderr does not give the offset: ${r.stderr}`);
  assert.match(r.stderr, /meta/i);
  assert.is(sha(file), before, 'lbserver modified the damaged file');
});

test('server: one bad meta -> serves the commit the other meta holds', async () => {
  const { dir, file } = await serverDataDir();
  // The newest commit is the second settle put; damage its meta: the server must serve the commit before.
  const newest = Math.max(metaTxid(file, 0), metaTxid(file, 1));
  damages['random garbage']!(file, newest % 2);
  const srv = await startServer({ dataDir: dir });
  try {
    const c = srv.client();
    // The newest meta is the one close() wrote to seal the last commit; the other slot holds that
    // commit itself, so nothing acknowledged is lost.
    assert.equal(await c.get(Buffer.from('zzz-settle-1')), Buffer.from('settle'));
    assert.equal(await c.get(Buffer.from('zzz-settle-2')), Buffer.from('settle'));
    assert.equal(await c.get(key(7)), smallValue(7, 0));
    assert.ok(await logs(srv, new RegExp(`warning: opened commit ${newest - 1} from one meta page; the other was not usable: meta page ${2 * (newest % 2)} `)), srv.stderr);
    const warnings = (await c.stat()).openWarnings;
    assert.is(warnings.length, 1, 'Stat says so too');
    assert.match(warnings[0]!, `opened commit ${newest - 1} from one meta page`);
    const human = await runClient(srv.address, ['stat']);
    assert.match(human.stdout, /^open warning\s+opened commit \d+ from one meta page/m);
    const json = JSON.parse((await runClient(srv.address, ['stat', '--json'])).stdout) as { open_warnings: string[] };
    assert.equal(json.open_warnings, warnings);
  } finally {
    await srv.stop();
  }
});

test('server: a data file cut short -> a warning names what is missing, the surviving keys are served, the rest DATA_LOSS', async () => {
  const { dir, file } = await serverDataDir();
  const healthy = await startServer({ dataDir: dir });
  await healthy.stop();
  assert.not.match(healthy.stderr, /warning/, 'no warning for a whole file');
  const size = fs.statSync(file).size;
  const last = key(1499);
  const lastPages = pagesContaining(file, Buffer.from(marker(1499, 0)));
  const before = [0, 300, 700, 1100].find((i) => pagesContaining(file, Buffer.from(marker(i, 0)))[0] < lastPages[0]);
  assert.ok(before !== undefined, 'a key on a page before the cut');
  fs.truncateSync(file, lastPages[0] * PAGE);
  assert.ok(fs.statSync(file).size < size, 'the file was cut short');
  const srv = await startServer({ dataDir: dir });
  try {
    assert.ok(await logs(srv, new RegExp(`warning: .*${DATA_FILE_NAME} is ${lastPages[0] * PAGE} bytes, but its commit \\d+ counts \\d+ pages .*cut short`)), srv.stderr);
    const c = srv.client();
    assert.match((await c.stat()).openWarnings.join('\n'), /cut short/, 'Stat says so too');
    assert.equal(await c.get(key(before)), smallValue(before, 0), 'a key on a page before the cut');
    await expectStatus(c.get(last), GrpcStatus.DATA_LOSS, 'Get of a key on a page past the cut');
    await c.set(Buffer.from('after-cut'), Buffer.from('written'));
  } finally {
    await srv.stop();
  }
  // The commit zero-filled the missing range: no warning now, but the lost pages stay unreadable.
  const again = await startServer({ dataDir: dir });
  try {
    const c = again.client();
    assert.equal((await c.stat()).openWarnings, [], 'a whole file: no warnings');
    assert.equal(await c.get(Buffer.from('after-cut')), Buffer.from('written'));
    await expectStatus(c.get(last), GrpcStatus.DATA_LOSS, 'Get of a key past the cut, after a commit and a restart');
  } finally {
    await again.stop();
  }
});

test('server: damaged leaf and overflow pages -> DATA_LOSS for what cannot be read, the rest served, file not rewritten', async () => {
  const { dir, file } = await serverDataDir();
  const victim = 777;
  const data = fs.readFileSync(file);
  const pages = damageValue(file, victim, 4, 0x02);
  const big = randomBytes(mulberry32(5), 40_000);
  const bigAt = data.indexOf(big.subarray(0, 64));
  assert.ok(bigAt > 0 && bigAt % PAGE === 0);
  patch(file, bigAt + PAGE + 7, Buffer.from([big[PAGE + 7]! ^ 0x80]));
  const safe = [0, 1499].filter((i) => !pagesContaining(file, Buffer.from(marker(i, 0))).some((p) => pages.includes(p)));
  assert.ok(safe.length > 0);
  const damaged = fs.readFileSync(file);
  const srv = await startServer({ dataDir: dir });
  try {
    const c = srv.client();
    const d1 = await expectStatus(c.get(key(victim)), GrpcStatus.DATA_LOSS, 'Get of a key on a damaged leaf');
    assert.ok(d1.includes(file), `details do not name the file: ${d1}`);
    await expectStatus(c.get(key(99999)), GrpcStatus.DATA_LOSS, 'Get of a value with a damaged overflow page');
    for (const i of safe) assert.equal(await c.get(key(i)), smallValue(i, 0));
    await expectStatus(c.getPrefixAll(Buffer.from('key-')), GrpcStatus.DATA_LOSS, 'GetPrefix over the damaged leaf');
    // Writes elsewhere still work and are durable.
    await c.set(Buffer.from('new-key'), Buffer.from('new-value'));
    assert.equal(await c.get(Buffer.from('new-key')), Buffer.from('new-value'));
    // Concurrent Sets, one of them onto the damaged leaf: that one gets DATA_LOSS, the others
    // (which may share its group commit) succeed.
    const others = Array.from({ length: 20 }, (_, i) => Buffer.from(`concurrent-${i}`));
    const before = await c.stat();
    const sets = await Promise.allSettled([c.set(key(victim), Buffer.from('x')), ...others.map((k) => c.set(k, k))]);
    const after = await c.stat();
    // That the Sets shared commits (so that the one onto the damage could fail the others) shows in
    // fewer commits than Sets; the engine test above forms that batch deterministically.
    assert.ok(after.commits - before.commits < others.length, `the Sets shared commits (${after.commits - before.commits} commits for ${others.length} healthy Sets)`);
    assert.is(after.failedSets - before.failedSets, 1);
    assert.is(sets[0].status, 'rejected', 'the Set onto the damaged leaf fails');
    assert.is(((sets[0] as PromiseRejectedResult).reason as { code: number }).code, GrpcStatus.DATA_LOSS);
    assert.equal(sets.slice(1).map((r) => r.status), others.map(() => 'fulfilled'), 'the other Sets succeed');
    for (const k of others) assert.equal(await c.get(k), k);
  } finally {
    await srv.stop();
  }
  const after = fs.readFileSync(file);
  for (const p of [...pages, bigAt / PAGE + 1]) {
    assert.ok(after.subarray(p * PAGE, (p + 1) * PAGE).equals(damaged.subarray(p * PAGE, (p + 1) * PAGE)), `damaged page ${p} was rewritten`);
  }
});

test('server: lbserver --compact of a store with a damaged leaf refuses, names the damage, removes its partial copy, leaves the file as it was', async () => {
  const { dir, file } = await serverDataDir();
  damageValue(file, 321, 4, 0x02);
  const before = sha(file);
  const r = await runNode(LBSERVER_JS, ['--data', dir, '--compact'], { timeoutMs: 60_000 });
  assert.is(r.code, 1, `exit code (stderr: ${r.stderr})`);
  assert.match(r.stderr, /checksum mismatch/);
  assert.match(r.stderr, /the original is unchanged; the partial copy was removed/);
  assert.match(r.stderr, /\(--compact --salvage copies what can still be read\)/);
  assert.not.ok(fs.existsSync(`${file}.compact`), 'no partial copy left behind');
  assert.is(sha(file), before, 'the data file is unchanged');
});

test('server: lbserver --compact --salvage keeps what a damaged store still holds and lists what it left out', async () => {
  const { dir, file } = await serverDataDir();
  const victim = 777;
  damageValue(file, victim, 4, 0x02);
  const data = fs.readFileSync(file);
  const big = randomBytes(mulberry32(5), 40_000);
  const bigAt = data.indexOf(big.subarray(0, 64));
  patch(file, bigAt + PAGE + 7, Buffer.from([big[PAGE + 7]! ^ 0x80]));
  const damaged = sha(file);
  const alone = await runNode(LBSERVER_JS, ['--data', dir, '--salvage']);
  assert.is(alone.code, 2, '--salvage without --compact is a usage error');
  const r = await runNode(LBSERVER_JS, ['--data', dir, '--compact', '--salvage'], { timeoutMs: 60_000 });
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /salvage: left out a damaged tree page \(page \d+\) holding keys from "key-\d+" up to "key-\d+" \(exclusive\): .*checksum mismatch/);
  assert.match(r.stderr, /salvage: left out the value of key "key-99999" \(page \d+\): .*checksum mismatch/);
  const m = /compacted .*: (\d+) of (\d+) keys kept \(2 damaged pages or values left out\)/.exec(r.stdout);
  assert.ok(m, r.stdout);
  const [kept, total] = [Number(m![1]), Number(m![2])];
  assert.is(total, 1503);
  assert.ok(kept < total - 1 && kept > total - 100, `${kept} of ${total}`);
  assert.not.ok(fs.existsSync(`${file}.compact`));
  assertKeptOriginal(r.stderr, file, damaged);
  const srv = await startServer({ dataDir: dir });
  try {
    const c = srv.client();
    assert.is((await c.stat()).keys, kept);
    // Every key is either there with its value or gone with the damaged leaf; none is wrong.
    let missing = 0;
    for (let i = 0; i < 1500; i++) {
      const v = await c.get(key(i));
      if (v === undefined) missing++;
      else assert.equal(v, smallValue(i, 0), `key ${i}`);
    }
    assert.is(await c.get(key(victim)), undefined, 'the key on the damaged leaf is gone');
    assert.is(await c.get(key(99999)), undefined, 'the damaged value is gone');
    assert.is(missing, 1500 - (kept - 2), 'the kept keys are the settle keys and the undamaged ones');
    assert.is((await c.getPrefixAll(Buffer.from('key-'))).length, kept - 2, 'the whole store lists again');
  } finally {
    await srv.stop();
  }
});

test('server: lbclient getprefix that meets a damaged value after printing entries says the listing is not whole', async () => {
  const dir = tempDir('lbkv-corrupt-srv-');
  const file = path.join(dir, DATA_FILE_NAME);
  const s = await Store.open({ path: file });
  const value = (i: number) => randomBytes(mulberry32(100 + i), 64 * 1024);
  // 3 MiB of entries before the damaged one: several GetPrefix messages are sent before it.
  await s.putMany(Array.from({ length: 60 }, (_, i) => ({ key: Buffer.from(`big-${String(i).padStart(3, '0')}`), value: value(i) })));
  await settle(s);
  await s.close();
  const at = fs.readFileSync(file).indexOf(value(50).subarray(0, 64));
  assert.ok(at > 0);
  patch(file, at + 100, Buffer.from([value(50)[100]! ^ 0x10]));
  const srv = await startServer({ dataDir: dir });
  try {
    const r = await runClient(srv.address, ['getprefix', 'big-']);
    assert.is(r.code, 3, r.stderr);
    assert.ok(r.stdout.split('\n').filter((l) => l.startsWith('big-')).length >= 16, 'entries before the damage were printed');
    assert.match(r.stderr, /getprefix cut off after some entries were printed, the listing is not whole: server error: DATA_LOSS/);
  } finally {
    await srv.stop();
  }
});

// ---------------------------------------------------------------------------------------------
// Store.rebuild (lbserver --compact --salvage of a store that will not open): no meta, no tree, only
// the pages. Each key must come back with its newest value although freed leaves holding older
// values of it are still in the file.

/** A store whose keys were overwritten over several commits, so that older versions of many keys sit
 *  in freed leaves; both meta pages then damaged. Returns the file and its last contents. */
async function overwrittenStoreWithoutMetas(dir?: string): Promise<{ file: string; last: Map<string, Buffer>; big: Buffer[] }> {
  const file = dir ? path.join(dir, DATA_FILE_NAME) : tmpFile();
  const s = await Store.open({ path: file });
  const last = new Map<string, Buffer>();
  const put = async (batch: [number, Buffer][]) => {
    await s.putMany(batch.map(([i, value]) => ({ key: key(i), value })));
    for (const [i, v] of batch) last.set(key(i).toString('latin1'), v);
  };
  await put(Array.from({ length: 1200 }, (_, i) => [i, smallValue(i, 0)] as [number, Buffer]));
  // A reader holds every page freed from here on (else the next commits reuse them at once), as a
  // long GetPrefix would: the older versions stay in the file.
  const reader = s.snapshot();
  // Generations 1 and 2 of some keys, a commit per 50 keys: many leaves are copied more than once.
  for (let gen = 1; gen <= 2; gen++) {
    const touched = Array.from({ length: 1200 }, (_, i) => i).filter((i) => i % (gen + 2) === 0);
    for (let at = 0; at < touched.length; at += 50) await put(touched.slice(at, at + 50).map((i) => [i, smallValue(i, gen)]));
  }
  // A large value overwritten once: its older run is still in the file.
  const big = [randomBytes(mulberry32(11), 40_000), randomBytes(mulberry32(12), 40_000)];
  await put([[99999, big[0]!]]);
  await put([[99999, big[1]!]]);
  reader.release();
  await settle(s);
  last.set('zzz-settle-1', Buffer.from('settle'));
  last.set('zzz-settle-2', Buffer.from('settle'));
  await s.close();
  damages['random garbage']!(file, 0);
  damages['zeroed page']!(file, 1);
  return { file, last, big };
}

test('Store.rebuild: both meta pages damaged; every key comes back with its newest value, though older ones sit in freed leaves', async () => {
  const { file, last, big } = await overwrittenStoreWithoutMetas();
  // The test means something only if older versions are still there to be picked by mistake.
  const data = fs.readFileSync(file);
  const stale = [...Array(1200).keys()].filter((i) => i % 3 === 0 && data.includes(Buffer.from(marker(i, 0)))).length;
  assert.ok(stale > 50, `older versions of overwritten keys still in the file: ${stale}`);
  assert.ok(data.includes(big[0]!.subarray(0, 64)), 'the older large value is still in the file');
  await expectCorruption(Store.open({ path: file }), 'open with both metas damaged');
  const losses: Loss[] = [];
  const phases = new Set<string>();
  const r = await Store.rebuild({ path: file }, { onLoss: (l) => losses.push(l), progress: (phase) => phases.add(phase) });
  assert.equal(losses, [], 'nothing was damaged but the metas');
  assert.equal([...phases].sort(), ['copy', 'scan']);
  assert.is(r.keys, last.size);
  assert.not.ok(fs.existsSync(`${file}.compact`));
  const s = await Store.open({ path: file });
  try {
    assert.equal(s.openWarnings, []);
    const got = await readEverything(s);
    const wrong = [...last].filter(([k, v]) => !got.get(k)?.equals(v)).map(([k]) => k);
    assert.equal(wrong.slice(0, 5), [], `${wrong.length} keys without their newest value`);
    assert.is(got.size, last.size);
    // The rebuilt store takes writes and keeps them.
    await s.put(key(5), Buffer.from('after the rebuild'));
  } finally {
    await s.close();
  }
  const again = await Store.open({ path: file });
  assert.equal(await again.get(key(5)), Buffer.from('after the rebuild'));
  await again.close();
});

test('Store.rebuild: a damaged newest leaf is reported and its keys fall back to older values; a damaged newest large value too', async () => {
  const { file, last, big } = await overwrittenStoreWithoutMetas();
  // Key 12 was rewritten in generations 1 and 2: damage the leaf that holds its newest value.
  const victim = 12;
  const pages = pagesContaining(file, Buffer.from(marker(victim, 2)));
  assert.is(pages.length, 1, `pages holding the newest value of key ${victim}: ${pages}`);
  const onVictimLeaf = new Set<string>();
  {
    const raw = fs.readFileSync(file).subarray(pages[0]! * PAGE, (pages[0]! + 1) * PAGE);
    for (const [k, v] of last) if (raw.includes(v.subarray(0, 12)) && v.length < 200) onVictimLeaf.add(k);
  }
  patch(file, pages[0]! * PAGE + 2000, randomBytes(mulberry32(3), 8));
  // And the newest run of the large value.
  const at = fs.readFileSync(file).indexOf(big[1]!.subarray(0, 64));
  patch(file, at + 5000, Buffer.from([big[1]![5000]! ^ 0x01]));
  const losses: Loss[] = [];
  const r = await Store.rebuild({ path: file }, { onLoss: (l) => losses.push(l) });
  const pageLoss = losses.find((l) => l.keysUnknown && l.page === pages[0]);
  assert.ok(pageLoss, `the damaged leaf is reported: ${JSON.stringify(losses.map((l) => [l.page, l.reason]))}`);
  assert.match(pageLoss!.reason, /checksum mismatch/);
  const bigLoss = losses.find((l) => l.key?.equals(key(99999)));
  assert.ok(bigLoss, 'the damaged large value is reported with its key');
  assert.match(bigLoss!.reason, /checksum mismatch.*an older value \(txid \d+\) was kept instead/);
  const s = await Store.open({ path: file });
  try {
    const got = await readEverything(s);
    assert.is(r.keys, got.size);
    assert.equal(got.get(key(99999).toString('latin1')), big[0], 'the large value falls back to its older, intact version');
    const v = got.get(key(victim).toString('latin1'));
    assert.ok(v === undefined || v.equals(smallValue(victim, 1)) || v.equals(smallValue(victim, 0)), `key ${victim}: ${v?.toString()}`);
    assert.not.equal(v, smallValue(victim, 2));
    // Every key not on the damaged leaf has its newest value, exactly.
    for (const [k, want] of last) {
      if (onVictimLeaf.has(k) || k === key(99999).toString('latin1')) continue;
      assert.ok(got.get(k)?.equals(want), `key ${k}: ${got.get(k)?.toString()}`);
    }
  } finally {
    await s.close();
  }
});

test('Store.rebuild: a key whose only value is damaged is reported with its key, and left out', async () => {
  const file = tmpFile();
  const s = await Store.open({ path: file });
  await s.putMany(Array.from({ length: 50 }, (_, i) => ({ key: key(i), value: smallValue(i, 0) })));
  // Written once: no older copy of it anywhere in the file to fall back to.
  const only = randomBytes(mulberry32(21), 40_000);
  await s.put(key(77777), only);
  await settle(s);
  await s.close();
  const at = fs.readFileSync(file).indexOf(only.subarray(0, 64));
  assert.ok(at > 0, 'the value is in the file');
  patch(file, at + 5000, Buffer.from([only[5000]! ^ 0x01]));
  damages['random garbage']!(file, 0);
  damages['zeroed page']!(file, 1);
  const losses: Loss[] = [];
  const r = await Store.rebuild({ path: file }, { onLoss: (l) => losses.push(l) });
  const lost = losses.filter((l) => l.key?.equals(key(77777)));
  assert.is(lost.length, 1, `the lost value is reported once, with its key: ${JSON.stringify(losses.map((l) => [l.page, l.key?.toString(), l.reason]))}`);
  assert.match(lost[0]!.reason, /checksum mismatch/);
  assert.not.match(lost[0]!.reason, /older value/);
  const again = await Store.open({ path: file });
  try {
    const got = await readEverything(again);
    assert.is(r.keys, got.size);
    assert.not.ok(got.has(key(77777).toString('latin1')), 'no value of it was kept');
    for (let i = 0; i < 50; i++) assert.ok(got.get(key(i).toString('latin1'))?.equals(smallValue(i, 0)), `key ${i}`);
  } finally {
    await again.close();
  }
});

test('Store.rebuild stopped by its signal, during the scan or the copy, leaves the file as it was and no partial copy', async () => {
  const { file, last } = await overwrittenStoreWithoutMetas();
  const before = sha(file);
  for (const phase of ['scan', 'copy']) {
    const abort = new AbortController();
    const reason = new Error(`stop during ${phase}`);
    const got = await Store.rebuild({ path: file }, { signal: abort.signal, progress: (p) => { if (p === phase) abort.abort(reason); } }).then(() => 'resolved', (e) => e);
    assert.is(got, reason, phase);
    assert.is(sha(file), before, phase);
    assert.not.ok(fs.existsSync(`${file}.compact`), phase);
  }
  const r = await Store.rebuild({ path: file });
  assert.is(r.keys, last.size, 'a rebuild after the stopped ones works');
});

test('Store.rebuild refuses, changing nothing, a file that is not lbkv data or is another format version', async () => {
  const noise = tmpFile();
  fs.writeFileSync(noise, randomBytes(mulberry32(21), 64 * PAGE));
  const noiseSha = sha(noise);
  let e = await expectCorruption(Store.rebuild({ path: noise }), 'rebuild of random bytes');
  assert.match(e.message, /none of its 64 pages passes its checks as a leaf \(is it an lbkv data file\?\)/);
  assert.is(sha(noise), noiseSha);
  assert.not.ok(fs.existsSync(`${noise}.compact`));
  // A meta page that passes its checksum but says format version 2: its leaves may be laid out
  // otherwise, so this build must not read them as its own.
  const { file } = await overwrittenStoreWithoutMetas();
  const meta = Buffer.alloc(PAGE);
  const fd = fs.openSync(file, 'r');
  fs.readSync(fd, meta, 0, PAGE, metaAt(1));
  fs.closeSync(fd);
  meta.fill(0, 0, PAGE);
  Buffer.from('LBKVDB01', 'latin1').copy(meta, 24);
  meta.writeUInt8(1, 4); // PageType.Meta
  meta.writeUIntLE(2, 8, 6); // page id 2: slot 1's meta page
  meta.writeUInt32LE(2, 32); // format version 2
  meta.writeUInt32LE(zlib.crc32(meta.subarray(4)), 0);
  patch(file, metaAt(1), meta);
  const before = sha(file);
  e = await expectCorruption(Store.rebuild({ path: file }), 'rebuild of a format-2 file');
  assert.match(e.message, /not rebuilt: meta page 2: format version 2, this build reads versions/);
  assert.is(sha(file), before);
  assert.not.ok(fs.existsSync(`${file}.compact`));
});

/** A closed store whose newest meta (close()'s seal: no pages of its own) names a freelist in pages
 *  right after the last commit's leaf: 3,000 one-page values, every other one then overwritten
 *  small (1,500 scattered free pages). Returns the file and that meta's freelist page. */
async function storeWithFreelistPages(dir: string): Promise<{ file: string; freelistPage: number; keys: number }> {
  const file = path.join(dir, DATA_FILE_NAME);
  const s = await Store.open({ path: file });
  await s.putMany(Array.from({ length: 3000 }, (_, i) => ({ key: key(i), value: Buffer.alloc(3000, i) })));
  await s.putMany(Array.from({ length: 1500 }, (_, i) => ({ key: key(2 * i), value: Buffer.from('x') })));
  await s.put(Buffer.from('zzz-last'), Buffer.from('y'));
  await s.close();
  const data = fs.readFileSync(file);
  const newest = newestMeta(data);
  assert.ok(newest.freelistPages > 0 && newest.commitExtents.length === 0, 'the seal names a freelist in pages and writes none');
  return { file, freelistPage: newest.freelistPage, keys: 3001 };
}

test('server: lbserver --compact --salvage of a file cut short in its tree and freelist does not call the tree copy exact; with only the freelist damaged it does', async () => {
  // Cut just before the freelist: the freelist pages and the leaf the last commit wrote are gone;
  // the meta and root still verify, so the store is rebuilt from that commit's tree, less that leaf.
  const cutDir = tempDir('lbkv-corrupt-srv-');
  const cut = await storeWithFreelistPages(cutDir);
  fs.truncateSync(cut.file, (cut.freelistPage - 1) * PAGE);
  const r = await runNode(LBSERVER_JS, ['--data', cutDir, '--compact', '--salvage'], { timeoutMs: 60_000 });
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /salvage: cannot open .*short page/);
  assert.match(r.stderr, /salvage: left out a damaged tree page \(page \d+\)/);
  const lost = (r.stderr.match(/salvage: left out /g) ?? []).length;
  assert.ok(lost >= 1, r.stderr);
  assert.not.match(r.stderr, /exact/, 'a copy that left pages out is not exact');
  assert.match(r.stderr, new RegExp(`salvage: rebuilt from the tree of the last commit a meta page verifies \\(its freelist could not be read\\): ${lost} damaged pages? or values? of its tree left out \\(listed above\\)`));
  const m = /compacted .*: (\d+) keys kept/.exec(r.stdout);
  assert.ok(m && Number(m[1]) < cut.keys, r.stdout);

  // The freelist alone damaged: every key of the commit comes back, and the message says so.
  const flDir = tempDir('lbkv-corrupt-srv-');
  const fl = await storeWithFreelistPages(flDir);
  patch(fl.file, fl.freelistPage * PAGE + 100, Buffer.from([0xff, 0xfe]));
  const r2 = await runNode(LBSERVER_JS, ['--data', flDir, '--compact', '--salvage'], { timeoutMs: 60_000 });
  assert.is(r2.code, 0, r2.stderr);
  assert.not.match(r2.stderr, /left out a/);
  assert.match(r2.stderr, /salvage: rebuilt from the tree of the last commit a meta page verifies \(its freelist could not be read\): every key of that commit is kept/);
  assert.match(r2.stdout, new RegExp(`compacted .*: ${fl.keys} keys kept \\(0 damaged pages or values left out\\)`));
});

test('server: lbserver --compact --salvage rebuilds a store whose meta pages are both damaged; without --salvage the refusal says so', async () => {
  const dir = tempDir('lbkv-corrupt-srv-');
  const { file, last } = await overwrittenStoreWithoutMetas(dir);
  const damaged = sha(file);
  const refused = await runServerExpectingFailure(['--listen', '127.0.0.1:0', '--data', dir]);
  assert.is(refused.code, 4);
  assert.match(refused.stderr, /lbserver --compact --salvage rebuilds it from what its pages still hold/);
  const r = await runNode(LBSERVER_JS, ['--data', dir, '--compact', '--salvage'], { timeoutMs: 60_000 });
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /salvage: cannot open .*no valid meta page.*; rebuilding it: /);
  assert.match(r.stderr, /salvage: rebuilt from the leaf pages \(no meta page verifies\)/);
  assert.match(r.stderr, /compacting .*: \d+\/\d+ pages scanned \(100%\)/);
  assert.match(r.stdout, new RegExp(`compacted .*: ${last.size} keys kept \\(0 damaged pages or values left out\\)`));
  assertKeptOriginal(r.stderr, file, damaged);
  const srv = await startServer({ dataDir: dir });
  try {
    const c = srv.client();
    assert.is((await c.stat()).keys, last.size);
    for (const i of [0, 3, 4, 6, 12, 1199]) assert.equal(await c.get(key(i)), last.get(key(i).toString('latin1')), `key ${i}`);
  } finally {
    await srv.stop();
  }
});

test.after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

test.run();

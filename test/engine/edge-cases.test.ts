// Edge cases from an audit of btree/: values at the largest size allowed, cells of the largest key
// at the inline/overflow boundary, failures of reads, growth and rollbacks in the middle of commits.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { Store, StoreError } from '../../btree';
import { tempDir } from '../support/tmp';
import { FaultFS, mulberry32, POLICY_DROP_ALL, POLICY_KEEP_ALL } from '../support/fault-fs';
import { MAX_CELL, PAGE_SIZE } from '../../btree/layout';
import { segmentTuning } from '../../btree/freelist';

const MiB = 1024 * 1024;
const DB = '/edges/lbkv.db';
const fill = (n: number, seed: number) => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i += 4093) b[i] = (seed + i) & 0xff;
  if (n >= 4) b.writeUInt32LE(seed, n - 4);
  return b;
};
const key = (i: number, len = 12) => {
  const k = Buffer.alloc(len, 0x6b);
  k.write(String(i).padStart(8, '0'), len - 8);
  return k;
};
const failure = (p: Promise<unknown>) => p.then(() => null, (e: unknown) => e);

test('64 MiB values (the default limit): put, overwrite with one a byte shorter, read back after a reopen; one byte more is refused', async () => {
  const file = path.join(tempDir('edges-big'), 'lbkv.db');
  let s = await Store.open({ path: file });
  const a = fill(64 * MiB, 1);
  await s.put(key(1), a);
  await s.put(key(2), Buffer.alloc(0));
  assert.ok((await s.get(key(1)))!.equals(a));
  const b = fill(64 * MiB - 1, 2);
  await s.put(key(1), b);
  const e = await failure(s.put(key(3), Buffer.alloc(64 * MiB + 1)));
  assert.ok(e instanceof StoreError && e.code === 'INVALID_ARGUMENT');
  await s.close();
  s = await Store.open({ path: file });
  assert.ok((await s.get(key(1)))!.equals(b));
  assert.equal(await s.get(key(2)), Buffer.alloc(0));
  // The first value's run is free again: a third one of the same size does not grow the file past three runs.
  await s.put(key(1), fill(64 * MiB, 3));
  await s.put(key(4), Buffer.from('x'));
  await s.put(key(1), fill(64 * MiB, 4));
  assert.ok(s.stats().pageCount * PAGE_SIZE < 3.2 * 64 * MiB, `${s.stats().pageCount} pages`);
  assert.ok((await s.get(key(1)))!.equals(fill(64 * MiB, 4)));
  await s.close();
});

test('1024-byte keys with values at the inline/overflow boundary: leaves of two full cells split and read back', async () => {
  const file = path.join(tempDir('edges-keys'), 'lbkv.db');
  let s = await Store.open({ path: file, cacheMB: 1 });
  const inlineMax = MAX_CELL - 5 - 1024;
  const want = new Map<number, Buffer>();
  for (let round = 0; round < 4; round++) {
    const batch = Array.from({ length: 120 }, (_, j) => {
      const i = (j * 37 + round * 11) % 200;
      const n = [0, inlineMax - 1, inlineMax, inlineMax + 1, PAGE_SIZE - 1, PAGE_SIZE, PAGE_SIZE + 1][(i + round) % 7]!;
      return { i, value: fill(n, round * 1000 + i) };
    });
    await s.putMany(batch.map((x) => ({ key: key(x.i, 1024), value: x.value })));
    for (const x of batch) want.set(x.i, x.value);
    await s.close();
    s = await Store.open({ path: file, cacheMB: 1 });
    for (const [i, v] of want) assert.ok((await s.get(key(i, 1024)))?.equals(v), `round ${round} key ${i}`);
    const snap = s.snapshot();
    let n = 0;
    let last: Buffer | undefined;
    for await (const e of snap.range({})) {
      assert.ok(!last || Buffer.compare(last, e.key) < 0);
      last = e.key;
      n++;
    }
    snap.release();
    assert.is(n, want.size);
  }
  await s.close();
});

test('EIO reading a tree page while a commit applies its batch: the batch fails, nothing of it is applied, the next commit works', async () => {
  const ffs = new FaultFS();
  let s = await Store.open({ path: DB, fs: ffs, cacheMB: 0.01 });
  await s.putMany(Array.from({ length: 2000 }, (_, i) => ({ key: key(i), value: fill(100, i) })));
  await s.close();
  s = await Store.open({ path: DB, fs: ffs, cacheMB: 0.01 });
  ffs.failReads((_f, pos) => pos >= 4 * PAGE_SIZE, 'EIO', 1);
  const e = await failure(s.putMany([{ key: key(5), value: fill(10, 5) }, { key: key(1500), value: fill(10, 1500) }]));
  assert.ok(e instanceof StoreError && e.code === 'IO', String(e));
  for (let i = 0; i < 2000; i += 50) assert.ok((await s.get(key(i)))?.equals(fill(100, i)), `key ${i}`);
  await s.put(key(5), fill(10, 6));
  assert.ok((await s.get(key(5)))?.equals(fill(10, 6)));
  assert.ok((await s.get(key(1500)))?.equals(fill(100, 1500)));
  await s.close();
});

test('ENOSPC on growth, then on the fallback growth too: the commit fails whole, the store keeps committing once there is room', async () => {
  const ffs = new FaultFS();
  const s = await Store.open({ path: DB, fs: ffs, growBytes: 4 * MiB });
  await s.put(key(1), fill(100, 1));
  ffs.failWhen({ match: (op) => op.kind === 'truncate', code: 'ENOSPC', times: 2 });
  const e = await failure(s.put(key(2), fill(100_000, 2)));
  assert.ok(e instanceof StoreError && e.code === 'NO_SPACE', String(e));
  assert.is(await s.get(key(2)), undefined);
  await s.put(key(2), fill(100_000, 3));
  assert.ok((await s.get(key(2)))?.equals(fill(100_000, 3)));
  await s.close();
  const r = await Store.open({ path: DB, fs: ffs.powerCut(mulberry32(1), POLICY_DROP_ALL).fs });
  assert.ok((await r.get(key(2)))?.equals(fill(100_000, 3)));
  assert.ok((await r.get(key(1)))?.equals(fill(100, 1)));
  await r.close();
});

test('a commit whose sync and rollback both fail (outcome unknown): the next commit restores the slot first, and after a power cut the store holds the acknowledged data', async () => {
  for (const policy of [POLICY_DROP_ALL, POLICY_KEEP_ALL]) {
    const ffs = new FaultFS();
    const s = await Store.open({ path: DB, fs: ffs });
    for (let i = 0; i < 50; i++) await s.put(key(i), fill(3000 + i * 100, i));
    const snap = s.snapshot();
    ffs.failWhen({ match: (op) => op.kind === 'datasync', code: 'EIO', times: 2 });
    const e = await failure(s.put(key(7), fill(5000, 777)));
    assert.ok(e instanceof StoreError && e.outcomeUnknown, String(e));
    // The next commits reuse pages; neither the snapshot nor the previous commit may lose any.
    for (let r = 0; r < 6; r++) await s.putMany(Array.from({ length: 10 }, (_, j) => ({ key: key(j * 5), value: fill(4096 + r, r * 100 + j) })));
    for (let i = 0; i < 50; i++) assert.ok((await snap.get(key(i)))?.equals(fill(3000 + i * 100, i)), `snapshot key ${i}`);
    snap.release();
    const want = (i: number) => (i % 5 === 0 && i < 50 ? fill(4096 + 5, 500 + i / 5) : fill(3000 + i * 100, i));
    const r = await Store.open({ path: DB, fs: ffs.powerCut(mulberry32(3), policy).fs });
    for (let i = 0; i < 50; i++) assert.ok((await r.get(key(i)))?.equals(want(i)), `after a cut, key ${i}`);
    await r.close();
  }
});

test('a file cut short after a clean close: what survives reads, the rest is CORRUPTION, commits go on and every acknowledged put reads back after a reopen', async () => {
  let checked = 0;
  for (const cut of [150, 428, 430, 433, 445]) {
    const ffs = new FaultFS();
    let s = await Store.open({ path: DB, fs: ffs, cacheMB: 0.01 });
    for (let r = 0; r < 4; r++) await s.putMany(Array.from({ length: 300 }, (_, i) => ({ key: key(i), value: fill(i % 3 === 0 ? 5000 : 200, r * 1000 + i) })));
    // A last commit of one small put: its freelist rides in the meta page, so the cut takes tree
    // and value pages (open refuses a file whose freelist pages are gone, as documented).
    await s.put(key(0), fill(10, 1));
    const pages = s.stats().pageCount;
    await s.close();
    const h = await ffs.open(DB);
    await h.extend((pages - cut) * PAGE_SIZE, 0); // the simulator shrinks the file like ftruncate
    await h.datasync();
    await h.close();
    const opened = await Store.open({ path: DB, fs: ffs, cacheMB: 0.01 }).then((x) => x, (e: unknown) => e);
    if (!(opened instanceof Store)) {
      assert.ok(opened instanceof StoreError && opened.code === 'CORRUPTION', String(opened));
      continue;
    }
    s = opened;
    assert.ok(s.openWarnings.some((w) => /cut short/.test(w)), s.openWarnings.join('; '));
    const was = (i: number) => (i === 0 ? fill(10, 1) : fill(i % 3 === 0 ? 5000 : 200, 3000 + i));
    const lost = new Set<number>();
    for (let i = 0; i < 300; i++) {
      const e = await failure(s.get(key(i)));
      if (e === null) assert.ok((await s.get(key(i)))?.equals(was(i)), `key ${i}`);
      else { assert.ok(e instanceof StoreError && e.code === 'CORRUPTION', String(e)); lost.add(i); }
    }
    const want = new Map<number, Buffer>();
    for (let r = 0; r < 6; r++) {
      for (let i = r; i < 300; i += 7) {
        const v = fill(i % 2 ? 3000 : 100, 9000 + r * 1000 + i);
        const e = await failure(s.put(key(i), v));
        if (e === null) want.set(i, v);
        else assert.ok(e instanceof StoreError && e.code === 'CORRUPTION' && lost.has(i), `put ${i}: ${String(e)}`);
      }
    }
    await s.close();
    s = await Store.open({ path: DB, fs: ffs.powerCut(mulberry32(9), POLICY_DROP_ALL).fs });
    // A commit wrote zeros over what was cut off, so the file is whole again.
    if (want.size > 0) assert.equal(s.openWarnings, []);
    for (const [i, v] of want) assert.ok((await s.get(key(i)))?.equals(v), `after reopen, key ${i}`);
    for (let i = 0; i < 300; i++) if (!want.has(i) && !lost.has(i)) assert.ok((await s.get(key(i)))?.equals(was(i)), `untouched key ${i}`);
    await s.close();
    if (lost.size > 0 && want.size > 0) checked++;
  }
  assert.ok(checked > 0, 'no cut both opened and lost keys');
});

test('snapshots taken and puts made while compact() copies: the snapshots read the old file whole after the switch, the puts land in the new file and survive a reopen', async () => {
  const file = path.join(tempDir('edges-compact'), 'lbkv.db');
  let s = await Store.open({ path: file, cacheMB: 1 });
  const model = new Map<number, Buffer>();
  for (let r = 0; r < 3; r++) {
    const batch = Array.from({ length: 3000 }, (_, i) => ({ i, v: fill(i % 10 === 0 ? 9000 : 300, r * 10_000 + i) }));
    await s.putMany(batch.map((x) => ({ key: key(x.i), value: x.v })));
    for (const x of batch) model.set(x.i, x.v);
  }
  await s.put(key(999_999), fill(MiB, 5));
  model.set(999_999, fill(MiB, 5));
  const frozen = new Map(model);
  let progressCalls = 0;
  const during: { snap: ReturnType<Store['snapshot']>; n: number }[] = [];
  const puts: Promise<void>[] = [];
  const compaction = s.compact(() => {
    progressCalls++;
    during.push({ snap: s.snapshot(), n: progressCalls });
    const i = progressCalls;
    puts.push(s.put(key(100_000 + i), fill(5000, i)));
  });
  // A large value read on the thread pool while the copy runs.
  const big = s.get(key(999_999));
  await compaction;
  assert.ok(progressCalls >= 2, `${progressCalls} progress calls`);
  assert.ok((await big)!.equals(frozen.get(999_999)!));
  await Promise.all(puts);
  for (const { snap } of during) {
    let n = 0;
    for await (const e of snap.range({})) {
      const i = Number(e.key.toString().slice(-8));
      assert.ok(e.value.equals(frozen.get(i)!), `snapshot from during compact(): key ${i}`);
      n++;
    }
    assert.is(n, frozen.size);
    snap.release();
  }
  for (let i = 1; i <= progressCalls; i++) model.set(100_000 + i, fill(5000, i));
  await s.close();
  s = await Store.open({ path: file });
  assert.is(s.stats().keys, model.size);
  for (const [i, v] of model) assert.ok((await s.get(key(i)))?.equals(v), `after reopen, key ${i}`);
  await s.close();
});

test('EIO reading a freelist segment that a commit loads: the commit fails whole, the next one loads it and no page is handed out twice', async () => {
  const saved = { ...segmentTuning };
  Object.assign(segmentTuning, { freezeEntries: 4, fanout: 2 });
  try {
    const ffs = new FaultFS();
    let s = await Store.open({ path: DB, fs: ffs });
    const want = new Map<number, Buffer>();
    const put = async (i: number, v: Buffer) => { await s.put(key(i), v); want.set(i, v); };
    for (let i = 0; i < 40; i++) await put(i, fill(5000, i));
    const snap = s.snapshot();
    for (let n = 0; n < 120; n++) await put(n % 40, fill(5000, 1000 + n));
    snap.release();
    // Reopened, no segment is in memory: the next commits that need pages read them.
    await s.close();
    s = await Store.open({ path: DB, fs: ffs });
    assert.ok(s.stats().freelistSegments > 0, 'segments exist');
    for (const i of want.keys()) await s.get(key(i)); // tree pages cached: the reads below are the segments'
    const segmentPages = s.stats().freelistSegmentPages;
    const segments = (s as unknown as { freelist: { segments: { start: number; count: number }[] } }).freelist.segments.map((g) => ({ ...g }));
    const inSegment = (pos: number) => segments.some((g) => pos >= g.start * PAGE_SIZE && pos < (g.start + g.count) * PAGE_SIZE);
    let failed = 0;
    ffs.failReads((_f, pos) => inSegment(pos), 'EIO', 1);
    for (let n = 0; n < 40 && s.stats().freelistSegmentPages === segmentPages; n++) {
      const v = fill(200_000, 5000 + n);
      const e = await failure(s.put(key(n % 40), v));
      if (e === null) want.set(n % 40, v);
      else { assert.ok(e instanceof StoreError && e.code === 'IO', String(e)); failed++; }
      for (const [i, w] of want) assert.ok((await s.get(key(i)))?.equals(w), `n ${n}: key ${i}`);
    }
    assert.is(failed, 1, 'the first commit that read a segment failed, and only it');
    assert.ok(s.stats().freelistSegmentPages < segmentPages, `segments listed ${segmentPages} pages, now ${s.stats().freelistSegmentPages}: none was loaded`);
    for (let n = 0; n < 30; n++) await put(n % 40, fill(200_000, 9000 + n));
    for (const [i, w] of want) assert.ok((await s.get(key(i)))?.equals(w), `key ${i}`);
    await s.close();
    s = await Store.open({ path: DB, fs: ffs.powerCut(mulberry32(4), POLICY_DROP_ALL).fs });
    for (const [i, w] of want) assert.ok((await s.get(key(i)))?.equals(w), `after a reopen: key ${i}`);
    await s.close();
  } finally {
    Object.assign(segmentTuning, saved);
  }
});

test('stats().fileBytes after a commit that grew the file and then failed is the size of the file', async () => {
  const ffs = new FaultFS();
  const s = await Store.open({ path: DB, fs: ffs });
  await s.put(key(1), fill(10, 1));
  assert.is(s.stats().fileBytes, ffs.readVolatile(DB)!.length);
  ffs.failNth('writev', 1, 'EIO'); // the page write after the growth
  const e = await failure(s.put(key(2), fill(3 * MiB, 2)));
  assert.ok(e instanceof StoreError && e.code === 'IO', String(e));
  assert.ok(ffs.readVolatile(DB)!.length > 3 * MiB, 'the failed commit grew the file');
  assert.is(s.stats().fileBytes, ffs.readVolatile(DB)!.length, 'Stat reports the file as it is');
  await s.put(key(3), fill(100, 3));
  assert.is(s.stats().fileBytes, ffs.readVolatile(DB)!.length);
  await s.close();
});

test.run();

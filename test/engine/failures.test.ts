// Engine behaviour when a step fails part-way (found by a review of btree/, each reproduced here
// before it was fixed): a rolled-back commit must not bring back a commit that open rejected,
// compaction must neither leak its snapshot nor acknowledge puts into a file it lost, and close()
// must not close the file under reads still in flight or let snapshots read after it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { nodeFileSystem, Store, StoreError, type FileHandle, type FileSystem } from '../../btree';
import { tempDir } from '../support/tmp';
import { CUT_POLICIES, FaultFS, mulberry32, POLICY_DROP_ALL, POLICY_KEEP_ALL, type OpRecord } from '../support/fault-fs';

const DB = '/db/lbkv.db';
const key = (i: number) => Buffer.from(`k${String(i).padStart(8, '0')}`);
const fill = (n: number, seed: number) => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (seed * 31 + i * 7 + (i >> 8)) & 0xff;
  return b;
};
const failure = (p: Promise<unknown>) => p.then(() => null, (e: unknown) => e);
const isStoreError = (e: unknown, code: string) => e instanceof StoreError && e.code === code;

/** `h` with its datasync replaced (the rest through the prototype, as engine.test's recordingFs). */
const withDatasync = (h: FileHandle, datasync: FileHandle['datasync']): FileHandle => Object.assign(Object.create(h) as FileHandle, { datasync });

/** `ffs` seen through a FileSystem whose open() fails while `failOpen.on` is set. */
function failingOpen(ffs: FaultFS): { fs: FileSystem; failOpen: { on: boolean } } {
  const failOpen = { on: false };
  const fs: FileSystem = {
    open: (f, ro) => (failOpen.on ? Promise.reject(Object.assign(new Error(`EIO: i/o error, open '${f}'`), { code: 'EIO' })) : ffs.open(f, ro)),
    create: (f) => ffs.create(f),
    exists: (f) => ffs.exists(f),
    rename: (a, b) => ffs.rename(a, b),
    unlink: (f) => ffs.unlink(f),
    syncDir: (d) => ffs.syncDir(d),
  };
  return { fs, failOpen };
}

/** A store whose last commit, of a 5-page value under key 2, open rejected as torn: one byte of
 *  the value (at `damageAt`) did not make it to the disk. Key 1 is from the commit before. */
async function tornLastCommit(damageAt: number): Promise<{ crashed: FaultFS; b: Store; big: Buffer }> {
  const ffs = new FaultFS();
  const a = await Store.open({ path: DB, fs: ffs });
  await a.put(key(1), fill(100, 1));
  const big = fill(20_000, 7);
  await a.put(key(2), big); // durable, then the process dies (no close)
  const crashed = ffs.powerCut(mulberry32(1), POLICY_DROP_ALL).fs;
  const image = crashed.readVolatile(DB)!;
  const at = image.indexOf(big.subarray(0, 64));
  assert.ok(at > 0, 'the value is in the file');
  const h = await crashed.open(DB);
  await h.writev([Buffer.from([big[damageAt]! ^ 1])], at + damageAt);
  await h.datasync();
  await h.close();
  const b = await Store.open({ path: DB, fs: crashed });
  assert.match(b.recoveryNote ?? '', /hash|torn/);
  assert.is(await b.get(key(2)), undefined);
  return { crashed, b, big };
}

/** After `crashed` loses power (or its process is killed: `policy`), key 2 is not there. */
async function notRevived(crashed: FaultFS, policy: typeof POLICY_DROP_ALL): Promise<void> {
  const after = await Store.open({ path: DB, fs: crashed.powerCut(mulberry32(2), policy).fs });
  assert.is(await after.get(key(2)), undefined, 'a put reported as not applied is not there after a restart');
  assert.equal(await after.get(key(1)), fill(100, 1));
  await after.close();
}

test('rolling back a failed commit never revives the commit that open rejected in the same slot', async () => {
  const { crashed, b, big } = await tornLastCommit(5000);
  // The same put again, with its fdatasync failing: it rewrites the same pages (the damaged one
  // whole again), and the slot is rolled back. Rolled back to the rejected meta, that commit would
  // now verify: a put reported as not applied would appear after a crash.
  crashed.failWhen({ match: (op) => op.kind === 'datasync', code: 'EIO' });
  const e = await failure(b.put(key(2), big));
  assert.ok(isStoreError(e, 'IO') && /nothing of this batch was applied/.test((e as Error).message), String(e));
  await notRevived(crashed, POLICY_DROP_ALL);
});

test('a torn commit that open rejected cannot be completed by a retry that fails before its own meta write', async () => {
  const { crashed, b, big } = await tornLastCommit(100);
  // The retry writes the same pages (overflow pages have no header: the same bytes, the torn one
  // whole again), but a page write fails part-way, before the meta write: nothing is rolled back.
  // The rejected meta, had it stayed in the slot, would now verify.
  crashed.failWhen({ match: (op) => op.kind === 'writev' && (op.pos ?? 0) >= 4 * 4096, code: 'EIO', partial: true });
  const e = await failure(b.put(key(2), big));
  assert.ok(isStoreError(e, 'IO') && /nothing of this batch was applied/.test((e as Error).message), String(e));
  await notRevived(crashed, POLICY_KEEP_ALL); // kill -9: every write the process made reaches the disk
});

test('open syncs the file before serving: a commit a killed process left in the page cache is not shown and then lost to a power cut', async () => {
  const ffs = new FaultFS();
  // Two processes on one machine share the page cache (FaultFS's unsynced writes); the first one's
  // fdatasync never returns once `killed` is set: it is killed during it.
  let killed = false;
  const view = (hang: boolean): FileSystem => ({
    open: async (f, ro) => {
      const h = await ffs.open(f, ro);
      if (!hang) return h;
      return withDatasync(h, () => (killed ? new Promise<void>(() => undefined) : h.datasync()));
    },
    create: (f) => ffs.create(f),
    exists: (f) => ffs.exists(f),
    rename: (x, y) => ffs.rename(x, y),
    unlink: (f) => ffs.unlink(f),
    syncDir: (d) => ffs.syncDir(d),
  });
  const first = await Store.open({ path: DB, fs: view(true) });
  await first.put(key(1), Buffer.from('acknowledged'));
  killed = true;
  void first.put(key(2), Buffer.from('never acknowledged'));
  await new Promise((r) => setTimeout(r, 20));
  const second = await Store.open({ path: DB, fs: view(false) });
  const shown = await second.get(key(2));
  // A power cut before the second process commits anything or closes.
  const third = await Store.open({ path: DB, fs: ffs.powerCut(mulberry32(1), POLICY_DROP_ALL).fs });
  const kept = await third.get(key(2));
  assert.ok(shown === undefined || (kept !== undefined && kept.equals(shown)), `a reader was shown ${shown?.toString()}, which the power cut then took away`);
  assert.equal(await third.get(key(1)), Buffer.from('acknowledged'));
  await third.close();
});

test('compact() and Store.rebuild() copy data stored under larger limits than the store is opened with', async () => {
  const dir = tempDir('lbkv-limits-');
  const file = path.join(dir, 'lbkv.db');
  let s = await Store.open({ path: file });
  const longKey = Buffer.alloc(100, 0x61);
  await s.put(longKey, fill(200_000, 3));
  await s.put(key(1), fill(10, 1));
  await s.close();
  const small = { path: file, maxValueBytes: 65_536, maxKeyBytes: 64 };
  s = await Store.open(small);
  const r = await s.compact();
  assert.is(r.keys, 2);
  assert.equal(await s.get(key(1)), fill(10, 1));
  await s.close();
  // Both meta pages destroyed: the rebuild reads the leaves, and copies them under the format's limits.
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.alloc(4096, 0xee), 0, 4096, 0);
  fs.writeSync(fd, Buffer.alloc(4096, 0xee), 0, 4096, 2 * 4096);
  fs.closeSync(fd);
  const rb = await Store.rebuild(small);
  assert.is(rb.keys, 2);
  s = await Store.open({ path: file });
  assert.equal(await s.get(longKey), fill(200_000, 3));
  await s.close();
});

test('a new data file whose creation fails leaves no half-made file and no open descriptor', async () => {
  const dir = tempDir('lbkv-create-');
  const failing: FileSystem = {
    ...nodeFileSystem,
    async create(f) {
      const h = await nodeFileSystem.create(f);
      return withDatasync(h, () => Promise.reject(Object.assign(new Error('ENOSPC: no space left on device, fdatasync'), { code: 'ENOSPC' })));
    },
  };
  const fds = () => fs.readdirSync('/proc/self/fd').length;
  const before = fds();
  for (let i = 0; i < 20; i++) {
    const e = await failure(Store.open({ path: path.join(dir, 'lbkv.db'), fs: failing }));
    assert.ok(isStoreError(e, 'NO_SPACE') || isStoreError(e, 'IO'), String(e));
  }
  assert.ok(fds() - before < 5, `descriptors: ${before} before 20 failed creations, ${fds()} after`);
  assert.equal(fs.readdirSync(dir), []);
});

test('a failed commit\'s slot is written anew, meta and root page, with the last commit\'s state under the failed txid: a usable fallback when the newest meta is damaged', async () => {
  const ffs = new FaultFS();
  const a = await Store.open({ path: DB, fs: ffs });
  // Enough keys for a root branch, so the root page is not the only page of the tree.
  await a.putMany(Array.from({ length: 300 }, (_, i) => ({ key: key(i), value: fill(100, i) })));
  await a.put(key(1000), fill(50, 1));
  await a.put(key(1001), fill(50, 2));
  const newest = a.stats().txid;
  // The next commit writes the slot of commit newest - 1, then its fdatasync fails: its slot is
  // written again with commit newest's state (txid newest + 1).
  ffs.failWhen({ match: (op) => op.kind === 'datasync', code: 'EIO' });
  const e = await failure(a.put(key(1002), fill(50, 3)));
  assert.ok(isStoreError(e, 'IO') && /nothing of this batch was applied/.test((e as Error).message), String(e));
  assert.is(a.stats().txid, newest + 1, 'the failed txid, recorded');
  // A crash, and the newest commit's meta page damaged: open must take the rewritten slot.
  const crashed = ffs.powerCut(mulberry32(4), POLICY_DROP_ALL).fs;
  const h = await crashed.open(DB);
  await h.writev([Buffer.alloc(64, 0x55)], (newest % 2) * 2 * 4096 + 100);
  await h.datasync();
  await h.close();
  const b = await Store.open({ path: DB, fs: crashed });
  try {
    assert.is(b.stats().txid, newest + 1, 'the rewritten slot');
    assert.equal(await b.get(key(1000)), fill(50, 1));
    assert.equal(await b.get(key(1001)), fill(50, 2), 'the newest commit\'s state');
    assert.is(await b.get(key(1002)), undefined, 'nothing of the failed commit');
    assert.equal(await b.get(key(7)), fill(100, 7));
    const snap = b.snapshot();
    let n = 0;
    try {
      for await (const en of snap.range({})) if (en.key) n++;
    } finally {
      snap.release();
    }
    assert.is(n, 302, 'the whole tree below the copied root');
  } finally {
    await b.close();
  }
});

/** A store of 200 keys with one more commit that fails as `fails` says: key 5 set to `value` and 40
 *  values of 3,000 bytes (keys 1000..1039), so its leaves land where a smaller retry does not write. */
async function storeWithFailedCommit(fails: (op: OpRecord) => boolean, value: Buffer, times = 1): Promise<{ ffs: FaultFS; a: Store; before: number }> {
  const ffs = new FaultFS();
  const a = await Store.open({ path: DB, fs: ffs });
  await a.putMany(Array.from({ length: 200 }, (_, i) => ({ key: key(i), value: fill(100, i) })));
  const before = a.stats().txid;
  ffs.failWhen({ match: fails, code: 'EIO', times });
  const bigOnes = Array.from({ length: 40 }, (_, i) => ({ key: key(1000 + i), value: fill(3000, i) }));
  assert.ok(isStoreError(await failure(a.putMany([{ key: key(5), value }, ...bigOnes])), 'IO'));
  return { ffs, a, before };
}

/** Both meta pages of `fs`'s data file destroyed, then Store.rebuild (from the pages alone); the
 *  rebuilt store must read each key of `expect` as its value, and pass `also`. */
async function rebuiltFromPagesHolds(fs: FaultFS, expect: [Buffer, Buffer][], also?: (s: Store) => Promise<void>): Promise<void> {
  const h = await fs.open(DB);
  for (const metaPage of [0, 2]) await h.writev([Buffer.alloc(4096, 0xee)], metaPage * 4096);
  await h.datasync();
  await h.close();
  await Store.rebuild({ path: DB, fs });
  const s = await Store.open({ path: DB, fs });
  try {
    for (const [k, v] of expect) assert.equal(await s.get(k), v, `key ${k.toString()}`);
    await also?.(s);
  } finally {
    await s.close();
  }
}

test('a commit after a failed one takes a higher txid, so a rebuild from the pages prefers the acknowledged retry over the failed commit\'s leaves', async () => {
  const failed = Buffer.from('<<the value of a failed commit>>');
  const { ffs, a, before } = await storeWithFailedCommit((op) => op.kind === 'datasync', failed);
  // The retry writes less, so its pages do not cover the failed commit's leaf, which stays in the file.
  const acked = Buffer.from('<<the acknowledged value>>');
  await a.put(key(5), acked);
  assert.is(a.stats().txid, before + 2, 'the retry took the txid after the failed commit\'s, which its slot records');
  assert.equal(await a.get(key(5)), acked);
  await a.close();
  assert.ok(ffs.readVolatile(DB)!.includes(failed), 'the failed commit\'s leaf is still in the file');
  await rebuiltFromPagesHolds(ffs, [[key(5), acked], [key(7), fill(100, 7)]], async (b) => {
    // A value only the failed commit wrote may come back (the pages cannot tell a failed commit from
    // one in flight), but whole or not at all.
    const back = await b.get(key(1039));
    assert.ok(back === undefined || back.equals(fill(3000, 39)), `key 1039: ${back?.length} bytes`);
  });
});

test('the first commit after a crash skips the txid of the commit the crash left half written, so a rebuild cannot prefer its leaves over acknowledged ones', async () => {
  // A commit whose pages are written but whose slot write never happens (nor the rewrite of its
  // slot after the failure), then the power goes: the pages stay in the file under txid durable + 1,
  // unreachable.
  const inFlight = Buffer.from('<<in flight at the crash>>');
  const { ffs, before: durable } = await storeWithFailedCommit((op) => op.kind === 'writev' && (op.pos ?? -1) < 4 * 4096, inFlight, 2);
  const crashed = ffs.powerCut(mulberry32(5), CUT_POLICIES.keepAll!).fs;
  assert.ok(crashed.readVolatile(DB)!.includes(inFlight), 'the half-written commit\'s leaf is in the file');
  const b = await Store.open({ path: DB, fs: crashed });
  assert.is(b.stats().txid, durable);
  const acked = Buffer.from('<<acknowledged after the restart>>');
  await b.put(key(5), acked);
  assert.is(b.stats().txid, durable + 3, 'the txid the crash may have used (durable + 1) is skipped, the slot kept');
  await b.close();
  await rebuiltFromPagesHolds(crashed, [[key(5), acked]]);
});

test('two failed commits, then a crash: the first commit after open takes a txid past both (each is recorded in its slot), so a rebuild prefers the acknowledged value', async () => {
  const failed = Buffer.from('<<the value of a failed commit>>');
  const { ffs, a, before } = await storeWithFailedCommit((op) => op.kind === 'datasync', failed);
  ffs.failWhen({ match: (op) => op.kind === 'datasync', code: 'EIO' });
  const bigOnes = Array.from({ length: 40 }, (_, i) => ({ key: key(1000 + i), value: fill(3000, i) }));
  assert.ok(isStoreError(await failure(a.putMany([{ key: key(5), value: failed }, ...bigOnes])), 'IO'));
  assert.is(a.stats().txid, before + 2, 'both failed txids recorded');
  // The process dies (no close, no seal).
  const crashed = ffs.powerCut(mulberry32(6), POLICY_DROP_ALL).fs;
  const b = await Store.open({ path: DB, fs: crashed });
  const acked = Buffer.from('<<the acknowledged value>>');
  await b.put(key(5), acked);
  assert.ok(b.stats().txid > before + 2, `txid ${b.stats().txid} past the failed ${before + 1} and ${before + 2}`);
  await b.close();
  assert.ok(crashed.readVolatile(DB)!.includes(failed), 'a failed commit\'s leaf is still in the file');
  await rebuiltFromPagesHolds(crashed, [[key(5), acked], [key(7), fill(100, 7)]]);
});

test('compact() after a commit whose slot could not be rewritten (outcome unknown): the new file\'s txids go on rising, and a rebuild from its pages keeps the acknowledged value', async () => {
  const ffs = new FaultFS();
  const a = await Store.open({ path: DB, fs: ffs });
  await a.putMany(Array.from({ length: 400 }, (_, i) => ({ key: key(i), value: fill(100, i) })));
  // Its fdatasync fails, and so does the rewrite of its slot after it.
  ffs.failWhen({ match: (op) => op.kind === 'datasync' && op.file === DB, code: 'EIO', times: 2 });
  const e = await failure(a.put(key(7), Buffer.from('failed')));
  assert.ok(e instanceof StoreError && e.outcomeUnknown, String(e));
  await a.compact();
  const compacted = a.stats().txid;
  const acked = Buffer.from('<<acknowledged after the compaction>>');
  await a.put(key(7), acked);
  assert.ok(a.stats().txid > compacted, `txid ${a.stats().txid} after the compacted file's ${compacted}`);
  await a.close();
  await rebuiltFromPagesHolds(ffs, [[key(7), acked], [key(8), fill(100, 8)]]);
});

test('Store.rebuild of a file whose meta verifies copies that commit\'s tree exactly (from: tree): a failed commit\'s leaves in the file do not come back', async () => {
  const failed = Buffer.from('<<the value of a failed commit>>');
  const { ffs, a } = await storeWithFailedCommit((op) => op.kind === 'datasync', failed);
  await a.close();
  assert.ok(ffs.readVolatile(DB)!.includes(failed), 'the failed commit\'s leaf is in the file');
  const r = await Store.rebuild({ path: DB, fs: ffs });
  assert.is(r.from, 'tree');
  assert.is(r.keys, 200);
  const b = await Store.open({ path: DB, fs: ffs });
  try {
    assert.equal(await b.get(key(5)), fill(100, 5));
    assert.is(await b.get(key(1000)), undefined);
  } finally {
    await b.close();
  }
});

test('compact(): a compacted file that cannot be opened after the rename fails queued puts instead of acknowledging them into the old file', async () => {
  const ffs = new FaultFS();
  const { fs, failOpen } = failingOpen(ffs);
  const store = await Store.open({ path: DB, fs });
  await store.putMany(Array.from({ length: 100 }, (_, i) => ({ key: key(i), value: fill(1000, i) })));
  ffs.onOp = (op) => { if (op.kind === 'rename' && op.to === DB) failOpen.on = true; };
  const compacting = failure(store.compact());
  const queued = failure(store.put(key(500), fill(10, 5))); // waits for the compaction's writer lock
  const [e, qe] = await Promise.all([compacting, queued]);
  assert.ok(isStoreError(qe, 'CLOSED'), `the put queued behind the compaction: ${qe === null ? 'acknowledged' : String(qe)}`);
  assert.ok(isStoreError(e, 'IO') && /opening the compacted file/.test((e as Error).message), String(e));
  assert.ok(isStoreError(await failure(store.put(key(501), fill(10, 6))), 'CLOSED'));
  ffs.onOp = null;
  failOpen.on = false;
  const again = await Store.open({ path: DB, fs: ffs.powerCut(mulberry32(3), POLICY_DROP_ALL).fs });
  assert.is(again.stats().keys, 100);
  assert.equal(await again.get(key(99)), fill(1000, 99));
  await again.close();
});

test('compact(): a rename that fails removes the copy and leaves the store on its file; one that fails yet happened moves the store to the new file', async () => {
  const ffs = new FaultFS();
  let renameFails: 'no' | 'before' | 'after' = 'no';
  const fs: FileSystem = {
    open: (f, ro) => ffs.open(f, ro),
    create: (f) => ffs.create(f),
    exists: (f) => ffs.exists(f),
    async rename(a, b) {
      const faulty = renameFails !== 'no' && b === DB; // the compaction's install, not a create
      if (!faulty || renameFails === 'after') await ffs.rename(a, b);
      if (!faulty) return;
      // 'after': done, then reported as failed (a retried NFS rename)
      throw Object.assign(new Error(`EIO: i/o error, rename '${a}' -> '${b}'`), { code: 'EIO' });
    },
    unlink: (f) => ffs.unlink(f),
    syncDir: (d) => ffs.syncDir(d),
  };
  const store = await Store.open({ path: DB, fs });
  await store.putMany(Array.from({ length: 50 }, (_, i) => ({ key: key(i), value: fill(1000, i) })));
  renameFails = 'before';
  const e = await failure(store.compact());
  assert.ok(isStoreError(e, 'IO') && /the original is unchanged; the copy was removed/.test((e as Error).message), String(e));
  assert.not.ok(ffs.exists(DB + '.compact'), 'the copy is gone');
  await store.put(key(100), fill(10, 100));
  renameFails = 'after';
  const r = await store.compact();
  assert.ok(r.afterBytes > 0);
  await store.put(key(101), fill(10, 101)); // acknowledged: must be in the file open finds
  const again = await Store.open({ path: DB, fs: ffs.powerCut(mulberry32(4), POLICY_DROP_ALL).fs });
  assert.equal(await again.get(key(101)), fill(10, 101), 'the put after the compaction is in the installed file');
  assert.is(again.stats().keys, 52);
  await again.close();
});

test('a batch that fails on an I/O error fails whole: its callers are not retried one by one', async () => {
  const ffs = new FaultFS();
  const store = await Store.open({ path: DB, fs: ffs });
  await store.put(key(0), fill(10, 0));
  ffs.failWhen({ match: (op) => op.kind === 'datasync', code: 'EIO' }); // once: a retry would succeed
  const results = await Promise.all([1, 2, 3].map((i) => failure(store.put(key(i), fill(10, i)))));
  for (const e of results) assert.ok(isStoreError(e, 'IO'), String(e));
  for (const i of [1, 2, 3]) assert.is(await store.get(key(i)), undefined);
  assert.is(store.stats().failedCommits, 1);
  await store.put(key(4), fill(10, 4));
  await store.close();
});

test('Snapshot.salvage reads past a page the disk cannot read (EIO), reporting it like a damaged one', async () => {
  const ffs = new FaultFS();
  const a = await Store.open({ path: DB, fs: ffs });
  await a.putMany(Array.from({ length: 2000 }, (_, i) => ({ key: key(i), value: fill(40, i) })));
  await a.close();
  const image = ffs.readVolatile(DB)!;
  let victim = -1;
  for (let p = 4; (p + 1) * 4096 <= image.length && victim < 0; p++) if (image[p * 4096 + 4] === 3) victim = p; // a leaf
  assert.ok(victim > 0);
  const b = await Store.open({ path: DB, fs: ffs });
  ffs.failReads((_f, pos) => pos === victim * 4096, 'EIO', 1000);
  const losses: { page?: number; reason: string }[] = [];
  const snap = b.snapshot();
  let n = 0;
  for await (const e of snap.salvage((l) => losses.push(l))) {
    assert.equal(e.value, fill(40, Number(e.key.toString().slice(1))));
    n++;
  }
  snap.release();
  assert.is(losses.length, 1);
  assert.is(losses[0]!.page, victim);
  assert.match(losses[0]!.reason, /EIO/);
  assert.ok(n > 1900 && n < 2000, `${n} of 2000 entries read`);
  ffs.clearFailures();
  await b.close();
});

test('compact(): a copy that cannot even be created releases the snapshot it took', async () => {
  const ffs = new FaultFS();
  const store = await Store.open({ path: DB, fs: ffs });
  await store.putMany(Array.from({ length: 50 }, (_, i) => ({ key: key(i), value: fill(1000, i) })));
  ffs.failWhen({ match: (op) => op.kind === 'create' && op.file.startsWith(DB + '.compact'), code: 'ENOSPC' });
  const e = await failure(store.compact());
  assert.ok(isStoreError(e, 'NO_SPACE'), String(e));
  assert.is(store.stats().openSnapshots, 0, 'no snapshot left pinning pages');
  // Pages freed from here on come back: overwriting the same keys stops growing the file.
  for (let r = 0; r < 4; r++) await store.putMany(Array.from({ length: 50 }, (_, i) => ({ key: key(i), value: fill(1000, r * 100 + i) })));
  const pages = store.stats().pageCount;
  for (let r = 4; r < 12; r++) await store.putMany(Array.from({ length: 50 }, (_, i) => ({ key: key(i), value: fill(1000, r * 100 + i) })));
  assert.ok(store.stats().pageCount <= pages + 2, `pageCount ${pages} -> ${store.stats().pageCount}`);
  await store.close();
});

/** The real file system with every thread-pool read held back for `delayMs`. */
function slowReads(delayMs: number): FileSystem {
  return {
    ...nodeFileSystem,
    async open(f: string, ro?: boolean): Promise<FileHandle> {
      const h = await nodeFileSystem.open(f, ro);
      const read = h.read.bind(h);
      h.read = async (b, o, l, p) => { await new Promise((r) => setTimeout(r, delayMs)); return read(b, o, l, p); };
      return h;
    },
  };
}

test('close() waits for reads in flight before closing the file, and snapshots fail CLOSED after it', async () => {
  const file = path.join(tempDir('lbkv-close-'), 'lbkv.db');
  const store = await Store.open({ path: file, fs: slowReads(150) });
  const big = fill(1024 * 1024, 3);
  await store.put(key(1), big);
  await store.putMany(Array.from({ length: 2000 }, (_, i) => ({ key: key(100 + i), value: fill(50, i) })));
  const snap = store.snapshot();
  const inFlight = snap.get(key(1)); // a thread-pool read, still running when close() starts
  const viaStore = store.get(key(1));
  await store.close();
  assert.equal(await inFlight, big, 'the read begun before close() completes with the right bytes');
  assert.equal(await viaStore, big);
  assert.ok(isStoreError(await failure(snap.get(key(150))), 'CLOSED'), 'a snapshot read after close() fails CLOSED');
  assert.ok(isStoreError(await failure((async () => { for await (const _ of snap.range({})) { /* empty */ } })()), 'CLOSED'));
  snap.release();
  const reopened = await Store.open({ path: file });
  assert.equal(await reopened.get(key(1)), big);
  await reopened.close();
});

test.run();

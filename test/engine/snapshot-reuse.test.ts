// Randomized test of page reuse while snapshots live long: puts of 0 B to just over 1 MiB onto a
// small set of keys (mostly overwrites), snapshots held across many commits and released in random
// order, each read against the model of its time while later commits land, failed commits
// (EIO/ENOSPC), clean reopens, power cuts mid-commit and mid-compaction, and compactions whose
// older snapshots go on reading the old file while commits go to the new one. After every step each
// valid meta in the file must account for every page exactly once (test/support/page-audit.ts), and
// every page write is held against what the metas and the open snapshots reach as it is issued. At
// the end of each seed, with the snapshots released, steady overwrites must stop growing the file.
// LBKV_REUSE_SEEDS=a..b (or a list) runs other seeds, LBKV_REUSE_STEPS more steps each; the failing
// seed is printed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Store, StoreError, type Snapshot } from '../../btree';
import { segmentTuning } from '../../btree/freelist';
import { pagesFor } from '../../btree/layout';
import { CUT_POLICIES, FaultFS, mulberry32, mixSeed, pick, randInt, type Rng } from '../support/fault-fs';
import { checkFreelist, metasOf, ReuseChecker } from '../support/page-audit';

const DB = '/reuse/lbkv.db';
const STEPS = Number(process.env.LBKV_REUSE_STEPS ?? 120);
const CHECK_WRITES = process.env.LBKV_REUSE_CHECK_WRITES !== '0';

function seedList(spec: string | undefined): number[] {
  if (!spec) return [1, 2];
  const range = /^(\d+)\.\.(\d+)$/.exec(spec);
  if (range) return Array.from({ length: Number(range[2]) - Number(range[1]) + 1 }, (_, i) => Number(range[1]) + i);
  return spec.split(',').map(Number);
}

const hex = (b: Buffer) => b.toString('hex');
type Model = Map<string, Buffer>;

function valueSize(rng: Rng): number {
  const r = rng();
  if (r < 0.45) return randInt(rng, 0, 300);
  if (r < 0.7) return randInt(rng, 300, 9000);
  if (r < 0.9) return randInt(rng, 9000, 64 * 1024);
  if (r < 0.98) return randInt(rng, 64 * 1024, 300 * 1024);
  return randInt(rng, 1000 * 1024, 1100 * 1024);
}

function valueOf(n: number, tag: number): Buffer {
  const v = Buffer.alloc(n, tag & 0xff);
  for (let i = 0; i + 4 <= n; i += 4093) v.writeUInt32LE(tag >>> 0, i);
  return v;
}

function keyOf(rng: Rng): Buffer {
  const len = rng() < 0.1 ? randInt(rng, 500, 1024) : randInt(rng, 1, 40);
  const k = Buffer.alloc(len);
  for (let i = 0; i < len; i++) k[i] = pick(rng, [0x00, 0x61, 0x62, 0xff]);
  return k;
}

/** Every key of `model` reads its value, and a scan gives exactly the model. */
async function expectView(what: string, get: (k: Buffer) => Promise<Buffer | undefined>, model: Model, snap?: Snapshot): Promise<void> {
  for (const [k, v] of model) {
    const got = await get(Buffer.from(k, 'hex'));
    if (!got?.equals(v)) throw new Error(`${what}: key ${k.slice(0, 24)} reads ${got ? `${got.length} other bytes` : 'nothing'}, expected ${v.length} bytes`);
  }
  if (!snap) return;
  const keys: string[] = [];
  for await (const e of snap.range()) {
    keys.push(hex(e.key));
    if (!model.get(hex(e.key))?.equals(e.value)) throw new Error(`${what}: the scan's value of ${hex(e.key).slice(0, 24)} differs`);
  }
  assert.equal(keys, [...model.keys()].sort(), `${what}: scanned keys`);
}

interface Held { snap: Snapshot; model: Model }

async function run(seed: number, steps: number): Promise<string> {
  const rng = mulberry32(seed);
  let fs = new FaultFS();
  let store: Store | undefined;
  const checker = new ReuseChecker(fs, () => store, DB);
  // Long sweeps may skip the check of each write (three quarters of the time): the audit after each
  // step and the snapshots' reads still run.
  const watch = () => { checker.attach(fs); if (!CHECK_WRITES) fs.onOp = null; };
  watch();
  const syncMode = rng() < 0.25 ? 'two' : 'one';
  const open = async () => { store = await Store.open({ path: DB, fs, cacheMB: 1, growBytes: 256 * 1024, syncMode }); };
  await open();
  let model: Model = new Map();
  const pool = Array.from({ length: randInt(rng, 8, 40) }, () => keyOf(rng));
  const held: Held[] = [];
  let tag = 0;
  const n = { commits: 0, failed: 0, cuts: 0, reopens: 0, compacts: 0, snaps: 0, snapReads: 0, maxHeldCommits: 0, maxPages: 0 };
  const born = new Map<Snapshot, number>();
  const batch = () => Array.from({ length: randInt(rng, 1, 4) }, () => {
    const key = rng() < 0.9 ? pick(rng, pool) : keyOf(rng);
    return { key, value: valueOf(valueSize(rng), ++tag) };
  });
  const apply = (m: Model, g: { key: Buffer; value: Buffer }[]) => { for (const e of g) m.set(hex(e.key), e.value); };
  const drop = (h: Held) => {
    held.splice(held.indexOf(h), 1);
    checker.snapshots.delete(h.snap);
    n.maxHeldCommits = Math.max(n.maxHeldCommits, n.commits - born.get(h.snap)!);
    h.snap.release();
  };
  const dropAll = () => { while (held.length) drop(held[0]); };
  const audit = (what: string) => {
    if (checker.violations.length) throw new Error(`${what}: ${checker.violations.slice(0, 3).join('; ')}`);
    const img = fs.readVolatile(DB)!;
    for (const x of metasOf(img)) checkFreelist(x);
  };
  // A power cut: the disk as some policy leaves it, and a store opened on it.
  const crash = async (salt: string) => {
    if (!fs.isFrozen) fs.freezeNow();
    fs = fs.powerCut(mulberry32(mixSeed(seed, salt)), CUT_POLICIES[pick(rng, ['random', 'tear', 'keepAll', 'dropAll'])]).fs;
    for (const h of held) checker.snapshots.delete(h.snap);
    held.length = 0;
    store = undefined;
    watch();
    await open();
    n.cuts++;
  };

  for (let step = 0; step < steps; step++) {
    const s = store!;
    const at = `seed ${seed} step ${step}`;
    const r = rng();
    if (process.env.REUSE_DEBUG) console.log(at, r.toFixed(3), held.length);
    if (r < 0.3 || r >= 0.94) {
      const groups = Array.from({ length: randInt(rng, 1, 3) }, batch);
      await Promise.all(groups.map((g) => s.putMany(g)));
      for (const g of groups) apply(model, g);
      n.commits += groups.length;
    } else if (r < 0.38) {
      // A run of commits one after another, so the snapshots held live across many of them.
      for (let i = randInt(rng, 5, 30); i > 0; i--) {
        const g = batch();
        await s.putMany(g);
        apply(model, g);
        n.commits++;
      }
    } else if (r < 0.48) {
      if (held.length < 6) {
        const snap = s.snapshot();
        checker.pin(snap);
        held.push({ snap, model: new Map(model) });
        born.set(snap, n.commits);
        n.snaps++;
      }
    } else if (r < 0.6 && held.length) {
      // Read a snapshot while a commit lands: a few keys, the whole of it now and then.
      const h = pick(rng, held);
      const g = batch();
      const put = s.putMany(g);
      const keys = [...h.model.keys()];
      for (let i = 0; i < 4 && keys.length; i++) {
        const k = pick(rng, keys);
        assert.ok((await h.snap.get(Buffer.from(k, 'hex')))?.equals(h.model.get(k)!), `${at}: snapshot ${h.snap.txid} key ${k.slice(0, 24)}`);
      }
      const absent = pool.find((k) => !h.model.has(hex(k)));
      if (absent) assert.is(await h.snap.get(absent), undefined, `${at}: snapshot ${h.snap.txid} holds a key it did not have`);
      if (rng() < 0.25) await expectView(`${at}: snapshot ${h.snap.txid}`, (k) => h.snap.get(k), h.model, h.snap);
      await put;
      apply(model, g);
      n.commits++;
      n.snapReads++;
    } else if (r < 0.66 && held.length) {
      const h = pick(rng, held);
      await expectView(`${at}: snapshot ${h.snap.txid} at release`, (k) => h.snap.get(k), h.model, h.snap);
      drop(h);
    } else if (r < 0.72) {
      // A large value read on the thread pool while a commit replaces it.
      const big = [...model].find(([, v]) => v.length > 256 * 1024);
      const g = batch();
      if (big) g.push({ key: Buffer.from(big[0], 'hex'), value: valueOf(valueSize(rng), ++tag) });
      const read = big ? s.get(Buffer.from(big[0], 'hex')) : undefined;
      await s.putMany(g);
      if (big) assert.ok((await read)?.equals(big[1]), `${at}: a large value read during its overwrite`);
      apply(model, g);
      n.commits++;
    } else if (r < 0.82) {
      fs.failNth(rng() < 0.6 ? 'writev' : 'datasync', randInt(rng, 1, 3), rng() < 0.5 ? 'EIO' : 'ENOSPC', rng() < 0.5);
      const g = batch();
      const err = await s.putMany(g).then(() => null, (e: unknown) => e);
      fs.clearFailures();
      if (err === null) apply(model, g);
      else {
        assert.ok(err instanceof StoreError && !err.outcomeUnknown, `${at}: ${String(err)}`);
        n.failed++;
      }
      n.commits++;
    } else if (r < 0.85) {
      // Power off during a commit (sometimes one that fails): the store holds the last acknowledged
      // commit or the one in flight, whole.
      const g = batch();
      if (rng() < 0.3) fs.failNth(rng() < 0.5 ? 'writev' : 'datasync', 1, 'EIO', rng() < 0.5);
      fs.cutAt(fs.opCount + randInt(rng, 1, 8));
      const put = s.putMany(g);
      put.catch(() => undefined);
      const outcome = await Promise.race([fs.cutReached.then(() => 'cut'), put.then(() => 'done', () => 'failed')]);
      if (outcome === 'done') apply(model, g);
      const cutOp = fs.cutOp;
      await crash(`cut ${step}`);
      if (outcome === 'cut') {
        const after = new Map(model);
        apply(after, g);
        const changed = g.filter((e) => !model.get(hex(e.key))?.equals(after.get(hex(e.key))!));
        const got = await Promise.all(changed.map((e) => store!.get(e.key)));
        const landed = changed.map((e, i) => got[i]?.equals(after.get(hex(e.key))!) === true);
        if (process.env.REUSE_DEBUG) console.log('cut', JSON.stringify([cutOp, g.map((e) => `${hex(e.key).slice(0, 16)}:${e.value.length}:${e.value.readUInt32LE(0)}`), got.map((x) => x && `${x.length}:${x.length >= 4 ? x.readUInt32LE(0) : ''}`), landed, store!.recoveryNote]));
        assert.ok(landed.every((x) => x === landed[0]), `${at}: a cut commit landed in part`);
        if (landed[0]) model = after;
      }
      await expectView(`${at}: after a power cut (${outcome})`, (k) => store!.get(k), model);
    } else if (r < 0.88) {
      await s.close();
      for (const h of held) {
        const e = await h.snap.get(pool[0]).then(() => null, (x: unknown) => x);
        assert.ok(e instanceof StoreError && e.code === 'CLOSED', `${at}: a snapshot read after close`);
      }
      dropAll();
      await open();
      n.reopens++;
      await expectView(`${at}: after a reopen`, (k) => store!.get(k), model);
    } else if (r < 0.94) {
      // Compaction, sometimes failing or cut short: snapshots from before it read the file it
      // replaced for as long as they are held.
      const fate = rng();
      if (fate < 0.25) fs.failNth(pick(rng, ['writev', 'datasync', 'rename', 'syncDir'] as const), randInt(rng, 1, 4), 'EIO');
      if (fate > 0.8) fs.cutAt(fs.opCount + randInt(rng, 1, 30));
      const pager = s.pager;
      // From the rename on, writes to the path go to the new file, and the snapshots read the old.
      let installing = false;
      const done = s.compact(undefined, { onInstall: () => { installing = true; for (const h of held) checker.snapshots.delete(h.snap); } });
      done.catch(() => undefined);
      // A snapshot taken while the copy runs, and a put that waits for it (not with a cut: its
      // outcome would be unknown).
      await new Promise((resolve) => setImmediate(resolve));
      let put: Promise<unknown> | undefined;
      const g = batch();
      if (!fs.isFrozen && !installing) {
        const snap = s.snapshot();
        checker.pin(snap);
        held.push({ snap, model: new Map(model) });
        born.set(snap, n.commits);
        if (fate <= 0.8) put = s.putMany(g).then(() => null, (e: unknown) => e);
      }
      const outcome = await Promise.race([fs.cutReached.then(() => 'cut'), done.then(() => 'done', () => 'failed')]);
      const putErr = await put;
      fs.clearFailures();
      if (fate > 0.8) {
        // Cut during it or just after it: the data file is the old one or the new one, whole.
        await crash(`compact ${step}`);
        await expectView(`${at}: after a power cut during compact() (${outcome})`, (k) => store!.get(k), model);
        audit(at);
        continue;
      }
      if (s.pager !== pager) watch();
      n.compacts++;
      if (s.isClosed) {
        // Installed, but the new file failed to open: the store closed itself. Open it again.
        await s.close();
        dropAll();
        await open();
      }
      if (putErr === null) apply(model, g);
      else if (put) assert.ok(putErr instanceof StoreError && !putErr.outcomeUnknown, `${at}: a put during compact(): ${String(putErr)}`);
      // A failed directory sync leaves the next commit to retry it; the store serves meanwhile.
      await expectView(`${at}: after compact() (${outcome})`, (k) => store!.get(k), model);
    }
    audit(at);
    n.maxPages = Math.max(n.maxPages, store!.stats().pageCount);
    assert.is(store!.stats().keys, model.size, `${at}: key count`);
  }
  for (const h of held.slice()) {
    await expectView(`seed ${seed}: snapshot ${h.snap.txid} at the end`, (k) => h.snap.get(k), h.model, h.snap);
    drop(h);
  }
  const growth = await steadyGrowth(store!, model, () => ++tag, () => audit(`seed ${seed}: steady overwrites`));
  await store!.close();
  return `${syncMode}-sync ${JSON.stringify(n)}, steady overwrites: page counts ${growth.join(' ')}`;
}

/** Rounds of overwrites of every key with a value of its present size, no snapshot open. What the
 *  last snapshots held comes free, so nothing stays pending but what the last two commits replaced,
 *  and the file stops growing: best fit may still cut a free run that a later value needed (one
 *  growth by about a value in a few seeds, then none over 40 rounds), never a round's worth per
 *  round. Returns the page count after each round. */
async function steadyGrowth(s: Store, model: Model, nextTag: () => number, audit: () => void): Promise<number[]> {
  const counts: number[] = [];
  const largest = Math.max(1, ...[...model.values()].map((v) => pagesFor(v.length)));
  for (let round = 0; round < 6; round++) {
    for (const [k, v] of model) {
      const value = valueOf(v.length, nextTag());
      await s.put(Buffer.from(k, 'hex'), value);
      model.set(k, value);
    }
    audit();
    counts.push(s.stats().pageCount);
  }
  const st = s.stats();
  assert.is(st.openSnapshots, 0);
  assert.ok(st.pendingFreePages <= 2 * (largest + 16), `${st.pendingFreePages} pages still pending with no snapshot open (largest value ${largest} pages)`);
  assert.ok(counts[5] - counts[2] <= 3 * (largest + 8), `the file grew under steady overwrites: page counts ${counts.join(' ')} (largest value ${largest} pages)`);
  await expectView('after the steady overwrites', (k) => s.get(k), model);
  return counts;
}

const seeds = seedList(process.env.LBKV_REUSE_SEEDS);
for (const tuning of [null, { freezeEntries: 4, fanout: 2 }]) {
  test(`snapshots held over many commits, failures, cuts and compaction: every snapshot reads its view, no page lost or reused early${tuning ? ' (small segments)' : ''}`, async () => {
    const saved = { ...segmentTuning };
    if (tuning) Object.assign(segmentTuning, tuning);
    try {
      for (const seed of seeds) {
        const mixed = tuning ? mixSeed(seed, 'small') : seed;
        try {
          console.log(`  seed ${seed}: ${await run(mixed, STEPS)}`);
        } catch (err) {
          console.error(`seed ${seed} failed; replay with LBKV_REUSE_SEEDS=${seed}`);
          throw err;
        }
      }
    } finally {
      Object.assign(segmentTuning, saved);
    }
  });
}

test.run();

// Randomized audit of page reuse (the checks are in test/support/page-audit.ts): every page write a
// commit makes is checked, as it is issued, against the pages that either valid meta in the file
// reaches (its tree, overflow runs, freelist pages and freelist segments) and the pages every open
// snapshot reaches; and each valid meta's freelist is checked not to list a page that meta itself
// uses, nor one page twice, and to leave no page unaccounted for. The workload mixes group commits
// of values around the overflow boundaries, 1024-byte keys, long-held snapshots, injected
// EIO/ENOSPC, clean reopens, power cuts in the middle of a commit (so open falls back to the older
// meta) and compaction with snapshots open. The seed is printed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Store, StoreError, type Snapshot } from '../../btree';
import type { Meta } from '../../btree/meta';
import { segmentTuning } from '../../btree/freelist';
import { MAX_CELL } from '../../btree/layout';
import { CUT_POLICIES, FaultFS, mulberry32, mixSeed, randInt, type Rng } from '../support/fault-fs';
import { ReuseChecker, shapes } from '../support/page-audit';

const DB = '/audit/lbkv.db';
const SEED = Number(process.env.LBKV_SEED ?? Date.now() % 1_000_000);
const STEPS = Number(process.env.LBKV_AUDIT_STEPS ?? 250);

// ---- workload --------------------------------------------------------------------------------

function valueSize(rng: Rng, keyLen: number): number {
  const inlineMax = MAX_CELL - 5 - keyLen;
  const r = rng();
  const edges = [0, 1, inlineMax, inlineMax + 1, 4095, 4096, 4097, 8191, 8192, 8193, 3 * 4096, 3 * 4096 + 1];
  if (r < 0.35) return edges[randInt(rng, 0, edges.length - 1)]!;
  if (r < 0.7) return randInt(rng, 0, 300);
  if (r < 0.97) return randInt(rng, 300, 20_000);
  return randInt(rng, 100_000, 400_000);
}

function keyOf(rng: Rng): Buffer {
  const r = rng();
  if (r < 0.08) return Buffer.from([0xff, 0xff, randInt(rng, 0, 2)].slice(0, randInt(rng, 1, 3)));
  const len = r < 0.25 ? randInt(rng, 900, 1024) : randInt(rng, 1, 12);
  const k = Buffer.alloc(len);
  for (let i = 0; i < len; i++) k[i] = [0, 0x61, 0xfe, 0xff][randInt(rng, 0, 3)]!;
  return k;
}

function valueOf(n: number, tag: number): Buffer {
  const v = Buffer.alloc(n);
  for (let i = 0; i < n; i += 509) v[i] = (tag * 7 + i) & 0xff;
  if (n >= 4) v.writeUInt32LE(tag >>> 0, n - 4);
  return v;
}

const hex = (b: Buffer) => b.toString('hex');

async function expectContents(read: (k: Buffer) => Promise<Buffer | undefined>, model: Map<string, Buffer>, what: string): Promise<void> {
  for (const [k, v] of model) {
    const got = await read(Buffer.from(k, 'hex'));
    if (!got || !got.equals(v)) throw new Error(`${what}: key ${k.slice(0, 24)} reads ${got ? `${got.length} bytes that differ` : 'nothing'}, expected ${v.length} bytes`);
  }
}

async function scanEquals(snap: Snapshot, model: Map<string, Buffer>, what: string, prefix?: Buffer): Promise<void> {
  const want = [...model.keys()].filter((k) => !prefix || k.startsWith(hex(prefix))).sort();
  const got: string[] = [];
  for await (const e of snap.range(prefix ? { prefix } : {})) {
    got.push(hex(e.key));
    const v = model.get(hex(e.key));
    if (!v || !v.equals(e.value)) throw new Error(`${what}: scan value of ${hex(e.key).slice(0, 24)} differs`);
  }
  assert.equal(got, want, `${what}: scan keys (prefix ${prefix ? hex(prefix) : 'none'})`);
}

async function auditRun(seed: number, steps: number, syncMode: 'one' | 'two'): Promise<string> {
  const rng = mulberry32(seed);
  let fs = new FaultFS();
  let store: Store | undefined;
  const checker = new ReuseChecker(fs, () => store, DB);
  const open = async () => { store = await Store.open({ path: DB, fs, cacheMB: 1, syncMode, growBytes: 64 * 1024 }); };
  await open();
  let model = new Map<string, Buffer>();
  const snaps: { snap: Snapshot; model: Map<string, Buffer> }[] = [];
  let tag = 0;
  const counts = { puts: 0, failed: 0, cuts: 0, fellBack: 0, reopens: 0, compacts: 0, compactCuts: 0, snaps: 0, maxRuns: 0 };
  const release = async (i: number, verify = true) => {
    const { snap, model: m } = snaps.splice(i, 1)[0]!;
    if (verify) await scanEquals(snap, m, `snapshot at txid ${snap.txid}`);
    checker.snapshots.delete(snap);
    snap.release();
  };
  // AUDIT_DEBUG=<hex prefix>: print every put of a matching key, to replay a failing seed.
  const trace = (step: number, what: string, g: { key: Buffer; value: Buffer }[]) => {
    if (!process.env.AUDIT_DEBUG) return;
    const hit = g.filter((x) => hex(x.key).startsWith(process.env.AUDIT_DEBUG!));
    const st = store as unknown as { meta: Meta } | undefined;
    if (hit.length) console.log(`  step ${step} ${what} txid ${st?.meta.txid}: ${hit.map((x) => `${hex(x.key)}=${x.value.length}`).join(' ')}`);
  };
  const pick = () => (rng() < 0.4 && model.size > 0 ? Buffer.from([...model.keys()][randInt(rng, 0, model.size - 1)]!, 'hex') : keyOf(rng));
  const batch = () => Array.from({ length: randInt(rng, 1, 6) }, () => {
    const k = pick();
    return { key: k, value: valueOf(valueSize(rng, k.length), ++tag) };
  });
  for (let step = 0; step < steps; step++) {
    const r = rng();
    const s = store!;
    if (r < 0.02 && model.size > 200) {
      // One commit over many leaves of a fragmented file: hundreds of runs, past what the meta can
      // list (such a commit syncs its pages before its meta).
      const keys = [...model.keys()];
      const big = Array.from({ length: randInt(rng, 300, 900) }, () => ({ key: Buffer.from(keys[randInt(rng, 0, keys.length - 1)]!, 'hex'), value: valueOf(randInt(rng, 0, 5000), ++tag) }));
      const before = s.stats();
      await s.putMany(big);
      for (const e of big) model.set(hex(e.key), e.value);
      trace(step, 'big', big);
      const after = s.stats();
      counts.maxRuns = Math.max(counts.maxRuns, after.commitRuns - before.commitRuns);
    } else if (r < 0.55) {
      // Concurrent puts: one or more group commits.
      const groups = Array.from({ length: randInt(rng, 1, 4) }, batch);
      await Promise.all(groups.map((g) => s.putMany(g)));
      for (const g of groups) trace(step, 'put', g);
      for (const g of groups) for (const e of g) model.set(hex(e.key), e.value);
      counts.puts += groups.length;
    } else if (r < 0.65) {
      const snap = s.snapshot();
      checker.pin(snap);
      snaps.push({ snap, model: new Map(model) });
      counts.snaps++;
    } else if (r < 0.72) {
      if (snaps.length) await release(randInt(rng, 0, snaps.length - 1));
    } else if (r < 0.8) {
      // A failed write or sync: the batch fails whole and nothing of it is applied.
      const kind = rng() < 0.6 ? 'writev' : 'datasync';
      const code = rng() < 0.5 ? 'EIO' : 'ENOSPC';
      const nth = randInt(rng, 1, 3);
      fs.failNth(kind, nth, code, rng() < 0.5);
      const g = batch();
      const e = await s.putMany(g).then(() => null, (x: unknown) => x);
      fs.clearFailures();
      trace(step, e === null ? 'put despite failure' : `failed ${(e as Error).message.slice(0, 80)}`, g);
      if (e === null) for (const x of g) model.set(hex(x.key), x.value);
      else {
        assert.ok(e instanceof StoreError && !e.outcomeUnknown, `step ${step}: ${String(e)}`);
        counts.failed++;
      }
      await expectContents((k) => s.get(k), model, `step ${step}: after a failed commit`);
    } else if (r < 0.86) {
      const prefix = rng() < 0.2 ? Buffer.alloc(0) : keyOf(rng).subarray(0, randInt(rng, 1, 2));
      const snap = s.snapshot();
      try {
        // Other commits land while the scan is under way.
        const extra = batch().map((e) => ({ key: Buffer.concat([prefix, e.key]).subarray(0, 1024), value: e.value }));
        const concurrent = s.putMany(extra);
        await scanEquals(snap, model, `step ${step}: scan`, prefix.length ? prefix : undefined);
        await concurrent;
        for (const e of extra) model.set(hex(e.key), e.value);
        trace(step, 'put during scan', extra);
      } finally {
        snap.release();
      }
    } else if (r < 0.9) {
      // A power cut in the middle of a commit (sometimes one that fails, so the cut may fall in
      // its rollback); the store reopens on the crashed disk, sometimes after a second cut during
      // that open.
      const g = batch();
      const k = randInt(rng, 1, 8);
      if (rng() < 0.4) fs.failNth(rng() < 0.5 ? 'writev' : 'datasync', randInt(rng, 1, 2), 'EIO', rng() < 0.5);
      fs.cutAt(fs.opCount + k);
      const put = s.putMany(g);
      put.catch(() => undefined);
      const outcome = await Promise.race([fs.cutReached.then(() => 'cut'), put.then(() => 'done', () => 'failed')]);
      if (outcome === 'done') for (const x of g) model.set(hex(x.key), x.value);
      trace(step, `cut step: ${outcome}`, g);
      if (process.env.AUDIT_DEBUG) console.log(`step ${step}: outcome ${outcome}, cut ${JSON.stringify(fs.cutOp)}, batch ${g.map((x) => `${hex(x.key).slice(0, 12)}:${x.value.length}`).join(' ')}, model had ${g.map((x) => model.get(hex(x.key))?.length).join(' ')}`);
      if (outcome !== 'cut') fs.freezeNow();
      const policy = () => CUT_POLICIES[['random', 'tear', 'keepAll', 'dropAll'][randInt(rng, 0, 3)]!]!;
      let crashed = fs.powerCut(mulberry32(mixSeed(seed, step)), policy()).fs;
      for (const x of snaps) checker.snapshots.delete(x.snap);
      snaps.length = 0;
      store = undefined;
      if (rng() < 0.3) {
        crashed.cutAt(randInt(rng, 1, 2));
        const early = await Promise.race([crashed.cutReached.then(() => undefined), Store.open({ path: DB, fs: crashed, cacheMB: 1, syncMode, growBytes: 64 * 1024 }).then((x) => x, () => undefined)]);
        // An open that finished before the cut is abandoned like a killed process.
        if (early || !crashed.isFrozen) crashed.freezeNow();
        crashed = crashed.powerCut(mulberry32(mixSeed(seed, step, 'open')), policy()).fs;
      }
      fs = crashed;
      checker.attach(fs);
      await open();
      counts.cuts++;
      if (store!.recoveryNote) counts.fellBack++;
      const withBatch = new Map(model);
      for (const x of g) withBatch.set(hex(x.key), x.value);
      const st = store!;
      // The batch is atomic: the store holds all of it or none. A key whose new value equals its
      // old one (two empty values) tells nothing, so look at one whose value changed.
      const probe = [...withBatch].find(([k, v]) => { const old = model.get(k); return g.some((x) => hex(x.key) === k) && !(old && old.equals(v)); });
      const got = probe && await st.get(Buffer.from(probe[0], 'hex'));
      if (outcome === 'cut' && probe && got?.equals(probe[1])) model = withBatch;
      await expectContents((key) => st.get(key), model, `step ${step}: after a power cut at op ${fs.opCount}`);
      assert.is(st.stats().keys, model.size, `step ${step}: key count after a power cut`);
    } else if (r < 0.96) {
      await s.close();
      await open();
      counts.reopens++;
      for (const x of snaps) checker.snapshots.delete(x.snap);
      snaps.length = 0;
      await expectContents((k) => store!.get(k), model, `step ${step}: after a reopen`);
    } else {
      // Compaction with snapshots open: they keep reading the old file. Sometimes the power goes
      // off during it: the data file is then the old one or the new one, both whole.
      if (rng() < 0.4) {
        fs.cutAt(fs.opCount + randInt(rng, 1, 40));
        const done = await Promise.race([fs.cutReached.then(() => false), s.compact().then(() => true, () => false)]);
        if (!fs.isFrozen) fs.freezeNow();
        for (const x of snaps) checker.snapshots.delete(x.snap);
        snaps.length = 0;
        store = undefined;
        fs = fs.powerCut(mulberry32(mixSeed(seed, step, 'compact')), CUT_POLICIES[['random', 'tear', 'keepAll', 'dropAll'][randInt(rng, 0, 3)]!]!).fs;
        checker.attach(fs);
        await open();
        counts.compactCuts++;
        await expectContents((k) => store!.get(k), model, `step ${step}: after a power cut during compact() (${done ? 'after it finished' : 'during it'})`);
        assert.is(store!.stats().keys, model.size, `step ${step}: key count after a power cut during compact()`);
        continue;
      }
      await s.compact();
      counts.compacts++;
      checker.attach(fs);
      for (const x of snaps) checker.snapshots.delete(x.snap);
      for (const x of snaps) await scanEquals(x.snap, x.model, `step ${step}: a snapshot from before compact()`);
      while (snaps.length) await release(0, false);
    }
    if (checker.violations.length) break;
  }
  while (snaps.length) await release(0);
  await expectContents((k) => store!.get(k), model, 'at the end');
  await store!.close();
  assert.equal(checker.violations.slice(0, 5), [], `seed ${seed}: ${checker.violations.length} violations`);
  return `${JSON.stringify(counts)}, ${checker.writesChecked} page writes checked, segment shapes ${JSON.stringify(shapes)}`;
}

for (const syncMode of ['one', 'two'] as const) {
  test(`page reuse audit (${syncMode}-sync, seed ${SEED}, ${STEPS} steps): no write touches a page a valid meta or an open snapshot reaches`, async () => {
    try {
      console.log(`  ${await auditRun(mixSeed(SEED, syncMode), STEPS, syncMode)}`);
    } catch (err) {
      console.error(`audit failed; replay with LBKV_SEED=${SEED}`);
      throw err;
    }
  });
}

for (const tuning of [{ freezeEntries: 4, fanout: 2 }, { freezeEntries: 40, fanout: 2 }]) test(`page reuse audit with small freelist segments ${JSON.stringify(tuning)} (seed ${SEED})`, async () => {
  const saved = { ...segmentTuning };
  Object.assign(segmentTuning, tuning);
  try {
    console.log(`  ${await auditRun(mixSeed(SEED, 'segments', tuning.freezeEntries), STEPS, 'one')}`);
  } catch (err) {
    console.error(`audit failed; replay with LBKV_SEED=${SEED}`);
    throw err;
  } finally {
    Object.assign(segmentTuning, saved);
  }
});

test.run();

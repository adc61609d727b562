// Power-cut simulation against the real engine (issue 2, "Power-cut simulation"; issue 4 item 2).
// The store runs on test/support/fault-fs.ts; see test/support/workload.ts for how a cut point is
// checked. Short version here (make test); the long one is test/torture/powercut-long.ts.
//
// Reproduce a failure: the message names the seed, syncMode, scenario and cut op; run
//   LBKV_POWERCUT_SEED=<seed> node dist/test/powercut.test.js
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Store, StoreError, type Snapshot } from '../btree';
import type { OpenOptions } from '../btree';
import { META_PAGES, PAGE_SIZE } from '../btree/layout';
import { segmentTuning } from '../btree/freelist';
import {
  CUT_POLICIES, FaultFS, mixSeed, mulberry32, POLICY_DROP_ALL, type OpRecord,
} from './support/fault-fs';
import {
  DB_PATH, describeValue, diffKV, keyFor, makeValue, readAll, runCampaign, sameKV, type KV,
} from './support/workload';

const SEED = Number(process.env.LBKV_POWERCUT_SEED ?? 20261127);
const CUTS_PER_MODE = Number(process.env.LBKV_POWERCUT_CUTS ?? 600);
const log = (s: string) => console.log(`  [powercut] ${s}`);

for (const syncMode of ['one', 'two'] as const) {
  test(`power cuts inside commits: ${CUTS_PER_MODE} cut points, syncMode '${syncMode}' (seed ${SEED})`, async () => {
    const started = Date.now();
    const r = await runCampaign({ seed: SEED, syncMode, cuts: CUTS_PER_MODE, imagesPerCut: 2, log });
    log(`syncMode ${syncMode}: ${r.cuts} cut points in ${r.scenarios} workloads, ${r.images} crash images, ${r.verified} verified, ` +
      `${r.recoveredInFlight} recovered the in-flight commit, ${r.fellBack} fell back because the newest commit failed its hash check, ${r.continued} took another commit after recovery, ` +
      `${r.compactions} workloads compacted (${r.compactionCuts} cut points inside a compaction), ` +
      `${r.failures.length} failures, ${((Date.now() - started) / 1000).toFixed(1)} s; cut ops: ${JSON.stringify(r.byKind)}`);
    assert.equal(r.failures, [], `seed ${SEED}`);
    assert.ok(r.cuts >= CUTS_PER_MODE, `only ${r.cuts} cut points`);
    assert.is(r.verified, r.images);
    // The cut points cover the whole protocol: page writes, the meta write, syncs, growth.
    for (const kind of ['writev(pages)', 'writev(meta)', 'datasync', 'truncate']) {
      assert.ok((r.byKind[kind] ?? 0) > 0, `no cut point of kind ${kind}: ${JSON.stringify(r.byKind)}`);
    }
  });
}

// The same through the real service handlers (lib/service.ts: Set, Get, GetPrefix with in-process
// fake calls): issue 4 item 2 asks for the service code path under power cuts.
const SERVICE_CUTS = Number(process.env.LBKV_POWERCUT_SERVICE_CUTS ?? 150);
for (const syncMode of ['one', 'two'] as const) {
  test(`power cuts through the service handlers (Set/Get/GetPrefix): ${SERVICE_CUTS} cut points, syncMode '${syncMode}'`, async () => {
    const r = await runCampaign({ seed: SEED + 1, syncMode, cuts: SERVICE_CUTS, imagesPerCut: 2, via: 'service', log });
    log(`service, syncMode ${syncMode}: ${r.cuts} cut points, ${r.images} crash images, ${r.verified} verified, ${r.failures.length} failures`);
    assert.equal(r.failures, [], `seed ${SEED + 1}`);
    assert.is(r.verified, r.images);
    assert.ok(r.cuts >= SERVICE_CUTS);
  });
}

// Both meta pages lost on top of the power cut: no commit to recover, so the store is rebuilt from
// its pages (Store.rebuild, lbserver --compact --salvage). Key by key it must give the last
// acknowledged value or the in-flight one, never an older, torn or foreign one, whatever the cut
// kept, dropped, tore or garbled.
const REBUILD_CUTS = Number(process.env.LBKV_POWERCUT_REBUILD_CUTS ?? 200);
for (const syncMode of ['one', 'two'] as const) {
  test(`power cuts, then both meta pages lost and the store rebuilt from its pages: ${REBUILD_CUTS} cut points, syncMode '${syncMode}'`, async () => {
    const r = await runCampaign({ seed: SEED + 2, syncMode, cuts: REBUILD_CUTS, imagesPerCut: 2, continueFraction: 0, rebuild: true, log });
    log(`rebuild, syncMode ${syncMode}: ${r.cuts} cut points, ${r.images} crash images, ${r.rebuilt} rebuilt and checked, ${r.failures.length} failures`);
    assert.equal(r.failures, [], `seed ${SEED + 2}`);
    assert.is(r.rebuilt, r.images);
    assert.ok(r.cuts >= REBUILD_CUTS);
  });
}

// ---------------------------------------------------------------------------------------------
// Injected I/O errors: the failed commit's batch rejects with IO / NO_SPACE, the store stays usable
// at the last commit, later puts succeed, and reopening (also after a power cut during the commits
// that follow the failure) shows exactly the acknowledged data.

// Where in the failing commit the error hits: the growth truncate and its sync, the page writes, the
// sync after the pages (two-sync mode), the meta write, the sync after the meta.
// 'metaSyncTwice': the sync after the meta fails and so does the next sync (whatever the engine does
// next: e.g. rewriting the slot's previous meta); the disk recovers after that.
// '...Partial': the failing write got half its sectors into the page cache before the error.
type Target = 'grow' | 'growSync' | 'pages' | 'pagesPartial' | 'pageSync' | 'meta' | 'metaPartial' | 'metaSync' | 'metaSyncTwice';
// A slot write: the meta page, with the root page after it (btree/layout.ts).
const isMeta = (op: OpRecord) => op.kind === 'writev' && op.file === DB_PATH && (op.pos ?? 0) < META_PAGES * PAGE_SIZE && (op.length ?? 0) <= 2 * PAGE_SIZE;
const isPages = (op: OpRecord) => op.kind === 'writev' && op.file === DB_PATH && !isMeta(op);
const TARGETS: Record<Target, (op: OpRecord, prev: OpRecord | null) => boolean> = {
  grow: (op) => op.kind === 'truncate',
  growSync: (op, prev) => op.kind === 'datasync' && prev?.kind === 'truncate',
  pages: (op) => isPages(op),
  pagesPartial: (op) => isPages(op) && (op.length ?? 0) >= 2 * 512,
  pageSync: (op, prev) => op.kind === 'datasync' && prev !== null && isPages(prev),
  meta: (op) => isMeta(op),
  metaPartial: (op) => isMeta(op),
  metaSync: (op, prev) => op.kind === 'datasync' && prev !== null && isMeta(prev),
  metaSyncTwice: (op, prev) => op.kind === 'datasync' && prev !== null && isMeta(prev),
};

interface FailRun {
  /** Contents after each phase that completed. */
  states: KV[];
  /** Index of the last phase whose puts all settled. */
  acked: number;
  /** op count when the failure was armed, and when the failing phase ended. */
  armedAt: number;
  opsAfterFailure: number;
  /** The failing phase's puts. */
  failPuts: { key: Buffer; v: Buffer }[];
  totalOps: number;
  problems: string[];
  triggered: boolean;
  /** A reject of the failing batch said its outcome is unknown (StoreError.outcomeUnknown). */
  unknown: boolean;
}

const GROW = 256 * 1024;
const opts = (fs: FaultFS, syncMode: 'one' | 'two'): OpenOptions => ({ path: DB_PATH, fs, syncMode, growBytes: GROW, cacheMB: 4 });

/**
 * Phases: 0 open; 1 and 2 ordinary commits; 3 the failing batch (3 concurrent puts, one of them
 * 700 KiB so the file must grow); 4, 5, 6 single-put commits afterwards. `cutAt`: lose power at that
 * op; `run.acked` then says how far it got.
 */
async function failureScenario(fs: FaultFS, syncMode: 'one' | 'two', target: Target, code: string, run: FailRun): Promise<void> {
  const expectCode = code === 'ENOSPC' ? 'NO_SPACE' : 'IO';
  let kv: KV = new Map();
  const store = await Store.open(opts(fs, syncMode));
  run.states.push(new Map(kv));
  run.acked = 0;
  let id = 1;
  const put = (i: number, size: number) => {
    const key = keyFor(i);
    const v = makeValue(id++, key, size);
    return { key, v, p: store.put(key, v) };
  };
  for (const phase of [1, 2]) {
    const ps = [put(phase * 10, 100), put(phase * 10 + 1, 5000), put(3, 300 + phase)];
    await Promise.all(ps.map((x) => x.p));
    for (const x of ps) kv.set(x.key.toString('latin1'), x.v);
    run.states.push(new Map(kv));
    run.acked = phase;
  }
  // Arm the failure for the next matching op.
  let prev: OpRecord | null = null;
  let hits = 0;
  const armedAt = fs.opCount;
  run.armedAt = armedAt;
  const want = target === 'metaSyncTwice' ? 2 : 1;
  fs.failWhen({
    match: (op) => {
      const hit = op.index > armedAt && (hits === 0 ? TARGETS[target](op, prev) : op.kind === 'datasync');
      prev = op;
      if (hit && ++hits >= 1) run.triggered = true;
      return hit;
    },
    code,
    times: want,
    partial: target.endsWith('Partial'),
  });
  const before = new Map(kv);
  const ps = [put(30, 700 * 1024), put(3, 50), put(10, 4096)];
  run.failPuts = ps.map((x) => ({ key: x.key, v: x.v }));
  const settled = await Promise.allSettled(ps.map((x) => x.p));
  let rejected = 0;
  settled.forEach((s, i) => {
    if (s.status === 'fulfilled') kv.set(ps[i]!.key.toString('latin1'), ps[i]!.v);
    else {
      rejected++;
      const e = s.reason;
      if (e instanceof StoreError && e.outcomeUnknown) run.unknown = true;
      if (!(e instanceof StoreError) || e.code !== expectCode) {
        run.problems.push(`put ${i} of the failing batch rejected with ${e instanceof StoreError ? e.code : 'a non-StoreError'} (${String(e)}), want StoreError ${expectCode}`);
      }
    }
  });
  if (run.triggered && rejected === 0) run.problems.push(`the injected ${code} on ${target} did not reject any put`);
  // Still usable at the last commit: reads show the acknowledged state (rejected puts absent).
  for (const x of ps) {
    const k = x.key.toString('latin1');
    const got = await store.get(x.key);
    const want = kv.get(k);
    if ((got === undefined) !== (want === undefined) || (got && want && !got.equals(want))) {
      run.problems.push(`after the failure get(${k}) = ${describeValue(got)}, want ${describeValue(want)} (before the batch: ${describeValue(before.get(k))})`);
    }
  }
  run.states.push(new Map(kv));
  run.acked = 3;
  run.opsAfterFailure = fs.opCount;
  for (const phase of [4, 5, 6]) {
    const x = put(phase === 5 ? 3 : 40 + phase, phase === 6 ? 70 * 1024 : 200);
    try {
      await x.p;
    } catch (e) {
      run.problems.push(`put in phase ${phase} after the failure rejected: ${String(e)}`);
      throw e;
    }
    kv = new Map(kv);
    kv.set(x.key.toString('latin1'), x.v);
    run.states.push(kv);
    run.acked = phase;
  }
  await store.close();
  run.totalOps = fs.opCount;
}

async function verifyReopen(fs: FaultFS, syncMode: 'one' | 'two', want: KV[], label: string): Promise<string | null> {
  let s: Store;
  try {
    s = await Store.open(opts(fs, syncMode));
  } catch (e) {
    return `${label}: open failed: ${String(e)}`;
  }
  try {
    const keys = new Set<string>();
    for (const st of want) for (const k of st.keys()) keys.add(k);
    const { kv, problems } = await readAll(s, keys);
    if (problems.length) return `${label}: ${problems.join('; ')}`;
    if (!want.some((w) => sameKV(kv, w))) return `${label}: recovered state matches none of the allowed ones; vs the first: ${diffKV(kv, want[0]!)}`;
    return null;
  } catch (e) {
    return `${label}: read failed: ${String(e)}`;
  } finally {
    await s.close().catch(() => undefined);
  }
}

const newRun = (): FailRun => ({ states: [], acked: 0, armedAt: 0, opsAfterFailure: 0, failPuts: [], totalOps: 0, problems: [], triggered: false, unknown: false });

/** A state plus all of the given puts. */
function withAll(base: KV, puts: { key: Buffer; v: Buffer }[]): KV {
  const s = new Map(base);
  for (const p of puts) s.set(p.key.toString('latin1'), p.v);
  return s;
}

/** A state plus any subset of the given puts. */
function withSubsets(base: KV, puts: { key: Buffer; v: Buffer }[]): KV[] {
  const out: KV[] = [];
  for (let mask = 0; mask < 1 << puts.length; mask++) {
    const s = new Map(base);
    puts.forEach((p, i) => { if (mask & (1 << i)) s.set(p.key.toString('latin1'), p.v); });
    out.push(s);
  }
  return out;
}

for (const syncMode of ['one', 'two'] as const) {
  for (const target of Object.keys(TARGETS) as Target[]) {
    if (target === 'pageSync' && syncMode === 'one') continue;
    for (const code of ['EIO', 'ENOSPC']) {
      test(`injected ${code} on ${target}, syncMode '${syncMode}': batch rejects, store usable, reopen and power cuts after it show exactly the acknowledged data`, async () => {
        const fs = new FaultFS();
        const run: FailRun = newRun();
        await failureScenario(fs, syncMode, target, code, run);
        assert.ok(run.triggered, `the ${target} failure never triggered (no matching op in the failing commit)`);
        assert.equal(run.problems, []);
        // Only when the rollback's own sync fails too can the store not promise that the batch is
        // gone for good; it must say so then, and only then.
        assert.is(run.unknown, target === 'metaSyncTwice', `outcomeUnknown on a reject: ${run.unknown}`);
        const final = run.states[run.states.length - 1]!;
        // Reopen: from the page cache, and from the disk after a cut that drops all un-synced writes.
        const e1 = await verifyReopen(fs.clone(), syncMode, [final], 'reopen after close');
        assert.is(e1, null, e1 ?? '');
        const e2 = await verifyReopen(fs.powerCut(mulberry32(1), POLICY_DROP_ALL).fs, syncMode, [final], 'reopen after close + power cut');
        assert.is(e2, null, e2 ?? '');
        // Power cuts at every op of the failing commit and its rollback, right after the failing batch
        // settled (before any later op: the failed commit's writes sit in the page cache and the
        // kernel may have written them back), and at every op after it. The recovered state must
        // be an acknowledged one (during the failing phase: the phase before plus any of its puts;
        // after a reject that said its outcome is unknown, also the phase before plus all of them,
        // until the next commit).
        const failures: string[] = [];
        let cuts = 0;
        const cutSpecs: { k: number; before: boolean }[] = [];
        for (let k = run.armedAt + 1; k <= run.opsAfterFailure; k++) cutSpecs.push({ k, before: false });
        cutSpecs.push({ k: run.opsAfterFailure + 1, before: true });
        for (let k = run.opsAfterFailure + 1; k <= run.totalOps; k++) cutSpecs.push({ k, before: false });
        for (const { k, before } of cutSpecs) {
          const f2 = new FaultFS();
          f2.cutAt(k, before);
          const r2: FailRun = newRun();
          const outcome = await Promise.race([f2.cutReached.then(() => 'cut'), failureScenario(f2, syncMode, target, code, r2).then(() => 'done', (e) => String(e))]);
          if (outcome !== 'cut') {
            failures.push(`cut ${before ? 'before' : 'at'} op ${k}: not reached (${outcome})`);
            continue;
          }
          await new Promise((r) => setImmediate(r));
          cuts++;
          const allowed = r2.acked === 2 && k <= run.opsAfterFailure
            ? withSubsets(r2.states[2]!, run.failPuts)
            : r2.states.slice(r2.acked).concat(run.states[r2.acked + 1] ? [run.states[r2.acked + 1]!] : []);
          // A batch rejected with an unknown outcome may come back whole, until the store's next
          // commit has made the rollback durable (phase 4 retries it before anything else).
          if (r2.unknown && r2.acked === 3) allowed.push(withAll(r2.states[3]!, run.failPuts));
          for (const [im, pol] of ['random', 'keepAll', 'tear', 'dropAll'].entries()) {
            const seed = mixSeed(SEED, syncMode, target, code, k, im);
            const crashed = f2.powerCut(mulberry32(seed), CUT_POLICIES[pol]!).fs;
            const err = await verifyReopen(crashed, syncMode, allowed,
              `${code} on ${target}, syncMode ${syncMode}, cut ${before ? 'before' : 'at'} op ${k} (${JSON.stringify(f2.cutOp)}), acknowledged phase ${r2.acked}, policy ${pol}, image seed ${seed}`);
            if (err) failures.push(err);
          }
        }
        assert.ok(cuts > 0);
        assert.equal(failures.slice(0, 5), [], `${failures.length} failures`);
      });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// A commit that writes more discontiguous runs than a meta page can list (about 400): syncMode 'one'
// must fall back to a sync before the meta. Checkerboard free space makes every new leaf its own run.

test(`syncMode 'one', a commit of ~500 discontiguous page runs (too many for the meta): cuts through it`, async () => {
  const N = 2000;
  const base = new FaultFS();
  const o = { ...opts(base, 'one'), growBytes: 1 << 20 };
  const s = await Store.open(o);
  const ps: Promise<void>[] = [];
  for (let i = 0; i < N; i++) ps.push(s.put(keyFor(i), makeValue(i, keyFor(i), 1500)));
  await Promise.all(ps);
  const p2: Promise<void>[] = [];
  for (let i = 0; i < N; i += 4) p2.push(s.put(keyFor(i), makeValue(10_000 + i, keyFor(i), 1500)));
  await Promise.all(p2);
  await s.put(Buffer.from('zz1'), Buffer.from('x'));
  await s.put(Buffer.from('zz2'), Buffer.from('x'));
  await s.close();
  const oldValue = (i: number) => makeValue(i % 4 === 0 ? 10_000 + i : i, keyFor(i), 1500);
  const newValue = (i: number) => (i % 4 === 2 ? makeValue(20_000 + i, keyFor(i), 1500) : oldValue(i));
  const batch = async (fs: FaultFS) => {
    const st = await Store.open({ ...o, fs });
    const b: Promise<void>[] = [];
    for (let i = 2; i < N; i += 4) b.push(st.put(keyFor(i), newValue(i)));
    await Promise.all(b);
    return st;
  };
  // Dry run: the op sequence of the big commit.
  const dry = base.clone();
  const startOps = dry.opCount;
  await (await batch(dry)).close();
  const ops = dry.trace.slice(startOps);
  const metaAt = ops.findIndex((op) => isMeta(op));
  assert.ok(ops.length > 420, `only ${ops.length} ops: the commit did not get fragmented enough`);
  assert.is(ops[metaAt - 1]?.kind, 'datasync', 'no sync before the meta: the commit with too many runs for the meta was not synced first');
  // Cut points: the first ops, the ops around the sync and meta, and a sample in between.
  const ks = new Set<number>();
  for (let i = 1; i <= 3; i++) ks.add(i);
  for (let i = metaAt - 2; i <= metaAt + 2; i++) if (i >= 0 && i < ops.length) ks.add(i + 1);
  const rng = mulberry32(SEED);
  while (ks.size < 16) ks.add(1 + Math.floor(rng() * ops.length));
  const failures: string[] = [];
  for (const k of [...ks].sort((a, b) => a - b)) {
    const fs = base.clone();
    fs.cutAt(startOps + k);
    const outcome = await Promise.race([fs.cutReached.then(() => 'cut'), batch(fs).then(() => 'done', (e) => String(e))]);
    if (outcome !== 'cut') {
      failures.push(`cut at op ${k} of the commit: not reached (${outcome})`);
      continue;
    }
    for (const [im, pol] of ['random', k % 2 ? 'tear' : 'keepAll'].entries()) {
      const crashed = fs.powerCut(mulberry32(mixSeed(SEED, 'runs', k, im)), CUT_POLICIES[pol]!).fs;
      const where = `cut at op ${k}/${ops.length} of the commit (${JSON.stringify(fs.cutOp)}), policy ${pol}`;
      let r: Store;
      try {
        r = await Store.open({ ...o, fs: crashed });
      } catch (e) {
        failures.push(`${where}: open failed: ${String(e)}`);
        continue;
      }
      try {
        let olds = 0;
        let news = 0;
        for (let i = 0; i < N; i++) {
          if (i % 4 !== 2 && i % 17 !== 0) continue; // the commit's keys and a sample of the others
          const v = await r.get(keyFor(i));
          if (v && v.equals(oldValue(i))) olds += i % 4 === 2 ? 1 : 0;
          else if (v && v.equals(newValue(i)) && i % 4 === 2) news++;
          else throw new Error(`key ${i}: ${describeValue(v)}, neither its old nor its new value`);
        }
        if (olds > 0 && news > 0) throw new Error(`a mix: ${olds} keys of the commit old, ${news} new`);
        if (r.stats().keys !== N + 2) throw new Error(`${r.stats().keys} keys`);
      } catch (e) {
        failures.push(`${where}: ${(e as Error).message}`);
      } finally {
        await r.close();
      }
    }
  }
  assert.equal(failures.slice(0, 5), [], `${failures.length} failures`);
});

// ---------------------------------------------------------------------------------------------
// Freelist segments (btree/freelist.ts): pages pinned by a long-held snapshot move out of the
// rewritten freelist into pages written once, segments of them into segments of references, and
// they come back into use after the snapshot is gone (a commit takes from a segment only what it
// needs). Cuts inside the commits that write, nest and load segments; after each, the recovered
// store must hold exactly the acknowledged puts (or those and the one in flight), and 40 more
// commits on it must not hand out a page twice (a page in a segment and in the free list would).

interface SegmentCase {
  /** segmentTuning while the case runs (the format does not depend on it). */
  tuning: typeof segmentTuning;
  /** At most this many of the commits that changed the segments have every op cut (the rest: a sample). */
  targetCommits: number;
  /** The dry run must reach this many levels of segments. */
  minLevels: number;
}

async function segmentCuts(name: string, c: SegmentCase): Promise<void> {
  const KEYS = 300;
  const COMMITS = 700;
  // The first commits run under snapshots and overwrite with one-page values (each frees a value
  // page and a leaf, which the snapshots pin); the later ones write five- to eight-page values, so
  // free space runs low and the segments are loaded back.
  const PINNED = 400;
  const base = new FaultFS();
  const o = opts(base, 'one');
  const rngOf = (seed: number) => mulberry32(mixSeed(SEED, name, seed));
  const valueOf = (id: number, k: Buffer, size = 150 + (id % 5) * 40) => makeValue(id, k, size);
  const saved = { ...segmentTuning };
  Object.assign(segmentTuning, c.tuning);
  try {
    {
      const s = await Store.open(o);
      await s.putMany(Array.from({ length: KEYS }, (_, i) => ({ key: keyFor(i), value: valueOf(i, keyFor(i)) })));
      await s.close();
    }
    const plan = Array.from({ length: COMMITS }, (_, n) => { const i = Math.floor(rngOf(n)() * KEYS); return { i, v: valueOf(10_000 + n, keyFor(i), n < PINNED ? 2500 + (n % 5) * 300 : 20_000 + (n % 5) * 2000) }; });
    const modelAfter = (n: number) => {
      const m = new Map<number, Buffer>();
      for (let i = 0; i < KEYS; i++) m.set(i, valueOf(i, keyFor(i)));
      for (let k = 0; k < n; k++) m.set(plan[k]!.i, plan[k]!.v);
      return m;
    };
    const dry = base.clone();
    // Op ranges (in the dry run) of the commits that changed the segments referenced.
    const segmentCommits: [number, number][] = [];
    const shape = (st: Store) => { const x = st.stats(); return `${x.freelistSegments}/${x.freelistLevels}/${x.freelistSegmentPages}`; };
    const run = async (fs: FaultFS, progress: { acked: number; segmentsSeen: number; loads: number; levels: number }) => {
      const st = await Store.open({ ...o, fs });
      // Two readers: the second one's snapshot falls among the pages segments list, so a segment
      // loaded while it is open must hold nothing freed after it.
      const snaps = [st.snapshot()];
      const check = async (snap: Snapshot, model: Map<number, Buffer>, which: string) => {
        for (const [i, v] of model) if (!(await snap.get(keyFor(i)))?.equals(v)) throw new Error(`${which} snapshot lost key ${i}: a page it pins was reused`);
        snap.release();
      };
      for (let n = 0; n < COMMITS; n++) {
        if (n === PINNED / 2) snaps.push(st.snapshot());
        if (n === (PINNED * 3) / 4) await check(snaps[0]!, modelAfter(0), 'the first');
        if (n === PINNED) await check(snaps[1]!, modelAfter(PINNED / 2), 'the second');
        const before = st.stats().freelistSegments;
        const shapeBefore = shape(st);
        const opsBefore = fs.opCount;
        await st.put(keyFor(plan[n]!.i), plan[n]!.v);
        progress.acked = n + 1;
        const after = st.stats().freelistSegments;
        progress.levels = Math.max(progress.levels, st.stats().freelistLevels);
        if (shape(st) !== shapeBefore && fs === dry) segmentCommits.push([opsBefore, fs.opCount]);
        if (after > before) progress.segmentsSeen++;
        if (after < before || (n >= PINNED && shape(st) !== shapeBefore)) progress.loads++;
      }
      return st;
    };
    const startOps = dry.opCount;
    const dryProgress = { acked: 0, segmentsSeen: 0, loads: 0, levels: 0 };
    const ds = await run(dry, dryProgress);
    const ops = dry.opCount - startOps; // the cut runs never close the store: its ops are not cut points
    await ds.close();
    const rng = mulberry32(mixSeed(SEED, name, 'cuts'));
    const ks = new Set<number>();
    const every = Math.max(1, Math.ceil(segmentCommits.length / c.targetCommits));
    segmentCommits.forEach(([from, to], j) => { if (j % every === 0) for (let op = from; op < to; op++) ks.add(op - startOps + 1); });
    const targeted = ks.size;
    while (ks.size < targeted + 24) ks.add(1 + Math.floor(rng() * ops));
    const failures: string[] = [];
    for (const k of [...ks].sort((a, b) => a - b)) {
      const fs = base.clone();
      fs.cutAt(startOps + k);
      const progress = { acked: 0, segmentsSeen: 0, loads: 0, levels: 0 };
      const outcome = await Promise.race([fs.cutReached.then(() => 'cut'), run(fs, progress).then(() => 'done', (e) => String(e))]);
      if (outcome !== 'cut') {
        failures.push(`cut at op ${k}: not reached (${outcome})`);
        continue;
      }
      const pol = ['random', 'tear', 'keepAll'][k % 3]!;
      const crashed = fs.powerCut(mulberry32(mixSeed(SEED, name, k)), CUT_POLICIES[pol]!).fs;
      const where = `cut at op ${k}/${ops} (after ${progress.acked} acknowledged puts, ${JSON.stringify(fs.cutOp)}), policy ${pol}`;
      let r: Store | undefined;
      try {
        r = await Store.open({ ...o, fs: crashed });
        const got = new Map<number, Buffer | undefined>();
        for (let i = 0; i < KEYS; i++) got.set(i, await r.get(keyFor(i)));
        const same = (m: Map<number, Buffer>) => [...m].every(([i, v]) => got.get(i)?.equals(v));
        const acked = modelAfter(progress.acked);
        if (!same(acked) && !same(modelAfter(progress.acked + 1))) throw new Error('the store holds neither the acknowledged puts nor those and the one in flight');
        // Reuse: 40 more commits, then every key must still read back what was last written.
        const want = same(acked) ? acked : modelAfter(progress.acked + 1);
        for (let n = 0; n < 40; n++) {
          const i = (k * 7 + n * 13) % KEYS;
          const v = valueOf(50_000 + n, keyFor(i));
          want.set(i, v);
          await r.put(keyFor(i), v);
        }
        await r.close();
        r = await Store.open({ ...o, fs: crashed });
        for (const [i, v] of want) {
          const g = await r.get(keyFor(i));
          if (!g?.equals(v)) throw new Error(`after 40 more commits and a reopen, key ${i}: ${describeValue(g)}`);
        }
      } catch (e) {
        failures.push(`${where}: ${(e as Error).message}`);
      } finally {
        await r?.close().catch(() => undefined);
      }
    }
    log(`${name}: ${COMMITS} commits (${PINNED} under a snapshot: ${dryProgress.segmentsSeen} made a segment, ${dryProgress.levels} levels; after it ${dryProgress.loads} took from one), ${ops} ops, ${ks.size} cuts (${targeted} in ${Math.ceil(segmentCommits.length / every)} of the ${segmentCommits.length} commits that changed the segments)`);
    assert.ok(dryProgress.segmentsSeen >= 2, `only ${dryProgress.segmentsSeen} segments written: the test does not reach the code it is for`);
    assert.ok(dryProgress.levels >= c.minLevels, `${dryProgress.levels} levels of segments, fewer than ${c.minLevels}`);
    assert.ok(dryProgress.loads >= 1, 'no segment was loaded back after the snapshot was released');
    assert.equal(failures.slice(0, 5), [], `${failures.length} failures`);
  } finally {
    Object.assign(segmentTuning, saved);
  }
}

test('power cuts while freelist segments are written and loaded back: acknowledged data, no page handed out twice', () =>
  segmentCuts('segments', { tuning: { ...segmentTuning }, targetCommits: 30, minLevels: 1 }));

test('power cuts while segments nest several levels deep (small segments, fan-out 2) and come back: acknowledged data, no page handed out twice', () =>
  segmentCuts('nested segments', { tuning: { freezeEntries: 6, fanout: 2 }, targetCommits: 30, minLevels: 4 }));

// ---------------------------------------------------------------------------------------------
// Read errors and a failing compaction.

test('EIO on a page read: get rejects with IO (not CORRUPTION, not a wrong value); the next read works', async () => {
  for (const syncMode of ['one', 'two'] as const) {
    const fs = new FaultFS();
    const s = await Store.open(opts(fs, syncMode));
    const ps: Promise<void>[] = [];
    for (let i = 0; i < 300; i++) ps.push(s.put(keyFor(i), makeValue(i, keyFor(i), i % 7 === 0 ? 9000 : 200)));
    await Promise.all(ps);
    await s.close();
    const s2 = await Store.open(opts(fs, syncMode)); // a cold cache: gets read pages
    fs.failReads((file, pos) => file === DB_PATH && pos >= META_PAGES * PAGE_SIZE, 'EIO', 1);
    const e = await s2.get(keyFor(150)).then(() => null, (err) => err);
    assert.ok(e instanceof StoreError, `got ${String(e)}`);
    assert.is((e as StoreError).code, 'IO', (e as Error).message);
    assert.equal(await s2.get(keyFor(150)), makeValue(150, keyFor(150), 200));
    // An overflow value read that fails (async read path).
    fs.failReads((file, _pos, len) => file === DB_PATH && len >= 8192, 'EIO', 1);
    const e2 = await s2.get(keyFor(7)).then(() => null, (err) => err);
    assert.ok(e2 instanceof StoreError && e2.code === 'IO', `overflow read: got ${String(e2)}`);
    assert.equal(await s2.get(keyFor(7)), makeValue(7, keyFor(7), 9000));
    await s2.close();
  }
});

test('EIO reading a meta page at open: open rejects with IO, a later open works', async () => {
  const fs = new FaultFS();
  const s = await Store.open(opts(fs, 'one'));
  await s.put(keyFor(1), Buffer.from('v'));
  await s.close();
  fs.failReads((file, pos) => file === DB_PATH && pos < 8192, 'EIO', 1);
  const e = await Store.open(opts(fs, 'one')).then(() => null, (err) => err);
  assert.ok(e instanceof StoreError, `got ${String(e)}`);
  assert.is((e as StoreError).code, 'IO', (e as Error).message);
  const s2 = await Store.open(opts(fs, 'one'));
  assert.equal(await s2.get(keyFor(1)), Buffer.from('v'));
  await s2.close();
});

test('ENOSPC during compaction: compact rejects, the store keeps serving and committing; reopen and a cut show the acknowledged data', async () => {
  for (const syncMode of ['one', 'two'] as const) {
    for (const nth of [1, 2, 3]) {
      const fs = new FaultFS();
      const s = await Store.open(opts(fs, syncMode));
      const kv: KV = new Map();
      for (let round = 0; round < 3; round++) {
        const ps: Promise<void>[] = [];
        for (let i = 0; i < 40; i++) {
          const k = keyFor(i);
          const v = makeValue(round * 100 + i, k, (i * 997) % 30000);
          kv.set(k.toString('latin1'), v);
          ps.push(s.put(k, v));
        }
        await Promise.all(ps);
      }
      // Fail the nth write to the compaction's new file.
      let seen = 0;
      fs.failWhen({ match: (op) => op.kind === 'writev' && op.file.includes('.compact') && ++seen === nth, code: 'ENOSPC' });
      const e = await s.compact().then(() => null, (err) => err);
      assert.ok(e instanceof StoreError, `${syncMode} nth ${nth}: compact: ${String(e)}`);
      assert.is((e as StoreError).code, 'NO_SPACE', (e as Error).message);
      const { kv: now, problems } = await readAll(s, kv.keys());
      assert.equal(problems, []);
      assert.ok(sameKV(now, kv), diffKV(now, kv));
      await s.put(keyFor(500), Buffer.from('after'));
      kv.set(keyFor(500).toString('latin1'), Buffer.from('after'));
      // A compaction that succeeds afterwards.
      await s.compact();
      await s.put(keyFor(501), Buffer.from('after2'));
      kv.set(keyFor(501).toString('latin1'), Buffer.from('after2'));
      await s.close();
      const err = await verifyReopen(fs.powerCut(mulberry32(nth), POLICY_DROP_ALL).fs, syncMode, [kv], `${syncMode} nth ${nth}: after close + cut`);
      assert.is(err, null, err ?? '');
    }
  }
});

test.run();

// Deterministic concurrent put workload on a Store over the power-cut simulator, the model of what
// each commit contains, and the power-cut campaign shared by test/powercut.test.ts (short) and
// test/torture/powercut-long.ts (long).
//
// How a cut point is checked
// 1. Dry run: the workload runs to the end on a fresh FaultFS. Every put records the number of
//    completed I/O ops at the moment its promise resolved; puts of one commit resolve together (after
//    that commit's last sync), so that number identifies the commit ("batch"). Sorting the batches
//    gives the commit order and the model state S_i after each commit i (S_0: before the workload).
// 2. Cut run at op k: the same workload on a fresh FaultFS scheduled to lose power during its k-th
//    I/O op. The simulator is deterministic, so the run is identical to the dry run up to op k; this
//    is verified (same op trace, same batch per acknowledged put).
// 3. For each crash image (keep / drop / tear / garble of each un-synced write): Store.open must
//    succeed and the recovered contents must equal exactly S_a (a = last commit acknowledged in the
//    cut run) or S_(a+1) (the commit in flight): never a mix, never a torn value, nothing from a
//    batch that was not in flight. Some recovered stores also take one more commit, are reopened
//    after a drop-everything cut, and are checked again (the freelist after recovery must not reuse
//    pages the recovered commit still needs).
import * as zlib from 'node:zlib';
import { Store, StoreError } from '../../btree';
import type { OpenOptions } from '../../btree';
import { driverFor, type Driver, type Via } from './driver';
import {
  CUT_POLICIES, FaultFS, mixSeed, mulberry32, pick, POLICY_DROP_ALL, randInt, randomBytes,
  type CutPolicy, type OpRecord, type Rng,
} from './fault-fs';

export const DB_DIR = '/db';
export const DB_PATH = '/db/data.lbkv';

// ---------------------------------------------------------------------------------------------
// Keys and values

export function keyFor(i: number): Buffer {
  const base = Buffer.from(`k${String(i).padStart(4, '0')}`, 'latin1');
  // A few long keys and keys with 0x00 / 0xff bytes, so keys are not all alike.
  if (i % 11 === 3) return Buffer.concat([base, Buffer.alloc(200 + (i % 50), 0x61 + (i % 26))]);
  if (i % 13 === 5) return Buffer.concat([base, Buffer.from([0xff, 0x00, 0xff])]);
  return base;
}

let pool: Buffer | null = null;
function valuePool(): Buffer {
  if (!pool) pool = randomBytes(mulberry32(0x5eed), 1 << 20);
  return pool;
}

/** Value sizes 0 B .. maxValue, weighted towards small values and page-size boundaries. */
export function valueSize(rng: Rng, maxValue: number): number {
  const r = rng();
  let n: number;
  if (r < 0.3) n = randInt(rng, 0, 64);
  else if (r < 0.55) n = randInt(rng, 65, 2000);
  else if (r < 0.7) n = pick(rng, [2030, 2036, 2037, 2048, 4095, 4096, 4097, 8191, 8192, 8193, 12288]);
  else if (r < 0.9) n = randInt(rng, 2049, 40 * 1024);
  else n = randInt(rng, 40 * 1024, maxValue);
  return Math.min(n, maxValue);
}

/** A self-describing value: "LBKV" putId keyCrc length, then bytes from a fixed random pool. */
export function makeValue(putId: number, key: Buffer, size: number): Buffer {
  const v = Buffer.allocUnsafe(size);
  const p = valuePool();
  const off = (putId * 7919) % (p.length - size);
  p.copy(v, 0, off, off + size);
  if (size >= 16) {
    v.write('LBKV', 0, 'latin1');
    v.writeUInt32LE(putId, 4);
    v.writeUInt32LE(zlib.crc32(key), 8);
    v.writeUInt32LE(size, 12);
  }
  return v;
}

/** What a value says about itself (for failure messages). */
export function describeValue(v: Buffer | undefined): string {
  if (v === undefined) return 'absent';
  if (v.length >= 16 && v.toString('latin1', 0, 4) === 'LBKV') {
    return `${v.length} B (put #${v.readUInt32LE(4)}${v.readUInt32LE(12) !== v.length ? `, header says ${v.readUInt32LE(12)} B` : ''})`;
  }
  return `${v.length} B`;
}

const kstr = (k: Buffer) => k.toString('latin1');

// ---------------------------------------------------------------------------------------------
// Workload

export interface WorkloadSpec {
  /** Concurrent clients, each doing sequential puts (sometimes a burst of concurrent ones). */
  clients: number;
  /** Put calls (or bursts) per client. */
  opsPerClient: number;
  /** Distinct keys: overwrites are common. */
  keyPool: number;
  /** Probability that a client step is a burst of 2..4 concurrent puts. */
  burstProb: number;
  maxValue: number;
  /** With the engine API: probability that the workload also compacts the store once, midway. */
  compactProb?: number;
}

export const DEFAULT_SPEC: WorkloadSpec = { clients: 4, opsPerClient: 8, keyPool: 40, burstProb: 0.3, maxValue: 200 * 1024, compactProb: 0.4 };

export interface PutRec {
  id: number;
  key: Buffer;
  value: Buffer;
  /** fs.completedOps when the put resolved: identifies its commit. */
  batch?: number;
  error?: unknown;
}

/** Runs the workload; resolves when every put settled (never, after a cut). Puts are pushed to
 *  `puts` as they are issued. No two puts of the same key are ever in flight at once, so the order of
 *  puts within a commit never matters. With `store` (engine API), some steps are putMany calls (all
 *  their entries must land in one commit: the model checks that) and one more client holds read
 *  snapshots across commits (pinning pages, which changes page reuse). */
export async function runWorkload(put: (key: Buffer, value: Buffer) => Promise<void>, fs: FaultFS, spec: WorkloadSpec, seed: number, puts: PutRec[], firstId = 1, store?: Store): Promise<void> {
  const rng = mulberry32(seed);
  const inflight = new Set<string>();
  let nextId = firstId;
  const pickKey = (): Buffer => {
    let i = randInt(rng, 0, spec.keyPool - 1);
    for (let tries = 0; tries < spec.keyPool; tries++, i = (i + 1) % spec.keyPool) {
      const k = keyFor(i);
      if (!inflight.has(kstr(k))) return k;
    }
    return keyFor(spec.keyPool + nextId); // every pool key busy: a fresh key
  };
  const one = (): Promise<void> => {
    const key = pickKey();
    const id = nextId++;
    const rec: PutRec = { id, key, value: makeValue(id, key, valueSize(rng, spec.maxValue)) };
    puts.push(rec);
    inflight.add(kstr(key));
    return put(key, rec.value).then(
      () => {
        rec.batch = fs.completedOps;
        inflight.delete(kstr(key));
      },
      (e) => {
        rec.error = e;
        inflight.delete(kstr(key));
      },
    );
  };
  const many = (st: Store): Promise<void> => {
    const n = randInt(rng, 2, 3);
    const recs: PutRec[] = [];
    const seen = new Set<string>();
    for (let j = 0; j < n; j++) {
      const key = pickKey();
      if (seen.has(kstr(key))) continue;
      seen.add(kstr(key));
      const id = nextId++;
      recs.push({ id, key, value: makeValue(id, key, valueSize(rng, spec.maxValue / 2)) });
    }
    for (const r of recs) {
      puts.push(r);
      inflight.add(kstr(r.key));
    }
    return st.putMany(recs.map((r) => ({ key: r.key, value: r.value }))).then(
      () => {
        for (const r of recs) {
          r.batch = fs.completedOps;
          inflight.delete(kstr(r.key));
        }
      },
      (e) => {
        for (const r of recs) {
          r.error = e;
          inflight.delete(kstr(r.key));
        }
      },
    );
  };
  const tick = () => new Promise((r) => setImmediate(r));
  const reader = async (st: Store): Promise<void> => {
    for (let round = 0; round < 3; round++) {
      for (let i = randInt(rng, 0, 10); i > 0; i--) await tick();
      const snap = st.snapshot();
      try {
        for (let i = randInt(rng, 5, 40); i > 0; i--) await tick();
        let n = 0;
        for await (const e of snap.range({ limit: 20 })) n += e.value.length >= 0 ? 1 : 0;
        void n;
      } finally {
        snap.release();
      }
    }
  };
  const client = async (c: number): Promise<void> => {
    // Stagger the clients a little so commits form while others sync.
    for (let i = 0; i < c; i++) await tick();
    for (let i = 0; i < spec.opsPerClient; i++) {
      if (store && rng() < 0.15) {
        await many(store);
      } else if (rng() < spec.burstProb) {
        const n = randInt(rng, 2, 4);
        const ps: Promise<void>[] = [];
        for (let j = 0; j < n; j++) ps.push(one());
        await Promise.all(ps);
      } else {
        await one();
      }
    }
  };
  const cs: Promise<void>[] = [];
  for (let c = 0; c < spec.clients; c++) cs.push(client(c));
  if (store) cs.push(reader(store));
  if (store && rng() < (spec.compactProb ?? 0)) {
    // Compaction midway: a new file, a rename over the data file, puts waiting meanwhile.
    const delay = randInt(rng, 5, 60);
    cs.push((async () => {
      for (let i = 0; i < delay; i++) await tick();
      await store.compact();
    })());
  }
  await Promise.all(cs);
}

// ---------------------------------------------------------------------------------------------
// Model

export type KV = Map<string, Buffer>;

export interface Model {
  /** Commit order: batch ids (fs.completedOps at resolution), ascending. */
  batches: number[];
  /** states[i]: contents after commit i (states[0]: before the workload). */
  states: KV[];
  /** Batch id -> commit index (1-based). */
  indexOf: Map<number, number>;
}

export function buildModel(base: KV, puts: PutRec[]): Model {
  const byBatch = new Map<number, PutRec[]>();
  for (const p of puts) {
    if (p.batch === undefined) continue;
    let l = byBatch.get(p.batch);
    if (!l) byBatch.set(p.batch, (l = []));
    l.push(p);
  }
  const batches = [...byBatch.keys()].sort((a, b) => a - b);
  const states: KV[] = [new Map(base)];
  const indexOf = new Map<number, number>();
  batches.forEach((b, i) => {
    const s = new Map(states[i]!);
    for (const p of byBatch.get(b)!) s.set(kstr(p.key), p.value);
    states.push(s);
    indexOf.set(b, i + 1);
  });
  return { batches, states, indexOf };
}

/** Reads the whole store (a range scan, or GetPrefix through the service), and checks that get()
 *  agrees with it for every key in `keys`. */
export async function readAll(d: Driver | Store, keys: Iterable<string>): Promise<{ kv: KV; problems: string[] }> {
  const driver: Driver = d instanceof Store ? driverFor('engine', d) : d;
  const kv: KV = new Map();
  const problems: string[] = [];
  let prev: Buffer | null = null;
  for (const e of await driver.scan()) {
    if (prev && Buffer.compare(prev, e.key) >= 0) problems.push(`scan out of order at ${JSON.stringify(kstr(e.key))}`);
    prev = e.key;
    kv.set(kstr(e.key), e.value);
  }
  for (const k of keys) {
    const v = await driver.get(Buffer.from(k, 'latin1'));
    const r = kv.get(k);
    if ((v === undefined) !== (r === undefined) || (v && r && !v.equals(r))) {
      problems.push(`get(${JSON.stringify(k.slice(0, 12))}) = ${describeValue(v)} but the scan gave ${describeValue(r)}`);
    }
  }
  return { kv, problems };
}

export function sameKV(a: KV, b: KV): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (!w || !w.equals(v)) return false;
  }
  return true;
}

/** Explains how `got` differs from `want` (first few differences). */
export function diffKV(got: KV, want: KV, max = 5): string {
  const out: string[] = [];
  for (const [k, v] of want) {
    const g = got.get(k);
    if (!g || !g.equals(v)) out.push(`${JSON.stringify(k.slice(0, 12))}: got ${describeValue(g)}, want ${describeValue(v)}`);
  }
  for (const [k, g] of got) if (!want.has(k)) out.push(`${JSON.stringify(k.slice(0, 12))}: got ${describeValue(g)}, want absent`);
  return `${out.length} differences${out.length ? ': ' + out.slice(0, max).join('; ') : ''}`;
}

// ---------------------------------------------------------------------------------------------
// The campaign

export interface CampaignOptions {
  seed: number;
  syncMode: 'one' | 'two';
  /** Number of distinct cut points (op indexes in a run) to test. */
  cuts: number;
  /** Crash images per cut point (each with a different policy / rng). Default 2. */
  imagesPerCut?: number;
  /** Fraction of recovered stores that take another commit and are checked again. Default 0.25. */
  continueFraction?: number;
  spec?: Partial<WorkloadSpec>;
  /** File growth step for the engine (small, so growth happens during the workload). */
  growBytes?: number;
  log?: (line: string) => void;
  /** Drive puts and reads through the engine API (default) or the gRPC service handlers. */
  via?: Via;
  /** Stop after this many failures (default 10). */
  maxFailures?: number;
  /** Wall-clock budget; the campaign stops early (and says so) when exceeded. */
  deadlineMs?: number;
  /** Each crash image also loses both meta pages and is rebuilt from its pages (Store.rebuild):
   *  every key must then hold its value of the last acknowledged commit or of the one in flight. A
   *  rebuild goes key by key, so a mix of the two is allowed; an older value, a torn one or a key
   *  that was never there is not. */
  rebuild?: boolean;
}

export interface CampaignResult {
  cuts: number;
  /** Cut points all of whose crash images recovered correctly. */
  cutsVerified: number;
  images: number;
  /** Crash images that recovered correctly. */
  verified: number;
  failures: string[];
  /** Cut points by the kind of op that was cut. */
  byKind: Record<string, number>;
  /** How many crash images recovered the in-flight commit rather than the acknowledged one. */
  recoveredInFlight: number;
  /** Recoveries whose newest meta decoded but its commit failed the hash check (Store.recoveryNote set). */
  fellBack: number;
  continued: number;
  scenarios: number;
  /** Crash images rebuilt from their pages and checked (with `rebuild`). */
  rebuilt: number;
  /** Scenarios whose workload compacted the store (and cut points inside a compaction). */
  compactions: number;
  compactionCuts: number;
  stoppedEarly: boolean;
}

function classify(op: OpRecord, dbPath: string): string {
  if (op.file !== dbPath && op.kind !== 'syncDir' && op.kind !== 'rename') return `${op.kind}(other file)`;
  if (op.kind === 'writev') return (op.pos ?? 0) < 8192 && (op.length ?? 0) <= 8192 ? 'writev(meta)' : 'writev(pages)';
  return op.kind;
}

interface Scenario {
  id: number;
  seed: number;
  base: FaultFS | null; // null: start from no file (covers creation)
  baseKV: KV;
  /** Crashed bases: per key, the values of puts the base's crash left unanswered. */
  baseUnacked: Map<string, Buffer[]>;
  puts: PutRec[];
  model: Model;
  trace: OpRecord[];
}

function openOpts(fs: FaultFS, o: CampaignOptions): OpenOptions {
  return { path: DB_PATH, fs, syncMode: o.syncMode, growBytes: o.growBytes ?? 256 * 1024, cacheMB: 4 };
}

/** A base file with some history (several commits, overwrites, freed pages), closed cleanly. */
async function buildBase(o: CampaignOptions, seed: number): Promise<{ fs: FaultFS; kv: KV }> {
  const rng = mulberry32(seed);
  let fs = new FaultFS();
  const store = await Store.open(openOpts(fs, o));
  const kv: KV = new Map();
  let id = 1_000_000;
  for (let round = 0; round < 4; round++) {
    const ps: Promise<void>[] = [];
    const n = randInt(rng, 20, 60);
    for (let i = 0; i < n; i++) {
      const key = keyFor(randInt(rng, 0, 120));
      if (kv.has(kstr(key)) && ps.length && rng() < 0.5) continue;
      const v = makeValue(id++, key, valueSize(rng, 16 * 1024));
      kv.set(kstr(key), v);
      ps.push(store.put(key, v));
    }
    await Promise.all(ps);
  }
  await store.close();
  fs = fs.powerCut(rng, POLICY_DROP_ALL).fs; // exactly what close() made durable
  const check = await Store.open(openOpts(fs.clone(), o));
  const { kv: got } = await readAll(check, []);
  await check.close();
  if (!sameKV(got, kv)) throw new Error(`base file (seed ${seed}) does not hold what was written: ${diffKV(got, kv)}`);
  return { fs, kv };
}

/** The raw crash image of a cut in the middle of a workload on a file with history: reopening it
 *  runs recovery (possibly falling back to the older meta) before the next workload. */
async function buildCrashedBase(o: CampaignOptions, spec: WorkloadSpec, seed: number): Promise<{ fs: FaultFS; kv: KV; unacked: Map<string, Buffer[]> }> {
  const rng = mulberry32(seed);
  const clean = await buildBase(o, mixSeed(seed, 'clean'));
  const fs = clean.fs.clone();
  // Count the ops of the workload, then cut at a random one of them.
  const probe = clean.fs.clone();
  const ps = await Store.open(openOpts(probe, o));
  // Cut among the workload's ops, not the open before it (open syncs the file, and the open below
  // is not raced against the cut: cuts inside open are the cut points' business) nor the close
  // that follows in the probe (the crashed run never closes: a cut there would never be reached).
  const opened = probe.opCount;
  await runWorkload((k, v) => ps.put(k, v), probe, spec, seed, [], 3_000_000, ps);
  const ops = probe.opCount;
  await ps.close();
  const cut = randInt(rng, opened + 1, ops);
  fs.cutAt(cut);
  const store = await Store.open(openOpts(fs, o));
  const sent: PutRec[] = [];
  const ran = runWorkload((k, v) => store.put(k, v), fs, spec, seed, sent, 3_000_000, store).then(() => 'finished' as const, () => 'stopped' as const);
  // Waiting on the cut alone would hang (and a Node process whose only work is a promise that never
  // settles exits 0, silently) if the run ever did fewer ops than the probe.
  const outcome = await Promise.race([fs.cutReached.then(() => 'cut' as const), ran]);
  if (outcome !== 'cut') throw new Error(`crashed base (seed ${seed}): the workload ${outcome} before op ${cut} of ${ops}`);
  const crashed = fs.powerCut(rng, pick(rng, [CUT_POLICIES.random!, CUT_POLICIES.tear!])).fs;
  // Whatever it recovers to is the base state (its correctness is what the cut points check).
  const r = await Store.open(openOpts(crashed.clone(), o));
  const { kv } = await readAll(r, []);
  await r.close();
  // Puts the crash left unanswered: recovery dropped them, but their pages may still be in the file.
  const unacked = new Map<string, Buffer[]>();
  for (const p of sent) if (p.batch === undefined && !p.error) unacked.set(kstr(p.key), [...(unacked.get(kstr(p.key)) ?? []), p.value]);
  return { fs: crashed, kv, unacked };
}

async function dryRun(o: CampaignOptions, spec: WorkloadSpec, id: number): Promise<Scenario> {
  const seed = mixSeed(o.seed, o.syncMode, id);
  // Scenario kinds: 0 a new file (covers creation), 1 a cleanly closed file with history, 2 the raw
  // image of an earlier power cut (recovery, then the workload, then another cut).
  const kind = id % 3;
  const base: { fs: FaultFS; kv: KV; unacked?: Map<string, Buffer[]> } | null = kind === 0 ? null : kind === 1 ? await buildBase(o, mixSeed(seed, 'base')) : await buildCrashedBase(o, spec, mixSeed(seed, 'crashed'));
  const fs = base ? base.fs.clone() : new FaultFS();
  const store = await Store.open(openOpts(fs, o));
  const puts: PutRec[] = [];
  await runWorkload(driverFor(o.via ?? 'engine', store).put, fs, spec, seed, puts, 1, o.via === 'service' ? undefined : store);
  const failed = puts.filter((p) => p.error);
  if (failed.length) throw new Error(`dry run (seed ${seed}): ${failed.length} puts failed: ${String(failed[0]!.error)}`);
  const trace = fs.trace.slice();
  await store.close();
  const baseKV = base ? base.kv : new Map<string, Buffer>();
  const baseUnacked = base?.unacked ?? new Map<string, Buffer[]>();
  return { id, seed, base: base ? base.fs : null, baseKV, baseUnacked, puts, model: buildModel(baseKV, puts), trace };
}

function sameOp(a: OpRecord, b: OpRecord): boolean {
  return a.kind === b.kind && a.file === b.file && a.pos === b.pos && a.length === b.length && a.crc === b.crc && a.to === b.to;
}

/** One cut point: re-run to op k, crash it `images` times, verify each. */
async function cutPoint(o: CampaignOptions, spec: WorkloadSpec, sc: Scenario, k: number, res: CampaignResult, rng: Rng): Promise<void> {
  const fail = (msg: string) => {
    const line = `FAIL seed=${o.seed} syncMode=${o.syncMode} scenario=${sc.id} (workload seed ${sc.seed}) cut at op ${k} ` +
      `(${sc.trace[k - 1] ? classify(sc.trace[k - 1]!, DB_PATH) + ' ' + JSON.stringify(sc.trace[k - 1]) : '?'}): ${msg}`;
    res.failures.push(line);
    o.log?.(line);
  };
  const fs = sc.base ? sc.base.clone() : new FaultFS();
  fs.cutAt(k);
  const puts: PutRec[] = [];
  let store: Store;
  const opened = Store.open(openOpts(fs, o)).then((s) => (store = s));
  const done = opened.then(() => runWorkload(driverFor(o.via ?? 'engine', store).put, fs, spec, sc.seed, puts, 1, o.via === 'service' ? undefined : store)).then(() => 'done' as const);
  const outcome = await Promise.race([fs.cutReached.then(() => 'cut' as const), done.catch((e) => e as Error)]);
  if (outcome !== 'cut') return fail(`the cut point was never reached (${outcome instanceof Error ? outcome.message : outcome})`);
  // Let anything that was going to settle without I/O settle.
  await new Promise((r) => setImmediate(r));

  // The run must have matched the dry run up to the cut.
  for (let i = 0; i < k; i++) {
    if (!fs.trace[i] || !sameOp(fs.trace[i]!, sc.trace[i]!)) {
      return fail(`non-deterministic run: op ${i + 1} is ${JSON.stringify(fs.trace[i])}, dry run had ${JSON.stringify(sc.trace[i])}`);
    }
  }
  const dry = new Map(sc.puts.map((p) => [p.id, p]));
  let a = 0;
  const ackedIdx = new Set<number>();
  for (const p of puts) {
    if (p.error) return fail(`put #${p.id} rejected before the cut: ${String(p.error)}`);
    if (p.batch === undefined) continue;
    const d = dry.get(p.id);
    if (!d || d.batch !== p.batch) return fail(`non-deterministic run: put #${p.id} resolved in batch ${p.batch}, dry run ${d?.batch}`);
    const idx = sc.model.indexOf.get(p.batch)!;
    ackedIdx.add(idx);
    a = Math.max(a, idx);
  }
  for (let i = 1; i <= a; i++) if (!ackedIdx.has(i)) return fail(`commit ${i} not acknowledged but the later commit ${a} was`);

  const kind = sc.trace[k - 1] ? classify(sc.trace[k - 1]!, DB_PATH) : '?';
  res.byKind[kind] = (res.byKind[kind] ?? 0) + 1;
  res.cuts++;

  const images = o.imagesPerCut ?? 2;
  // Image 0: random fates; the others rotate through tear-heavy, keep-everything (the in-flight
  // commit lands when it was complete) and drop-everything.
  const rotation = ['tear', 'keepAll', 'dropAll'];
  const policyNames = ['random', ...rotation.map((_, i) => rotation[(k + i) % rotation.length]!)];
  const allKeys = new Set<string>([...sc.baseKV.keys(), ...sc.puts.map((p) => kstr(p.key))]);
  for (let im = 0; im < images; im++) {
    const policyName = policyNames[im % policyNames.length]!;
    const policy: CutPolicy = CUT_POLICIES[policyName]!;
    const imgSeed = mixSeed(o.seed, sc.seed, k, im);
    const { fs: crashed, report } = fs.powerCut(mulberry32(imgSeed), policy);
    res.images++;
    const where = `image ${im} (policy ${policyName}, seed ${imgSeed}, ${JSON.stringify(report)}), last acknowledged commit ${a} of ${sc.model.batches.length}`;
    if (o.rebuild) {
      // On a copy: the image itself is checked below as a normal recovery.
      const problem = await checkRebuild(crashed.clone(), o, allKeys, sc.model.states[a]!, sc.model.states[a + 1], sc.baseKV, sc.baseUnacked);
      if (problem) {
        fail(`${where}: rebuilt from its pages without its meta pages: ${problem}`);
        continue;
      }
      res.rebuilt++;
    }
    let rec: Store;
    try {
      rec = await Store.open(openOpts(crashed, o));
    } catch (e) {
      fail(`${where}: Store.open failed: ${e instanceof StoreError ? e.code + ' ' : ''}${(e as Error).message}`);
      continue;
    }
    try {
      const { kv, problems } = await readAll(driverFor(o.via ?? 'engine', rec), allKeys);
      if (problems.length) {
        fail(`${where}: ${problems.slice(0, 3).join('; ')}`);
        continue;
      }
      let j = -1;
      for (let c = a; c <= Math.min(a + 1, sc.model.states.length - 1); c++) if (sameKV(kv, sc.model.states[c]!)) j = c;
      if (j < 0) {
        const next = sc.model.states[a + 1];
        fail(`${where}: recovered state is neither commit ${a} nor ${a + 1}. vs commit ${a}: ${diffKV(kv, sc.model.states[a]!)}` +
          (next ? `; vs commit ${a + 1}: ${diffKV(kv, next)}` : ''));
        continue;
      }
      if (j > a) res.recoveredInFlight++;
      if (rec.recoveryNote) res.fellBack++;
      // Sometimes: one more commit on the recovered store, a clean close, a drop-everything cut, reopen.
      if (rng() < (o.continueFraction ?? 0.25)) {
        const extra = new Map(kv);
        const ps: Promise<void>[] = [];
        const chosen = new Set<string>();
        for (let i = 0; i < 3; i++) {
          const key = keyFor(randInt(rng, 0, (o.spec?.keyPool ?? DEFAULT_SPEC.keyPool) + 5));
          if (chosen.has(kstr(key))) continue; // one put per key per commit: no ordering question
          chosen.add(kstr(key));
          const v = makeValue(2_000_000 + i, key, valueSize(rng, 64 * 1024));
          extra.set(kstr(key), v);
          ps.push(rec.put(key, v));
        }
        try {
          await Promise.all(ps);
          await rec.close();
        } catch (e) {
          fail(`${where}: a commit after recovery failed: ${(e as Error).message}`);
          continue;
        }
        const again = crashed.powerCut(mulberry32(imgSeed + 1), POLICY_DROP_ALL).fs;
        try {
          rec = await Store.open(openOpts(again, o));
        } catch (e) {
          fail(`${where}: reopen after a commit after recovery failed: ${(e as Error).message}`);
          continue;
        }
        const { kv: kv2, problems: p2 } = await readAll(driverFor(o.via ?? 'engine', rec), new Set([...allKeys, ...extra.keys()]));
        if (p2.length || !sameKV(kv2, extra)) {
          fail(`${where}: after recovery + one more commit + reopen: ${p2.slice(0, 3).join('; ')} ${diffKV(kv2, extra)}`);
          continue;
        }
        res.continued++;
      }
      res.verified++;
    } catch (e) {
      fail(`${where}: reading the recovered store failed: ${e instanceof StoreError ? e.code + ' ' : ''}${(e as Error).stack}`);
    } finally {
      await rec.close().catch(() => undefined);
    }
  }
}

/** Destroys both meta pages of the image, rebuilds the store from its pages and checks every key
 *  against the last acknowledged commit (`acked`) or the one in flight; a reason when it fails. A
 *  key the workload has not changed since a crashed base may also hold a value the base's crash left
 *  unanswered (`unacked`): recovery dropped it, but its leaf is still in the file, newer than the
 *  recovered one, and the pages alone cannot tell (README: what a rebuild may bring back). */
async function checkRebuild(fs: FaultFS, o: CampaignOptions, keys: Set<string>, acked: KV, inFlight: KV | undefined, base: KV, unacked: Map<string, Buffer[]>): Promise<string | null> {
  if (!fs.exists(DB_PATH)) return acked.size === 0 ? null : 'the data file is missing';
  const h = await fs.open(DB_PATH);
  for (const metaPage of [0, 2]) await h.writev([Buffer.alloc(4096, 0xee)], metaPage * 4096);
  await h.datasync();
  await h.close();
  try {
    await Store.rebuild(openOpts(fs, o));
  } catch (e) {
    // A file that no commit reached holds no leaf: nothing to rebuild, and nothing was acknowledged.
    if (e instanceof StoreError && /passes its checks as a leaf/.test(e.message) && acked.size === 0) return null;
    return `Store.rebuild failed: ${e instanceof StoreError ? e.code + ' ' : ''}${(e as Error).message}`;
  }
  const s = await Store.open(openOpts(fs, o));
  try {
    const { kv, problems } = await readAll(s, keys);
    if (problems.length) return problems.slice(0, 3).join('; ');
    const bad: string[] = [];
    for (const k of new Set([...keys, ...kv.keys()])) {
      const got = kv.get(k);
      const same = (w: Buffer | undefined) => (got === undefined ? w === undefined : w !== undefined && got.equals(w));
      const unchanged = (w: Buffer | undefined) => (w === undefined ? !base.has(k) : base.get(k)?.equals(w) === true);
      const dropped = unchanged(acked.get(k)) && (unacked.get(k) ?? []).some(same);
      if (!same(acked.get(k)) && !(inFlight && same(inFlight.get(k))) && !dropped) {
        bad.push(`${JSON.stringify(k.slice(0, 12))}: got ${describeValue(got)}, want ${describeValue(acked.get(k))}${inFlight ? ` or ${describeValue(inFlight.get(k))}` : ''}`);
      }
    }
    return bad.length ? `${bad.length} keys wrong: ${bad.slice(0, 4).join('; ')}` : null;
  } finally {
    await s.close();
  }
}

/** Runs scenarios (a dry run each, then every op of it as a cut point, in a shuffled order when a
 *  scenario has more ops than cuts remain) until `cuts` cut points were tested. */
export async function runCampaign(o: CampaignOptions): Promise<CampaignResult> {
  const spec: WorkloadSpec = { ...DEFAULT_SPEC, ...o.spec };
  const res: CampaignResult = { cuts: 0, cutsVerified: 0, images: 0, verified: 0, failures: [], byKind: {}, recoveredInFlight: 0, fellBack: 0, continued: 0, rebuilt: 0, scenarios: 0, compactions: 0, compactionCuts: 0, stoppedEarly: false };
  const rng = mulberry32(mixSeed(o.seed, 'campaign', o.syncMode));
  const started = Date.now();
  for (let id = 0; res.cuts < o.cuts; id++) {
    const sc = await dryRun(o, spec, id);
    res.scenarios++;
    const compactOps = sc.trace.filter((op) => op.file.includes('.compact') || op.to?.includes('.compact'));
    if (compactOps.some((op) => op.kind === 'rename' && op.file.endsWith('.compact'))) res.compactions++;
    const inCompaction = (k: number) => {
      // From the creation of the .compact file to the syncDir after renaming it over the data file.
      const first = compactOps[0]?.index ?? Infinity;
      const renameIdx = sc.trace.findIndex((op) => op.kind === 'rename' && op.file.endsWith('.compact'));
      return k >= first && k <= renameIdx + 2;
    };
    // Cut points: every op of the run (or a random subset when fewer are still needed).
    let ks = sc.trace.map((_, i) => i + 1);
    const remaining = o.cuts - res.cuts;
    if (ks.length > remaining) {
      for (let i = ks.length - 1; i > 0; i--) {
        const j = Math.floor(rng() * (i + 1));
        [ks[i], ks[j]] = [ks[j]!, ks[i]!];
      }
      ks = ks.slice(0, remaining).sort((x, y) => x - y);
    }
    for (const k of ks) {
      const failuresBefore = res.failures.length;
      await cutPoint(o, spec, sc, k, res, rng);
      if (res.failures.length === failuresBefore) res.cutsVerified++;
      if (inCompaction(k)) res.compactionCuts++;
      if (res.failures.length >= (o.maxFailures ?? 10)) return res;
      if (o.deadlineMs && Date.now() - started > o.deadlineMs) {
        res.stoppedEarly = true;
        return res;
      }
    }
    o.log?.(`syncMode ${o.syncMode} scenario ${id} (seed ${sc.seed}, ${['new file', 'existing file', 'crashed file'][sc.id % 3]}): ${sc.puts.length} puts in ` +
      `${sc.model.batches.length} commits, ${sc.trace.length} ops${compactOps.length ? ', with a compaction' : ''}; total ${res.cuts} cuts, ${res.images} images, ${res.verified} verified, ${res.failures.length} failures`);
  }
  return res;
}

// Races (issue 4, item 6), shared by the short test and the torture runner.
//
// Part A, hot keys: C clients each do a sequence of Get/Set on a few hot keys (unique values, some
// large so commits take different times). Every operation's invoke and return time is recorded; per
// key the history must be linearizable for a register (checked by ./linearizability.ts).
//
// Part B, one snapshot per GetPrefix: W writers each own a group of n keys and write them in order,
// key 0..n-1 with version v, then again with v+1, each Set waiting for its acknowledgement. At any
// instant a group therefore reads [v, .., v, v-1, .., v-1] in key order. A stream served from one
// snapshot must show exactly that shape for every group (versions never rise along the keys and
// differ by at most 1); a stream that read the live tree would see keys late in the order at newer
// versions. Readers stream slowly, so many commits land during each stream. Besides the shape:
// "progress" (sum of the group's versions) must be at least what was acknowledged before the stream
// started and at most what was sent before it ended, and every value must be intact.
import { describeError, KvClient } from '../../lib/client';
import { checkRegister, type RegOp } from './linearizability';
import { decodeValue, encodeValue, nowMs, Rng, sleep } from './support';

export interface RaceOptions {
  address: string;
  seed: number;
  clients?: number;
  hotKeys?: number;
  opsPerClient?: number;
  writers?: number;
  groupSize?: number;
  readers?: number;
  /** Duration of part B, ms. */
  snapshotMs?: number;
  /** 'prefix' (default): readers use GetPrefix. 'get-each': readers Get key by key in order, which is
   *  NOT one snapshot: the negative control showing the snapshot check can fail. */
  readMode?: 'prefix' | 'get-each';
  /** 'get-each' mode: pause between the Gets, ms (default 25). */
  getEachDelayMs?: number;
  /** End part B early once this many snapshot violations were seen (for the negative control). */
  stopAfterViolations?: number;
  log?: (line: string) => void;
}

export interface RaceResult {
  ops: number;
  reads: number;
  writes: number;
  failedOps: number;
  keysChecked: number;
  nonLinearizable: number;
  inconclusive: number;
  checkSteps: number;
  streams: number;
  streamEntries: number;
  commitsDuringStreams: number;
  snapshotViolations: number;
  violations: string[];
}

export async function runRaces(o: RaceOptions): Promise<RaceResult> {
  const log = o.log ?? ((l: string) => console.log(l));
  const rng = new Rng(o.seed);
  const C = o.clients ?? 8;
  const H = o.hotKeys ?? 3;
  const N = o.opsPerClient ?? 120;
  const res: RaceResult = {
    ops: 0, reads: 0, writes: 0, failedOps: 0, keysChecked: 0, nonLinearizable: 0, inconclusive: 0, checkSteps: 0,
    streams: 0, streamEntries: 0, commitsDuringStreams: 0, snapshotViolations: 0, violations: [],
  };
  const violation = (s: string) => { if (res.violations.length < 30) res.violations.push(s); };
  const runId = `${o.seed.toString(36)}${Date.now().toString(36)}`;

  // ---------------- Part A: hot keys, linearizability ----------------
  const hot = Array.from({ length: H }, (_, i) => Buffer.from(`race/${runId}/hot${i}`));
  const histories: RegOp[][] = hot.map(() => []);
  const clients = Array.from({ length: C }, () => new KvClient(o.address));
  const tag = (v: Buffer | undefined): string | null => {
    if (v === undefined) return null;
    const i = v.indexOf(0x7c); // '|'
    return (i < 0 ? v : v.subarray(0, i)).toString('latin1');
  };
  const t0 = nowMs();
  if (N > 0) await Promise.all(clients.map(async (cl, c) => {
    for (let s = 0; s < N; s++) {
      const k = rng.int(0, H - 1);
      if (rng.next() < 0.5) {
        const label = `c${c}s${s}`;
        const pad = rng.next() < 0.1 ? rng.int(64 * 1024, 512 * 1024) : rng.int(0, 200);
        const value = Buffer.concat([Buffer.from(label + '|'), Buffer.alloc(pad, c)]);
        const op: RegOp = { kind: 'write', value: label, invoke: nowMs(), ret: Infinity, label: `client ${c}` };
        histories[k].push(op);
        try { await cl.set(hot[k], value); op.ret = nowMs(); } catch (e) {
          res.failedOps++; violation(`set ${hot[k]} failed: ${describeError(e)}`); // outcome unknown: ret stays Infinity
        }
        res.writes++;
      } else {
        const op: RegOp = { kind: 'read', value: null, invoke: nowMs(), ret: Infinity, label: `client ${c}` };
        try {
          const v = await cl.get(hot[k]);
          op.ret = nowMs();
          op.value = tag(v);
          histories[k].push(op);
        } catch (e) { res.failedOps++; violation(`get ${hot[k]} failed: ${describeError(e)}`); }
        res.reads++;
      }
      res.ops++;
    }
  }));
  const loadMs = nowMs() - t0;
  for (let k = 0; k < H && N > 0; k++) {
    const r = checkRegister(histories[k], null);
    res.keysChecked++;
    res.checkSteps += r.steps;
    if (r.inconclusive) { res.inconclusive++; violation(`key ${hot[k]}: checker inconclusive (${r.explanation})`); }
    else if (!r.ok) { res.nonLinearizable++; violation(`key ${hot[k]}: ${r.explanation}`); }
  }
  if (N > 0) log(`  hot keys: ${res.ops} ops (${res.writes} sets, ${res.reads} gets) by ${C} clients on ${H} keys in ${loadMs.toFixed(0)} ms; ` +
    `linearizable ${res.keysChecked - res.nonLinearizable - res.inconclusive}/${res.keysChecked} keys (${res.checkSteps} search steps)`);

  // ---------------- Part B: GetPrefix sees one snapshot ----------------
  const W = o.writers ?? 3;
  const G = o.groupSize ?? 40;
  const R = o.readers ?? 2;
  const duration = o.snapshotMs ?? 6000;
  const base = `snap/${runId}/`;
  const groupKey = (w: number, i: number) => Buffer.from(`${base}w${w}/${String(i).padStart(4, '0')}`);
  // Progress of writer w = number of Sets issued (sent) / acknowledged so far.
  const sent = new Array<number>(W).fill(0);
  const acked = new Array<number>(W).fill(0);
  let stop = false;
  const writerClients = Array.from({ length: W }, () => new KvClient(o.address));
  const writers = writerClients.map(async (cl, w) => {
    for (let v = 1; !stop; v++) {
      for (let i = 0; i < G && !stop; i++) {
        const key = groupKey(w, i);
        sent[w]++;
        try { await cl.set(key, encodeValue(key, v, w, rng.int(16 * 1024, 64 * 1024))); acked[w]++; } catch (e) {
          res.failedOps++; violation(`writer ${w} set failed: ${describeError(e)}`); stop = true;
        }
      }
    }
  });
  const readerClients = Array.from({ length: R }, () => new KvClient(o.address));
  // Reader 0 reads slowly (25 ms per entry: the writers overtake it within a group, so a reader that
  // is not one snapshot would be caught); the others read fast (many streams).
  const readers = readerClients.map(async (cl, r) => {
    while (!stop) {
      const ackedAtInvoke = acked.slice();
      const commitsBefore = acked.reduce((a, b) => a + b, 0);
      const versions: number[][] = Array.from({ length: W }, () => new Array<number>(G).fill(0));
      let count = 0;
      try {
        const source = o.readMode === 'get-each'
          ? (async function* () {
            for (let w = 0; w < W; w++) for (let i = 0; i < G; i++) {
              const key = groupKey(w, i);
              const value = await cl.get(key);
              if (value) yield { key, value };
              await sleep(o.getEachDelayMs ?? 25);
            }
          })()
          : cl.getPrefix(base);
        for await (const e of source) {
          count++;
          const m = /w(\d+)\/(\d+)$/.exec(e.key.toString('latin1'));
          if (!m) { res.snapshotViolations++; violation(`unexpected key ${e.key}`); continue; }
          const w = Number(m[1]), i = Number(m[2]);
          try {
            const d = decodeValue(e.value);
            if (!d.key.equals(e.key) || d.writer !== w) { res.snapshotViolations++; violation(`${e.key} holds a value of ${d.key}`); }
            versions[w][i] = d.version;
          } catch (err) { res.snapshotViolations++; violation(`${e.key} torn in GetPrefix: ${(err as Error).message}`); }
          if (r === 0) await sleep(25); else if (count % 4 === 0) await sleep(2); // a slow reader: commits land during the stream
        }
      } catch (e) { if (!stop) { res.failedOps++; violation(`GetPrefix failed: ${describeError(e)}`); } continue; }
      const sentAtReturn = sent.slice();
      res.commitsDuringStreams += acked.reduce((a, b) => a + b, 0) - commitsBefore;
      res.streams++;
      res.streamEntries += count;
      for (let w = 0; w < W; w++) {
        const vs = versions[w];
        let shapeOk = vs[0] - vs[G - 1] <= 1;
        for (let i = 1; i < G; i++) if (vs[i] > vs[i - 1]) shapeOk = false;
        const progress = vs.reduce((a, b) => a + b, 0);
        if (!shapeOk) {
          res.snapshotViolations++;
          violation(`writer ${w}: GetPrefix is not one snapshot: versions along the keys ${JSON.stringify(vs)}`);
        } else if (progress < ackedAtInvoke[w] || progress > sentAtReturn[w]) {
          res.snapshotViolations++;
          violation(`writer ${w}: GetPrefix snapshot at progress ${progress}, outside [acked at invoke ${ackedAtInvoke[w]}, sent at return ${sentAtReturn[w]}]`);
        }
      }
    }
  });
  const until = nowMs() + duration;
  while (nowMs() < until && !(o.stopAfterViolations && res.snapshotViolations >= o.stopAfterViolations)) await sleep(50);
  stop = true;
  await Promise.all([...writers, ...readers]);
  for (const cl of [...clients, ...writerClients, ...readerClients]) cl.close();
  log(`  snapshots: ${res.streams} GetPrefix streams (${res.streamEntries} entries) during ${acked.reduce((a, b) => a + b, 0)} sets by ${W} writers; ` +
    `${res.commitsDuringStreams} set acknowledgements fell inside a stream (summed over readers); violations ${res.snapshotViolations}`);
  return res;
}

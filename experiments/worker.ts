// Load worker: a separate Node process that drives the server through the typed client library
// (lib/client.ts) with N closed-loop clients and reports HDR histograms back to the parent over IPC.
// Started by experiments/lib/load.ts with child_process.fork; not meant to be run by hand.
import { KvClient } from '../lib/client';
import { encodeHist, keyFor, newHist, rng, usSince, type Hist } from './lib/common';

export type WorkOp = 'get' | 'mixed' | 'set' | 'load';

export interface WorkSpec {
  address: string;
  /** Concurrent closed-loop clients in this process. */
  clients: number;
  op: WorkOp;
  /** mixed: probability that an operation is a get. */
  readFraction: number;
  keyPrefix: string;
  keyBytes: number;
  valueBytes: number;
  /** get/mixed/set: keys are drawn uniformly from [0, keyCount). */
  keyCount: number;
  /** load: set keys [lo, hi) once each, shared by this process's clients. */
  loadLo: number;
  loadHi: number;
  /** Stop after this long (0: no time bound besides maxOps). */
  durationMs: number;
  /** Stop after this many recorded operations in this process (null: no count bound; 0 is a share
   *  of a total smaller than the processes, and runs none). */
  maxOps: number | null;
  /** Unrecorded operations per client before 'ready'. */
  warmupOps: number;
  /** The warm-up also lasts at least this long (ms from its first call): a fresh client process takes
   *  seconds, not a few calls, to JIT the client and grpc-js. 0: the count alone bounds it. */
  warmupMs: number;
  seed: number;
  /** Each client its own channel (own TCP connection) instead of sharing one. */
  ownChannel: boolean;
  /** Check that gets find a value of valueBytes. */
  verify: boolean;
}

/** Operation counts of a load run, as a worker reports them and as the runner sums them. */
export interface OpCounts {
  ops: number;
  reads: number;
  writes: number;
  /** Failed calls in the measured window (the warm-up's are in warmupErrors). */
  errors: number;
  notFound: number;
  firstError?: string;
  warmupErrors: number;
  firstWarmupError?: string;
  /** Warm-up calls made, failed ones included (none is in ops). */
  warmupCalls: number;
  /** From the first warm-up call to the first measured one, the wait for the others' warm-up
   *  included; merged results keep the least (the coldest process). */
  warmedMs: number;
  elapsedMs: number;
}

export interface WorkResult extends OpCounts {
  all: string;
  read: string;
  write: string;
}

export type ParentMsg = { type: 'spec'; spec: WorkSpec } | { type: 'go' } | { type: 'exit' };
export type WorkerMsg =
  | { type: 'ready' }
  | { type: 'progress'; ops: number }
  | { type: 'done'; result: WorkResult }
  | { type: 'fatal'; error: string };

function send(m: WorkerMsg): void {
  process.send?.(m);
}

async function run(spec: WorkSpec, waitGo: Promise<void>): Promise<WorkResult> {
  const channels: KvClient[] = [];
  const clientFor = (i: number): KvClient => {
    if (!spec.ownChannel && channels.length > 0) return channels[0];
    const c = new KvClient(spec.address, { channelOptions: spec.ownChannel ? { 'grpc.use_local_subchannel_pool': 1, 'grpc.client_idle_timeout_ms': 3_600_000 } : {} });
    channels.push(c);
    void i;
    return c;
  };
  const clients = Array.from({ length: spec.clients }, (_, i) => clientFor(i));
  await Promise.all(channels.map((c) => c.waitForReady(30_000)));

  const base = Buffer.alloc(spec.valueBytes);
  const r0 = rng(spec.seed * 7919 + 1);
  for (let i = 0; i < base.length; i++) base[i] = Math.floor(r0() * 256);
  const valueFor = (i: number): Buffer => {
    if (spec.valueBytes < 8 || spec.valueBytes > 64 * 1024) return base;
    const v = Buffer.from(base);
    v.writeDoubleLE(i, 0);
    return v;
  };

  const all = newHist();
  const read = newHist();
  const write = newHist();
  let ops = 0, reads = 0, writes = 0, errors = 0, notFound = 0, warmupErrors = 0;
  let firstError: string | undefined, firstWarmupError: string | undefined;
  let nextLoad = spec.loadLo;
  let stop = false;

  /** 'ok' (and recorded, if `record`); 'none': the load's keys are all taken, nothing was sent. */
  const one = async (c: KvClient, r: () => number, record: boolean): Promise<'ok' | 'failed' | 'none'> => {
    let isRead: boolean;
    let idx: number;
    if (spec.op === 'load') {
      if (nextLoad >= spec.loadHi) return 'none';
      idx = nextLoad++;
      isRead = false;
    } else {
      idx = Math.floor(r() * spec.keyCount);
      isRead = spec.op === 'get' || (spec.op === 'mixed' && r() < spec.readFraction);
    }
    const key = keyFor(spec.keyPrefix, idx, spec.keyBytes);
    const value = isRead ? undefined : valueFor(idx);
    const t0 = process.hrtime.bigint();
    try {
      if (isRead) {
        const v = await c.get(key);
        if (!v) { if (record) notFound++; }
        else if (spec.verify && v.length !== spec.valueBytes) throw new Error(`value of ${v.length} bytes, expected ${spec.valueBytes}`);
      } else {
        await c.set(key, value!);
      }
    } catch (e) {
      // The warm-up's failures are reported apart: the measured window's count must be its own.
      if (!record) {
        warmupErrors++;
        firstWarmupError ??= String((e as Error)?.message ?? e);
        return 'failed';
      }
      errors++;
      firstError ??= String((e as Error)?.message ?? e);
      if (errors > 100) stop = true;
      return 'failed';
    }
    if (!record) return 'ok';
    const us = Math.max(1, Math.round(usSince(t0)));
    all.recordValue(us);
    (isRead ? read : write).recordValue(us);
    ops++;
    if (isRead) reads++; else writes++;
    return 'ok';
  };

  // Warm-up: connections, JIT, server caches. Not recorded. A load has none: it would take keys
  // from the range the measured window must set.
  const warmStart = performance.now();
  let warmupCalls = 0;
  await Promise.all(clients.map(async (c, i) => {
    const r = rng(spec.seed * 1000 + i + 17);
    if (spec.op === 'load') return;
    for (let k = 0; k < spec.warmupOps || performance.now() - warmStart < spec.warmupMs; k++) {
      await one(c, r, false);
      warmupCalls++;
    }
  }));
  send({ type: 'ready' });
  await waitGo;

  const warmedMs = performance.now() - warmStart;
  const started = process.hrtime.bigint();
  const deadline = spec.durationMs > 0 ? Date.now() + spec.durationMs : Infinity;
  const progress = setInterval(() => send({ type: 'progress', ops }), 250);
  // A client claims its slot in the maxOps budget before its call, not after: clients that checked
  // `ops` alone all passed the check at maxOps - 1 and overshot by up to clients - 1. A failed call
  // gives its slot back (it is not a measured operation).
  let claimed = 0;
  await Promise.all(clients.map(async (c, i) => {
    const r = rng(spec.seed * 1000 + i + 1);
    while (!stop) {
      if (Date.now() >= deadline) break;
      if (spec.maxOps !== null && claimed >= spec.maxOps) break;
      claimed++;
      const got = await one(c, r, true);
      if (got !== 'ok') claimed--;
      if (got === 'none') break;
    }
  }));
  clearInterval(progress);
  const elapsedMs = usSince(started) / 1000;
  for (const c of channels) c.close();
  return {
    ops, reads, writes, errors, notFound, firstError, warmupErrors, firstWarmupError, warmupCalls, warmedMs, elapsedMs,
    all: encodeHist(all), read: encodeHist(read), write: encodeHist(write),
  };
}

if (require.main === module && !process.send) {
  process.stderr.write('worker: a load worker, started by experiments/lib/load.ts over IPC (child_process.fork); not run by hand.\n' +
    'The experiments that use it: node dist/experiments/exp1-latency.js --help (and exp2-restart, exp3-clients, bench-service).\n');
  process.exit(2);
}

if (require.main === module) {
  let goResolve: () => void = () => {};
  const goP = new Promise<void>((r) => { goResolve = r; });
  process.on('message', (m: ParentMsg) => {
    if (m.type === 'spec') {
      run(m.spec, goP).then(
        (result) => send({ type: 'done', result }),
        (e) => send({ type: 'fatal', error: String((e as Error)?.stack ?? e) }),
      );
    } else if (m.type === 'go') {
      goResolve();
    } else if (m.type === 'exit') {
      process.exit(0);
    }
  });
  process.on('disconnect', () => process.exit(0));
}

export type { Hist };

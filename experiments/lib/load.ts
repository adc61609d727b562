// Client load in separate processes: forks experiments/worker.js processes, splits the clients (and for
// a load, the key range) between them, starts them together, shows a progress bar, merges their HDR
// histograms.
import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { SingleBar, Presets } from 'cli-progress';
import { decodeHist, machineCpuUs, newHist, processCpuTimesUs, processCpuUs, summarize, type Hist, type LatencySummary } from './common';
import type { OpCounts, ParentMsg, WorkerMsg, WorkOp, WorkResult, WorkSpec } from '../worker';

const WORKER_JS = path.join(__dirname, '..', 'worker.js');

export interface LoadSpec {
  address: string;
  /** Total concurrent clients. */
  clients: number;
  /** Worker processes (default min(clients, 4)). */
  processes?: number;
  op: WorkOp;
  readFraction?: number;
  keyPrefix: string;
  keyBytes?: number;
  valueBytes: number;
  keyCount?: number;
  /** load: keys [0, loadCount) (or [loadFrom, loadFrom + loadCount)). */
  loadCount?: number;
  loadFrom?: number;
  durationMs?: number;
  /** Total recorded operations across all processes. */
  maxOps?: number;
  /** Unrecorded calls per client before measuring (default 0). */
  warmupOps?: number;
  /** Least warm-up time of each worker process, as well as warmupOps (default 0: the count alone). */
  warmupMs?: number;
  seed?: number;
  ownChannel?: boolean;
  verify?: boolean;
  /** Progress bar label (no bar when undefined or stderr is not a TTY). */
  label?: string;
  /** Abort the run if it has not finished after this long. */
  hardTimeoutMs?: number;
  /** Called when the workers are told to start measuring (after their warm-up), and when the last
   *  one has reported: the measured window, e.g. for reading the server's CPU time. An onGo that
   *  returns a promise (e.g. a Stat call) is awaited before the workers are told to go, so what it
   *  reads is the server after the warm-up and before the first measured operation. */
  onGo?: () => void | Promise<void>;
  onDone?: () => void;
}

export interface LoadResult extends OpCounts {
  clients: number;
  processes: number;
  throughput: number;
  all: LatencySummary;
  read: LatencySummary;
  write: LatencySummary;
  hist: { all: Hist; read: Hist; write: Hist };
}

const liveWorkers = new Set<ChildProcess>();
process.on('exit', () => {
  for (const w of liveWorkers) { try { if (w.pid) process.kill(w.pid, 'SIGKILL'); } catch { /* gone */ } }
});

/** Where part `i` of `total` split into `parts` near-equal whole parts begins: part i is
 *  [partStart(i), partStart(i + 1)), and the parts sum to `total` exactly (each rounded up would
 *  overshoot it by up to parts - 1). */
export function partStart(total: number, parts: number, i: number): number {
  return Math.floor((total * i) / parts);
}

/** CPU time (us) a server spent over a load's measured window, and the whole machine's. */
export interface ServerCpu {
  /** The server process, all threads. */
  serverUs: number;
  /** Its main thread (the event loop), and of that the time in the kernel. */
  mainUs: number;
  mainKernelUs: number;
  /** Every core of the machine: busy, and in all (the window's length times the cores). */
  machineBusyUs: number;
  machineTotalUs: number;
}

/** runLoad against the server `pid`, reading its CPU time (and the machine's) when the workers
 *  start measuring and when the last has reported, so the warm-up is not counted. */
export async function runLoadWithServerCpu(pid: number, s: LoadSpec): Promise<{ result: LoadResult; cpu: ServerCpu }> {
  const sample = () => ({ server: processCpuUs(pid), main: processCpuTimesUs(pid, true), machine: machineCpuUs() });
  let at0 = sample(), at1 = at0;
  const result = await runLoad({
    ...s,
    onGo: () => { at0 = sample(); return s.onGo?.(); },
    onDone: () => { at1 = sample(); s.onDone?.(); },
  });
  return {
    result,
    cpu: {
      serverUs: at1.server - at0.server,
      mainUs: at1.main.user + at1.main.kernel - at0.main.user - at0.main.kernel,
      mainKernelUs: at1.main.kernel - at0.main.kernel,
      machineBusyUs: at1.machine.busy - at0.machine.busy,
      machineTotalUs: at1.machine.total - at0.machine.total,
    },
  };
}

export async function runLoad(s: LoadSpec): Promise<LoadResult> {
  if (s.maxOps !== undefined && !(Number.isInteger(s.maxOps) && s.maxOps >= 1)) throw new Error(`runLoad: maxOps ${s.maxOps} is not a whole number of at least 1 (leave it out for no count bound)`);
  if (s.warmupMs !== undefined && !(Number.isFinite(s.warmupMs) && s.warmupMs >= 0)) throw new Error(`runLoad: warmupMs ${s.warmupMs} is not a number of milliseconds of at least 0`);
  const procs = Math.max(1, Math.min(s.processes ?? Math.min(s.clients, 4), s.clients));
  const loadFrom = s.loadFrom ?? 0;
  const loadCount = s.loadCount ?? 0;
  const specs: WorkSpec[] = [];
  let clientsLeft = s.clients;
  for (let p = 0; p < procs; p++) {
    const c = Math.ceil(clientsLeft / (procs - p));
    clientsLeft -= c;
    const lo = loadFrom + partStart(loadCount, procs, p);
    const hi = loadFrom + partStart(loadCount, procs, p + 1);
    specs.push({
      address: s.address,
      clients: c,
      op: s.op,
      readFraction: s.readFraction ?? 0.5,
      keyPrefix: s.keyPrefix,
      keyBytes: s.keyBytes ?? 32,
      valueBytes: s.valueBytes,
      keyCount: s.keyCount ?? 1,
      loadLo: lo,
      loadHi: hi,
      durationMs: s.durationMs ?? 0,
      maxOps: s.maxOps === undefined ? null : partStart(s.maxOps, procs, p + 1) - partStart(s.maxOps, procs, p),
      warmupOps: s.warmupOps ?? 0,
      warmupMs: s.warmupMs ?? 0,
      seed: (s.seed ?? 1) * 101 + p,
      ownChannel: s.ownChannel ?? true,
      verify: s.verify ?? false,
    });
  }
  const total = s.op === 'load' ? loadCount : s.maxOps ?? 0;
  const useBar = Boolean(s.label) && process.stderr.isTTY;
  const bar = useBar ? new SingleBar({ format: `${s.label} [{bar}] {percentage}% | {value}/{total} ops | {rate} ops/s | {eta_formatted}`, hideCursor: true, etaBuffer: 20 }, Presets.shades_classic) : undefined;
  const workers = specs.map(() => fork(WORKER_JS, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  for (const w of workers) liveWorkers.add(w);
  const progress = new Array<number>(workers.length).fill(0);
  let goAt = 0;
  const results = await new Promise<WorkResult[]>((resolve, reject) => {
    const out: (WorkResult | undefined)[] = new Array(workers.length);
    let ready = 0, done = 0;
    const hard = setTimeout(() => reject(new Error(`load ${s.label ?? s.op} exceeded ${s.hardTimeoutMs} ms`)), s.hardTimeoutMs ?? 30 * 60_000);
    const barTimer = setInterval(() => {
      if (!bar || !goAt) return;
      const v = progress.reduce((a, b) => a + b, 0);
      const secs = (Date.now() - goAt) / 1000;
      bar.update(total ? Math.min(v, total) : v, { rate: secs > 0 ? Math.round(v / secs) : 0 });
    }, 250);
    workers.forEach((w, i) => {
      w.on('message', (m: WorkerMsg) => {
        if (m.type === 'ready') {
          if (++ready === workers.length) {
            const go = () => {
              goAt = Date.now();
              bar?.start(total || Math.max(1, Math.round((s.durationMs ?? 1000) / 1000)), 0, { rate: 0 });
              for (const x of workers) x.send({ type: 'go' } satisfies ParentMsg);
            };
            const pending = s.onGo?.();
            if (pending) pending.then(go, (e: unknown) => { clearTimeout(hard); clearInterval(barTimer); reject(e); });
            else go();
          }
        } else if (m.type === 'progress') {
          progress[i] = m.ops;
        } else if (m.type === 'done') {
          out[i] = m.result;
          if (++done === workers.length) {
            s.onDone?.();
            clearTimeout(hard); clearInterval(barTimer);
            resolve(out as WorkResult[]);
          }
        } else if (m.type === 'fatal') {
          clearTimeout(hard); clearInterval(barTimer);
          reject(new Error(`worker ${i} failed: ${m.error}`));
        }
      });
      w.on('exit', (code) => {
        if (!out[i]) { clearTimeout(hard); clearInterval(barTimer); reject(new Error(`worker ${i} exited (${code}) before finishing`)); }
      });
      w.send({ type: 'spec', spec: specs[i] } satisfies ParentMsg);
    });
  }).finally(() => {
    bar?.stop();
    for (const w of workers) {
      try { w.send({ type: 'exit' } satisfies ParentMsg); } catch { /* gone */ }
      setTimeout(() => { try { if (w.exitCode === null && w.pid) process.kill(w.pid, 'SIGKILL'); } catch { /* gone */ } }, 2000).unref();
      w.once('exit', () => liveWorkers.delete(w));
    }
  });
  // The workers ran at the same time: the run took as long as the slowest of them.
  const parts = results.map((r) => ({ ...r, hist: { all: decodeHist(r.all), read: decodeHist(r.read), write: decodeHist(r.write) } }));
  return combine(parts, s.clients, procs, Math.max(...results.map((r) => r.elapsedMs)));
}

/** One result from several runs of the same spec (rounds taken in turns with other servers): the
 *  histograms merged, the counts summed, the throughput over the summed running time. */
export function mergeLoads(rs: LoadResult[]): LoadResult {
  return combine(rs, rs[0].clients, rs[0].processes, rs.reduce((t, r) => t + r.elapsedMs, 0));
}

/** Counts summed and histograms merged over `parts`, which together took `elapsedMs`. */
function combine(parts: (OpCounts & { hist: LoadResult['hist'] })[], clients: number, processes: number, elapsedMs: number): LoadResult {
  const all = newHist(), read = newHist(), write = newHist();
  let ops = 0, reads = 0, writes = 0, errors = 0, notFound = 0, warmupErrors = 0, warmupCalls = 0, warmedMs = Infinity;
  let firstError: string | undefined, firstWarmupError: string | undefined;
  for (const r of parts) {
    all.add(r.hist.all); read.add(r.hist.read); write.add(r.hist.write);
    ops += r.ops; reads += r.reads; writes += r.writes; errors += r.errors; notFound += r.notFound; warmupErrors += r.warmupErrors;
    warmupCalls += r.warmupCalls; warmedMs = Math.min(warmedMs, r.warmedMs);
    firstError ??= r.firstError;
    firstWarmupError ??= r.firstWarmupError;
  }
  return {
    clients, processes, ops, reads, writes, errors, notFound, firstError, warmupErrors, firstWarmupError, warmupCalls, warmedMs, elapsedMs,
    throughput: elapsedMs > 0 ? ops / (elapsedMs / 1000) : 0,
    all: summarize(all), read: summarize(read), write: summarize(write),
    hist: { all, read, write },
  };
}

/** Drops the histogram objects (for JSON). */
export function plain(r: LoadResult): Omit<LoadResult, 'hist'> {
  const { hist: _h, ...rest } = r;
  void _h;
  return rest;
}

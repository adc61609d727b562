// Shared pieces of the experiment runner: machine description, git commit, histograms, keys,
// result files and gnuplot rendering. Nothing here talks to the server.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as hdr from 'hdr-histogram-js';
import { randomBytes } from 'node:crypto';
import { InvalidArgumentError, Option } from 'commander';

/** Repository root (dist/experiments/lib/common.js -> ../../..). */
export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const RESULTS = path.join(ROOT, 'experiments', 'results');

export const KiB = 1024;
export const MiB = 1024 * 1024;

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------------------------------------
// Histograms (microseconds, 3 significant digits, up to 10 minutes).

export type Hist = hdr.Histogram;

export function newHist(): Hist {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3, autoResize: true });
}

export function encodeHist(h: Hist): string {
  return hdr.encodeIntoCompressedBase64(h);
}

export function decodeHist(s: string): Hist {
  return hdr.decodeFromCompressedBase64(s);
}

export interface LatencySummary {
  count: number;
  meanUs: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  minUs: number;
}

export function summarize(h: Hist): LatencySummary {
  const n = h.totalCount;
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    count: n,
    meanUs: n ? r(h.mean) : 0,
    p50Us: n ? h.getValueAtPercentile(50) : 0,
    p90Us: n ? h.getValueAtPercentile(90) : 0,
    p99Us: n ? h.getValueAtPercentile(99) : 0,
    p999Us: n ? h.getValueAtPercentile(99.9) : 0,
    maxUs: n ? h.maxValue : 0,
    minUs: n ? h.minNonZeroValue : 0,
  };
}

/** Elapsed microseconds since `t0` (from process.hrtime.bigint()). */
export function usSince(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1000;
}

/** `list` in the order of round `round` when several servers take turns: the first in turn rotates,
 *  so none is always measured first (or last) while the shared machine drifts. */
export function inTurn<T>(list: readonly T[], round: number): T[] {
  return list.map((_, k) => list[(k + round) % list.length]);
}

// ---------------------------------------------------------------------------------------------
// CPU accounting (Linux /proc; clock ticks of 10 ms, so meant for runs of seconds).

const TICK_US = 10_000;

/** User + system CPU time of one process so far, in microseconds (0 if it is gone); with `mainThread`,
 *  of its main thread only (the event loop; the rest is libuv's thread pool and V8's helpers). */
export function processCpuUs(pid: number, mainThread = false): number {
  const t = processCpuTimesUs(pid, mainThread);
  return t.user + t.kernel;
}

/** The same, split into user and kernel (system) time: the kernel's share is the syscalls (socket
 *  and file writes, an fdatasync made on that thread) and the faults. */
export function processCpuTimesUs(pid: number, mainThread = false): { user: number; kernel: number } {
  try {
    // Fields after the parenthesised command name, which may itself contain spaces.
    const s = fs.readFileSync(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'latin1');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { user: Number(f[11]) * TICK_US, kernel: Number(f[12]) * TICK_US };
  } catch {
    return { user: 0, kernel: 0 };
  }
}

/** The whole machine's busy and total CPU time so far (all cores), in microseconds. */
export function machineCpuUs(): { busy: number; total: number } {
  const f = fs.readFileSync('/proc/stat', 'latin1').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  const idle = f[3]! + f[4]!; // idle + iowait
  return { busy: (total - idle) * TICK_US, total: total * TICK_US };
}

// ---------------------------------------------------------------------------------------------
// Keys and values.

/** Deterministic, lexicographically ordered key: prefix + zero-padded index, padded to `bytes`. */
export function keyFor(prefix: string, i: number, bytes: number): Buffer {
  const base = prefix + i.toString().padStart(10, '0');
  const b = Buffer.alloc(Math.max(bytes, base.length), '.');
  b.write(base, 0, 'latin1');
  return b;
}

/** Random value bytes (incompressible; the store does not compress, but be honest anyway). */
export function randomValue(bytes: number): Buffer {
  return randomBytes(bytes);
}

/** Small seeded PRNG (xorshift32) so runs are repeatable. */
export function rng(seed: number): () => number {
  let x = (seed >>> 0) || 0x9e3779b9;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x / 0x100000000;
  };
}

export function fmtBytes(n: number): string {
  if (n >= MiB && n % MiB === 0) return `${n / MiB} MiB`;
  if (n >= KiB && n % KiB === 0) return `${n / KiB} KiB`;
  return `${n} B`;
}

export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kKmMgG]i?[bB]?|[bB])?$/.exec(s.trim());
  if (!m) throw new Error(`bad size ${s}`);
  const n = Number(m[1]);
  const u = (m[2] ?? '').toLowerCase()[0];
  return Math.round(n * (u === 'k' ? KiB : u === 'm' ? MiB : u === 'g' ? 1024 * MiB : 1));
}

export function parseList(s: string): number[] {
  return s.split(',').filter(Boolean).map((x) => parseSize(x));
}

// Commander argument parsers for the runners' options: a bad value stops the run before anything
// starts, with commander's usage error naming the option (a NaN let through would surface minutes
// later as a load that "exceeded NaN ms").

/** A whole number of at least `min`. */
export function wholeArg(min = 0): (text: string) => number {
  return (text) => {
    if (!/^\d+$/.test(text.trim())) throw new InvalidArgumentError('not a whole number');
    const n = Number(text);
    if (n < min) throw new InvalidArgumentError(`must be at least ${min}`);
    return n;
  };
}

/** A number of seconds above zero (decimals allowed). */
export function secondsArg(text: string): number {
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text.trim()) || !(n > 0)) throw new InvalidArgumentError('not a number of seconds above 0');
  return n;
}

/** lbserver's --sync-mode, passed through by the runners that start it. */
export function syncModeOption(): Option {
  return new Option('--sync-mode <m>', 'lbserver --sync-mode').choices(['one', 'two']);
}

/** The least warm-up of each fresh client process in exp1 and exp3. Their 20-200 warm-up calls take
 *  well under a second, and a fresh process kept speeding up for seconds after them (JIT of the
 *  client and grpc-js): one client's 4 KiB get p50 in a 3 s window fell from 373 to 265 us with
 *  1.5 s of warm-up (docs/measurement-history.md). 1.5 s takes the steep part of that rise; each
 *  second more costs about 50 s of `make experiments` (one per exp1 point and exp3 step). */
export const CLIENT_WARMUP_MS = 1500;

/** --warmup-ms of the runners that measure loads: what runLoad's warmupMs is given. */
export function warmupMsOption(defaultMs: number): Option {
  return new Option('--warmup-ms <n>', 'least warm-up time in ms of each client process before it measures, as well as its warm-up calls')
    .argParser(wholeArg(0)).default(defaultMs);
}

/** A comma-separated list of whole numbers (10000,100_000). */
export function countsArg(text: string): number[] {
  const items = text.split(',').map((x) => x.trim().replace(/_/g, '')).filter(Boolean);
  if (items.length === 0 || items.some((x) => !/^\d+$/.test(x) || Number(x) < 1)) throw new InvalidArgumentError('expected whole numbers above 0, comma-separated');
  return items.map(Number);
}

/** A comma-separated list of sizes (512,4k,1m), each at least 1 byte: they are plotted on a log
 *  scale, where 0 has no place (gnuplot would fail after the whole run). */
export function sizesArg(text: string): number[] {
  try {
    const sizes = parseList(text);
    if (sizes.length === 0) throw new Error('empty list');
    if (sizes.some((n) => n < 1)) throw new Error('sizes must be 1 byte or more (they are plotted on a log scale)');
    return sizes;
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** A comma-separated subset of `allowed`. */
export function subsetArg<T extends string>(allowed: readonly T[]): (text: string) => T[] {
  return (text) => {
    const items = text.split(',').map((x) => x.trim()).filter(Boolean);
    const bad = items.filter((x) => !allowed.includes(x as T));
    if (items.length === 0 || bad.length > 0) throw new InvalidArgumentError(`expected a comma-separated subset of ${allowed.join(',')}`);
    return items as T[];
  };
}

// ---------------------------------------------------------------------------------------------
// Machine and commit.

function tryRead(p: string): string | undefined {
  try { return fs.readFileSync(p, 'utf8').trim(); } catch { return undefined; }
}

function tryExec(cmd: string, args: string[]): string | undefined {
  try { return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(); } catch { return undefined; }
}

export interface DiskInfo {
  path: string;
  device?: string;
  fsType?: string;
  mountOptions?: string;
  rotational?: boolean;
  model?: string;
  sizeBytes?: number;
  freeBytes?: number;
}

export function diskInfo(dir: string): DiskInfo {
  const abs = path.resolve(dir);
  const info: DiskInfo = { path: abs };
  const mounts = (tryRead('/proc/mounts') ?? '').split('\n').map((l) => l.split(' '));
  let best: string[] | undefined;
  for (const m of mounts) {
    if (m.length < 4) continue;
    if ((abs === m[1] || abs.startsWith(m[1].endsWith('/') ? m[1] : m[1] + '/')) && (!best || m[1].length > best[1].length)) best = m;
  }
  if (best) {
    info.device = best[0]; info.fsType = best[2]; info.mountOptions = best[3];
    const name = path.basename(best[0]);
    // /dev/vda1 -> vda, /dev/nvme0n1p1 -> nvme0n1; a whole disk keeps its name.
    const base = fs.existsSync(`/sys/block/${name}`) ? name : name.replace(/p?\d+$/, '');
    const rot = tryRead(`/sys/block/${base}/queue/rotational`);
    if (rot !== undefined) info.rotational = rot === '1';
    info.model = tryRead(`/sys/block/${base}/device/model`) ?? tryRead(`/sys/block/${base}/device/vendor`);
    const sz = tryRead(`/sys/block/${base}/size`);
    if (sz) info.sizeBytes = Number(sz) * 512;
  }
  try {
    const st = fs.statfsSync(abs);
    info.freeBytes = st.bavail * st.bsize;
  } catch { /* ignore */ }
  return info;
}

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memBytes: number;
  os: string;
  kernel: string;
  node: string;
  virtualization?: string;
  disk: DiskInfo;
  note: string;
}

export function machineInfo(dataDir: string): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memBytes: os.totalmem(),
    os: `${os.type()} ${os.platform()} ${os.arch()}`,
    kernel: os.release(),
    node: process.version,
    virtualization: tryExec('systemd-detect-virt', []),
    disk: diskInfo(dataDir),
    note: 'server, client worker processes and the other engineers\' processes share these cores',
  };
}

export interface GitInfo {
  commit: string;
  /** Uncommitted changes to the code that runs (btree, lib, bin, experiments, the test helpers some
   *  experiments import, protos, the dependency and compiler settings), new files not yet added
   *  among them: a file left out of the commit is code the commit does not have. */
  dirty: boolean;
  dirtyFiles: string[];
  branch?: string;
}

let startGit: GitInfo | undefined;

/** The commit checked out when this process started (the run's code; later commits by others do
 *  not change it). */
export function gitInfo(): GitInfo {
  startGit ??= readGit();
  return startGit;
}

export const CODE_PATHS = ['btree', 'lib', 'bin', 'experiments/*.ts', 'experiments/lib', 'test', 'protos', 'buf.gen.yaml', 'package.json', 'package-lock.json', 'tsconfig.json'];

/** The commit checked out in `root` and what of its code differs from it (gitInfo() reads it once). */
export function readGit(root = ROOT): GitInfo {
  const commit = tryExec('git', ['-C', root, 'rev-parse', 'HEAD']) ?? 'unknown';
  const status = tryExec('git', ['-C', root, 'status', '--porcelain', '--untracked-files=all', '--', ...CODE_PATHS]) ?? '';
  const branch = tryExec('git', ['-C', root, 'rev-parse', '--abbrev-ref', 'HEAD']);
  const dirtyFiles = status.split('\n').map((l) => l.trim()).filter(Boolean).slice(0, 30);
  return { commit, dirty: dirtyFiles.length > 0, dirtyFiles, branch };
}

// ---------------------------------------------------------------------------------------------
// Page cache.

/** Writes back dirty pages and drops the OS page cache if permitted. Returns whether it was dropped. */
export function dropCaches(): boolean {
  spawnSync('sync');
  try {
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3\n');
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Result files.

export function resultDir(exp: string, outDir?: string): string {
  const d = outDir ? path.resolve(outDir) : path.join(RESULTS, exp);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

export function writeJson(file: string, obj: unknown): void {
  fs.writeFileSync(file, JSON.stringify(obj, null, 2) + '\n');
}

export function dataDirRoot(): string {
  return process.env.LBKV_EXP_DATA ?? os.tmpdir();
}

/** Data directories this run made and has not removed: an interrupted run removes them (they can
 *  hold gigabytes), after the hooks that stop what still uses them (servers.ts kills its servers). */
const liveDirs = new Set<string>();
const interruptHooks: (() => void)[] = [];
let interruptsHandled = false;

/** Runs `hook` on SIGINT/SIGTERM, before the run's data directories are removed and it exits
 *  (130 / 143). Installed on first use, so a process that imports this file for its helpers (the
 *  floor server, a worker) keeps its own signal handling. */
export function onInterrupt(hook: () => void): void {
  interruptHooks.push(hook);
  if (interruptsHandled) return;
  interruptsHandled = true;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      for (const h of interruptHooks) { try { h(); } catch { /* best effort: exiting anyway */ } }
      const dirs = [...liveDirs];
      for (const d of dirs) { try { fs.rmSync(d, { recursive: true, force: true }); } catch { /* reported below */ } }
      const left = dirs.filter((d) => fs.existsSync(d));
      process.stderr.write(`experiments: ${sig}: stopped; removed ${dirs.length - left.length} data director${dirs.length - left.length === 1 ? 'y' : 'ies'}${left.length ? `; could not remove ${left.join(', ')}` : ''}\n`);
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

/** A fresh data directory under `root` (default $LBKV_EXP_DATA or the OS temp dir), removed if the
 *  run is interrupted before rmrf() or keepDataDir(). */
export function makeDataDir(tag: string, root = dataDirRoot()): string {
  onInterrupt(() => undefined);
  const d = fs.mkdtempSync(path.join(root, `lbkv-${tag}-`));
  liveDirs.add(d);
  return d;
}

/** The run keeps `d` on purpose (e.g. exp2 --keep): an interrupt no longer removes it. */
export function keepDataDir(d: string): void {
  liveDirs.delete(d);
}

export function rmrf(p: string): void {
  fs.rmSync(p, { recursive: true, force: true });
  liveDirs.delete(p);
}

/** Writes a gnuplot data table: a comment header then whitespace-separated rows. */
export function writeDat(file: string, header: string[], comment: string, rows: (number | string)[][]): void {
  const lines = [`# ${comment}`, `# ${header.join('\t')}`];
  for (const r of rows) lines.push(r.map((x) => (typeof x === 'number' ? (Number.isInteger(x) ? String(x) : x.toFixed(3)) : x)).join('\t'));
  fs.writeFileSync(file, lines.join('\n') + '\n');
}

export function hasGnuplot(): boolean {
  return spawnSync('gnuplot', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** Picks the best available terminal: pngcairo, else png. */
export function gnuplotTerminal(): string {
  const r = spawnSync('gnuplot', ['-e', 'set terminal'], { encoding: 'utf8' });
  const txt = (r.stdout ?? '') + (r.stderr ?? '');
  return /pngcairo/.test(txt) ? "pngcairo size 1000,650 enhanced font 'Sans,10'" : 'png size 1000,650';
}

/** Writes `<name>.gp` in `dir` (with `set output '<name>.png'`) and renders it in `dir`. The
 *  `<name>.png` of an earlier run is removed first: without gnuplot, or if it fails, the directory
 *  must not show an old plot beside this run's data. */
export function renderPlot(dir: string, name: string, body: string): { gp: string; png?: string; error?: string } {
  const gp = path.join(dir, `${name}.gp`);
  fs.rmSync(path.join(dir, `${name}.png`), { force: true });
  const term = hasGnuplot() ? gnuplotTerminal() : "pngcairo size 1000,650 enhanced font 'Sans,10'";
  const script = `# Rendered by experiments/ (run: cd ${path.relative(ROOT, dir)} && gnuplot ${name}.gp)\nset terminal ${term}\nset output '${name}.png'\n${body}\n`;
  fs.writeFileSync(gp, script);
  if (!hasGnuplot()) return { gp, error: 'gnuplot not installed (make gnuplot)' };
  const r = spawnSync('gnuplot', [`${name}.gp`], { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) return { gp, error: r.stderr };
  return { gp, png: path.join(dir, `${name}.png`) };
}

/** `x` to three decimals, as ratios are shown (they are judged on the unrounded value). */
export function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** The lower median (of an even count, the smaller middle value), as the experiments report it; NaN of none. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
}

export function log(...args: unknown[]): void {
  process.stderr.write(args.map(String).join(' ') + '\n');
}

// Power-cut simulator: an in-memory FileSystem (btree/file-io.ts) that keeps what has been made
// durable apart from what has only been written, the way SQLite's crash VFS (src/test6.c) and
// RocksDB's FaultInjectionTestFS do.
//
// Model
// - Every file is an inode with a durable image and a volatile image. Reads (readSync/read) see the
//   volatile image, as the OS page cache would. Each writev / truncate is applied to the volatile
//   image at once and queued as "pending"; datasync() applies the inode's pending operations to the
//   durable image (fdatasync makes data and size durable).
// - Directory entries work the same way: create / rename / unlink change the volatile namespace at
//   once and queue a pending directory operation; syncDir(dir) makes the pending operations that touch
//   `dir` durable. At a power cut a random PREFIX of the pending directory operations survives (a
//   journaling filesystem commits metadata operations in order), so a created or renamed file whose
//   directory was not synced may vanish or revert to its old name/inode.
// - powerCut(rng, policy) builds the post-crash state as a new FaultFS: starting from the durable
//   images, each pending write is independently kept, dropped, torn (only some of its 512-byte
//   sectors land, the others keep their old contents) or garbled (some sectors get random bytes);
//   each pending truncate is kept or dropped. The old FaultFS stays frozen.
// - A cut can be scheduled at the k-th I/O operation (cutAt / cutWhen): that operation's effect is
//   queued as pending (it may or may not reach the disk), its promise never settles (or rejects, see
//   freezeMode), and from then on every call hangs / rejects and readSync throws: the machine is off.
// - Failure injection (failWhen / failAt): make a matching operation fail with EIO, ENOSPC, ...
//
// Everything is deterministic: async completions are scheduled with setImmediate (or microtasks),
// and all randomness comes from the caller's seeded Rng.
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import type { FileHandle, FileSystem } from '../../btree/file-io';

export const SECTOR = 512;

// ---------------------------------------------------------------------------------------------
// Seeded PRNG

export type Rng = () => number; // uniform in [0, 1)

/** mulberry32: tiny, fast, good enough for test schedules. */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mixes numbers/strings into a 32-bit seed (FNV-1a over their text). */
export function mixSeed(...parts: (number | string)[]): number {
  let h = 0x811c9dc5;
  for (const ch of parts.join('/')) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export function randInt(rng: Rng, lo: number, hi: number): number {
  // inclusive bounds
  return lo + Math.floor(rng() * (hi - lo + 1));
}

export function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[Math.floor(rng() * xs.length)]!;
}

export function randomBytes(rng: Rng, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let i = 0;
  for (; i + 4 <= n; i += 4) b.writeUInt32LE((rng() * 4294967296) >>> 0, i);
  for (; i < n; i++) b[i] = (rng() * 256) | 0;
  return b;
}

// ---------------------------------------------------------------------------------------------
// Growable byte image

class Image {
  buf: Buffer;
  len: number;
  constructor(src?: Image) {
    this.len = src ? src.len : 0;
    this.buf = Buffer.alloc(Math.max(4096, this.len));
    if (src) src.buf.copy(this.buf, 0, 0, src.len);
  }
  private ensure(cap: number): void {
    if (cap <= this.buf.length) return;
    const nb = Buffer.alloc(Math.max(cap, this.buf.length * 2));
    this.buf.copy(nb, 0, 0, this.len);
    this.buf = nb;
  }
  write(pos: number, data: Buffer, from = 0, to = data.length): void {
    const end = pos + (to - from);
    this.ensure(end);
    if (pos > this.len) this.buf.fill(0, this.len, pos);
    data.copy(this.buf, pos, from, to);
    if (end > this.len) this.len = end;
  }
  truncate(size: number): void {
    if (size > this.len) {
      this.ensure(size);
      this.buf.fill(0, this.len, size);
    }
    this.len = size;
  }
  read(dst: Buffer, off: number, length: number, pos: number): number {
    if (pos >= this.len) return 0;
    const n = Math.min(length, this.len - pos);
    this.buf.copy(dst, off, pos, pos + n);
    return n;
  }
  bytes(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.len));
  }
}

// ---------------------------------------------------------------------------------------------
// Inodes and namespace

type PendingFileOp =
  | { kind: 'write'; pos: number; data: Buffer; op: number }
  | { kind: 'truncate'; size: number; op: number };

let inodeIds = 0;

class Inode {
  readonly id = ++inodeIds;
  durable: Image;
  volatile: Image;
  pending: PendingFileOp[] = [];
  constructor(content?: Image) {
    this.durable = new Image(content);
    this.volatile = new Image(content);
  }
  /** Makes the pending ops issued before op `before` durable (all when omitted). */
  sync(before = Infinity): void {
    const rest: PendingFileOp[] = [];
    for (const p of this.pending) {
      if (p.op >= before) rest.push(p);
      else if (p.kind === 'write') this.durable.write(p.pos, p.data);
      else this.durable.truncate(p.size);
    }
    this.pending = rest;
  }
}

type DirOp =
  | { kind: 'link'; name: string; inode: Inode; op: number } // create (or replace) `name`
  | { kind: 'unlink'; name: string; op: number }
  | { kind: 'rename'; from: string; to: string; op: number };

function dirsOf(d: DirOp): string[] {
  return d.kind === 'rename' ? [path.dirname(d.from), path.dirname(d.to)] : [path.dirname(d.name)];
}

function applyDirOp(names: Map<string, Inode>, d: DirOp): void {
  if (d.kind === 'link') names.set(d.name, d.inode);
  else if (d.kind === 'unlink') names.delete(d.name);
  else {
    const ino = names.get(d.from);
    if (!ino) return; // the source never became durable: nothing to move
    names.delete(d.from);
    names.set(d.to, ino);
  }
}

// ---------------------------------------------------------------------------------------------
// Op records, cut and failure scheduling

export type OpKind = 'writev' | 'datasync' | 'truncate' | 'create' | 'rename' | 'unlink' | 'syncDir';

export interface OpRecord {
  /** 1-based index among the I/O operations that can be cut (all kinds above). */
  index: number;
  kind: OpKind;
  file: string;
  /** writev: first byte; truncate: new size. */
  pos?: number;
  /** writev: total bytes. */
  length?: number;
  /** writev: crc32 of the data (to check that two runs issued the same writes). */
  crc?: number;
  to?: string;
}

export interface FailRule {
  match: (op: OpRecord) => boolean;
  /** errno code: 'EIO', 'ENOSPC', 'EDQUOT', ... */
  code: string;
  /** How many matching ops fail (default 1). */
  times?: number;
  /** writev only: a random prefix of the sectors is written before the error (default false). */
  partial?: boolean;
}

export interface CutPolicy {
  /** Relative weights of the fate of each un-synced write. */
  keep: number;
  drop: number;
  tear: number;
  garble: number;
  /** Probability that an un-synced truncate survives. */
  truncateKeep: number;
  /** Pending directory operations: 'prefix' keeps a random prefix; 'all' / 'none'. */
  dirOps: 'prefix' | 'all' | 'none';
}

export const POLICY_RANDOM: CutPolicy = { keep: 4, drop: 3, tear: 2, garble: 1, truncateKeep: 0.5, dirOps: 'prefix' };
export const POLICY_DROP_ALL: CutPolicy = { keep: 0, drop: 1, tear: 0, garble: 0, truncateKeep: 0, dirOps: 'none' };
export const POLICY_KEEP_ALL: CutPolicy = { keep: 1, drop: 0, tear: 0, garble: 0, truncateKeep: 1, dirOps: 'all' };
export const POLICY_TEAR: CutPolicy = { keep: 1, drop: 1, tear: 6, garble: 2, truncateKeep: 0.5, dirOps: 'prefix' };
export const CUT_POLICIES: Record<string, CutPolicy> = {
  random: POLICY_RANDOM,
  dropAll: POLICY_DROP_ALL,
  keepAll: POLICY_KEEP_ALL,
  tear: POLICY_TEAR,
};

export interface CutReport {
  writes: number;
  kept: number;
  dropped: number;
  torn: number;
  garbled: number;
  truncates: number;
  truncatesKept: number;
  dirOps: number;
  dirOpsKept: number;
}

export interface FaultFsOptions {
  /** How async operations complete: 'immediate' (setImmediate, default) or 'microtask'. */
  completion?: 'immediate' | 'microtask';
  /** After the cut: 'hang' (promises never settle, default) or 'reject' (EIO). */
  freezeMode?: 'hang' | 'reject';
  /** Keep the full op trace (default true). */
  trace?: boolean;
}

function errnoError(code: string, syscall: string, file: string): NodeJS.ErrnoException {
  const msgs: Record<string, string> = {
    EIO: 'i/o error',
    ENOSPC: 'no space left on device',
    EDQUOT: 'disk quota exceeded',
    ENOENT: 'no such file or directory',
    EBADF: 'bad file descriptor',
    EROFS: 'read-only file system',
  };
  const e = new Error(`${code}: ${msgs[code] ?? 'simulated error'}, ${syscall} '${file}'`) as NodeJS.ErrnoException;
  e.code = code;
  e.syscall = syscall;
  e.path = file;
  return e;
}

export class PowerOffError extends Error {
  readonly code = 'EIO';
  constructor(what: string) {
    super(`EIO: power is off (simulated power cut), ${what}`);
  }
}

// ---------------------------------------------------------------------------------------------

export class FaultFS implements FileSystem {
  /** Volatile and durable namespaces: absolute path -> inode. */
  private names = new Map<string, Inode>();
  private durableNames = new Map<string, Inode>();
  private pendingDir: DirOp[] = [];

  /** Number of cuttable I/O operations issued so far (the index of the last one). */
  opCount = 0;
  /** Number of cuttable I/O operations that have completed (resolved or rejected). */
  completedOps = 0;
  readOps = 0;
  readBytes = 0;
  writtenBytes = 0;
  readonly counts: Record<OpKind, number> = { writev: 0, datasync: 0, truncate: 0, create: 0, rename: 0, unlink: 0, syncDir: 0 };
  readonly trace: OpRecord[] = [];

  private cutPredicate: ((op: OpRecord) => boolean) | null = null;
  private cutBefore = false;
  private failRules: FailRule[] = [];
  private frozen = false;
  /** The op at which the power went off. */
  cutOp: OpRecord | null = null;
  private cutResolve!: (op: OpRecord) => void;
  /** Resolves when a scheduled cut happens. */
  readonly cutReached: Promise<OpRecord>;
  /** Called for each op as it is issued (after cut/failure decisions). */
  onOp: ((op: OpRecord) => void) | null = null;

  constructor(private readonly opts: FaultFsOptions = {}) {
    this.cutReached = new Promise((r) => (this.cutResolve = r));
  }

  get isFrozen(): boolean {
    return this.frozen;
  }

  // ---- scheduling ------------------------------------------------------------------------

  /** Power goes off during the k-th cuttable op (1-based): the op was issued (its write may land)
   *  but never completes. With `before`, power goes off just before op k is issued (op k has no
   *  effect at all): the cut falls between ops k-1 and k. */
  cutAt(k: number, before = false): this {
    this.cutPredicate = (op) => op.index === k;
    this.cutBefore = before;
    return this;
  }

  cutWhen(pred: (op: OpRecord) => boolean): this {
    this.cutPredicate = pred;
    return this;
  }

  /** Power goes off now, between operations: every later call hangs / rejects. */
  freezeNow(): void {
    if (this.frozen) return;
    this.frozen = true;
    this.cutOp = { index: this.opCount + 0.5, kind: 'datasync', file: '(between ops)' };
    this.cutResolve(this.cutOp);
  }

  failWhen(rule: FailRule): this {
    this.failRules.push({ times: 1, ...rule });
    return this;
  }

  /** The k-th op of `kind` from now on (1-based) fails with `code`. */
  failNth(kind: OpKind, n: number, code: string, partial = false): this {
    let seen = 0;
    return this.failWhen({ match: (op) => op.kind === kind && ++seen === n, code, partial });
  }

  clearFailures(): void {
    this.failRules = [];
    this.readFailures = [];
  }

  private readFailures: { match: (file: string, pos: number, length: number) => boolean; code: string; times: number }[] = [];

  /** Reads (readSync and read) matching `match` fail with `code` (EIO by default), `times` times. */
  failReads(match: (file: string, pos: number, length: number) => boolean, code = 'EIO', times = 1): this {
    this.readFailures.push({ match, code, times });
    return this;
  }

  // ---- inspection / direct manipulation (tests) ------------------------------------------

  private abs(file: string): string {
    return path.resolve(file);
  }

  files(): string[] {
    return [...this.names.keys()].sort();
  }

  /** Current contents as reads would see them (page cache). */
  readVolatile(file: string): Buffer | undefined {
    return this.names.get(this.abs(file))?.volatile.bytes();
  }

  /** What is on the "disk" right now (through the durable namespace). */
  readDurable(file: string): Buffer | undefined {
    return this.durableNames.get(this.abs(file))?.durable.bytes();
  }

  pendingWrites(file?: string): number {
    let n = 0;
    for (const [name, ino] of this.names) if (!file || name === this.abs(file)) n += ino.pending.length;
    return n;
  }

  pendingDirOps(): number {
    return this.pendingDir.length;
  }

  /** Writes straight into both images, durably (for corruption tests and fixtures). */
  poke(file: string, pos: number, data: Buffer): void {
    const ino = this.names.get(this.abs(file));
    if (!ino) throw new Error(`poke: no file ${file}`);
    ino.sync();
    ino.volatile.write(pos, data);
    ino.durable.write(pos, data);
  }

  /** Creates a durable file with the given contents (fixtures). */
  putFile(file: string, data: Buffer): void {
    const img = new Image();
    img.write(0, data);
    const ino = new Inode(img);
    this.names.set(this.abs(file), ino);
    this.durableNames.set(this.abs(file), ino);
  }

  // ---- the power cut ---------------------------------------------------------------------

  /** Builds the state the disk would hold after a power cut now, as a fresh FaultFS; this one is
   *  frozen. Deterministic given rng. */
  powerCut(rng: Rng, policy: CutPolicy = POLICY_RANDOM, opts: FaultFsOptions = this.opts): { fs: FaultFS; report: CutReport } {
    if (!this.frozen) this.freezeNow();
    const report: CutReport = { writes: 0, kept: 0, dropped: 0, torn: 0, garbled: 0, truncates: 0, truncatesKept: 0, dirOps: 0, dirOpsKept: 0 };

    // Namespace: a prefix of the pending directory operations survives.
    const names = new Map(this.durableNames);
    const n = this.pendingDir.length;
    const keepDir = policy.dirOps === 'all' ? n : policy.dirOps === 'none' ? 0 : Math.floor(rng() * (n + 1));
    for (let i = 0; i < keepDir; i++) applyDirOp(names, this.pendingDir[i]!);
    report.dirOps = n;
    report.dirOpsKept = keepDir;

    // File contents: durable image plus each pending op's fate, in issue order.
    const total = policy.keep + policy.drop + policy.tear + policy.garble;
    const crashed = new Map<Inode, Image>();
    const out = new FaultFS(opts);
    for (const [name, ino] of names) {
      let img = crashed.get(ino);
      if (!img) {
        img = new Image(ino.durable);
        for (const p of ino.pending) {
          if (p.kind === 'truncate') {
            report.truncates++;
            if (rng() < policy.truncateKeep) {
              img.truncate(p.size);
              report.truncatesKept++;
            }
            continue;
          }
          report.writes++;
          let r = rng() * total;
          if ((r -= policy.keep) < 0) {
            img.write(p.pos, p.data);
            report.kept++;
          } else if ((r -= policy.drop) < 0) {
            report.dropped++;
          } else if ((r -= policy.tear) < 0) {
            tearInto(img, p.pos, p.data, rng, false);
            report.torn++;
          } else {
            tearInto(img, p.pos, p.data, rng, true);
            report.garbled++;
          }
        }
        crashed.set(ino, img);
      }
      out.putFile(name, img.bytes());
    }
    return { fs: out, report };
  }

  /** A copy of the current state (volatile, durable and pending), unfrozen, without schedules. */
  clone(opts: FaultFsOptions = this.opts): FaultFS {
    const out = new FaultFS(opts);
    const map = new Map<Inode, Inode>();
    const copy = (ino: Inode): Inode => {
      let c = map.get(ino);
      if (!c) {
        c = new Inode();
        c.durable = new Image(ino.durable);
        c.volatile = new Image(ino.volatile);
        c.pending = ino.pending.map((p) => ({ ...p }));
        map.set(ino, c);
      }
      return c;
    };
    for (const [k, v] of this.names) out.names.set(k, copy(v));
    for (const [k, v] of this.durableNames) out.durableNames.set(k, copy(v));
    out.pendingDir = this.pendingDir.map((d) => (d.kind === 'link' ? { ...d, inode: copy(d.inode) } : { ...d }));
    return out;
  }

  // ---- op plumbing ------------------------------------------------------------------------

  private settle<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const run = () => {
        if (this.frozen) return this.afterFreeze(reject);
        this.completedOps++;
        try {
          resolve(fn());
        } catch (e) {
          reject(e);
        }
      };
      if (this.opts.completion === 'microtask') queueMicrotask(run);
      else setImmediate(run);
    });
  }

  private afterFreeze(reject: (e: unknown) => void): void {
    if (this.opts.freezeMode === 'reject') reject(new PowerOffError('operation did not complete'));
    // 'hang': never settles
  }

  private frozenPromise<T>(what: string): Promise<T> {
    return new Promise<T>((_resolve, reject) => {
      if (this.opts.freezeMode === 'reject') setImmediate(() => reject(new PowerOffError(what)));
    });
  }

  /**
   * Issues a cuttable op: records it, checks the cut and failure schedules, applies `effect`
   * (the part that reaches the page cache / pending queues) and completes asynchronously.
   */
  private issue(rec: Omit<OpRecord, 'index'>, effect: (partialFail: boolean) => void): Promise<void> {
    if (this.frozen) return this.frozenPromise(`${rec.kind} ${rec.file}`);
    const op: OpRecord = { index: ++this.opCount, ...rec };
    this.counts[op.kind]++;
    if (this.opts.trace !== false) this.trace.push(op);
    if (this.cutPredicate && this.cutPredicate(op)) {
      // The op was issued: its effect is in the page cache / pending queues, but it never returns.
      if (!this.cutBefore) effect(false);
      this.frozen = true;
      this.cutOp = op;
      this.onOp?.(op);
      this.cutResolve(op);
      return this.frozenPromise(`${op.kind} ${op.file}`);
    }
    const rule = this.failRules.find((r) => (r.times ?? 1) > 0 && r.match(op));
    this.onOp?.(op);
    if (rule) {
      rule.times = (rule.times ?? 1) - 1;
      if (rule.partial) effect(true);
      const err = errnoError(rule.code, op.kind, op.file);
      return this.settle(() => {
        throw err;
      });
    }
    effect(false);
    return this.settle(() => undefined);
  }

  // ---- FileSystem ---------------------------------------------------------------------------

  async open(file: string, readOnly = false): Promise<FileHandle> {
    if (this.frozen) return this.frozenPromise(`open ${file}`);
    const ino = this.names.get(this.abs(file));
    if (!ino) throw errnoError('ENOENT', 'open', file);
    return new FaultFileHandle(this, ino, this.abs(file), readOnly);
  }

  async create(file: string): Promise<FileHandle> {
    const abs = this.abs(file);
    const ino = new Inode();
    await this.issue({ kind: 'create', file: abs }, () => {
      this.names.set(abs, ino);
      this.pendingDir.push({ kind: 'link', name: abs, inode: ino, op: this.opCount });
    });
    return new FaultFileHandle(this, ino, abs, false);
  }

  exists(file: string): boolean {
    if (this.frozen) throw new PowerOffError(`exists ${file}`);
    return this.names.has(this.abs(file));
  }

  rename(from: string, to: string): Promise<void> {
    const a = this.abs(from);
    const b = this.abs(to);
    if (!this.frozen && !this.names.has(a)) return Promise.reject(errnoError('ENOENT', 'rename', from));
    return this.issue({ kind: 'rename', file: a, to: b }, () => {
      const ino = this.names.get(a)!;
      this.names.delete(a);
      this.names.set(b, ino);
      this.pendingDir.push({ kind: 'rename', from: a, to: b, op: this.opCount });
    });
  }

  unlink(file: string): Promise<void> {
    const a = this.abs(file);
    if (!this.frozen && !this.names.has(a)) return Promise.reject(errnoError('ENOENT', 'unlink', file));
    return this.issue({ kind: 'unlink', file: a }, () => {
      this.names.delete(a);
      this.pendingDir.push({ kind: 'unlink', name: a, op: this.opCount });
    });
  }

  syncDir(dir: string): Promise<void> {
    const d = this.abs(dir);
    let at = -1;
    return this.issue({ kind: 'syncDir', file: d }, () => {
      at = this.opCount;
    }).then(() => {
      // Make durable every pending directory op touching d that was issued before the sync, in
      // order (ops touching other directories, or issued later, stay pending).
      const rest: DirOp[] = [];
      for (const op of this.pendingDir) {
        if (op.op < at && dirsOf(op).includes(d)) applyDirOp(this.durableNames, op);
        else rest.push(op);
      }
      this.pendingDir = rest;
    });
  }

  // ---- called by handles ---------------------------------------------------------------------

  /** @internal */
  hWritev(h: FaultFileHandle, buffers: Buffer[], position: number): Promise<void> {
    const data = buffers.length === 1 ? Buffer.from(buffers[0]!) : Buffer.concat(buffers);
    return this.issue(
      { kind: 'writev', file: h.file, pos: position, length: data.length, crc: zlib.crc32(data) },
      (partial) => {
        let d = data;
        if (partial) {
          // A random-looking but deterministic prefix: half the sectors (rounded down).
          const sectors = Math.ceil(data.length / SECTOR);
          d = data.subarray(0, Math.min(data.length, Math.floor(sectors / 2) * SECTOR));
          if (d.length === 0) return;
        }
        h.ino.volatile.write(position, d);
        h.ino.pending.push({ kind: 'write', pos: position, data: d, op: this.opCount });
        this.writtenBytes += d.length;
      },
    );
  }

  /** @internal */
  hDatasync(h: FaultFileHandle): Promise<void> {
    // The durable effect happens when the sync completes; a failed or cut sync makes nothing durable
    // (a cut sync's writes may still land: that is each pending write's fate at the cut).
    // Only writes issued before the sync are guaranteed by it.
    let at = -1;
    return this.issue({ kind: 'datasync', file: h.file }, () => {
      at = this.opCount;
    }).then(() => {
      if (at >= 0) h.ino.sync(at);
    });
  }

  /** @internal */
  hTruncate(h: FaultFileHandle, size: number): Promise<void> {
    return this.issue({ kind: 'truncate', file: h.file, pos: size }, () => {
      h.ino.volatile.truncate(size);
      h.ino.pending.push({ kind: 'truncate', size, op: this.opCount });
    });
  }

  /** @internal */
  hRead(h: FaultFileHandle, buf: Buffer, offset: number, length: number, position: number): number {
    if (this.frozen) throw new PowerOffError(`read ${h.file}`);
    const rf = this.readFailures.find((r) => r.times > 0 && r.match(h.file, position, length));
    if (rf) {
      rf.times--;
      throw errnoError(rf.code, 'read', h.file);
    }
    this.readOps++;
    const n = h.ino.volatile.read(buf, offset, length, position);
    this.readBytes += n;
    return n;
  }

  /** @internal */
  hReadAsync(h: FaultFileHandle, buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    if (this.frozen) return this.frozenPromise(`read ${h.file}`);
    return new Promise<number>((resolve, reject) => {
      const run = () => {
        if (this.frozen) return this.afterFreeze(reject);
        try {
          resolve(this.hRead(h, buf, offset, length, position));
        } catch (e) {
          reject(e);
        }
      };
      if (this.opts.completion === 'microtask') queueMicrotask(run);
      else setImmediate(run);
    });
  }
}

/** Replaces whole 512-byte sectors of `img` covered by a write: some land with the new data, the
 *  others keep their old contents (tear) or get random bytes (garble). At least one sector differs
 *  from a clean "keep" and, for writes of several sectors, at least one lands. */
function tearInto(img: Image, pos: number, data: Buffer, rng: Rng, garble: boolean): void {
  const end = pos + data.length;
  if (data.length === 0) return;
  const first = Math.floor(pos / SECTOR);
  const last = Math.floor((end - 1) / SECTOR);
  const count = last - first + 1;
  // fate per sector: 0 old, 1 new, 2 garbage
  const fate: number[] = [];
  for (let i = 0; i < count; i++) fate.push(rng() < 0.5 ? 1 : 0);
  if (garble) {
    const g = randInt(rng, 0, count - 1);
    fate[g] = 2;
    for (let i = 0; i < count; i++) if (i !== g && rng() < 0.15) fate[i] = 2;
  } else if (count > 1) {
    if (!fate.includes(0)) fate[randInt(rng, 0, count - 1)] = 0;
    if (!fate.includes(1)) fate[randInt(rng, 0, count - 1)] = 1;
  } else {
    fate[0] = 0; // a one-sector write cannot tear: a tear of it is a drop
  }
  for (let i = 0; i < count; i++) {
    const s = (first + i) * SECTOR;
    const lo = Math.max(s, pos);
    const hi = Math.min(s + SECTOR, end);
    if (fate[i] === 1) img.write(lo, data, lo - pos, hi - pos);
    else if (fate[i] === 2) {
      // The device wrote garbage over the whole sector (within the file's new extent).
      const gEnd = Math.max(hi, Math.min(s + SECTOR, img.len));
      img.write(s, randomBytes(rng, gEnd - s));
    }
  }
}

export class FaultFileHandle implements FileHandle {
  private closed = false;
  constructor(
    private readonly fs: FaultFS,
    /** @internal */ readonly ino: Inode,
    readonly file: string,
    private readonly readOnly: boolean,
  ) {}

  private check(syscall: string, write: boolean): void {
    if (this.closed) throw errnoError('EBADF', syscall, this.file);
    if (write && this.readOnly) throw errnoError('EBADF', syscall, this.file);
  }

  readSync(buf: Buffer, offset: number, length: number, position: number): number {
    this.check('read', false);
    return this.fs.hRead(this, buf, offset, length, position);
  }

  read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    this.check('read', false);
    return this.fs.hReadAsync(this, buf, offset, length, position);
  }

  writev(buffers: Buffer[], position: number): Promise<void> {
    this.check('write', true);
    return this.fs.hWritev(this, buffers, position);
  }

  datasync(): Promise<void> {
    this.check('fdatasync', false);
    return this.fs.hDatasync(this);
  }

  /** Growth is a size change like ftruncate's: pending (kept or dropped at a cut) until synced. */
  extend(size: number, _zeroFrom?: number): Promise<void> {
    this.check('ftruncate', true);
    return this.fs.hTruncate(this, size);
  }

  size(): number {
    this.check('fstat', false);
    if (this.fs.isFrozen) throw new PowerOffError(`fstat ${this.file}`);
    return this.ino.volatile.len;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

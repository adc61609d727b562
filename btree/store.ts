// The store: one writer committing batches of concurrent puts (group commit), readers on immutable
// snapshots that never wait for the writer (unless blockingSyncUs is set: then a small commit's
// fdatasync holds up the calling thread, readers included, for that one sync). A commit becomes
// visible only after its last sync.
import { Mutex } from 'async-mutex';
import * as nodePath from 'node:path';
import type { Entry, GetOptions, OpenOptions, StoreStats } from './api';
import { nodeFileSystem, type FileHandle, type FileSystem } from './file-io';
import { FORMAT_VERSION, isSlotPage, MAX_KEY_BYTES, PAGE_SIZE, rootPageOf } from './layout';
import { encodeMeta, type Meta } from './meta';
import type { Freelist } from './freelist';
import { makeCaches } from './cache';
import { Pager } from './pager';
import { commit, isInline, slotRoot, writeSlot, type Put } from './commit';
import { createFile, recover } from './recovery';
import { lookup } from './tree';
import { ioError, StoreError } from './errors';
import { encodeNode, type Node } from './node';
import { readValue, requireBuffer, Snapshot } from './snapshot';
import { compactFileOf, copyInto, failedCopy, installCopy, type CompactOptions, type CompactResult } from './copy';
import { rebuildFile, type RebuildOptions } from './rebuild';
import { claimFile, withDefaults, type StoreOptions } from './options';

const PROBE_EVERY = 32;
const SYNC_SAMPLES = 16;

interface Queued {
  puts: Put[];
  bytes: number;
  resolve(): void;
  reject(err: unknown): void;
}

export class Store {
  private readonly readers = new Map<number, number>();
  private readonly queue: Queued[] = [];
  private readonly writer = new Mutex();
  private draining = false;
  /** A failed commit whose meta was written and whose slot is not yet rewritten (rewriteFailedSlot):
   *  no commit may run until it is, and the next one does it first. */
  private unrestored: { slot: number; txid: number } | undefined;
  /** The lowest txid the next commit may take: past every failed commit's (see commitBatch), and
   *  at open past the commit a crash may have left half written (meta.txid + 1: its pages may be in
   *  the file, unreachable, under that txid), so no two commits' pages ever carry one txid. */
  private nextTxid: number;
  /** A directory whose fsync failed after compact() renamed the new file into it: until a retry
   *  succeeds the rename may not be durable, so no commit may be acknowledged (a crash could bring
   *  back the old file without it). Every commit retries it first. */
  private unsyncedDir: string | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** Why the store has no data file any more (a compaction that could not open the file it
   *  installed): no commit may run, since it would go to the unlinked old file. */
  private lost: StoreError | undefined;
  private counters = { commits: 0, fsyncs: 0, failedCommits: 0, batchedPuts: 0, maxBatch: 0, prepareUs: 0, lastSyncUs: 0, pages: 0, runs: 0, blockingCommits: 0 };
  /** The last SYNC_SAMPLES blocking fdatasyncs, microseconds, and whether their median is over
   *  blockingSyncUs. Only those are timed: a sync on the thread pool is timed to when the event loop
   *  gets back to its result, which under load is mostly the loop's own backlog, not the disk. The
   *  median, not a mean: this VM has single syncs of 10-20 ms now and then, and one of them must not
   *  send hundreds of commits to the pool; a disk that is slow most of the time does. */
  private readonly syncSamples: number[] = [];
  private syncSlow = false;
  /** Commits since the last blocking sync; while syncs are slow, every PROBE_EVERY-th small commit
   *  syncs blocking anyway, to notice a disk that got fast again. */
  private sinceBlocking = 0;

  private constructor(
    readonly path: string,
    private readonly fs: FileSystem,
    /** Gives the file back to claimFile's registry once the store is closed. */
    private readonly releaseFile: () => void,
    private file: FileHandle,
    public pager: Pager,
    private meta: Meta,
    /** The root node of `meta`, held here: its slot page is rewritten two commits later. */
    private root: Node | null,
    private freelist: Freelist,
    /** A file in an older format, until its first commit here: per slot, what a failed commit into
     *  it writes back (Recovered.slotBytes). */
    private slotBytes: Buffer[][],
    private fileBytes: number,
    private readonly opts: StoreOptions,
    private readonly openMs: number,
    /** What open found wrong with a meta page it did not use (it took the other one). */
    readonly recoveryNote: string | undefined,
    /** What open found wrong with the file, for the operator: a meta page it could not use (the
     *  unusable one may be the older, a damaged page that loses nothing, or the newest, a torn or
     *  damaged commit open fell back from: its damage may not say which), a file cut short
     *  (Recovered.truncated). Empty when the file was whole, and once compact() has replaced it. */
    public openWarnings: readonly string[],
  ) {
    this.nextTxid = meta.txid + 3;
  }

  static async open(options: OpenOptions): Promise<Store> {
    const started = performance.now();
    const opts = withDefaults(options);
    const fs = options.fs ?? nodeFileSystem;
    return Store.openClaimed(options.path, fs, opts, claimFile(fs, options.path), started);
  }

  /** Rebuilds a file that cannot be opened (btree/rebuild.ts says how). */
  static rebuild(options: OpenOptions, callbacks: RebuildOptions = {}): Promise<CompactResult & { from: 'tree' | 'pages' }> {
    return rebuildFile(options, callbacks, Store.openCopy);
  }

  /** A fresh file at `tmp` for a copy (compact, rebuild), replacing one a crash left there, whose
   *  txids start past `pastTxid` (at an even one: slot 0), so they never go back. */
  private static async openCopy(tmp: string, fs: FileSystem, opts: StoreOptions, pastTxid: number): Promise<Store> {
    if (fs.exists(tmp)) await fs.unlink(tmp);
    // The copy takes what the file format holds, not this open's limits: data stored under larger
    // ones must still copy. It grows by what each batch needs, not by a quarter of itself, so it
    // ends at the size of the live data.
    const copyOpts = { ...opts, growBytes: PAGE_SIZE, maxKeyBytes: MAX_KEY_BYTES, maxValueBytes: Number.MAX_SAFE_INTEGER };
    return Store.openClaimed(tmp, fs, copyOpts, () => undefined, performance.now(), pastTxid + 2 - (pastTxid % 2));
  }

  /** Opens a file its caller has claimed (claimFile); `release` gives the claim back at close. */
  private static async openClaimed(path: string, fs: FileSystem, opts: StoreOptions, release: () => void, started: number, firstTxid = 0): Promise<Store> {
    let r: Awaited<ReturnType<typeof recover>>;
    try {
      if (!fs.exists(path)) await createFile(fs, path, firstTxid);
      r = await recover(fs, path, makeCaches(opts.cacheMB));
    } catch (err) {
      release();
      throw err;
    }
    return new Store(path, fs, release, r.file, r.pager, r.meta, r.root, r.freelist, r.slotBytes, r.fileBytes, opts,
      performance.now() - started, r.fellBack, [
        ...(r.fellBack ? [`opened commit ${r.meta.txid} from one meta page; the other was not usable: ${r.fellBack}`] : []),
        ...(r.truncated ? [r.truncated] : []),
      ]);
  }

  /** Whether close() has begun (or a failed compaction closed the store). */
  get isClosed(): boolean {
    return this.closed;
  }

  private validate(key: Buffer): void {
    if (this.closed) throw new StoreError('CLOSED', 'store is closed');
    requireBuffer(key, 'key');
    if (key.length < 1 || key.length > this.opts.maxKeyBytes) {
      throw new StoreError('INVALID_ARGUMENT', `key is ${key.length} bytes; keys must be 1..${this.opts.maxKeyBytes} bytes`);
    }
  }

  private validateValue(value: Buffer): void {
    requireBuffer(value, 'value');
    if (value.length > this.opts.maxValueBytes) {
      throw new StoreError('INVALID_ARGUMENT', `value is ${value.length} bytes; the limit is ${this.opts.maxValueBytes} bytes`);
    }
  }

  /** Durable put: resolves once the commit that holds it is synced. Concurrent puts share a commit.
   *  The key and a small value are copied at the call; a large value is written from the caller's
   *  buffer (no copy): leave it unmodified until the promise settles, or the page written and the
   *  checksum kept for it may disagree. */
  put(key: Buffer, value: Buffer): Promise<void> {
    return this.putMany([{ key, value }]);
  }

  /** All entries in one atomic commit (possibly shared with other callers' puts). An empty list
   *  resolves at once: it commits nothing and does not wait for puts queued before it. */
  putMany(entries: Entry[]): Promise<void> {
    let items: Entry[];
    try {
      if (this.closed) throw new StoreError('CLOSED', 'store is closed');
      if (!Array.isArray(entries)) throw new StoreError('INVALID_ARGUMENT', 'putMany takes an array of { key, value }');
      // Each key and value is read once: what is checked is what is stored (a getter could differ).
      items = entries.map((e) => {
        if (typeof e !== 'object' || e === null) throw new StoreError('INVALID_ARGUMENT', 'putMany takes an array of { key, value }');
        const item = { key: e.key, value: e.value };
        this.validate(item.key);
        this.validateValue(item.value);
        return item;
      });
    } catch (err) {
      return Promise.reject(err);
    }
    // Nothing to write: no commit (it would rewrite the meta for nothing), and no wait for the puts
    // queued before it either.
    if (items.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const bytes = items.reduce((s, e) => s + e.key.length + e.value.length, 0);
      // Keys and small values are copied now, not at the commit: the caller may reuse its buffers as
      // soon as put() returns, and the cached leaf keeps what it is given.
      const puts = items.map((e) => ({ key: Buffer.from(e.key), value: isInline(e.key, e.value) ? Buffer.from(e.value) : e.value }));
      this.queue.push({ puts, bytes, resolve, reject });
      if (!this.draining) {
        this.draining = true;
        // Let every request that arrived in this turn of the event loop join the first batch.
        setImmediate(() => void this.drain());
      }
    });
  }

  /** Whatever queued while the previous commit was syncing is the next batch: no timer needed. */
  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      // Count what fits, then take it in one splice: shift() per put would make a long queue quadratic.
      let n = 0;
      let ops = 0;
      let bytes = 0;
      for (; n < this.queue.length; n++) {
        const q = this.queue[n];
        if (n > 0 && (ops + q.puts.length > this.opts.maxBatchOps || bytes + q.bytes > this.opts.maxBatchBytes)) break;
        ops += q.puts.length;
        bytes += q.bytes;
      }
      const batch = this.queue.splice(0, n);
      try {
        await this.writer.runExclusive(() => this.commitBatch(batch.flatMap((q) => q.puts)));
        for (const q of batch) q.resolve();
      } catch (err) {
        if (batch.length > 1 && err instanceof StoreError && err.code === 'CORRUPTION' && !err.outcomeUnknown) await this.setAsideDamaged(batch, err);
        else for (const q of batch) q.reject(err);
      }
    }
    this.draining = false;
  }

  /** A commit that failed on a damaged page wrote nothing. Its callers whose keys lead through a
   *  damaged page (the same descent as the commit's, without writes) fail; the others commit again,
   *  together. An I/O error is not retried: the disk that failed would likely fail again. If the
   *  second commit fails too (a damaged freelist page, which every commit reads), all of it fails. */
  private async setAsideDamaged(batch: Queued[], first: StoreError): Promise<void> {
    const rest: Queued[] = [];
    for (const q of batch) {
      try {
        for (const p of q.puts) lookup(this.pager, this.root, p.key);
        rest.push(q);
      } catch (err) {
        q.reject(err);
      }
    }
    if (rest.length === batch.length) {
      for (const q of batch) q.reject(first);
      return;
    }
    if (rest.length === 0) return;
    try {
      await this.writer.runExclusive(() => this.commitBatch(rest.flatMap((q) => q.puts)));
      for (const q of rest) q.resolve();
    } catch (err) {
      for (const q of rest) q.reject(err);
    }
  }

  private async commitBatch(puts: Put[]): Promise<void> {
    if (this.lost) throw new StoreError('CLOSED', `${this.path}: the store is closed, nothing of this batch was written (${this.lost.message})`);
    if (this.unsyncedDir !== undefined) {
      try {
        await this.fs.syncDir(this.unsyncedDir);
        this.unsyncedDir = undefined;
      } catch (err) {
        this.counters.failedCommits++;
        throw ioError(`${this.path}: syncing the directory of the compacted file, which every commit needs first (nothing of this batch was written)`, err);
      }
    }
    if (this.unrestored !== undefined) {
      try {
        await this.rewriteFailedSlot(this.unrestored.slot, this.unrestored.txid, true);
      } catch (err) {
        this.counters.failedCommits++;
        throw ioError(`${this.path}: rewriting the meta page of an earlier failed commit`, err);
      }
    }
    // The slot that does not hold the last commit (txid of the other parity), past failed commits.
    let txid = this.meta.txid + 1;
    while (txid < this.nextTxid) txid += 2;
    const slot = txid % 2;
    let metaTouched = false;
    try {
      const r = await commit({
        txid,
        pager: this.pager,
        file: this.file,
        meta: this.meta,
        root: this.root,
        freelist: this.freelist,
        fileBytes: this.fileBytes,
        syncMode: this.opts.syncMode,
        growBytes: this.opts.growBytes,
        reuseThreshold: this.reuseThreshold(),
        blockingSync: this.opts.blockingSyncUs > 0 && (!this.syncSlow || this.sinceBlocking >= PROBE_EVERY) && this.opts.blockingSyncWhen(),
        onMetaWrite: () => { metaTouched = true; },
      }, puts);
      this.counters.fsyncs += r.syncs;
      this.counters.commits++;
      this.counters.batchedPuts += puts.length;
      this.counters.maxBatch = Math.max(this.counters.maxBatch, puts.length);
      this.counters.prepareUs += r.prepareUs;
      this.counters.lastSyncUs += r.lastSyncUs;
      this.counters.pages += r.pages;
      this.counters.runs += r.runs;
      if (r.blocking) {
        this.counters.blockingCommits++;
        this.noteBlockingSync(r.lastSyncUs);
        this.sinceBlocking = 0;
      } else {
        this.sinceBlocking++;
      }
      for (const node of r.nodes) {
        node.dirty = false;
        node.patch = undefined;
        if (!isSlotPage(node.pageId)) this.pager.caches.nodes.set(node.pageId, node);
      }
      this.freelist = r.freelist;
      this.fileBytes = r.fileBytes;
      // Publish last: readers switch to the new root only once it is durable.
      this.root = r.root;
      this.meta = r.meta;
    } catch (err) {
      this.counters.failedCommits++;
      // Its pages may be on the disk under this txid: the next commit takes a higher one (the next,
      // once rewriteFailedSlot has recorded this one; else one of the same parity, the same slot), so
      // no two commits' pages ever carry one txid. A rebuild from the pages alone (Store.rebuild)
      // tells versions apart by txid, and a tie could prefer a leaf of this failed commit over the
      // acknowledged retry's.
      this.nextTxid = txid + 2;
      // Its growth of the file may have happened (and stays): without this, Stat's file bytes and
      // compact()'s beforeBytes would show the size from before it until the file grows again.
      try { this.fileBytes = Math.max(this.fileBytes, this.file.size()); } catch { /* keep the last known size */ }
      // Once its meta page was written, the commit may reach the disk whatever its fdatasync said:
      // only a durable rewrite of the slot makes "not applied" true across a crash. Before that, the
      // slot is untouched, and a failed rewrite leaves only the txid unrecorded (see there).
      const rolledBack = await this.rewriteFailedSlot(slot, txid, metaTouched).then(() => true, () => !metaTouched);
      if (rolledBack) throw ioError(`${this.path}: commit failed, nothing of this batch was applied`, err);
      throw ioError(`${this.path}: commit failed and so did rolling it back: the batch is not visible, but a crash before ` +
        'the next successful commit may bring all of it back (outcome unknown until then)', err, { outcomeUnknown: true });
    }
  }

  private noteBlockingSync(us: number): void {
    if (this.syncSamples.length === SYNC_SAMPLES) this.syncSamples.shift();
    this.syncSamples.push(us);
    const sorted = this.syncSamples.slice().sort((a, b) => a - b);
    this.syncSlow = sorted[sorted.length >> 1] > this.opts.blockingSyncUs;
  }

  /** After a failed commit `txid` into `slot`: writes the slot anew with a meta of the last commit's
   *  state under that txid (stateMeta), so that neither a later open nor a power cut can bring back
   *  the failed commit (the next commit may reuse its pages), and so that the txid is on the disk:
   *  the first commit after an open skips only one txid past the newest meta (a commit a crash may
   *  have left half written), and a second failed commit, or a crash in the retry of the first,
   *  would otherwise leave pages under the txid that first commit takes. The older commit the slot
   *  held is no longer needed once this is durable: its meta is the same state as the other slot's.
   *  A file still in an older format (no commit of this build yet) cannot take a meta of this
   *  format over its freelist; there, a slot whose meta was written gets back what it held, and the
   *  failed txid stays unrecorded until the next commit. Until the rewrite of a slot whose meta was
   *  written has succeeded, no commit may run: the next one retries it first, so the store heals
   *  once the disk does. */
  private async rewriteFailedSlot(slot: number, txid: number, metaTouched: boolean): Promise<void> {
    if (metaTouched) this.unrestored = { slot, txid };
    if (this.currentFormat()) {
      const { meta, pages } = this.stateMeta(slot, txid);
      await this.writeSlotDurably(slot, pages);
      this.meta = meta;
      this.nextTxid = txid + 1;
    } else if (metaTouched) {
      await this.writeSlotDurably(slot, this.slotBytes[slot]);
    }
    this.unrestored = undefined;
  }

  private async writeSlotDurably(slot: number, pages: Buffer[]): Promise<void> {
    await writeSlot(this.file, slot, pages);
    await this.file.datasync();
    this.counters.fsyncs++;
  }

  /** Whether the last commit's meta is of this build's format (a file opened from an older one
   *  keeps its format until its first commit here). */
  private currentFormat(): boolean {
    return (this.meta.version ?? FORMAT_VERSION) === FORMAT_VERSION;
  }

  /** A meta for `slot` under `txid` that holds the last commit's state and needs no verification
   *  (its pages are durable), with the root page copied into the slot: the next commit rewrites the
   *  other slot's root. */
  private stateMeta(slot: number, txid: number): { meta: Meta; pages: Buffer[] } {
    const root = this.root ? encodeNode(this.root, rootPageOf(slot), txid) : undefined;
    const meta: Meta = { ...this.meta, txid, ...slotRoot(slot, root), commitExtents: [], commitHash: 0 };
    return { meta, pages: root ? [encodeMeta(meta), root] : [encodeMeta(meta)] };
  }

  /** Reads from the latest durable commit. */
  async get(key: Buffer, opts: GetOptions = {}): Promise<Buffer | undefined> {
    this.validate(key);
    const meta = this.meta;
    const pager = this.pager;
    const v = readValue(pager, lookup(pager, this.root, key), opts.alloc, true);
    if (v === undefined || Buffer.isBuffer(v)) return v;
    // A large value is read on the thread pool; pin the snapshot so its pages are not reused.
    v.catch(() => undefined);
    this.register(meta.txid, pager);
    try {
      return await v;
    } finally {
      this.unregister(meta.txid, pager);
    }
  }

  /** An immutable view of the latest durable commit; call release() when done. */
  snapshot(): Snapshot {
    return this.takeSnapshot(false);
  }

  /** `outlivesClose`: compaction's own, taken under the writer lock, which close() waits for (so the
   *  file is still open even if close() has begun). */
  private takeSnapshot(outlivesClose: boolean): Snapshot {
    if (this.lost || (this.closed && !outlivesClose)) throw new StoreError('CLOSED', 'store is closed');
    this.register(this.meta.txid, this.pager);
    return new Snapshot(this, this.meta, this.root, this.pager, outlivesClose);
  }

  private register(txid: number, pager: Pager): void {
    pager.users++;
    if (pager !== this.pager) return;
    this.readers.set(txid, (this.readers.get(txid) ?? 0) + 1);
  }

  /** @internal */
  unregister(txid: number, pager: Pager): void {
    pager.users--;
    if (pager !== this.pager) {
      // A snapshot of the file that compaction replaced: close it once its last reader is gone.
      if (pager.users === 0) void pager.close().catch(() => undefined);
      return;
    }
    const n = (this.readers.get(txid) ?? 0) - 1;
    if (n <= 0) this.readers.delete(txid);
    else this.readers.set(txid, n);
  }

  /** Pages freed at or before this txid may be reused: neither on-disk meta (the last commit and
   *  the one before it) nor any open snapshot can reach them. */
  private reuseThreshold(): number {
    return Math.min(this.meta.txid - 1, this.oldestReader());
  }

  private oldestReader(): number {
    let min = Infinity;
    for (const t of this.readers.keys()) if (t < min) min = t;
    return min;
  }

  stats(): StoreStats {
    let open = 0;
    for (const n of this.readers.values()) open += n;
    const [segmentFree, segmentPending] = this.freelist.segmentCounts(this.reuseThreshold());
    return {
      openWarnings: this.openWarnings,
      txid: this.meta.txid,
      keys: this.meta.keyCount,
      pageCount: this.meta.pageCount,
      freePages: this.freelist.freeCount() + segmentFree,
      pendingFreePages: this.freelist.pendingCount() + segmentPending,
      freelistSegments: this.freelist.segments.length,
      freelistLevels: this.freelist.segmentLevels(),
      freelistSegmentPages: segmentFree + segmentPending,
      fileBytes: this.fileBytes,
      commits: this.counters.commits,
      fsyncs: this.counters.fsyncs,
      failedCommits: this.counters.failedCommits,
      cacheHits: this.pager.caches.nodes.hits + this.pager.caches.values.hits,
      cacheMisses: this.pager.caches.nodes.misses + this.pager.caches.values.misses,
      cachePages: this.pager.caches.nodes.size + this.pager.caches.values.size,
      openSnapshots: open,
      maxBatch: this.counters.maxBatch,
      meanBatch: this.counters.commits ? this.counters.batchedPuts / this.counters.commits : 0,
      commitPrepareUs: this.counters.prepareUs,
      commitLastSyncUs: this.counters.lastSyncUs,
      commitPages: this.counters.pages,
      commitRuns: this.counters.runs,
      blockingSyncCommits: this.counters.blockingCommits,
      syncMode: this.opts.syncMode,
      openMs: this.openMs,
    };
  }

  /** Copies the live data of the latest commit into a new file, syncs it and atomically renames it
   *  over the data file, so the file shrinks to what is live. Puts wait meanwhile; readers do not,
   *  and snapshots taken before keep reading the old file until they are released. An aborted
   *  `signal` stops the copy at the next batch (up to the rename), removes the partial copy and
   *  rejects with signal.reason; the data file is then as it was. `onInstall` is called once the
   *  copy is complete and past the last abort check, just before the rename: from then on an abort
   *  no longer applies and the compaction finishes or fails on its own. With `onLoss` (salvage), a
   *  damaged tree page or value is reported and left out instead of failing the compaction; the new
   *  file then holds what could be read, and `keys` says how many entries that was. */
  async compact(progress?: (copied: number, total: number) => void, { signal, onInstall, onLoss }: CompactOptions = {}): Promise<CompactResult> {
    if (this.closed) throw new StoreError('CLOSED', 'store is closed');
    return this.writer.runExclusive(async () => {
      const tmp = compactFileOf(this.path);
      // Held until the copy is installed or removed: a Store open on it would lose its puts to the
      // unlink and the rename below.
      const releaseTmp = claimFile(this.fs, tmp);
      try {
        return await this.compactInto(tmp, progress, { signal, onInstall, onLoss });
      } finally {
        releaseTmp();
      }
    });
  }

  private async compactInto(tmp: string, progress: ((copied: number, total: number) => void) | undefined, { signal, onInstall, onLoss }: CompactOptions): Promise<CompactResult> {
    const beforeBytes = this.fileBytes;
    const source = this.takeSnapshot(true); // close() waits for the compaction: let it finish
    let keys: number;
    try {
      const copy = await Store.openCopy(tmp, this.fs, this.opts, this.meta.txid);
      keys = await copyInto(onLoss ? source.salvage(onLoss) : source.range({}), copy, progress && ((n) => progress(n, source.keys)), signal);
      // The last point to abort: once renamed, the new file is the data file.
      signal?.throwIfAborted();
      onInstall?.();
    } catch (err) {
      return await failedCopy(this.fs, tmp, err, signal, `${this.path}: copying the live data into ${tmp}`);
    } finally {
      source.release();
    }
    // A rename that failed but happened installs the copy too: the store must move to it.
    await installCopy(this.fs, tmp, this.path, 'compacted');
    // From here the name belongs to the new file and the old one is unlinked: the store must move
    // to the new file whatever fails next, or its commits would go where no open finds them.
    const dir = nodePath.dirname(nodePath.resolve(this.path));
    let dirError: unknown;
    try {
      await this.fs.syncDir(dir);
    } catch (err) {
      dirError = err;
      this.unsyncedDir = dir;
    }
    let r: Awaited<ReturnType<typeof recover>>;
    try {
      r = await recover(this.fs, this.path, makeCaches(this.opts.cacheMB));
    } catch (err) {
      this.lost = ioError(`${this.path}: opening the compacted file after installing it; the store is closed, open it again`, err, { wrapStoreErrors: true });
      this.closed = true;
      this.closing = this.pager.close().catch(() => undefined).finally(() => this.releaseFile());
      throw this.lost;
    }
    const old = this.pager;
    this.file = r.file;
    this.pager = r.pager;
    this.meta = r.meta;
    this.root = r.root;
    this.freelist = r.freelist;
    this.slotBytes = r.slotBytes;
    this.fileBytes = r.fileBytes;
    this.openWarnings = []; // they were about the file just replaced
    this.nextTxid = r.meta.txid + 1;
    // A slot of the old file still to be rewritten after a failed commit is no concern of the new
    // one, whose slots the copy wrote durably; rewritten there, its older txid would go back.
    this.unrestored = undefined;
    this.readers.clear();
    if (old.users === 0) await old.close().catch(() => undefined);
    if (dirError !== undefined) {
      throw ioError(`${this.path}: the compacted file is in place, but syncing its directory failed; the store uses it, and every commit retries that sync first`, dirError);
    }
    return { beforeBytes, afterBytes: r.fileBytes, keys };
  }

  /** Finishes queued puts, then closes the file once the reads under way are done. Later calls,
   *  snapshot reads included, fail with CLOSED; a second close() resolves with the first. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    while (this.draining) await new Promise((r) => setTimeout(r, 1));
    try {
      await this.writer.runExclusive(async () => {
        if (!this.lost) await this.seal();
        await this.pager.close();
      });
    } finally {
      this.releaseFile();
    }
  }

  /** A one-sync commit is told apart from a torn one only by its hash, so damage to its pages later
   *  would read as a torn commit and open would quietly fall back a commit. On a clean close, write
   *  one more meta for the same state that needs no verification (its pages are durable): damage
   *  then surfaces as CORRUPTION instead. Best effort: if it fails, the last commit still stands. */
  private async seal(): Promise<void> {
    // An older format's meta names a freelist written in that format, which a meta of this one
    // would read differently.
    if (this.meta.commitExtents.length === 0 || this.unrestored !== undefined || !this.currentFormat()) return;
    const txid = this.meta.txid + 1;
    const { meta, pages } = this.stateMeta(txid % 2, txid);
    try {
      await this.writeSlotDurably(txid % 2, pages);
      this.meta = meta;
    } catch {
      // The slot now holds a torn or unsynced meta at worst; open falls back to the last commit.
    }
  }

  get fileSystem(): FileSystem {
    return this.fs;
  }
}

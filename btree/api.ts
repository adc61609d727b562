// The engine's public types. The engine is a library: it knows nothing of gRPC.
import type { FileSystem } from './file-io';

export interface OpenOptions {
  /** Path of the data file (created if missing). One Store per file: a second open of the same
   *  file in this process fails with LOCKED; across processes, lock it yourself (lbserver's LOCK). */
  path: string;
  /** Page cache bound in MiB (decoded B-tree pages). Default 64. */
  cacheMB?: number;
  /** 'one': pages and meta written together, one fdatasync, the meta lists the commit's pages and a
   *  hash over them so open can verify it (default). 'two': classic pages, sync, meta, sync. */
  syncMode?: 'one' | 'two';
  /** Largest value accepted, bytes. Default 64 MiB. */
  maxValueBytes?: number;
  /** Largest key accepted, bytes. Default 1024. */
  maxKeyBytes?: number;
  /** A group commit takes at most this many queued puts... */
  maxBatchOps?: number;
  /** ...and at most about this many value bytes (one larger value still goes alone). */
  maxBatchBytes?: number;
  /** Largest file growth step in bytes (zeros written, then fsync). Default 64 MiB. */
  growBytes?: number;
  /** While the median of the last 16 such fdatasyncs is at most this many microseconds, a small
   *  commit (at most 256 KiB written) syncs on the calling thread instead of the thread pool: about
   *  60-70 us less per single put in bench-engine here, for a stall of the calling thread (and every
   *  reader on it) as long as the sync; above it, one commit in 32 still syncs so, to notice when the
   *  disk is fast again. For a single writer that waits for each put and has no readers to hold back. Default 0:
   *  always the thread pool. */
  blockingSyncUs?: number;
  /** Asked before each commit that blockingSyncUs would let sync on the calling thread; false sends
   *  that sync to the thread pool. A blocking sync holds back everything else on the thread, so a
   *  caller that serves others passes whether anyone else is waiting on it (lbserver: no call but
   *  the Set being committed since the last commit). Default: always allowed. */
  blockingSyncWhen?: () => boolean;
  /** I/O layer; default node:fs. Tests pass the power-cut simulator. */
  fs?: FileSystem;
}

export interface GetOptions {
  /** Supplies the buffer a value read from the file is read into: exactly `length` bytes (e.g. the
   *  tail of a larger buffer, so a server can put its message header in front and send the value
   *  without copying it). Small values (inline in a leaf, or from the value cache) are copied into
   *  it. Either way the buffer returned is the caller's own. */
  alloc?: (length: number) => Buffer;
}

/** What put takes and range/salvage yield. Yielded keys and values are the caller's own copies:
 *  changing them changes nothing in the store. */
export interface Entry {
  key: Buffer;
  value: Buffer;
}

/** What a salvaging read (Snapshot.salvage, compact's onLoss) could not read and skipped: a damaged
 *  tree page, which takes the keys in [from, to) with it (undefined: unbounded), or one damaged
 *  value (`key`). */
export interface Loss {
  from?: Buffer;
  to?: Buffer;
  key?: Buffer;
  page?: number;
  /** A page found damaged by a scan of the whole file (Store.rebuild): which keys it held is
   *  unknown. */
  keysUnknown?: boolean;
  reason: string;
}

export interface RangeOptions {
  /** Inclusive lower bound. */
  start?: Buffer;
  /** Exclusive upper bound. */
  end?: Buffer;
  /** Shorthand for [prefix, successor(prefix)). Combined with start/end as the intersection. */
  prefix?: Buffer;
  /** Stop after this many entries (0 or undefined: no limit). */
  limit?: number;
  /** Do not read values (keys-only listing); `value` is an empty Buffer. */
  keysOnly?: boolean;
}

export interface StoreStats {
  /** What open found wrong with the data file (Store.openWarnings); empty when it was whole. */
  openWarnings: readonly string[];
  txid: number;
  keys: number;
  pageCount: number;
  /** Reusable by the next commit (including those listed in freelist segments not loaded yet). */
  freePages: number;
  /** Freed pages not reusable yet: an open snapshot or an on-disk meta may reach them. */
  pendingFreePages: number;
  /** Freelist segments: pages of pending entries held back by long-lived snapshots (freelist.ts). */
  freelistSegments: number;
  /** Levels of those segments: 0 none, 1 segments of freed extents only, 2 and up segments of
   *  references to segments as well (a reader held over thousands of commits). */
  freelistLevels: number;
  /** Pages listed in those segments (counted in freePages or pendingFreePages as well). */
  freelistSegmentPages: number;
  fileBytes: number;
  commits: number;
  fsyncs: number;
  failedCommits: number;
  cacheHits: number;
  cacheMisses: number;
  cachePages: number;
  openSnapshots: number;
  maxBatch: number;
  meanBatch: number;
  /** Summed over successful commits, microseconds: from the start of a commit to its last fdatasync
   *  (tree, allocation, encoding, checksums, writes) and in that fdatasync. */
  commitPrepareUs: number;
  commitLastSyncUs: number;
  /** Summed over successful commits: pages written before the slot (meta and root pages), and the
   *  contiguous runs they formed (a commit's fdatasync costs about one device write per run, plus
   *  the slot's). */
  commitPages: number;
  commitRuns: number;
  /** Successful commits whose syncs ran on the calling thread (see OpenOptions.blockingSyncUs). */
  blockingSyncCommits: number;
  syncMode: 'one' | 'two';
  /** Milliseconds spent in open(). */
  openMs: number;
}

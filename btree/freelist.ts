// Free space as extents. Pages freed by commit T wait in `pending` until no open snapshot and
// neither on-disk meta can reach them (T <= threshold), then join `free` and may be reused.
// Every commit rewrites the freelist it persists (inline in the meta page or in pages of its own),
// so that list must stay short. A reader that holds an old snapshot keeps every page freed since
// pending; rewriting them all made each commit cost more than the last, and, as the rewritten
// freelist pages were pinned by the same reader, grew the file quadratically (8,000 commits of four
// 4 KiB puts under one snapshot: a 6.3 GB file; npm run bench:long-reader, REPORT.md 2.6). So pending entries held back by readers move, a
// page's worth at a time, into segments: pages written once and referenced from the rewritten list.
// A segment's pages are reused (and its entries join `free`) once its newest entry is releasable and
// free space is needed: LMDB keeps its freelist in a B-tree keyed by txid for the same reason.
import { BODY_SIZE, HEADER_SIZE, META_PAGES, PAGE_SIZE, PageType } from './layout';
import { sealPage } from './checksum';
import type { Extent } from './meta';

// start u48, count u31 + segment flag, txid u48 (0: reusable now; a segment: its newest entry's).
export const FREE_ENTRY_BYTES = 16;
export const ENTRIES_PER_PAGE = Math.floor(BODY_SIZE / FREE_ENTRY_BYTES);
const SEGMENT_FLAG = 0x8000_0000;

/** One persisted freelist entry: an extent and the commit that freed it (0: reusable now), or a
 *  reference to a segment: `count` freelist pages at `start` whose entries were freed by `txid` or
 *  earlier commits. */
export interface FreeEntry {
  start: number;
  count: number;
  txid: number;
  segment?: boolean;
}

/** Pending entries written once in pages of their own; see the top of this file. */
export interface Segment {
  start: number;
  count: number;
  /** The newest commit that freed one of its extents: reusable once that one is. */
  maxTxid: number;
  extents: Extent[];
}

export function writeFreeEntry(buf: Buffer, off: number, e: FreeEntry): void {
  buf.writeUIntLE(e.start, off, 6);
  buf.writeUInt32LE((e.count | (e.segment ? SEGMENT_FLAG : 0)) >>> 0, off + 6);
  buf.writeUIntLE(e.txid, off + 10, 6);
}

export function readFreeEntry(buf: Buffer, off: number): FreeEntry {
  const c = buf.readUInt32LE(off + 6);
  const e: FreeEntry = { start: buf.readUIntLE(off, 6), count: c & ~SEGMENT_FLAG, txid: buf.readUIntLE(off + 10, 6) };
  if (c & SEGMENT_FLAG) e.segment = true;
  return e;
}

export class Freelist {
  constructor(
    /** Reusable now; sorted by start, coalesced. */
    public free: Extent[] = [],
    /** Freed by commit txid; not reusable yet. */
    public pending: Map<number, Extent[]> = new Map(),
    /** High-water mark: the next page past the end of the allocated area. */
    public pageCount = META_PAGES,
    /** Oldest first; their entries are in neither `free` nor `pending`. */
    public segments: Segment[] = [],
  ) {}

  clone(): Freelist {
    const pending = new Map<number, Extent[]>();
    for (const [t, list] of this.pending) pending.set(t, list.slice());
    return new Freelist(this.free.slice(), pending, this.pageCount, this.segments.slice());
  }

  freeCount(): number {
    return sumCount(this.free);
  }

  /** Pages freed but not reusable yet (segments aside). */
  pendingCount(): number {
    let n = 0;
    for (const list of this.pending.values()) n += sumCount(list);
    return n;
  }

  /** Pages listed in segments: [reusable once loaded (newest entry freed at or before `threshold`), not yet]. */
  segmentCounts(threshold: number): [number, number] {
    const out: [number, number] = [0, 0];
    for (const seg of this.segments) out[seg.maxTxid <= threshold ? 0 : 1] += sumCount(seg.extents);
    return out;
  }

  /** Loads releasable segments (their newest entry freed at or before `threshold`), oldest first,
   *  until `need` pages are free and a run of `longest` is among them, or none is left; their own
   *  pages are freed by commit `txid`. Without the run test a commit of multi-page values would
   *  grow the file while the free space it could use sat in segments. */
  loadSegments(need: number, longest: number, threshold: number, txid: number): void {
    const enough = () => this.freeCount() >= need && this.free.some((e) => e.count >= longest);
    while (this.segments.length > 0 && this.segments[0].maxTxid <= threshold && !enough()) {
      const seg = this.segments.shift() as Segment;
      this.free = coalesce(this.free.concat(seg.extents));
      this.retire(txid, seg.start, seg.count);
    }
  }

  /** Once the pending entries freed before commit `below` (those only snapshots hold back) fill a
   *  page, moves them into a new segment; returns its first page and its pages, sealed by commit
   *  `txid`, for the caller to write (undefined: not enough to freeze). */
  freeze(below: number, txid: number): { start: number; pages: Buffer[] } | undefined {
    let n = 0; // every commit asks, and almost always the answer is no: count before building
    for (const [t, list] of this.pending) if (t < below) n += list.length;
    if (n < ENTRIES_PER_PAGE) return undefined;
    const held = [...this.pending].filter(([t]) => t < below);
    const entries = held.flatMap(([t, list]) => list.map((e) => ({ start: e.start, count: e.count, txid: t })));
    for (const [t] of held) this.pending.delete(t);
    const count = pagesForEntries(entries.length);
    const start = this.allocateRun(count);
    this.segments.push({ start, count, maxTxid: Math.max(...held.map(([t]) => t)), extents: held.flatMap(([, list]) => list) });
    return { start, pages: encodeEntries(entries, start, count, txid) };
  }

  /** Records pages freed by the commit `txid`. */
  retire(txid: number, start: number, count: number): void {
    if (count <= 0) return;
    let list = this.pending.get(txid);
    if (!list) this.pending.set(txid, (list = []));
    list.push({ start, count });
  }

  /** Makes pending pages freed at or before `threshold` reusable. */
  release(threshold: number): void {
    const add: Extent[] = [];
    for (const [t, list] of this.pending) {
      if (t <= threshold) {
        add.push(...list);
        this.pending.delete(t);
      }
    }
    if (add.length > 0) this.free = coalesce(this.free.concat(add));
  }

  /** A contiguous run of `count` pages: best fit among free extents, else past the end. */
  allocateRun(count: number): number {
    const start = this.takeFreeRun(count);
    if (start >= 0) return start;
    const end = this.pageCount;
    this.pageCount += count;
    return end;
  }

  /** Best fit among free extents only; -1 when no free extent is long enough. */
  takeFreeRun(count: number): number {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const c = this.free[i].count;
      if (c >= count && (best < 0 || c < this.free[best].count)) {
        best = i;
        if (c === count) break;
      }
    }
    if (best < 0) return -1;
    const e = this.free[best];
    const start = e.start;
    if (e.count === count) this.free.splice(best, 1);
    else this.free[best] = { start: e.start + count, count: e.count - count };
    return start;
  }

  /** `count` pages, contiguous where the free space allows, as few extents as possible. */
  allocateMany(count: number): Extent[] {
    const out: Extent[] = [];
    let left = count;
    while (left > 0) {
      let largest = -1;
      for (let i = 0; i < this.free.length; i++) {
        if (largest < 0 || this.free[i].count > this.free[largest].count) largest = i;
      }
      if (largest < 0 || this.free[largest].count >= left) {
        out.push({ start: this.allocateRun(left), count: left });
        break;
      }
      const e = this.free.splice(largest, 1)[0];
      out.push(e);
      left -= e.count;
    }
    return out;
  }

  /** Entries the rewritten freelist holds (free, pending, segment references). */
  entryCount(): number {
    let n = this.free.length + this.segments.length;
    for (const list of this.pending.values()) n += list.length;
    return n;
  }

  entries(): FreeEntry[] {
    const out: FreeEntry[] = this.free.map((e) => ({ start: e.start, count: e.count, txid: 0 }));
    for (const [t, list] of this.pending) for (const e of list) out.push({ start: e.start, count: e.count, txid: t });
    for (const seg of this.segments) out.push({ start: seg.start, count: seg.count, txid: seg.maxTxid, segment: true });
    return out;
  }

  /** Serializes into `pages` sealed pages starting at page `first`. */
  encode(first: number, pages: number, txid: number): Buffer[] {
    return encodeEntries(this.entries(), first, pages, txid);
  }

  /** Adds an entry read back from a freelist page or from the meta page (not a segment reference:
   *  see addSegment); call finishDecode() after. */
  add(e: FreeEntry): void {
    if (e.txid === 0) this.free.push({ start: e.start, count: e.count });
    else this.retire(e.txid, e.start, e.count);
  }

  /** Adds a segment from its reference and the entries read back from its pages. */
  addSegment(ref: FreeEntry, entries: FreeEntry[]): void {
    this.segments.push({ start: ref.start, count: ref.count, maxTxid: ref.txid, extents: entries.map((e) => ({ start: e.start, count: e.count })) });
  }

  finishDecode(): void {
    this.free = coalesce(this.free);
    this.segments.sort((a, b) => a.maxTxid - b.maxTxid);
  }
}

/** The entries of one verified freelist page. */
export function decodeFreePage(page: Buffer, count: number): FreeEntry[] {
  return Array.from({ length: count }, (_, i) => readFreeEntry(page, HEADER_SIZE + i * FREE_ENTRY_BYTES));
}

/** Serializes entries into `pages` sealed freelist pages starting at page `first`. */
function encodeEntries(entries: FreeEntry[], first: number, pages: number, txid: number): Buffer[] {
  if (entries.length > pages * ENTRIES_PER_PAGE) throw new Error('freelist does not fit its pages');
  const out: Buffer[] = [];
  for (let p = 0; p < pages; p++) {
    const page = Buffer.alloc(PAGE_SIZE);
    const chunk = entries.slice(p * ENTRIES_PER_PAGE, (p + 1) * ENTRIES_PER_PAGE);
    chunk.forEach((e, i) => writeFreeEntry(page, HEADER_SIZE + i * FREE_ENTRY_BYTES, e));
    sealPage(page, PageType.Freelist, chunk.length, first + p, txid);
    out.push(page);
  }
  return out;
}

export function pagesForEntries(entries: number): number {
  return Math.max(1, Math.ceil(entries / ENTRIES_PER_PAGE));
}

function sumCount(list: Extent[]): number {
  let n = 0;
  for (const e of list) n += e.count;
  return n;
}

export function coalesce(list: Extent[]): Extent[] {
  const sorted = list.slice().sort((a, b) => a.start - b.start);
  const out: Extent[] = [];
  for (const e of sorted) {
    const last = out[out.length - 1];
    if (last && last.start + last.count === e.start) last.count += e.count;
    else out.push({ start: e.start, count: e.count });
  }
  return out;
}

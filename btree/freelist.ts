// Free space as extents. Pages freed by commit T wait in `pending` until no open snapshot and
// neither on-disk meta can reach them (T <= threshold), then join `free` and may be reused.
// Every commit rewrites the freelist it persists (inline in the meta page or in pages of its own),
// so that list must stay short. A reader that holds an old snapshot keeps every page freed since
// pending; rewriting them all made each commit cost more than the last, and, as the rewritten
// freelist pages were pinned by the same reader, grew the file quadratically (8,000 commits of four
// 4 KiB puts under one snapshot: a 6.3 GB file; npm run bench:long-reader, REPORT.md 2.6).
//
// So pending entries held back by readers move, 64 at a time, into segments: pages written once and
// referenced from the rewritten list. A segment's pages are reused (and its entries join `free`)
// once its newest entry is releasable and free space is needed; a commit takes from a segment only
// the entries it needs. LMDB keeps its freelist in a B-tree keyed by txid for the same reason.
//
// Segments nest. A reference takes two slots: it also carries its level and the pages listed under
// it, so stats and open need not read it (open reads none). Once `fanout` references of one level
// are held back by readers they move into a segment of the level above, one page of references
// (segmentTuning), so the rewritten list holds fewer than `fanout` references per level however old
// the reader. (Format 4 kept one reference per segment in the list, so the list still grew with the
// reader's age, one entry per ~254 freed extents, and open read every segment.)
import { BODY_SIZE, HEADER_SIZE, META_PAGES, PAGE_SIZE, PageType } from './layout';
import { sealPage } from './checksum';
import type { Extent } from './meta';

// A slot: start u48, count u31 + segment flag, txid u48 (0: reusable now; a reference: the newest
// txid under it). A reference (format 5) takes a second slot: listed pages u48, level u32, taken u48.
export const FREE_ENTRY_BYTES = 16;
export const ENTRIES_PER_PAGE = Math.floor(BODY_SIZE / FREE_ENTRY_BYTES);
const SEGMENT_FLAG = 0x8000_0000;
/** Formats before this wrote a reference in one slot, without level or listed pages. */
const TWO_SLOT_REFS_VERSION = 5;
/** When segments are made: pending entries frozen at once, and references per segment of
 *  references. Freezing at a quarter page keeps the rewritten list small enough to ride in the meta
 *  page; a small fan-out keeps it short (fewer references than that per level stay in it), a large
 *  one keeps the tree of segments shallow: 8 over eight levels would take 16 million leaf segments.
 *  Tests lower both to reach several levels in a few hundred commits; the file format does not
 *  depend on them. */
export const segmentTuning = { freezeEntries: 64, fanout: 8 };
/** More free extents than this (a released reader's pending pages all come free at once, and each
 *  commit then frees as many as it takes) and all but the FREE_KEEP longest (and as many as the
 *  commit may need) move into a segment of their own, from which commits take them back as they
 *  need them: otherwise every commit rewrites them, a freelist page or two more per commit for as
 *  long as they last. */
const FREE_SPILL_ABOVE = 128;
const FREE_KEEP = 64;

/** One persisted freelist entry: an extent and the commit that freed it (0: reusable now), or a
 *  reference to a segment (`ref` set): `count` freelist pages at `start`, whose entries were freed by
 *  `txid` or earlier commits. */
export interface FreeEntry {
  start: number;
  count: number;
  txid: number;
  ref?: { level: number; listed: number; taken: number };
}

/** Pending entries written once in pages of their own; see the top of this file. */
export interface Segment {
  start: number;
  count: number;
  /** The newest commit that freed one of the extents under it: reusable once that one is. */
  maxTxid: number;
  /** 0: its pages list extents; n > 0: references to segments of level n - 1. */
  level: number;
  /** Pages of the extents listed under it and not taken yet, through every level. */
  listed: number;
  /** Level 0: its first entries, loaded by an earlier commit (a commit takes what it needs, so the
   *  rewritten list does not carry a page's worth of free extents for the next few dozen commits). */
  taken: number;
  /** Its entries while they are in memory (written by this process, or a format-4 segment read at
   *  open); otherwise its pages are read when it is loaded. */
  entries?: FreeEntry[];
}

/** A segment made by a commit: its first page and its sealed pages, for the commit to write. */
export interface BuiltSegment {
  start: number;
  pages: Buffer[];
}

const slotsOf = (e: FreeEntry): number => (e.ref ? 2 : 1);
/** Fewest extents a commit takes from a segment when it takes any, so that a run of commits does not
 *  each take one. */
const LOAD_CHUNK = 16;

/** Writes `e` at `off`; returns the bytes written (one slot, or two for a reference). */
export function writeFreeEntry(buf: Buffer, off: number, e: FreeEntry): number {
  buf.writeUIntLE(e.start, off, 6);
  buf.writeUInt32LE((e.count | (e.ref ? SEGMENT_FLAG : 0)) >>> 0, off + 6);
  buf.writeUIntLE(e.txid, off + 10, 6);
  if (!e.ref) return FREE_ENTRY_BYTES;
  buf.writeUIntLE(e.ref.listed, off + 16, 6);
  buf.writeUInt32LE(e.ref.level, off + 22);
  buf.writeUIntLE(e.ref.taken, off + 26, 6);
  return 2 * FREE_ENTRY_BYTES;
}

/** Decodes `slots` slots from `off`, written by format `version`. A format-4 reference has one slot
 *  and no level or listed pages: `ref.listed` is -1, and its pages must be read to know them. */
export function readFreeEntries(buf: Buffer, off: number, slots: number, version: number): FreeEntry[] | string {
  const out: FreeEntry[] = [];
  const end = off + slots * FREE_ENTRY_BYTES;
  while (off < end) {
    const c = buf.readUInt32LE(off + 6);
    const e: FreeEntry = { start: buf.readUIntLE(off, 6), count: c & ~SEGMENT_FLAG, txid: buf.readUIntLE(off + 10, 6) };
    off += FREE_ENTRY_BYTES;
    if (c & SEGMENT_FLAG) {
      if (version < TWO_SLOT_REFS_VERSION) e.ref = { level: 0, listed: -1, taken: 0 };
      else if (off >= end) return `a segment reference at slot ${slots - 1} lacks its second slot`;
      else {
        e.ref = { listed: buf.readUIntLE(off, 6), level: buf.readUInt32LE(off + 6), taken: buf.readUIntLE(off + 10, 6) };
        off += FREE_ENTRY_BYTES;
      }
    }
    out.push(e);
  }
  return out;
}

/** The segment a reference names. A format-4 reference (listed -1) needs its `entries`, read from
 *  its pages: they give the count it does not carry. */
export function segmentOf(ref: FreeEntry, entries?: FreeEntry[]): Segment {
  const r = ref.ref ?? { level: 0, listed: -1, taken: 0 };
  const listed = r.listed >= 0 ? r.listed : sumCount(entries ?? []);
  return { start: ref.start, count: ref.count, maxTxid: ref.txid, level: r.level, listed, taken: r.taken, entries };
}

/** Whether a reference read back lacks its listed count (format 4), so its pages must be read. */
export const needsRead = (ref: FreeEntry): boolean => (ref.ref?.listed ?? -1) < 0;

function refTo(seg: Segment): FreeEntry {
  return { start: seg.start, count: seg.count, txid: seg.maxTxid, ref: { level: seg.level, listed: seg.listed, taken: seg.taken } };
}

export class Freelist {
  constructor(
    /** Reusable now; sorted by start, coalesced. */
    public free: Extent[] = [],
    /** Freed by commit txid; not reusable yet. */
    public pending: Map<number, Extent[]> = new Map(),
    /** High-water mark: the next page past the end of the allocated area. */
    public pageCount = META_PAGES,
    /** Those the rewritten list references, oldest maxTxid first; their entries are in neither
     *  `free` nor `pending`. */
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

  /** Levels of the segments referenced: 0 none, 1 only segments of extents, 2 and up nested. */
  segmentLevels(): number {
    let n = 0;
    for (const seg of this.segments) n = Math.max(n, seg.level + 1);
    return n;
  }

  /** Pages listed in segments: [reusable once loaded (newest entry freed at or before `threshold`), not yet]. */
  segmentCounts(threshold: number): [number, number] {
    const out: [number, number] = [0, 0];
    for (const seg of this.segments) out[seg.maxTxid <= threshold ? 0 : 1] += seg.listed;
    return out;
  }

  /** Before a commit allocates: brings back free space parked in segments (loadSegments), then keeps
   *  the list it will rewrite short (freeze). One place, because the two must agree: freeze keeps
   *  the `need` pages that loading brought back. `below` is the previous commit's txid, `txid` this
   *  one's; returns the segments made, for the commit to write. */
  settle(o: { need: number; longest: number; threshold: number; below: number; txid: number; read: (seg: Segment) => FreeEntry[] }): BuiltSegment[] {
    this.loadSegments(o.need, o.longest, o.threshold, o.txid, o.read);
    return this.freeze(o.below, o.threshold, o.txid, o.need);
  }

  /** Loads releasable segments (their newest entry freed at or before `threshold`), oldest first,
   *  until `need` pages are free and a run of `longest` is among them, or none is left. A segment of
   *  references puts them back in the list, where the loop goes on with the oldest; a segment of
   *  extents gives what is missing (at least LOAD_CHUNK entries) and stays referenced, with the
   *  count it gave, until it has given everything; then its own pages are freed by commit `txid`.
   *  `read` returns the entries of a segment not in memory. Without the run test a commit of
   *  multi-page values would grow the file while the free space it could use sat in segments. */
  private loadSegments(need: number, longest: number, threshold: number, txid: number, read: (seg: Segment) => FreeEntry[]): void {
    const enough = () => this.freeCount() >= need && this.free.some((e) => e.count >= longest);
    while (this.segments.length > 0 && this.segments[0].maxTxid <= threshold && !enough()) {
      const seg = this.segments[0];
      const entries = seg.entries ?? read(seg);
      if (seg.level > 0) {
        this.segments.shift();
        for (const e of entries) this.segments.push(segmentOf(e));
        this.segments.sort(byMaxTxid);
        this.retire(txid, seg.start, seg.count);
        continue;
      }
      let missing = need - this.freeCount();
      let end = seg.taken;
      while (end < entries.length && (missing > 0 || end - seg.taken < LOAD_CHUNK)) missing -= entries[end++].count;
      const extents = entries.slice(seg.taken, end);
      this.free = coalesce(this.free.concat(extents.map((e) => ({ start: e.start, count: e.count }))));
      if (end < entries.length) {
        // A new object: the committed freelist shares the old one with this clone.
        this.segments[0] = { ...seg, taken: end, listed: seg.listed - sumCount(extents), entries };
      } else {
        this.segments.shift();
        this.retire(txid, seg.start, seg.count);
      }
    }
  }

  /** Keeps the rewritten list short. Once the pending entries freed before commit `below` (those
   *  only snapshots hold back) number freezeEntries, moves them into a new segment; moves surplus
   *  free extents into one (FREE_SPILL_ABOVE), beyond the `need` pages this commit may take; then,
   *  while `fanout` segments of one level are held back (newest entry after `threshold`), moves the
   *  oldest of them into a segment of the level above. Returns the segments made, with their pages
   *  sealed by commit `txid`. */
  private freeze(below: number, threshold: number, txid: number, need: number): BuiltSegment[] {
    const made: BuiltSegment[] = [];
    let n = 0; // every commit asks, and almost always the answer is no: count before building
    for (const [t, list] of this.pending) if (t < below) n += list.length;
    if (n >= segmentTuning.freezeEntries) {
      const held = [...this.pending].filter(([t]) => t < below);
      const entries = held.flatMap(([t, list]) => list.map((e) => ({ start: e.start, count: e.count, txid: t })));
      for (const [t] of held) this.pending.delete(t);
      made.push(this.addBuilt(entries, 0, txid));
    }
    if (this.free.length > FREE_SPILL_ABOVE) {
      const byLength = this.free.slice().sort((a, b) => b.count - a.count);
      let keep = 0;
      for (let pages = 0; keep < byLength.length && (keep < FREE_KEEP || pages < need); keep++) pages += byLength[keep].count;
      if (byLength.length - keep >= FREE_SPILL_ABOVE - FREE_KEEP) {
        this.free = byLength.slice(0, keep).sort((a, b) => a.start - b.start);
        made.push(this.addBuilt(byLength.slice(keep).map((e) => ({ start: e.start, count: e.count, txid: 0 })), 0, txid));
      }
    }
    for (let level = 0; this.segments.some((s) => s.level >= level); level++) {
      for (;;) {
        const held = this.segments.filter((s) => s.level === level && s.maxTxid > threshold).slice(0, segmentTuning.fanout);
        if (held.length < segmentTuning.fanout) break;
        this.segments = this.segments.filter((s) => !held.includes(s));
        made.push(this.addBuilt(held.map(refTo), level + 1, txid));
      }
    }
    return made;
  }

  /** Adds a segment of `level` holding `entries`, in pages allocated here; returns them. */
  private addBuilt(entries: FreeEntry[], level: number, txid: number): BuiltSegment {
    const count = pagesForSlots(entries.reduce((s, e) => s + slotsOf(e), 0));
    const start = this.allocateRun(count);
    let maxTxid = 0;
    let listed = 0;
    for (const e of entries) {
      maxTxid = Math.max(maxTxid, e.txid);
      listed += e.ref ? e.ref.listed : e.count;
    }
    this.segments.push({ start, count, maxTxid, level, listed, taken: 0, entries: level === 0 ? entries : undefined });
    this.segments.sort(byMaxTxid);
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

  /** The pages this list holds now: free, pending, and the pages of the segments it references. */
  held(): Extent[] {
    const out = this.free.slice();
    for (const list of this.pending.values()) out.push(...list);
    for (const seg of this.segments) out.push({ start: seg.start, count: seg.count });
    return out;
  }

  /** Slots the rewritten freelist takes (free, pending, two per segment reference). */
  slotCount(): number {
    let n = this.free.length + 2 * this.segments.length;
    for (const list of this.pending.values()) n += list.length;
    return n;
  }

  entries(): FreeEntry[] {
    const out: FreeEntry[] = this.free.map((e) => ({ start: e.start, count: e.count, txid: 0 }));
    for (const [t, list] of this.pending) for (const e of list) out.push({ start: e.start, count: e.count, txid: t });
    for (const seg of this.segments) out.push(refTo(seg));
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

  addSegment(seg: Segment): void {
    this.segments.push(seg);
  }

  finishDecode(): void {
    this.free = coalesce(this.free);
    this.segments.sort(byMaxTxid);
  }
}

const byMaxTxid = (a: Segment, b: Segment): number => a.maxTxid - b.maxTxid;

/** No segment is of a higher level: one of level n references `fanout` (at least 2) of level n - 1
 *  that all exist at once, so it stands on 2^n pages or more, and a file holds fewer than 2^41
 *  (layout.ts, MAX_PAGE_ID). Commits walk the levels one by one (freeze), so a level of 2^32 - 1
 *  read from a page that passes its checksum (a buggy writer) would hold every commit for hours. */
export const MAX_SEGMENT_LEVEL = 63;

/** Why `extents`, pages a freelist read back says are free or its own, cannot be right in a file of
 *  `pageCount` pages: one includes a slot page or runs past the end, or two share a page. Null if
 *  they can. A freelist that passes its checksums can still say so (a buggy writer), and commits
 *  would then hand out a meta page, or one page twice, overwriting what is live. */
export function badExtents(extents: Extent[], pageCount: number): string | null {
  let end = META_PAGES;
  for (const e of extents.slice().sort((a, b) => a.start - b.start)) {
    const last = e.start + e.count - 1;
    if (e.count < 1 || e.start < end || last >= pageCount) {
      const why = e.count < 1 ? 'are none' : e.start < META_PAGES ? 'include a slot page' : e.start < end ? 'are listed twice' : `run past the last page, ${pageCount - 1}`;
      return `pages ${e.start}..${last} ${why}`;
    }
    end = last + 1;
  }
  return null;
}

/** The entries of one verified freelist page written by format `version`. */
export function decodeFreePage(page: Buffer, slots: number, version: number): FreeEntry[] | string {
  if (slots > ENTRIES_PER_PAGE) return `${slots} freelist slots do not fit a page`;
  return readFreeEntries(page, HEADER_SIZE, slots, version);
}

/** Serializes entries into `pages` sealed freelist pages starting at page `first`; a reference never
 *  straddles two pages, and each page header counts the slots it uses. */
function encodeEntries(entries: FreeEntry[], first: number, pages: number, txid: number): Buffer[] {
  const out: Buffer[] = [];
  let i = 0;
  for (let p = 0; p < pages; p++) {
    const page = Buffer.alloc(PAGE_SIZE);
    let slots = 0;
    for (; i < entries.length && slots + slotsOf(entries[i]) <= ENTRIES_PER_PAGE; i++) {
      slots += writeFreeEntry(page, HEADER_SIZE + slots * FREE_ENTRY_BYTES, entries[i]) / FREE_ENTRY_BYTES;
    }
    sealPage(page, PageType.Freelist, slots, first + p, txid);
    out.push(page);
  }
  if (i < entries.length) throw new Error('freelist does not fit its pages');
  return out;
}

/** Pages for `slots` slots: a page may leave one slot unused, so that no reference straddles two. */
export function pagesForSlots(slots: number): number {
  return Math.max(1, Math.ceil(slots / (ENTRIES_PER_PAGE - 1)));
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

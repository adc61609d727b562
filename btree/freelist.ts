// Free space as extents. Pages freed by commit T wait in `pending` until no open snapshot and
// neither on-disk meta can reach them (T <= threshold), then join `free` and may be reused.
import { BODY_SIZE, HEADER_SIZE, META_PAGES, PAGE_SIZE, PageType } from './layout';
import { sealPage } from './checksum';
import type { Extent } from './meta';

export const FREE_ENTRY_BYTES = 16; // start u48, count u32, freeing txid u48 (0: reusable now)
export const ENTRIES_PER_PAGE = Math.floor(BODY_SIZE / FREE_ENTRY_BYTES);

/** One persisted freelist entry: an extent and the commit that freed it (0: reusable now). */
export interface FreeEntry {
  start: number;
  count: number;
  txid: number;
}

export function writeFreeEntry(buf: Buffer, off: number, e: FreeEntry): void {
  buf.writeUIntLE(e.start, off, 6);
  buf.writeUInt32LE(e.count, off + 6);
  buf.writeUIntLE(e.txid, off + 10, 6);
}

export function readFreeEntry(buf: Buffer, off: number): FreeEntry {
  return { start: buf.readUIntLE(off, 6), count: buf.readUInt32LE(off + 6), txid: buf.readUIntLE(off + 10, 6) };
}

export class Freelist {
  constructor(
    /** Reusable now; sorted by start, coalesced. */
    public free: Extent[] = [],
    /** Freed by commit txid; not reusable yet. */
    public pending: Map<number, Extent[]> = new Map(),
    /** High-water mark: the next page past the end of the allocated area. */
    public pageCount = META_PAGES,
  ) {}

  clone(): Freelist {
    const pending = new Map<number, Extent[]>();
    for (const [t, list] of this.pending) pending.set(t, list.slice());
    return new Freelist(this.free.slice(), pending, this.pageCount);
  }

  freeCount(): number {
    return sumCount(this.free);
  }

  pendingCount(): number {
    let n = 0;
    for (const list of this.pending.values()) n += sumCount(list);
    return n;
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

  entryCount(): number {
    let n = this.free.length;
    for (const list of this.pending.values()) n += list.length;
    return n;
  }

  entries(): FreeEntry[] {
    const out: FreeEntry[] = this.free.map((e) => ({ start: e.start, count: e.count, txid: 0 }));
    for (const [t, list] of this.pending) for (const e of list) out.push({ start: e.start, count: e.count, txid: t });
    return out;
  }

  /** Serializes into `pages` sealed pages starting at page `first`. */
  encode(first: number, pages: number, txid: number): Buffer[] {
    const entries = this.entries();
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

  /** Adds entries read back from a freelist page or from the meta page; call finishDecode() after. */
  add(e: FreeEntry): void {
    if (e.txid === 0) this.free.push({ start: e.start, count: e.count });
    else this.retire(e.txid, e.start, e.count);
  }

  /** Adds the entries of one verified freelist page. */
  decodePage(page: Buffer, count: number): void {
    for (let i = 0; i < count; i++) this.add(readFreeEntry(page, HEADER_SIZE + i * FREE_ENTRY_BYTES));
  }

  finishDecode(): void {
    this.free = coalesce(this.free);
  }
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

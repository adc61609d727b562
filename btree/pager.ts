// Reads pages and overflow values from the data file through the cache, verifying every byte
// against its checksum before it is used.
import type { FileHandle } from './file-io';
import { FORMAT_VERSION, PAGE_SIZE, PageType } from './layout';
import { checkPage, corruption, crc32 } from './checksum';
import { decodeNode, Node, OverflowRef } from './node';
import type { Caches } from './cache';
import { badExtents, decodeFreePage, type FreeEntry, type Segment } from './freelist';
import type { Extent } from './meta';
import { ioError, StoreError } from './errors';

// Below this an overflow value is read inline on the event loop; above it, on the thread pool so a
// 64 MiB read does not stall every other client.
const ASYNC_READ_BYTES = 256 * 1024;
const CACHED_VALUE_BYTES = 2 * PAGE_SIZE;

export class Pager {
  /** Open snapshots and in-flight reads on this file (compaction closes a replaced file at zero). */
  users = 0;
  /** Set by close(): every read from here on fails CLOSED. */
  closed = false;
  /** Thread-pool reads under way: the file descriptor must outlive them, or a number reused by
   *  another open could hand them that file's bytes. */
  private reading = 0;
  private readsDone: (() => void) | undefined;
  private closing: Promise<void> | undefined;
  /** The largest size the file was seen to have (readOverflow's bound; a shorter file is caught by
   *  the short read). */
  private sizeSeen = 0;

  constructor(
    public file: FileHandle,
    readonly path: string,
    readonly caches: Caches,
  ) {}

  /** Refuses new reads at once and closes the file once the reads under way are done. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      const idle = this.reading === 0 ? Promise.resolve() : new Promise<void>((r) => { this.readsDone = r; });
      this.closing = idle.then(() => this.file.close());
    }
    return this.closing;
  }

  checkOpen(): void {
    if (this.closed) throw new StoreError('CLOSED', `${this.path}: the store is closed`);
  }

  /** Raw page bytes, unverified. */
  readRaw(id: number): Buffer {
    this.checkOpen();
    const page = Buffer.allocUnsafe(PAGE_SIZE);
    let n: number;
    try {
      n = this.file.readSync(page, 0, PAGE_SIZE, id * PAGE_SIZE);
    } catch (err) {
      throw ioError(`${this.path}: reading page ${id}`, err);
    }
    return n === PAGE_SIZE ? page : page.subarray(0, n);
  }

  /** A verified page of the expected kind. */
  readChecked(id: number, expect: PageType[]): { page: Buffer; count: number; type: PageType } {
    const page = this.readRaw(id);
    const h = checkPage(page, id);
    if (typeof h === 'string') throw corruption(this.path, id, h);
    if (!expect.includes(h.type)) throw corruption(this.path, id, `expected page type ${expect.join('/')}, found ${h.type}`);
    return { page, count: h.count, type: h.type };
  }

  /** The entries of `count` freelist pages from `first`, written by format `version`. */
  freelistEntries(first: number, count: number, version: number): FreeEntry[] {
    const out: FreeEntry[] = [];
    for (let i = 0; i < count; i++) {
      const { page, count: slots } = this.readChecked(first + i, [PageType.Freelist]);
      const entries = decodeFreePage(page, slots, version);
      if (typeof entries === 'string') throw corruption(this.path, first + i, entries);
      out.push(...entries);
    }
    return out;
  }

  /** The entries of freelist segment `seg` (format 5), checked before a commit takes them, in a file
   *  of `pageCount` pages whose freelist holds the pages `held` now: pages that pass their checksums
   *  can still be wrong (a buggy writer). A segment of level n lists references to segments of level
   *  n - 1 only, else loading could go round a segment that lists itself for ever; and what it lists
   *  (past the entries an earlier commit took) must be pages of the file, each once, and none that
   *  the freelist holds already (freelist.ts, badExtents): it would be handed out twice. */
  segmentEntries(seg: Segment, pageCount: number, held: Extent[]): FreeEntry[] {
    const entries = this.freelistEntries(seg.start, seg.count, FORMAT_VERSION);
    const wrongLevel = entries.find((e) => (e.ref?.level ?? -1) !== seg.level - 1);
    const bad = wrongLevel
      ? `a segment of level ${seg.level} lists ${wrongLevel.ref ? `a segment of level ${wrongLevel.ref.level}` : 'an extent'} (pages ${wrongLevel.start}..)`
      : badExtents([...entries.slice(seg.level === 0 ? seg.taken : 0), ...held], pageCount);
    if (bad) throw corruption(this.path, seg.start, `freelist segment: ${bad}`);
    return entries;
  }

  node(id: number): Node {
    const cached = this.caches.nodes.get(id);
    if (cached) return cached;
    const r = this.decodeTreePage(id, this.readRaw(id));
    if (typeof r === 'string') throw corruption(this.path, id, r);
    this.caches.nodes.set(id, r.node);
    return r.node;
  }

  /** The root node of the commit `txid` from the slot page `id`, bypassing the cache: a slot's root
   *  page is rewritten two commits later, so snapshots hold their root node themselves. A reason
   *  string when the page is not the root that commit wrote (torn, or left by another commit). */
  readRoot(id: number, txid: number, crc: number): Node | string {
    const page = this.readRaw(id);
    const r = this.decodeTreePage(id, page);
    if (typeof r === 'string') return `root page ${id}: ${r}`;
    if (page.readUInt32LE(0) !== crc) return `root page ${id} is not the one its meta page names (checksum)`;
    if (r.txid !== txid) return `root page ${id} was written by txid ${r.txid}, not ${txid}`;
    return r.node;
  }

  /** Branch or leaf page `id` as the disk holds it (`raw`, if already read), verified and decoded,
   *  not cached: for a scan of every page (salvage-file.ts), which must not fill the cache. */
  treePage(id: number, raw = this.readRaw(id)): { node: Node; txid: number } | string {
    return this.decodeTreePage(id, raw);
  }

  /** The value a leaf cell holds, as the caller's own buffer: an inline value lives in a cached leaf
   *  (whose next commit writes it back), so it is copied (into `alloc`'s buffer if given); an
   *  overflow value comes from overflow() in a buffer of its own. `fill`: a small value read from
   *  the file goes into the value cache (gets; not scans). */
  cellValue(cell: Buffer | OverflowRef, alloc: ((length: number) => Buffer) | undefined, fill: boolean): Promise<Buffer> | Buffer {
    if (!Buffer.isBuffer(cell)) return this.overflow(cell, alloc, fill);
    if (!alloc) return Buffer.from(cell);
    const out = checkedAlloc(alloc, cell.length);
    cell.copy(out);
    return out;
  }

  /** A verified branch or leaf page, decoded with the txid that wrote it; or why it is not one. */
  private decodeTreePage(id: number, page: Buffer): { node: Node; txid: number } | string {
    const h = checkPage(page, id);
    if (typeof h === 'string') return h;
    if (h.type !== PageType.Branch && h.type !== PageType.Leaf) return `expected page type ${PageType.Branch}/${PageType.Leaf}, found ${h.type}`;
    const node = decodeNode(page, h.type, h.count, id);
    return typeof node === 'string' ? node : { node, txid: h.txid };
  }

  /** A value from its overflow run, in a buffer that is the caller's own (`alloc`'s if given).
   *  Values of up to two pages are cached (they are what most gets of 4 KiB values hit), so a hit is
   *  copied out; a miss is read, and with `fill` a copy is cached (a get), without it not (a scan:
   *  it would push out what gets use, and would cost a copy per value). Larger values are read each
   *  time so they cannot flush the tree pages out. */
  overflow(ref: OverflowRef, alloc: ((length: number) => Buffer) | undefined, fill: boolean): Promise<Buffer> | Buffer {
    if (ref.length > CACHED_VALUE_BYTES) return this.readOverflow(ref, alloc);
    const out = alloc ? checkedAlloc(alloc, ref.length) : Buffer.allocUnsafe(ref.length);
    const hit = this.caches.values.get(ref.page);
    if (hit && hit.crc === ref.crc && hit.value.length === ref.length) {
      hit.value.copy(out);
      return out;
    }
    this.readOverflowSync(ref, out);
    if (fill) this.caches.values.set(ref.page, { crc: ref.crc, value: Buffer.from(out) });
    return out;
  }

  private readOverflowSync(ref: OverflowRef, buf: Buffer): Buffer {
    this.checkOpen();
    let n = 0;
    try {
      while (n < ref.length) {
        const got = this.file.readSync(buf, n, ref.length - n, ref.page * PAGE_SIZE + n);
        if (got === 0) break;
        n += got;
      }
    } catch (err) {
      throw ioError(`${this.path}: reading overflow run at page ${ref.page}`, err);
    }
    return this.checkValue(ref, buf, n);
  }

  private checkValue(ref: OverflowRef, buf: Buffer, n: number): Buffer {
    if (n < ref.length) throw corruption(this.path, ref.page, `overflow run of ${ref.length} bytes is cut short at ${n}`);
    if (crc32(buf) !== ref.crc) throw corruption(this.path, ref.page, `overflow value checksum mismatch (${ref.length} bytes)`);
    return buf;
  }

  private async readOverflow(ref: OverflowRef, alloc?: (length: number) => Buffer): Promise<Buffer> {
    this.checkOpen();
    // Before the buffer exists: a length in a leaf that passes its checksum may still be wrong (a
    // buggy writer), and 2^40 would throw RangeError, 3 GiB allocate that much (or ask the caller's
    // alloc for it). No value reaches past the end of its file. The size is asked (fstat) only for
    // a run past the largest size seen so far: an fstat per get of a 12 kB value added about 1 us to
    // its 5. A file that shrank since (a growth given back on ENOSPC) still bounds the allocation by
    // a size it had, and the read then comes up short: CORRUPTION as before.
    const end = ref.page * PAGE_SIZE + ref.length;
    if (end > this.sizeSeen) {
      try {
        this.sizeSeen = this.file.size();
      } catch (err) {
        throw ioError(`${this.path}: reading overflow run at page ${ref.page}`, err);
      }
      if (end > this.sizeSeen) throw corruption(this.path, ref.page, `overflow run of ${ref.length} bytes runs past the end of the file`);
    }
    const buf = alloc ? checkedAlloc(alloc, ref.length) : Buffer.allocUnsafe(ref.length);
    const pos = ref.page * PAGE_SIZE;
    let n = 0;
    this.reading++;
    try {
      while (n < ref.length) {
        const got = ref.length - n > ASYNC_READ_BYTES
          ? await this.file.read(buf, n, ref.length - n, pos + n)
          : this.file.readSync(buf, n, ref.length - n, pos + n);
        if (got === 0) break;
        n += got;
      }
    } catch (err) {
      throw ioError(`${this.path}: reading overflow run at page ${ref.page}`, err);
    } finally {
      if (--this.reading === 0) this.readsDone?.();
    }
    return this.checkValue(ref, buf, n);
  }
}

/** `alloc(length)` (GetOptions.alloc), checked: a buffer of any other size would be read short or
 *  served with bytes that are not the value's. */
export function checkedAlloc(alloc: (length: number) => Buffer, length: number): Buffer {
  const out = alloc(length);
  if (!Buffer.isBuffer(out) || out.length !== length) {
    throw new StoreError('INVALID_ARGUMENT', `GetOptions.alloc returned ${Buffer.isBuffer(out) ? `${out.length} bytes` : typeof out} for a value of ${length} bytes`);
  }
  return out;
}

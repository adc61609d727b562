// One write transaction, from the committed state to a durable new one:
//   1. apply the batch to a copy-on-write tree, split oversized nodes;
//   2. retire replaced pages (reusable only once unreachable), move pending pages that only
//      snapshots hold back into a freelist segment once they fill a page, allocate new pages:
//      overflow runs, tree pages, freelist pages — preferring contiguous extents;
//   3. grow the file in large steps when it is too short, writing zeros (not ftruncate: a hole would
//      make every later commit's fdatasync allocate blocks and journal that), then sync;
//   4. write every new page, then slot txid % 2: the meta page and the root page, in one write;
//   5. one fdatasync ('one': the meta lists the commit's extents and a crc over them, so open can
//      detect a torn commit and fall back) or a sync before and after the meta ('two'); a small
//      commit may sync on the calling thread instead of the thread pool (CommitContext.blockingSync).
// Nothing here touches the committed state; the caller installs the result only after step 5.
import { crc32, crc32Combine, sealedPageCrc } from './checksum';
import { Freelist, pagesForSlots } from './freelist';
import type { FileHandle } from './file-io';
import { metaPageOf, PAGE_SIZE, pagesFor, rootPageOf } from './layout';
import { encodeMeta, Extent, inlineFreeCapacity, MAX_COMMIT_EXTENTS, Meta } from './meta';
import { encodeNode, isPending, Node } from './node';
import type { Pager } from './pager';
import { StoreError } from './errors';
import { WriteTree } from './tree';
import { MAX_CELL, LEAF_INLINE_OVERHEAD } from './layout';

export interface Put {
  key: Buffer;
  value: Buffer;
}

export interface CommitResult {
  meta: Meta;
  root: Node | null;
  freelist: Freelist;
  nodes: Node[];
  fileBytes: number;
  syncs: number;
  /** Microseconds from the start of the commit to its last fdatasync, and in that fdatasync. */
  prepareUs: number;
  lastSyncUs: number;
  /** Pages written before the slot (meta and root), and the contiguous runs they formed. */
  pages: number;
  runs: number;
  /** Whether the commit's syncs ran on the calling thread (see CommitContext.blockingSync). */
  blocking: boolean;
}

interface PageWrite {
  page: number;
  bufs: Buffer[];
  /** Their total length: whole pages. */
  bytes: number;
  /** crc32 of the bufs back to back, from checksums computed anyway (each byte is read once). */
  crc: number;
}

const ZERO_PAGE = Buffer.alloc(PAGE_SIZE);
const OWN_PAGES_MAX = 64;
/** Pages a commit may need beyond its values and dirty nodes (the freelist's own, a segment), so a
 *  commit loads freelist segments a little before its free pages run out. */
const LOAD_MARGIN_PAGES = 64;
/** Commits writing more than this sync on the thread pool whatever blockingSync says: flushing more
 *  takes longer, and the event loop must not wait for it. */
const BLOCKING_SYNC_MAX_BYTES = 256 * 1024;

export interface CommitContext {
  pager: Pager;
  file: FileHandle;
  meta: Meta;
  root: Node | null;
  freelist: Freelist;
  fileBytes: number;
  syncMode: 'one' | 'two';
  growBytes: number;
  /** This commit's txid: meta.txid + 1, or 2 more per failed commit since meta (Store.commitBatch). */
  txid: number;
  /** Pages freed at or before this txid may be reused. */
  reuseThreshold: number;
  /** A small commit may fdatasync on the calling thread (the store says so while syncs are fast). */
  blockingSync: boolean;
  /** Called right before the meta write, so a failure after it can restore the slot. */
  onMetaWrite(): void;
}

/** Whether a value lives in its leaf cell (else in an overflow run). */
export function isInline(key: Buffer, value: Buffer): boolean {
  return LEAF_INLINE_OVERHEAD + key.length + value.length <= MAX_CELL;
}

/** `puts` hold their own copies of keys and inline values (Store.putMany makes them). */
function valueCell(key: Buffer, value: Buffer): Buffer | { pending: Buffer } {
  return isInline(key, value) ? value : { pending: value };
}

export async function commit(ctx: CommitContext, puts: Put[]): Promise<CommitResult> {
  const started = performance.now();
  const tooShort = unfillableCut(ctx.meta.pageCount, ctx.fileBytes);
  if (tooShort) throw new StoreError('CORRUPTION', `${ctx.pager.path}: commit ${ctx.meta.txid} counts ${ctx.meta.pageCount} pages, but the file is ${ctx.fileBytes} bytes: ${tooShort}; nothing of this batch was written`);
  const txid = ctx.txid;
  const slot = txid % 2;
  const tree = new WriteTree(ctx.pager, ctx.root);
  for (const p of puts) tree.put(p.key, valueCell(p.key, p.value));
  const { root, dirty: all } = tree.spill();
  // The root goes into the slot with the meta; every other dirty node gets a page of its own.
  const dirty = all.filter((n) => n !== root);

  const fl = ctx.freelist.clone();
  fl.release(ctx.reuseThreshold);
  for (const id of tree.retired.pages) fl.retire(txid, id, 1);
  for (const run of tree.retired.runs) fl.retire(txid, run.page, pagesFor(run.length));
  if (ctx.meta.freelistPages > 0) fl.retire(txid, ctx.meta.freelistPage, ctx.meta.freelistPages);

  // Allocation. A commit whose pages are contiguous costs the device one sequential write, and
  // fdatasync of a run of pages takes about as long as of one page, while scattered pages cost about
  // one write each. So take one free extent that holds the whole commit when there is one; otherwise
  // fall back to reusing scattered pages, so the file does not grow while free space remains.
  const values: { node: Node; i: number; buf: Buffer; pages: number }[] = [];
  for (const node of all) {
    if (!node.leaf) continue;
    node.vals.forEach((v, i) => {
      if (isPending(v)) values.push({ node, i, buf: v.pending, pages: pagesFor(v.pending.length) });
    });
  }
  const dataPages = values.reduce((s, v) => s + v.pages, 0) + dirty.length;
  // Free space parked in freelist segments comes back before the file grows for this commit.
  const longestValue = values.reduce((m, v) => Math.max(m, v.pages), 1);
  // Pending entries that only readers hold back (freed before the previous commit), surplus free
  // extents, and references to segments, by levels, leave the rewritten freelist: see
  // btree/freelist.ts. A segment is read as format 5: format-4 segments list extents only, which
  // both encode alike.
  const settled = fl.settle({
    need: dataPages + LOAD_MARGIN_PAGES, longest: longestValue, threshold: ctx.reuseThreshold, below: ctx.meta.txid, txid,
    read: (seg) => ctx.pager.segmentEntries(seg, fl.pageCount, fl.held()),
  });
  const writes: PageWrite[] = [];
  for (const seg of settled) {
    seg.pages.forEach((buf, i) => writes.push({ page: seg.start + i, bufs: [buf], bytes: PAGE_SIZE, crc: sealedPageCrc(buf) }));
  }
  // A freelist small enough rides in the meta page: one page less per commit. Allocation below never
  // adds an entry (it takes whole extents or the front of one), and the meta lists at most one
  // extent per page written (the segments' pages included), so the check made here still holds
  // after allocation.
  const slots = fl.slotCount();
  const inline = slots <= inlineFreeCapacity(Math.min(dataPages + writes.length, MAX_COMMIT_EXTENTS));
  // Taking pages from the start of an extent never adds a freelist entry; two spares cover rounding.
  const freelistPages = inline ? 0 : pagesForSlots(slots + 2);
  let next = fl.takeFreeRun(dataPages + freelistPages);
  const contiguous = next >= 0;
  const take = (n: number) => { const s = next; next += n; return s; };

  for (const v of values) {
    const page = contiguous ? take(v.pages) : fl.allocateRun(v.pages);
    const crc = crc32(v.buf);
    v.node.vals[v.i] = { page, length: v.buf.length, crc };
    const bytes = v.pages * PAGE_SIZE;
    const tail = ZERO_PAGE.subarray(0, bytes - v.buf.length);
    // The run's checksum continues the value's over its zero padding (under a page).
    writes.push(tail.length > 0 ? { page, bufs: [v.buf, tail], bytes, crc: crc32(tail, crc) } : { page, bufs: [v.buf], bytes, crc });
  }

  // Tree pages below the root come bottom-up (leaves, then branches), the freelist after them: the
  // upper branches and the freelist are the pages the next commits replace first, so they tend to be
  // freed together and come back as one extent. A one-page freelist joins the tree pages in as few
  // extents as possible.
  const withFreelist = !contiguous && freelistPages === 1 ? 1 : 0;
  const ids = contiguous
    ? range(take(dirty.length), dirty.length)
    : fl.allocateMany(dirty.length + withFreelist).flatMap((e) => range(e.start, e.count));
  // A small commit gives each page its own buffer and keeps it as the node's image, so the next
  // commit can patch it instead of encoding every cell again. A large one carves its pages from one
  // zeroed allocation (hundreds of 4 KiB buffers would each be an external allocation for the
  // garbage collector to track) and keeps no images (one kept page would pin the whole slab).
  const own = dirty.length <= OWN_PAGES_MAX;
  const slab = own ? undefined : Buffer.alloc(dirty.length * PAGE_SIZE);
  dirty.forEach((node, i) => {
    const page = place(node, ids[i], txid, slab ? slab.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE) : Buffer.alloc(PAGE_SIZE));
    node.image = own ? page : undefined;
    writes.push({ page: ids[i], bufs: [page], bytes: PAGE_SIZE, crc: sealedPageCrc(page) });
  });
  const rootPage = root ? place(root, rootPageOf(slot), txid, Buffer.alloc(PAGE_SIZE)) : undefined;
  if (root) root.image = rootPage;
  let freelistPage = 0;
  if (!inline) {
    freelistPage = contiguous ? take(freelistPages) : withFreelist ? ids[dirty.length] : fl.allocateRun(freelistPages);
    fl.encode(freelistPage, freelistPages, txid).forEach((buf, i) => writes.push({ page: freelistPage + i, bufs: [buf], bytes: PAGE_SIZE, crc: sealedPageCrc(buf) }));
  }

  writes.sort((a, b) => a.page - b.page);
  const runs = coalesceWrites(writes);
  const verify = ctx.syncMode === 'one' && runs.length <= MAX_COMMIT_EXTENTS;
  let hash = 0;
  // The hash is crc32 over the runs' bytes in file order, which is the writes' order.
  if (verify) for (const w of writes) hash = crc32Combine(hash, w.crc, w.bytes);

  const meta: Meta = {
    txid,
    ...slotRoot(slot, rootPage),
    freelistPage,
    freelistPages,
    pageCount: fl.pageCount,
    keyCount: ctx.meta.keyCount + tree.addedKeys,
    commitExtents: verify ? runs.map((r) => ({ start: r.page, count: r.pages })) : [],
    commitHash: verify ? hash : 0,
    inlineFree: inline ? fl.entries() : null,
  };

  let syncs = 0;
  let fileBytes = ctx.fileBytes;
  const needed = fl.pageCount * PAGE_SIZE;
  if (needed > fileBytes) {
    fileBytes = await grow(ctx.file, fileBytes, needed, ctx.growBytes);
    syncs++;
  }
  const pages = runs.reduce((s, r) => s + r.pages, 0);
  const blocking = ctx.blockingSync && (pages + 2) * PAGE_SIZE <= BLOCKING_SYNC_MAX_BYTES;
  for (const r of runs) await ctx.file.writev(r.bufs, r.page * PAGE_SIZE);
  if (!verify) {
    await ctx.file.datasync(blocking);
    syncs++;
  }
  const metaPage = encodeMeta(meta);
  ctx.onMetaWrite();
  await writeSlot(ctx.file, slot, rootPage ? [metaPage, rootPage] : [metaPage]);
  const syncStart = performance.now();
  await ctx.file.datasync(blocking);
  syncs++;
  const prepareUs = (syncStart - started) * 1000;
  const lastSyncUs = (performance.now() - syncStart) * 1000;
  return { meta, root, freelist: fl, nodes: all, fileBytes, syncs, prepareUs, lastSyncUs, pages, runs: runs.length, blocking };
}

/** What a meta in `slot` says of the root page written with it (none: an empty tree). Open takes
 *  the root page only if its checksum is the one the meta records, which tells a torn slot write,
 *  or a root left there by a failed commit of the same txid, apart. */
export function slotRoot(slot: number, rootPage: Buffer | undefined): { root: number; rootCrc: number } {
  return rootPage ? { root: rootPageOf(slot), rootCrc: rootPage.readUInt32LE(0) } : { root: 0, rootCrc: 0 };
}

/** Writes the slot: its meta page, then its root page right after it (if any), as one request. */
export function writeSlot(file: FileHandle, slot: number, pages: Buffer[]): Promise<void> {
  return file.writev(pages, metaPageOf(slot) * PAGE_SIZE);
}

/** Gives a dirty node its page id, points it at its children's pages and encodes it into `buf`. */
function place(node: Node, id: number, txid: number, buf: Buffer): Buffer {
  node.pageId = id;
  if (!node.leaf) {
    const ch = node.children;
    for (let j = 0; j < ch.length; j++) { const c = ch[j]; if (typeof c !== 'number') ch[j] = c.pageId; }
  }
  return encodeNode(node, id, txid, buf);
}

/** A file cut short ends before pages its commit counts, and a commit grows it back over them (they
 *  may be listed as free, and new pages go after them). A meta page that passes its checksum can
 *  still count up to 2^41 pages (a buggy writer), which nothing cheap tells from a real cut: growing
 *  the file to that is EFBIG, or a sparse file of terabytes. So a commit fills no more than the file
 *  already holds, or FILL_FLOOR_BYTES for a small file: a realistic cut (a lost size update, bounded
 *  by one growth step; a copy that stopped past half way) is under it, while a store that lost more
 *  than that has lost most of its pages, and a salvage into a new file is the way on. Reads go on
 *  either way. Returns why the commits are refused, or null. */
export function unfillableCut(pageCount: number, fileBytes: number): string | null {
  const missing = pageCount * PAGE_SIZE - fileBytes;
  const limit = Math.max(fileBytes, FILL_FLOOR_BYTES);
  if (missing <= limit) return null;
  return `the ${missing} bytes missing are more than a commit grows a file by to cover them (${limit}: the file's size, or 1 GiB for a smaller file), ` +
    'so either most of it was cut off or its page count is wrong. Commits fail with CORRUPTION and leave the file as it is; ' +
    'reads go on, and lbserver --compact --salvage copies what it holds into a new file';
}

export const FILL_FLOOR_BYTES = 2 ** 30;

/** Extends the file and syncs the new size; returns it. The pages this commit writes past the old
 *  end are left to its own writes; the rest of the step is written as zeros. On a nearly full disk
 *  a full step may not fit while the commit itself would: then grow by just what it needs. */
async function grow(file: FileHandle, fileBytes: number, needed: number, maxGrow: number): Promise<number> {
  let target = Math.max(needed, fileBytes + growStep(fileBytes, maxGrow));
  try {
    await file.extend(target, needed);
  } catch (err) {
    if (target === needed || (err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
    target = needed;
    await file.extend(target, needed);
  }
  await file.datasync();
  return target;
}

/** Growth step: a quarter of the file, between 1 MiB and the configured maximum, in whole pages. */
function growStep(fileBytes: number, maxGrow: number): number {
  const step = Math.min(maxGrow, Math.max(1 << 20, Math.floor(fileBytes / 4)));
  return Math.ceil(step / PAGE_SIZE) * PAGE_SIZE;
}

interface Run {
  page: number;
  pages: number;
  bufs: Buffer[];
}

function coalesceWrites(sorted: PageWrite[]): Run[] {
  const runs: Run[] = [];
  for (const w of sorted) {
    const pages = w.bytes / PAGE_SIZE;
    const last = runs[runs.length - 1];
    if (last && last.page + last.pages === w.page) {
      last.pages += pages;
      last.bufs.push(...w.bufs);
    } else {
      runs.push({ page: w.page, pages, bufs: w.bufs.slice() });
    }
  }
  return runs;
}

function range(start: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => start + i);
}

/** Recomputes a commit's hash from the file: the pages it lists must be exactly what it wrote. */
export function verifyCommit(pager: Pager, extents: Extent[], expect: number): string | null {
  const chunkPages = 256;
  const buf = Buffer.allocUnsafe(chunkPages * PAGE_SIZE);
  let hash = 0;
  for (const e of extents) {
    for (let done = 0; done < e.count; done += chunkPages) {
      const want = Math.min(chunkPages, e.count - done) * PAGE_SIZE;
      const got = pager.file.readSync(buf, 0, want, (e.start + done) * PAGE_SIZE);
      if (got < want) return `page ${e.start + done + Math.floor(got / PAGE_SIZE)} is missing (file too short)`;
      hash = crc32(buf.subarray(0, want), hash);
    }
  }
  return hash === expect ? null : 'pages of the commit do not match its hash (torn or missing write)';
}

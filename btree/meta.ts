// Meta pages: the two roots of trust. Commit N writes slot N % 2 (its meta page and its root page,
// btree/layout.ts), so the other slot always holds the previous durable commit to fall back on.
import { FORMAT_VERSION, MAGIC, MAX_PAGE_ID, META_PAGES, OLDEST_READABLE_VERSION, metaPageOf, PAGE_SIZE, PageType, rootPageOf } from './layout';
import { checkPage, sealPage } from './checksum';
import { badExtents, FREE_ENTRY_BYTES, FreeEntry, readFreeEntries, writeFreeEntry } from './freelist';

export interface Extent {
  start: number;
  count: number;
}

export interface Meta {
  txid: number;
  root: number; // 0: empty tree; else the root page of a slot, written with a meta of the same txid
  freelistPage: number; // 0: no freelist pages
  freelistPages: number;
  pageCount: number; // high-water mark: pages [0, pageCount) are in use or free
  keyCount: number;
  /** One-sync commits list the pages they wrote and a crc32 chained over their contents, so open can
   *  tell a complete commit from a torn one. Empty for two-sync commits (synced before the meta). */
  commitExtents: Extent[];
  commitHash: number;
  /** The checksum stored in the root page (0: no root). Open takes the root page only if it matches,
   *  besides its txid: a failed commit's retry writes the same slot, and a torn slot write may leave
   *  the failed one's root behind the retry's meta. Retries take a higher txid now, so the txid check
   *  alone catches that; the checksum ties the root page to its meta whatever the txids. */
  rootCrc: number;
  /** A small freelist lives in the meta page itself (after the commit extents), so a small commit
   *  writes one page less; null: the freelist is in its own pages (freelistPage, freelistPages). */
  inlineFree: FreeEntry[] | null;
  /** The format version it was written in (decoded metas; a new one is written in FORMAT_VERSION). */
  version?: number;
}

const O_MAGIC = 24;
const O_VERSION = 32;
const O_PAGESIZE = 36;
const O_ROOT = 40;
const O_FREE_PAGE = 48;
const O_FREE_PAGES = 56;
const O_FLAGS = 60;
const O_PAGECOUNT = 64;
const O_KEYS = 72;
const O_HASH = 80;
const O_NEXTENTS = 84;
const O_ROOT_CRC = 88;
const O_EXTENTS = 92;
const EXTENT_BYTES = 10;
export const MAX_COMMIT_EXTENTS = Math.floor((PAGE_SIZE - O_EXTENTS) / EXTENT_BYTES);

const FLAG_VERIFY = 1;
const FLAG_INLINE_FREE = 2;

/** How many freelist slots (a segment reference takes two) fit in the meta page next to `extents`
 *  commit extents. */
export function inlineFreeCapacity(extents: number): number {
  return Math.max(0, Math.floor((PAGE_SIZE - O_EXTENTS - extents * EXTENT_BYTES - 4) / FREE_ENTRY_BYTES));
}

export function encodeMeta(m: Meta): Buffer {
  if (m.commitExtents.length > MAX_COMMIT_EXTENTS) throw new Error('too many commit extents for a meta page');
  const inlineSlots = m.inlineFree?.reduce((n, e) => n + (e.ref ? 2 : 1), 0) ?? 0;
  if (inlineSlots > inlineFreeCapacity(m.commitExtents.length)) throw new Error('inline freelist does not fit the meta page');
  const page = Buffer.alloc(PAGE_SIZE);
  MAGIC.copy(page, O_MAGIC);
  page.writeUInt32LE(FORMAT_VERSION, O_VERSION);
  page.writeUInt32LE(PAGE_SIZE, O_PAGESIZE);
  page.writeUIntLE(m.root, O_ROOT, 6);
  page.writeUIntLE(m.freelistPage, O_FREE_PAGE, 6);
  page.writeUInt32LE(m.freelistPages, O_FREE_PAGES);
  page.writeUInt32LE((m.commitExtents.length > 0 ? FLAG_VERIFY : 0) | (m.inlineFree ? FLAG_INLINE_FREE : 0), O_FLAGS);
  page.writeUIntLE(m.pageCount, O_PAGECOUNT, 6);
  page.writeUIntLE(m.keyCount, O_KEYS, 6);
  page.writeUInt32LE(m.commitHash >>> 0, O_HASH);
  page.writeUInt32LE(m.commitExtents.length, O_NEXTENTS);
  page.writeUInt32LE(m.rootCrc >>> 0, O_ROOT_CRC);
  let off = O_EXTENTS;
  for (const e of m.commitExtents) {
    page.writeUIntLE(e.start, off, 6);
    page.writeUInt32LE(e.count, off + 6);
    off += EXTENT_BYTES;
  }
  if (m.inlineFree) {
    page.writeUInt32LE(inlineSlots, off);
    off += 4;
    for (const e of m.inlineFree) off += writeFreeEntry(page, off, e);
  }
  sealPage(page, PageType.Meta, 0, metaPageOf(m.txid % 2), m.txid);
  return page;
}

/** Decodes slot `slot`; returns a reason string when it is not a valid meta page. */
export function decodeMeta(page: Buffer, slot: number): Meta | string {
  const h = checkPage(page, metaPageOf(slot));
  if (typeof h === 'string') return h;
  if (h.type !== PageType.Meta) return `not a meta page (type ${h.type})`;
  if (!page.subarray(O_MAGIC, O_MAGIC + MAGIC.length).equals(MAGIC)) return 'bad magic: not an lbkv data file';
  const version = page.readUInt32LE(O_VERSION);
  if (version < OLDEST_READABLE_VERSION || version > FORMAT_VERSION) return `format version ${version}, this build reads versions ${OLDEST_READABLE_VERSION} to ${FORMAT_VERSION}`;
  const pageSize = page.readUInt32LE(O_PAGESIZE);
  if (pageSize !== PAGE_SIZE) return `page size ${pageSize}, this build uses ${PAGE_SIZE}`;
  if (h.txid % 2 !== slot) return `txid ${h.txid} does not belong in slot ${slot}`;
  const n = page.readUInt32LE(O_NEXTENTS);
  if (n > MAX_COMMIT_EXTENTS) return `${n} commit extents`;
  const flags = page.readUInt32LE(O_FLAGS);
  const verify = (flags & FLAG_VERIFY) !== 0;
  const commitExtents: Extent[] = [];
  let off = O_EXTENTS;
  for (let i = 0; i < n; i++) {
    commitExtents.push({ start: page.readUIntLE(off, 6), count: page.readUInt32LE(off + 6) });
    off += EXTENT_BYTES;
  }
  if (verify !== commitExtents.length > 0) return 'commit extent flag and list disagree';
  let inlineFree: FreeEntry[] | null = null;
  if (flags & FLAG_INLINE_FREE) {
    const k = page.readUInt32LE(off);
    if (k > inlineFreeCapacity(n)) return `${k} inline freelist slots do not fit the page`;
    const entries = readFreeEntries(page, off + 4, k, version);
    if (typeof entries === 'string') return `inline freelist: ${entries}`;
    inlineFree = entries;
  }
  const root = page.readUIntLE(O_ROOT, 6);
  if (root !== 0 && root !== rootPageOf(slot)) return `root page ${root} is not slot ${slot}'s root page ${rootPageOf(slot)}`;
  // A meta page that passes its checksum can still be wrong (a buggy writer). Open reads the pages
  // it names (an offset past a safe integer throws RangeError in node:fs), and commits allocate
  // from its page count (one below the slots would hand out meta pages): every page it names must
  // lie in [META_PAGES, pageCount), and pageCount in any file.
  const pageCount = page.readUIntLE(O_PAGECOUNT, 6);
  if (pageCount < META_PAGES || pageCount > MAX_PAGE_ID + 1) return `page count ${pageCount} is impossible`;
  const badCommit = badExtents(commitExtents, pageCount);
  if (badCommit) return `commit extents: ${badCommit}`;
  const freelistPage = page.readUIntLE(O_FREE_PAGE, 6);
  const freelistPages = page.readUInt32LE(O_FREE_PAGES);
  const badFreelist = freelistPages > 0 ? badExtents([{ start: freelistPage, count: freelistPages }], pageCount) : null;
  if (badFreelist) return `freelist pages: ${badFreelist}`;
  return {
    txid: h.txid,
    root,
    freelistPage,
    freelistPages,
    pageCount,
    keyCount: page.readUIntLE(O_KEYS, 6),
    commitExtents,
    commitHash: page.readUInt32LE(O_HASH),
    rootCrc: page.readUInt32LE(O_ROOT_CRC),
    inlineFree,
    version,
  };
}

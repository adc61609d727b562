// On-disk layout constants. 4 KiB pages: the page size of the x86 MMU, of ext4 blocks and of the
// kernel page cache, so one page is one atomic-ish unit for the OS and one I/O for the device;
// LMDB and bbolt use the same. Offsets are little-endian.
export const PAGE_SIZE = 4096;

// Page header (24 bytes), on every page but overflow pages:
//   0 crc32 of bytes 4..PAGE_SIZE   4 type u8   5 flags u8   6 cell count u16
//   8 page id u48 (catches misdirected writes)   14 reserved   16 txid u48 of the commit that wrote it
export const HEADER_SIZE = 24;
export const BODY_SIZE = PAGE_SIZE - HEADER_SIZE;

export const enum PageType {
  Meta = 1,
  Branch = 2,
  Leaf = 3,
  Freelist = 4,
}

// A cell no larger than half a page body guarantees that any node splits into pages that each hold
// at least one cell, and that a leaf always holds two; larger values move to overflow runs.
export const MAX_CELL = Math.floor(BODY_SIZE / 2);

// The longest key: its branch cell (BRANCH_OVERHEAD + key) must stay far below MAX_CELL so a branch
// holds many keys and the tree stays shallow; 1024 is what the API promises.
export const MAX_KEY_BYTES = 1024;

// Leaf cell: keyLen u16, kind u8, then inline: valLen u16, key, value
//                                       overflow: first page u48, length u48, crc32 u32, key
export const LEAF_INLINE_OVERHEAD = 5;
export const LEAF_OVERFLOW_CELL = 19;
// Branch cell: keyLen u16, child page u48, key
export const BRANCH_OVERHEAD = 8;

// The file starts with two slots of two pages each: slot s is the meta page 2s followed by the root
// page 2s + 1, and commit N writes slot N % 2. Every commit rewrites the root (copy-on-write copies
// the path from it), so the root has a fixed home next to its meta: the two go out as one write, and
// a small commit sends the disk one request less (each scattered page adds 10-30 us to an
// fdatasync here: bench-engine's sync shapes, REPORT.md 2.4). The other slot's root is the previous commit's, which a fallback needs.
export const META_PAGES = 4;
export const metaPageOf = (slot: number): number => 2 * slot;
export const rootPageOf = (slot: number): number => 2 * slot + 1;
/** Pages that belong to a slot: never in the freelist, never allocated. */
export const isSlotPage = (page: number): boolean => page < META_PAGES;
/** Page ids are u48 on disk, but node:fs takes only safe-integer offsets: a larger id is no page of
 *  any file, and reading it would fail as an I/O error rather than as the corruption it is. */
export const MAX_PAGE_ID = Math.floor(Number.MAX_SAFE_INTEGER / PAGE_SIZE) - 1;
/** No tree is this deep: a split leaves pieces of at least half a page of cells on average (two
 *  cells of the longest key), so each level holds about twice the pages of the level above, and
 *  2^48 page ids make well under 64 levels. A descent that goes deeper is going round branch pages
 *  that name each other (pages that pass their checksums, from a buggy writer) and would not end. */
export const MAX_TREE_DEPTH = 64;
export const MAGIC = Buffer.from('LBKVDB01', 'latin1');
// 2: the meta page may hold the freelist inline. 3: slots of meta + root page. 4: freelist segments
// (a version-3 file is a version-4 file without any). 5: segment references take two slots and
// segments nest (btree/freelist.ts); this build reads a version-4 reference and writes it anew.
export const FORMAT_VERSION = 5;
export const OLDEST_READABLE_VERSION = 3;

export function pagesFor(bytes: number): number {
  return Math.ceil(bytes / PAGE_SIZE);
}

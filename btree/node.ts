// In-memory B+tree nodes and their page encoding. A node read from disk is clean and shared by
// every snapshot that reaches it, so it is never mutated: writers clone it (copy-on-write).
import {
  BODY_SIZE, BRANCH_OVERHEAD, HEADER_SIZE, isSlotPage, LEAF_INLINE_OVERHEAD, LEAF_OVERFLOW_CELL, MAX_PAGE_ID, PAGE_SIZE, PageType,
} from './layout';
import { sealPage } from './checksum';

/** A value stored in an overflow run: headerless pages, verified by the checksum kept here. */
export interface OverflowRef {
  page: number;
  length: number;
  crc: number;
}

/** A large value put in the running transaction; it gets its overflow run at commit. */
export interface PendingOverflow {
  pending: Buffer;
}

export type LeafValue = Buffer | OverflowRef | PendingOverflow;

export const isInline = (v: LeafValue): v is Buffer => Buffer.isBuffer(v);
export const isPending = (v: LeafValue): v is PendingOverflow => !Buffer.isBuffer(v) && 'pending' in v;

/** How a dirty node differs from the page image of the node it was cloned from, while that is still
 *  small enough to encode by patching a copy of the image: replaced children or overflow values at
 *  `changed` (current indexes) and at most one inserted cell. A full branch re-encoded cell by cell
 *  costs several microseconds; a patched copy about one, and most commits change one path. */
interface Patch {
  base: Buffer;
  inserted: number;
  changed: number[];
}

export class Node {
  /** Page this node was read from (0: created in this transaction, never on disk). */
  pageId: number;
  dirty: boolean;
  /** Clean nodes: the immutable page this node was decoded from or written as, if kept. */
  image: Buffer | undefined;
  /** Dirty nodes: see Patch; undefined when the node must be encoded cell by cell. */
  patch: Patch | undefined;
  keys: Buffer[];
  /** Leaf only. */
  vals: LeafValue[];
  /** Branch only: page ids, or dirty child nodes while a transaction runs. keys[i] is a lower bound
   *  of the keys under children[i] and greater than every key under children[i - 1] (a separator,
   *  not necessarily a stored key); keys[0] is treated as minus infinity when searching. */
  children: (number | Node)[];

  constructor(readonly leaf: boolean, keys: Buffer[], vals: LeafValue[], children: (number | Node)[], pageId = 0, dirty = true) {
    this.keys = keys;
    this.vals = vals;
    this.children = children;
    this.pageId = pageId;
    this.dirty = dirty;
    this.image = undefined;
    this.patch = undefined;
  }

  /** Writable copy for a transaction; the original stays valid for readers. */
  cloneForWrite(): Node {
    const n = new Node(this.leaf, this.keys.slice(), this.vals.slice(), this.children.slice(), 0, true);
    if (this.image) n.patch = { base: this.image, inserted: -1, changed: [] };
    return n;
  }

  /** The mutations a write transaction makes, kept in step with the patch. */
  setChild(i: number, child: number | Node): void {
    this.children[i] = child;
    this.markChanged(i);
  }

  setValue(i: number, v: LeafValue): void {
    // Only an overflow reference replaced by another keeps the cell's size (and the patch).
    if (isInline(v) || isInline(this.vals[i])) this.patch = undefined;
    this.vals[i] = v;
    this.markChanged(i);
  }

  insert(i: number, key: Buffer, v: LeafValue): void {
    this.keys.splice(i, 0, key);
    this.vals.splice(i, 0, v);
    const p = this.patch;
    if (!p) return;
    if (p.inserted >= 0) {
      this.patch = undefined;
      return;
    }
    p.inserted = i;
    p.changed = p.changed.map((j) => (j >= i ? j + 1 : j));
  }

  private markChanged(i: number): void {
    const p = this.patch;
    if (p && p.inserted !== i && !p.changed.includes(i)) p.changed.push(i);
  }

  cellSize(i: number): number {
    const k = this.keys[i].length;
    if (!this.leaf) return BRANCH_OVERHEAD + k;
    const v = this.vals[i];
    return isInline(v) ? LEAF_INLINE_OVERHEAD + k + v.length : LEAF_OVERFLOW_CELL + k;
  }

  byteSize(): number {
    let s = 0;
    for (let i = 0; i < this.keys.length; i++) s += this.cellSize(i);
    return s;
  }
}

/** Index of the first key >= target (keys.length if none). */
export function lowerBound(keys: Buffer[], target: Buffer): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (Buffer.compare(keys[mid], target) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Child slot of a branch that covers target. */
export function childIndex(node: Node, target: Buffer): number {
  const keys = node.keys;
  let lo = 1;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (Buffer.compare(keys[mid], target) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** Splits a node whose cells exceed one page into balanced pieces that each fit a page. */
export function splitNode(node: Node): Node[] {
  const total = node.byteSize();
  if (total <= BODY_SIZE) return [node];
  const pieces = Math.ceil(total / BODY_SIZE);
  const target = total / pieces;
  const out: Node[] = [];
  let start = 0;
  let size = 0;
  for (let i = 0; i < node.keys.length; i++) {
    const c = node.cellSize(i);
    if (i > start && (size + c > BODY_SIZE || (size >= target && out.length < pieces - 1))) {
      out.push(slice(node, start, i));
      start = i;
      size = 0;
    }
    size += c;
  }
  out.push(slice(node, start, node.keys.length));
  return out;
}

function slice(node: Node, from: number, to: number): Node {
  return node.leaf
    ? new Node(true, node.keys.slice(from, to), node.vals.slice(from, to), [], 0, true)
    : new Node(false, node.keys.slice(from, to), [], node.children.slice(from, to), 0, true);
}

/** Serializes a node (all children and values already have page ids) into a sealed page: `into`,
 *  a zeroed page-sized buffer (commits carve all their pages from one allocation), or a new one. */
export function encodeNode(node: Node, pageId: number, txid: number, into?: Buffer): Buffer {
  const page = into ?? Buffer.alloc(PAGE_SIZE);
  const patched = node.patch ? encodePatched(node, node.patch, page) : false;
  if (!patched) {
    if (node.patch) page.fill(0); // a patch given up half way may have left bytes behind
    writeCells(node, page);
  }
  sealPage(page, node.leaf ? PageType.Leaf : PageType.Branch, node.keys.length, pageId, txid);
  if (CHECK_PATCHES && patched) {
    const full = writeCells(node, Buffer.alloc(PAGE_SIZE));
    sealPage(full, node.leaf ? PageType.Leaf : PageType.Branch, node.keys.length, pageId, txid);
    if (!full.equals(page)) throw new Error(`encodeNode: patched page ${pageId} differs from a full encoding`);
  }
  return page;
}

function writeCells(node: Node, page: Buffer): Buffer {
  let off = HEADER_SIZE;
  for (let i = 0; i < node.keys.length; i++) off = writeCell(node, i, page, off);
  return page;
}

// Tests set LBKV_CHECK_PATCHES=1: every patched page is compared with a full encoding.
const CHECK_PATCHES = process.env.LBKV_CHECK_PATCHES === '1';

/** Copies the base image into `page` with the one inserted cell written in place and the changed
 *  child ids / overflow references rewritten. False when the image does not fit the node (then the
 *  caller encodes cell by cell). */
function encodePatched(node: Node, p: Patch, page: Buffer): boolean {
  const base = p.base;
  const count = base.readUInt16LE(6);
  const n = node.keys.length;
  if (count + (p.inserted >= 0 ? 1 : 0) !== n) return false;
  const offsets = new Array<number>(n);
  let off = HEADER_SIZE;
  for (let c = 0, i = 0; c < count; c++, i++) {
    if (i === p.inserted) i++;
    offsets[i] = off;
    off += storedCellSize(base, off, node.leaf);
  }
  const end = off;
  if (p.inserted < 0) {
    base.copy(page, 0, 0, end);
  } else {
    const at = p.inserted + 1 < n ? offsets[p.inserted + 1] : end;
    base.copy(page, 0, 0, at);
    const after = writeCell(node, p.inserted, page, at);
    if (after - at + end > PAGE_SIZE) return false;
    base.copy(page, after, at, end);
    const shift = after - at;
    offsets[p.inserted] = at;
    for (let i = p.inserted + 1; i < n; i++) offsets[i] += shift;
  }
  for (const i of p.changed) {
    const o = offsets[i];
    if (node.leaf) {
      const v = node.vals[i];
      if (isInline(v) || isPending(v) || page[o + 2] !== 1) return false;
      putU48(page, o + 3, v.page);
      putU48(page, o + 9, v.length);
      page.writeUInt32LE(v.crc >>> 0, o + 15);
    } else {
      const child = node.children[i];
      if (typeof child !== 'number') return false;
      putU48(page, o + 2, child);
    }
  }
  return true;
}

function storedCellSize(page: Buffer, off: number, leaf: boolean): number {
  const klen = page.readUInt16LE(off);
  if (!leaf) return BRANCH_OVERHEAD + klen;
  return page[off + 2] === 0 ? LEAF_INLINE_OVERHEAD + klen + page.readUInt16LE(off + 3) : LEAF_OVERFLOW_CELL + klen;
}

/** Writes cell `i` of `node` at `off`; returns the offset past it. Plain stores and set() rather
 *  than writeUIntLE / Buffer.copy, which cost a bounds-checked call each: a full branch has ~170. */
function writeCell(node: Node, i: number, page: Buffer, off: number): number {
  const key = node.keys[i];
  page[off] = key.length & 0xff;
  page[off + 1] = key.length >>> 8;
  if (node.leaf) {
    const v = node.vals[i];
    if (isInline(v)) {
      page[off + 2] = 0;
      page[off + 3] = v.length & 0xff;
      page[off + 4] = v.length >>> 8;
      off = putKey(page, off + LEAF_INLINE_OVERHEAD, key);
      page.set(v, off);
      return off + v.length;
    }
    if (isPending(v)) throw new Error('encodeNode: value without an overflow run');
    page[off + 2] = 1;
    putU48(page, off + 3, v.page);
    putU48(page, off + 9, v.length);
    page.writeUInt32LE(v.crc >>> 0, off + 15);
    return putKey(page, off + LEAF_OVERFLOW_CELL, key);
  }
  const child = node.children[i];
  if (typeof child !== 'number') throw new Error('encodeNode: child without a page id');
  putU48(page, off + 2, child);
  return putKey(page, off + BRANCH_OVERHEAD, key);
}

function putKey(page: Buffer, off: number, key: Buffer): number {
  page.set(key, off);
  return off + key.length;
}

function putU48(page: Buffer, off: number, v: number): void {
  page.writeUInt32LE(v % 0x100000000, off);
  const hi = Math.floor(v / 0x100000000);
  page[off + 4] = hi & 0xff;
  page[off + 5] = hi >>> 8;
}

/** Decodes a verified page. Keys and inline values are views of the page buffer, which is never
 *  modified after it is read, so no copies are made. Returns a reason string when malformed. */
export function decodeNode(page: Buffer, type: PageType, count: number, pageId: number): Node | string {
  const leaf = type === PageType.Leaf;
  const keys: Buffer[] = new Array(count);
  const vals: LeafValue[] = leaf ? new Array(count) : [];
  const children: number[] = leaf ? [] : new Array(count);
  let off = HEADER_SIZE;
  // The smallest cell header must fit before any of it is read: Buffer reads past the page throw
  // RangeError, and a page that passes its checksum can still hold a bad count (a buggy writer).
  const minCell = leaf ? LEAF_INLINE_OVERHEAD : BRANCH_OVERHEAD;
  // No page below a root is ever written empty, and nothing could tell where an empty leaf belongs
  // (tree.ts, checkPlace); a branch without children would send a search to a child that is not there.
  if (count === 0) return 'page without cells';
  // Searches bisect the keys, so a page that passes its checksum with keys out of order (a buggy
  // writer) would make a get miss a key that is there. A branch's first key is not compared: searches
  // ignore it, and after a split of its first child it may exceed the second (tree.ts, spillNode).
  const firstOrdered = leaf ? 1 : 2;
  let prev = 0;
  let prevLen = 0;
  for (let i = 0; i < count; i++) {
    if (off + minCell > PAGE_SIZE) return 'cell runs past the page';
    const klen = page.readUInt16LE(off);
    let kStart: number;
    if (leaf) {
      const kind = page.readUInt8(off + 2);
      if (kind === 0) {
        const vlen = page.readUInt16LE(off + 3);
        kStart = off + LEAF_INLINE_OVERHEAD;
        if (kStart + klen + vlen > PAGE_SIZE) return 'cell runs past the page';
        vals[i] = page.subarray(kStart + klen, kStart + klen + vlen);
        off = kStart + klen + vlen;
      } else if (kind === 1) {
        kStart = off + LEAF_OVERFLOW_CELL;
        if (kStart + klen > PAGE_SIZE) return 'cell runs past the page';
        const run = page.readUIntLE(off + 3, 6);
        if (!isPageId(run)) return `cell ${i}: overflow run at page ${run}, ${notAPage(run)}`;
        vals[i] = { page: run, length: page.readUIntLE(off + 9, 6), crc: page.readUInt32LE(off + 15) };
        off = kStart + klen;
      } else {
        return `unknown value kind ${kind}`;
      }
    } else {
      kStart = off + BRANCH_OVERHEAD;
      if (kStart + klen > PAGE_SIZE) return 'cell runs past the page';
      const child = page.readUIntLE(off + 2, 6);
      if (!isPageId(child)) return `cell ${i}: child page ${child}, ${notAPage(child)}`;
      children[i] = child;
      off = kStart + klen;
    }
    keys[i] = page.subarray(kStart, kStart + klen);
    if (i >= firstOrdered && !ascending(page, prev, prevLen, kStart, klen)) return `keys ${i - 1} and ${i} are out of order`;
    prev = kStart;
    prevLen = klen;
  }
  const node = new Node(leaf, keys, vals, children, pageId, false);
  node.image = page;
  return node;
}

// Checks a page that passes its checksum still needs (a buggy writer): a slot's root page is never
// a child (one that named its own root would make every search below it loop), and neither is a
// meta page; ids past MAX_PAGE_ID are in no file.
const isPageId = (id: number): boolean => !isSlotPage(id) && id <= MAX_PAGE_ID;
const notAPage = (id: number): string => (isSlotPage(id) ? 'a meta or root page of a slot' : 'past the end of any file');

/** Whether the key of `aLen` bytes at `a` in `page` sorts before the one at `b`. Bytes of the one
 *  page in a loop: a native Buffer.compare per pair made decodeNode half as slow again. */
function ascending(page: Buffer, a: number, aLen: number, b: number, bLen: number): boolean {
  const n = Math.min(aLen, bLen);
  for (let i = 0; i < n; i++) {
    const d = page[a + i] - page[b + i];
    if (d !== 0) return d < 0;
  }
  return aLen < bLen;
}

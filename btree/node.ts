// In-memory B+tree nodes and their page encoding. A node read from disk is clean and shared by
// every snapshot that reaches it, so it is never mutated: writers clone it (copy-on-write).
import {
  BODY_SIZE, BRANCH_OVERHEAD, HEADER_SIZE, LEAF_INLINE_OVERHEAD, LEAF_OVERFLOW_CELL, PAGE_SIZE, PageType,
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

export class Node {
  /** Page this node was read from (0: created in this transaction, never on disk). */
  pageId: number;
  dirty: boolean;
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
  }

  /** Writable copy for a transaction; the original stays valid for readers. */
  cloneForWrite(): Node {
    return new Node(this.leaf, this.keys.slice(), this.vals.slice(), this.children.slice(), 0, true);
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
  // Hot on every commit (a full branch has ~170 cells): plain stores and set() instead of
  // writeUIntLE / Buffer.copy, which cost a bounds-checked call each.
  let off = HEADER_SIZE;
  for (let i = 0; i < node.keys.length; i++) {
    const key = node.keys[i];
    page[off] = key.length & 0xff;
    page[off + 1] = key.length >>> 8;
    if (node.leaf) {
      const v = node.vals[i];
      if (isInline(v)) {
        page[off + 2] = 0;
        page[off + 3] = v.length & 0xff;
        page[off + 4] = v.length >>> 8;
        off += 5;
        off = putKey(page, off, key);
        page.set(v, off);
        off += v.length;
      } else {
        if (isPending(v)) throw new Error('encodeNode: value without an overflow run');
        page[off + 2] = 1;
        putU48(page, off + 3, v.page);
        putU48(page, off + 9, v.length);
        page.writeUInt32LE(v.crc >>> 0, off + 15);
        off += 19;
        off = putKey(page, off, key);
      }
    } else {
      const child = node.children[i];
      if (typeof child !== 'number') throw new Error('encodeNode: child without a page id');
      putU48(page, off + 2, child);
      off += 8;
      off = putKey(page, off, key);
    }
  }
  sealPage(page, node.leaf ? PageType.Leaf : PageType.Branch, node.keys.length, pageId, txid);
  return page;
}

function putKey(page: Buffer, off: number, key: Buffer): number {
  const n = key.length;
  page.set(key, off);
  return off + n;
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
  for (let i = 0; i < count; i++) {
    if (off + 2 > PAGE_SIZE) return 'cell runs past the page';
    const klen = page.readUInt16LE(off);
    if (leaf) {
      const kind = page.readUInt8(off + 2);
      if (kind === 0) {
        const vlen = page.readUInt16LE(off + 3);
        const kStart = off + 5;
        if (kStart + klen + vlen > PAGE_SIZE) return 'cell runs past the page';
        keys[i] = page.subarray(kStart, kStart + klen);
        vals[i] = page.subarray(kStart + klen, kStart + klen + vlen);
        off = kStart + klen + vlen;
      } else if (kind === 1) {
        const kStart = off + 19;
        if (kStart + klen > PAGE_SIZE) return 'cell runs past the page';
        vals[i] = { page: page.readUIntLE(off + 3, 6), length: page.readUIntLE(off + 9, 6), crc: page.readUInt32LE(off + 15) };
        keys[i] = page.subarray(kStart, kStart + klen);
        off = kStart + klen;
      } else {
        return `unknown value kind ${kind}`;
      }
    } else {
      const kStart = off + 8;
      if (kStart + klen > PAGE_SIZE) return 'cell runs past the page';
      children[i] = page.readUIntLE(off + 2, 6);
      keys[i] = page.subarray(kStart, kStart + klen);
      off = kStart + klen;
    }
  }
  return new Node(leaf, keys, vals, children, pageId, false);
}

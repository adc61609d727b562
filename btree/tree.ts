// B+tree search and copy-on-write mutation. A write transaction clones the path from the root to
// the leaf it changes; untouched subtrees stay shared with every snapshot.
import { childIndex, isInline, lowerBound, Node, LeafValue, OverflowRef, splitNode } from './node';
import type { Pager } from './pager';
import { isSlotPage, MAX_TREE_DEPTH } from './layout';
import { corruption } from './checksum';

/** The keys [lo, hi) a node may hold, as the separators on its path give them (undefined:
 *  unbounded). */
export interface Bounds {
  lo?: Buffer;
  hi?: Buffer;
}

/** Narrows `b`, the bounds of branch `node`, to those of its child `c`. Only ever narrows: a branch
 *  at the wrong place has separators outside its own bounds, which must not widen them again. */
export function narrow(node: Node, c: number, b: Bounds): void {
  const k = node.keys;
  if (c > 0 && (!b.lo || Buffer.compare(k[c], b.lo) > 0)) b.lo = k[c];
  if (c + 1 < k.length && (!b.hi || Buffer.compare(k[c + 1], b.hi) < 0)) b.hi = k[c + 1];
}

/** Throws CORRUPTION unless `leaf` holds keys within `b`. A page that passes its checksum can still
 *  sit at the wrong place (a buggy writer's child id): a get would miss a key that is elsewhere, a
 *  scan skip or repeat keys. Decoding checked the order within the leaf: its first and last keys
 *  suffice. */
export function checkPlace(pager: Pager, leaf: Node, b: Bounds): void {
  const keys = leaf.keys;
  if ((b.lo && Buffer.compare(keys[0], b.lo) < 0) || (b.hi && Buffer.compare(keys[keys.length - 1], b.hi) >= 0)) {
    throw corruption(pager.path, leaf.pageId, 'the leaf holds keys outside the range its parent gives it (a page at the wrong place)');
  }
}

/** Throws CORRUPTION when a descent has gone `depth` levels below the root (see MAX_TREE_DEPTH). */
export function checkDepth(pager: Pager, depth: number, node: Node): void {
  if (depth > MAX_TREE_DEPTH) throw corruption(pager.path, node.pageId, `the tree goes deeper than ${MAX_TREE_DEPTH} levels: its branch pages form a cycle`);
}

// lookup's path, kept only to work out a miss's bounds: lookup runs to the end without yielding, so
// one pair of arrays serves every call (holding the last path's few nodes until the next), and a hit
// costs two stores per level rather than a comparison.
const pathNodes: Node[] = [];
const pathIndexes: number[] = [];

/** The value cell for `key` under `root` (a snapshot's root node), or undefined. */
export function lookup(pager: Pager, root: Node | null, key: Buffer): Buffer | OverflowRef | undefined {
  if (!root) return undefined;
  let node = root;
  let depth = 0;
  while (!node.leaf) {
    checkDepth(pager, ++depth, node);
    const c = childIndex(node, key);
    pathNodes[depth] = node;
    pathIndexes[depth] = c;
    node = pager.node(node.children[c] as number);
  }
  const i = lowerBound(node.keys, key);
  if (i < node.keys.length && node.keys[i].equals(key)) return node.vals[i] as Buffer | OverflowRef;
  // A miss is an answer only from the leaf where the key belongs; a hit is the key's own cell.
  const bounds: Bounds = {};
  for (let d = 1; d <= depth; d++) narrow(pathNodes[d], pathIndexes[d], bounds);
  checkPlace(pager, node, bounds);
  return undefined;
}

export interface Retired {
  /** Tree pages replaced by copies in this transaction. */
  pages: number[];
  /** Overflow runs of overwritten values. */
  runs: OverflowRef[];
}

export class WriteTree {
  root: Node | null;
  addedKeys = 0;
  readonly retired: Retired = { pages: [], runs: [] };

  constructor(private readonly pager: Pager, root: Node | null) {
    this.root = root;
  }

  private writable(node: Node): Node {
    if (node.dirty) return node;
    // A root's slot page is not freed: the commit after next rewrites it in place.
    if (!isSlotPage(node.pageId)) this.retired.pages.push(node.pageId);
    return node.cloneForWrite();
  }

  put(key: Buffer, value: LeafValue): void {
    if (!this.root) {
      this.root = new Node(true, [key], [value], []);
      this.addedKeys++;
      return;
    }
    let node = (this.root = this.writable(this.root));
    const bounds: Bounds = {};
    for (let depth = 1; !node.leaf; depth++) {
      checkDepth(this.pager, depth, node);
      const i = childIndex(node, key);
      narrow(node, i, bounds);
      const c = node.children[i];
      const read = typeof c === 'number' ? this.pager.node(c) : c;
      // A key put into a leaf at the wrong place would be written there for good.
      if (read.leaf && !read.dirty) checkPlace(this.pager, read, bounds);
      const child = this.writable(read);
      node.setChild(i, child);
      node = child;
    }
    const i = lowerBound(node.keys, key);
    if (i < node.keys.length && node.keys[i].equals(key)) {
      const old = node.vals[i];
      if (!isInline(old) && !('pending' in old)) this.retired.runs.push(old);
      node.setValue(i, value);
    } else {
      node.insert(i, key, value);
      this.addedKeys++;
    }
  }

  /** Splits oversized dirty nodes bottom-up; returns the (possibly new) root and every dirty node in
   *  child-before-parent order, ready for page assignment. */
  spill(): { root: Node | null; dirty: Node[] } {
    const dirty: Node[] = [];
    if (!this.root) return { root: null, dirty };
    // Every commit writes a root into its own slot, even a commit that changed nothing under it:
    // the root in the other slot belongs to the meta a power cut would fall back to.
    if (!this.root.dirty) this.root = this.writable(this.root);
    let pieces = spillNode(this.root, dirty);
    while (pieces.length > 1) {
      const parent = new Node(false, separators(pieces), [], pieces);
      pieces = splitNode(parent);
      dirty.push(...pieces);
    }
    this.root = pieces[0];
    return { root: this.root, dirty };
  }
}

function spillNode(node: Node, dirty: Node[]): Node[] {
  if (!node.leaf) {
    // Usually one child changed and did not split: update it in place and leave the (up to ~170
    // entry) arrays alone; rebuild them only when some child split.
    let splits: { i: number; parts: Node[] }[] | undefined;
    for (let i = 0; i < node.children.length; i++) {
      const c = node.children[i];
      if (typeof c === 'number' || !c.dirty) continue;
      const parts = spillNode(c, dirty);
      node.setChild(i, parts[0]);
      if (parts.length > 1) (splits ??= []).push({ i, parts });
    }
    // The first piece keeps the separator the parent already had: keys below it may have been
    // inserted into this child, and searches treat each separator as a lower bound.
    if (splits) node.patch = undefined;
    for (const { i, parts } of (splits ?? []).reverse()) {
      const seps = separators(parts);
      node.keys.splice(i + 1, 0, ...seps.slice(1));
      node.children.splice(i + 1, 0, ...parts.slice(1));
    }
  }
  const pieces = splitNode(node);
  dirty.push(...pieces);
  return pieces;
}

/** Separator keys for the pieces of a split node (the first is the piece's own first key). Between
 *  leaves the separator is the shortest prefix of the right piece's first key that is still greater
 *  than the left piece's last key (suffix truncation): a search only needs left < separator <= right,
 *  and short separators give branches a larger fan-out, so the tree is lower and every commit
 *  copies fewer pages. Branch pieces already start with a separator. */
function separators(pieces: Node[]): Buffer[] {
  return pieces.map((p, j) => {
    if (j === 0 || !p.leaf) return p.keys[0];
    const left = pieces[j - 1].keys[pieces[j - 1].keys.length - 1];
    const right = p.keys[0];
    let n = 0;
    while (n < left.length && n < right.length && left[n] === right[n]) n++;
    return Buffer.from(right.subarray(0, n + 1));
  });
}

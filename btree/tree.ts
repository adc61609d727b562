// B+tree search and copy-on-write mutation. A write transaction clones the path from the root to
// the leaf it changes; untouched subtrees stay shared with every snapshot.
import { childIndex, isInline, lowerBound, Node, LeafValue, OverflowRef, splitNode } from './node';
import type { Pager } from './pager';
import { isSlotPage, MAX_TREE_DEPTH } from './layout';
import { corruption } from './checksum';

/** Throws CORRUPTION when a descent has gone `depth` levels below the root (see MAX_TREE_DEPTH). */
export function checkDepth(pager: Pager, depth: number, node: Node): void {
  if (depth > MAX_TREE_DEPTH) throw corruption(pager.path, node.pageId, `the tree goes deeper than ${MAX_TREE_DEPTH} levels: its branch pages form a cycle`);
}

/** The value cell for `key` under `root` (a snapshot's root node), or undefined. */
export function lookup(pager: Pager, root: Node | null, key: Buffer): Buffer | OverflowRef | undefined {
  if (!root) return undefined;
  let node = root;
  for (let depth = 1; !node.leaf; depth++) {
    checkDepth(pager, depth, node);
    node = pager.node(node.children[childIndex(node, key)] as number);
  }
  const i = lowerBound(node.keys, key);
  if (i < node.keys.length && node.keys[i].equals(key)) return node.vals[i] as Buffer | OverflowRef;
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
    for (let depth = 1; !node.leaf; depth++) {
      checkDepth(this.pager, depth, node);
      const i = childIndex(node, key);
      const c = node.children[i];
      const child = this.writable(typeof c === 'number' ? this.pager.node(c) : c);
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

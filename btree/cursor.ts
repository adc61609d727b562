// Ordered iteration over [start, end) of one snapshot, a leaf at a time: memory stays bounded by the
// tree height plus one page, whatever the size of the range.
import { childIndex, isInline, lowerBound, Node, OverflowRef } from './node';
import type { Pager } from './pager';
import type { Loss } from './api';
import { StoreError } from './errors';
import { checkDepth, checkPlace, narrow, type Bounds } from './tree';

export interface CursorEntry {
  key: Buffer;
  /** Inline value, or the overflow run to read. */
  cell: Buffer | OverflowRef;
}

/** The smallest key greater than every key that starts with `prefix`; undefined when none exists
 *  (an empty prefix, or one of only 0xff bytes, has no upper bound). */
export function prefixEnd(prefix: Buffer): Buffer | undefined {
  let n = prefix.length;
  while (n > 0 && prefix[n - 1] === 0xff) n--;
  if (n === 0) return undefined;
  const end = Buffer.from(prefix.subarray(0, n));
  end[n - 1]++;
  return end;
}

export function* scan(pager: Pager, root: Node | null, start: Buffer | undefined, end: Buffer | undefined): Generator<CursorEntry> {
  if (!root) return;
  const stack: { node: Node; index: number }[] = [];
  let node = root;
  while (!node.leaf) {
    const i = start ? childIndex(node, start) : 0;
    stack.push({ node, index: i });
    checkDepth(pager, stack.length, node);
    node = pager.node(node.children[i] as number);
  }
  let i = start ? lowerBound(node.keys, start) : 0;
  for (;;) {
    checkPlace(pager, node, boundsOf(stack));
    for (; i < node.keys.length; i++) {
      const key = node.keys[i];
      if (end && Buffer.compare(key, end) >= 0) return;
      const v = node.vals[i];
      yield { key, cell: isInline(v) ? v : (v as OverflowRef) };
    }
    // Climb to the first ancestor with a next child, then descend to its leftmost leaf.
    let top = stack[stack.length - 1];
    while (top && top.index + 1 >= top.node.children.length) {
      stack.pop();
      top = stack[stack.length - 1];
    }
    if (!top) return;
    top.index++;
    node = pager.node(top.node.children[top.index] as number);
    while (!node.leaf) {
      stack.push({ node, index: 0 });
      checkDepth(pager, stack.length, node);
      node = pager.node(node.children[0] as number);
    }
    i = 0;
  }
}

/** The bounds the separators on the path `stack` give its leaf (see checkPlace): each leaf's range
 *  meets the next one's, so leaves that fit them come in order, none twice. */
function boundsOf(stack: { node: Node; index: number }[]): Bounds {
  const b: Bounds = {};
  for (const { node, index } of stack) narrow(node, index, b);
  return b;
}

/** Whether a salvaging read goes on past `err`: a page or value that fails its checks, or that the
 *  disk cannot read (a bad sector is the commonest damage); not a closed store. */
export function isSalvageable(err: unknown): err is StoreError {
  return err instanceof StoreError && (err.code === 'CORRUPTION' || err.code === 'IO');
}

/** Every entry under `root` in order, like scan(), except that a tree page that cannot be read or
 *  fails its checks is skipped and reported with the key range it held (its separators in the
 *  parent), so that what can still be read is read. A leaf that passes its checks but holds keys
 *  outside that range or out of order (a page a lost write left stale) is reported and skipped too,
 *  so no key is yielded twice or out of order. Depth-first: the stack is as deep as the tree. */
export function* salvageScan(pager: Pager, root: Node | null, onLoss: (loss: Loss) => void): Generator<CursorEntry> {
  if (root) yield* salvageNode(pager, root, onLoss, { last: undefined }, 0);
}

function* salvageNode(pager: Pager, node: Node, onLoss: (loss: Loss) => void, seen: { last: Buffer | undefined }, depth: number, from?: Buffer, to?: Buffer): Generator<CursorEntry> {
  if (node.leaf) {
    const keys = node.keys;
    const fits = keys.every((k, i) => (i > 0 ? Buffer.compare(keys[i - 1], k) < 0 : !seen.last || Buffer.compare(seen.last, k) < 0)
      && (!from || Buffer.compare(k, from) >= 0) && (!to || Buffer.compare(k, to) < 0));
    if (!fits) {
      onLoss({ from: from && Buffer.from(from), to: to && Buffer.from(to), page: node.pageId, reason: 'the page passes its checksum but holds keys outside its place in the tree (a stale page)' });
      return;
    }
    for (let i = 0; i < keys.length; i++) yield { key: keys[i], cell: node.vals[i] as Buffer | OverflowRef };
    if (keys.length > 0) seen.last = keys[keys.length - 1];
    return;
  }
  for (let i = 0; i < node.children.length; i++) {
    // Child i holds [keys[i], keys[i + 1]); the first child everything below keys[1] in the node's
    // own range (searches ignore keys[0], see childIndex). Within the node's own range, too: a
    // branch at the wrong place (say, a page an older commit left, named again by a damaged
    // parent) has separators outside it, and its leaves' keys must not pass for this range's.
    const range: Bounds = { lo: from, hi: to };
    narrow(node, i, range);
    const { lo: childFrom, hi: childTo } = range;
    let child: Node;
    try {
      checkDepth(pager, depth + 1, node);
      child = pager.node(node.children[i] as number);
    } catch (err) {
      if (!isSalvageable(err)) throw err;
      // Copies: the separators live in a cached page.
      onLoss({ from: childFrom && Buffer.from(childFrom), to: childTo && Buffer.from(childTo), page: node.children[i] as number, reason: err.message });
      continue;
    }
    yield* salvageNode(pager, child, onLoss, seen, depth + 1, childFrom, childTo);
  }
}

// Ordered iteration over [start, end) of one snapshot, a leaf at a time: memory stays bounded by the
// tree height plus one page, whatever the size of the range.
import { childIndex, isInline, lowerBound, Node, OverflowRef } from './node';
import type { Pager } from './pager';

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
    node = pager.node(node.children[i] as number);
  }
  let i = start ? lowerBound(node.keys, start) : 0;
  for (;;) {
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
      node = pager.node(node.children[0] as number);
    }
    i = 0;
  }
}

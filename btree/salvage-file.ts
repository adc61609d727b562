// Salvage from the pages alone, for a file that cannot be opened: both meta pages damaged, or the
// freelist its meta names. Without a meta there is no tree to walk, but every leaf page still names
// the commit that wrote it (txid) and carries its own checksum, and the API never deletes a key. So
// the newest leaf that holds a key holds its newest value that reached the disk: a copy-on-write
// commit writes a changed leaf anew with its own txid, and the pages it frees keep older txids.
// Best effort by nature: a key whose newest leaf is damaged comes back with an older value, and a
// commit that was in flight or failed may come back (a value sent but never acknowledged). Ties
// cannot hide an acknowledged value: no two commits write under one txid (a failed commit's txid is
// recorded in its slot, Store.rewriteFailedSlot; the first commit after an open skips one past the
// newest meta). Memory grows with the number of keys (one entry per key kept).
import type { Entry, Loss } from './api';
import { HEADER_SIZE, metaPageOf, PageType } from './layout';
import { decodeMeta } from './meta';
import type { OverflowRef } from './node';
import type { Pager } from './pager';
import { isSalvageable } from './cursor';

/** Txids go up by one per commit (a few more after an open or a failure): 2^40 of them is over a
 *  century of a million commits a second. A leaf claiming more is not one of ours, and believing it
 *  would push the rebuilt file's txids past the 48 bits a page header holds. */
const MAX_PLAUSIBLE_TXID = 2 ** 40;

export interface LeafPage {
  page: number;
  txid: number;
}

/** Leaf pages of the file's first `pages` pages that pass their checks, newest commit first.
 *  A page whose header still reads as a leaf or branch of its own place but fails its checksum is a
 *  damaged tree page: reported, since the keys it held are unknown. Any other page that fails is a
 *  value's bytes or free space, and says nothing. */
export async function leavesNewestFirst(pager: Pager, pages: number, onLoss: (loss: Loss) => void, progress?: (done: number, total: number) => void): Promise<LeafPage[]> {
  const leaves: LeafPage[] = [];
  for (let id = 1; id < pages; id++) {
    if (id % 4096 === 0) {
      // Let signal handlers run (lbserver aborts on SIGINT/SIGTERM): the reads here are synchronous.
      await new Promise((resolve) => setImmediate(resolve));
      progress?.(id, pages);
    }
    let raw: Buffer;
    try {
      raw = pager.readRaw(id);
    } catch (err) {
      if (!isSalvageable(err)) throw err;
      onLoss({ page: id, keysUnknown: true, reason: `${err.message}; whatever the page held is unknown` });
      continue;
    }
    const r = pager.treePage(id, raw);
    if (typeof r !== 'string') {
      if (r.node.leaf && r.txid > MAX_PLAUSIBLE_TXID) {
        onLoss({ page: id, keysUnknown: true, reason: `a leaf page claiming txid ${r.txid}, more commits than a store makes: left out (a value's bytes made to look like a leaf?)` });
      } else if (r.node.leaf) {
        leaves.push({ page: id, txid: r.txid });
      }
    } else if (looksLikeTreePage(raw, id)) {
      onLoss({ page: id, keysUnknown: true, reason: `a damaged tree page: ${r}; the keys it held are unknown (an older value of them may have been kept)` });
    }
  }
  progress?.(pages, pages);
  return leaves.sort((a, b) => b.txid - a.txid || b.page - a.page);
}

/** Whether a reason given for a meta page (decodeMeta, or an open that failed on it) says the file
 *  is another format, page size or program's: no damage, so nothing to rebuild. */
export function isForeignFormat(reason: string): boolean {
  return /format version|page size|bad magic/.test(reason);
}

/** Why the file must not be rebuilt by this build, if a meta page says so though it cannot be used:
 *  another format version or page size (its leaves may be laid out otherwise), or not an lbkv file. */
export function foreignFormat(pager: Pager): string | undefined {
  for (const slot of [0, 1]) {
    const m = decodeMeta(pager.readRaw(metaPageOf(slot)), slot);
    if (typeof m === 'string' && isForeignFormat(m)) return `meta page ${metaPageOf(slot)}: ${m}`;
  }
  return undefined;
}

/** Whether `page`'s header, unverified, says branch or leaf page `id`. */
function looksLikeTreePage(page: Buffer, id: number): boolean {
  if (page.length < HEADER_SIZE) return false;
  const type = page.readUInt8(4);
  return (type === PageType.Leaf || type === PageType.Branch) && page.readUIntLE(8, 6) === id;
}

/** The newest readable value of every key on `leaves` (newest first), in no particular key order.
 *  A key whose newest value is damaged falls back to an older one, which is reported; a key with no
 *  readable value at all is reported at the end. */
export async function* newestValues(pager: Pager, leaves: LeafPage[], onLoss: (loss: Loss) => void, progress?: (done: number, total: number) => void): AsyncGenerator<Entry> {
  const kept = new Set<string>();
  const damaged = new Map<string, Loss>();
  for (let n = 0; n < leaves.length; n++) {
    if (n % 256 === 0) progress?.(n, leaves.length);
    const r = pager.treePage(leaves[n].page);
    if (typeof r === 'string') continue; // it passed a moment ago; the disk changed under us
    const { keys, vals } = r.node;
    for (let i = 0; i < keys.length; i++) {
      const name = keys[i].toString('latin1');
      if (kept.has(name)) continue;
      const cell = vals[i] as Buffer | OverflowRef;
      let value: Buffer;
      try {
        value = await pager.cellValue(cell, undefined, false);
      } catch (err) {
        if (!isSalvageable(err)) throw err;
        if (!damaged.has(name)) damaged.set(name, { key: Buffer.from(keys[i]), page: (cell as OverflowRef).page, reason: err.message });
        continue;
      }
      kept.add(name);
      const lost = damaged.get(name);
      if (lost) {
        damaged.delete(name);
        onLoss({ ...lost, reason: `${lost.reason}; an older value (txid ${r.txid}) was kept instead` });
      }
      yield { key: Buffer.from(keys[i]), value };
    }
  }
  progress?.(leaves.length, leaves.length);
  for (const loss of damaged.values()) onLoss(loss);
}


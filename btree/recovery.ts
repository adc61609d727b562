// Open = read both slots, keep the newest meta page that is valid, whose commit verifies and whose
// root page is the one that commit wrote, and read the freelist it names (freelist segments stay
// unread until a commit needs their pages). No replay and no scan: the work is bounded by one commit,
// whatever the number of keys.
import * as nodePath from 'node:path';
import type { FileHandle, FileSystem } from './file-io';
import { FORMAT_VERSION, META_PAGES, metaPageOf, PAGE_SIZE, rootPageOf } from './layout';
import { decodeMeta, encodeMeta, Meta } from './meta';
import { badExtents, type FreeEntry, Freelist, MAX_SEGMENT_LEVEL, needsRead, segmentOf } from './freelist';
import { Pager } from './pager';
import type { Node } from './node';
import type { Caches } from './cache';
import { unfillableCut, verifyCommit } from './commit';
import { ioError, StoreError } from './errors';

export interface Recovered {
  file: FileHandle;
  pager: Pager;
  meta: Meta;
  /** The meta's root node (null: empty tree). */
  root: Node | null;
  freelist: Freelist;
  /** A file in an older format only (empty otherwise: Store writes a failed commit's slot anew with
   *  the last commit's state): per slot, the pages to write back if a commit into that slot fails
   *  after its meta write: its meta and root page as found if open took it or it is the older valid
   *  commit, else a zero meta page (never valid). Needed until the file's first commit here. */
  slotBytes: Buffer[][];
  fileBytes: number;
  /** What was wrong with the meta page (or commit) that open did not use, if anything. */
  fellBack?: string;
  /** Set when the file ends before the last page the chosen commit counts: it was cut short after
   *  that commit (no commit leaves it so: growth is synced first). Open goes on, so what survives
   *  can be read; reads of the missing pages fail with CORRUPTION. The next commit grows the file
   *  over them with zeros or a hole (which fail their checksums as well), so a later open cannot
   *  tell; unless more is missing than a commit may fill (commit.ts, unfillableCut). */
  truncated?: string;
}

const emptyMeta = (txid: number): Meta => ({
  txid, root: 0, freelistPage: 0, freelistPages: 0, pageCount: META_PAGES, keyCount: 0, commitExtents: [], commitHash: 0, rootCrc: 0, inlineFree: [],
});

/** Creates an empty store atomically: written and synced under a temporary name, then renamed.
 *  Its two metas have txids `firstTxid` (even: slot 0) and `firstTxid` + 1; a compaction starts the
 *  copy past the txid of the file it replaces, so txids never go back. */
export async function createFile(fs: FileSystem, path: string, firstTxid = 0): Promise<void> {
  if (firstTxid % 2 !== 0) throw new Error(`createFile: firstTxid ${firstTxid} must be even (slot 0)`);
  const tmp = path + '.creating';
  try {
    const h = await fs.create(tmp);
    try {
      const noRoot = Buffer.alloc(PAGE_SIZE);
      await h.writev([encodeMeta(emptyMeta(firstTxid)), noRoot, encodeMeta(emptyMeta(firstTxid + 1)), noRoot], 0);
      await h.datasync();
    } catch (err) {
      // A full disk or a failing one: nothing half-made is left behind, and no descriptor.
      await h.close().catch(() => undefined);
      await fs.unlink(tmp).catch(() => undefined);
      throw err;
    }
    await h.close();
    await fs.rename(tmp, path);
    await fs.syncDir(nodePath.dirname(nodePath.resolve(path)));
  } catch (err) {
    throw ioError(`${path}: creating the data file`, err);
  }
}

/** `withoutFreelist`: read the tree only (Store.rebuild of a file whose freelist is damaged): the
 *  freelist comes back empty, and the store must not commit. */
export async function recover(fs: FileSystem, path: string, caches: Caches, withoutFreelist = false): Promise<Recovered> {
  let file: FileHandle;
  try {
    file = await fs.open(path, withoutFreelist);
  } catch (err) {
    throw ioError(`${path}: opening the data file`, err);
  }
  try {
    const fileBytes = file.size();
    const pager = new Pager(file, path, caches);
    const metaBytes = [0, 1].map((slot) => pager.readRaw(metaPageOf(slot)));
    const problems: string[] = [];
    const candidates: Meta[] = [];
    metaBytes.forEach((bytes, slot) => {
      const m = decodeMeta(bytes, slot);
      if (typeof m === 'string') problems.push(`meta page ${metaPageOf(slot)} (offset ${metaPageOf(slot) * PAGE_SIZE}): ${m}`);
      else candidates.push(m);
    });
    candidates.sort((a, b) => b.txid - a.txid);
    let chosen: Meta | undefined;
    let root: Node | null = null;
    for (const m of candidates) {
      let bad = m.commitExtents.length > 0 ? verifyCommit(pager, m.commitExtents, m.commitHash) : null;
      let r: Node | string | null = null;
      if (bad === null && m.root !== 0) {
        r = pager.readRoot(m.root, m.txid, m.rootCrc);
        if (typeof r === 'string') bad = r;
      }
      if (bad === null) {
        chosen = m;
        root = r as Node | null;
        break;
      }
      problems.push(`meta page ${metaPageOf(m.txid % 2)} (txid ${m.txid}): ${bad}`);
    }
    if (!chosen) {
      throw new StoreError('CORRUPTION', `${path}: no valid meta page, refusing to open (the file was not modified): ${problems.join('; ')}`);
    }
    const freelist = new Freelist([], new Map(), chosen.pageCount);
    const version = chosen.version ?? FORMAT_VERSION;
    const entries = withoutFreelist ? [] : [...(chosen.inlineFree ?? []), ...pager.freelistEntries(chosen.freelistPage, chosen.freelistPages, version)];
    const own = chosen.freelistPages > 0 ? [{ start: chosen.freelistPage, count: chosen.freelistPages }] : [];
    const deep = entries.find((e) => e.ref && e.ref.level > MAX_SEGMENT_LEVEL);
    let bad = withoutFreelist ? null
      : deep ? `a segment reference at page ${deep.start} of level ${deep.ref!.level}, above ${MAX_SEGMENT_LEVEL}`
      : badExtents([...entries, ...own], chosen.pageCount);
    // A format-4 reference does not say what its segment lists, so its pages are read here, and
    // commits take the entries from memory without reading them again (pager.segmentEntries checks
    // format-5 segments): unchecked here, a slot page or a page listed twice would be handed out.
    const listed = new Map<FreeEntry, FreeEntry[]>();
    if (!bad) {
      for (const e of entries) if (e.ref && needsRead(e)) listed.set(e, pager.freelistEntries(e.start, e.count, version));
      const all = [...listed.values()].flat();
      const ref = all.find((e) => e.ref);
      const wrong = ref ? `a segment reference (pages ${ref.start}..), which format ${version} never wrote there` : listed.size > 0 ? badExtents([...entries, ...own, ...all], chosen.pageCount) : null;
      if (wrong) bad = `with what its format-${version} segments list: ${wrong}`;
    }
    if (bad) {
      throw new StoreError('CORRUPTION', `${path}: the freelist of commit ${chosen.txid} (meta page ${metaPageOf(chosen.txid % 2)}) is wrong, refusing to open (the file was not modified): ${bad}`);
    }
    for (const e of entries) {
      if (!e.ref) freelist.add(e);
      else freelist.addSegment(segmentOf(e, listed.get(e)));
    }
    freelist.finishDecode();
    const fellBack = problems.length > 0 ? problems.join('; ') : undefined;
    // A slot open did not take is kept for a rollback only if it is the older, valid commit. A
    // rejected one (torn, or damaged) is remembered as a page that never validates: written back
    // after a failed commit that rewrote the same pages, its bytes could make that commit verify.
    const older = candidates.find((m) => m.txid < chosen!.txid);
    const kept = new Set([chosen.txid % 2, ...(older ? [older.txid % 2] : [])]);
    // A kept slot is written back whole, meta and root page: its commit then stays a usable fallback
    // after a failed commit rewrote the slot (the meta alone would name a root that is gone).
    const rollback = version === FORMAT_VERSION ? [] : metaBytes.map((bytes, slot) => {
      if (!kept.has(slot)) return [Buffer.alloc(PAGE_SIZE)];
      const rootPage = pager.readRaw(rootPageOf(slot));
      return rootPage.length === PAGE_SIZE ? [bytes, rootPage] : [bytes];
    });
    if (!withoutFreelist) {
      // A newer meta open rejected (its commit torn) is cleared: a later commit that rewrote the same
      // bytes where its torn pages are (overflow pages have no header), then failed or crashed before
      // its own meta write, would otherwise make it verify, and a later open would take it.
      // What open read may be only in the OS page cache (a process killed during a commit's
      // fdatasync): it is made durable before anyone is shown it.
      try {
        for (const m of candidates.filter((c) => c.txid > chosen!.txid)) await file.writev([Buffer.alloc(PAGE_SIZE)], metaPageOf(m.txid % 2) * PAGE_SIZE);
        await file.datasync();
      } catch (err) {
        throw ioError(`${path}: syncing the file at open`, err);
      }
    }
    const counted = chosen.pageCount * PAGE_SIZE;
    const truncated = fileBytes < counted
      ? `${path} is ${fileBytes} bytes, but its commit ${chosen.txid} counts ${chosen.pageCount} pages (${counted} bytes): the file was cut short. Reads of the pages cut off fail with CORRUPTION; ` +
        (unfillableCut(chosen.pageCount, fileBytes) ?? 'the next commit grows the file over them (zeros, or a hole for 1 MiB or more), so only this open warns')
      : undefined;
    return { file, pager, meta: chosen, root, freelist, slotBytes: rollback, fileBytes, fellBack, truncated };
  } catch (err) {
    await file.close().catch(() => undefined);
    throw err;
  }
}

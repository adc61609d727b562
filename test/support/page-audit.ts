// The page-reuse audit's view of a data file image: the pages each valid meta reaches (tree,
// overflow runs, freelist pages, segments) and what its freelist lists, and a checker that holds
// every page write, as it is issued, against those and the pages open snapshots reach. Shared by
// test/engine/page-reuse.test.ts and snapshot-reuse.test.ts.
import type { Store, Snapshot } from '../../btree';
import { decodeMeta, type Meta } from '../../btree/meta';
import { checkPage, crc32 } from '../../btree/checksum';
import { decodeNode, type Node, type OverflowRef } from '../../btree/node';
import { decodeFreePage, type FreeEntry } from '../../btree/freelist';
import { META_PAGES, PAGE_SIZE, PageType, pagesFor } from '../../btree/layout';
import type { FaultFS, OpRecord } from './fault-fs';
import { pageOf } from './store-image';

function treeNode(img: Buffer, id: number): Node {
  const p = pageOf(img, id);
  const h = checkPage(p, id);
  if (typeof h === 'string') throw new Error(`tree page ${id}: ${h}`);
  if (h.type !== PageType.Branch && h.type !== PageType.Leaf) throw new Error(`page ${id} has type ${h.type}`);
  const n = decodeNode(Buffer.from(p), h.type, h.count, id);
  if (typeof n === 'string') throw new Error(`tree page ${id}: ${n}`);
  return n;
}

function freePageEntries(img: Buffer, id: number, version: number): FreeEntry[] {
  const p = pageOf(img, id);
  const h = checkPage(p, id);
  if (typeof h === 'string' || h.type !== PageType.Freelist) throw new Error(`freelist page ${id}: ${typeof h === 'string' ? h : `type ${h.type}`}`);
  const e = decodeFreePage(p, h.count, version);
  if (typeof e === 'string') throw new Error(`freelist page ${id}: ${e}`);
  return e;
}

/** Adds every page below `root` (tree pages and overflow runs; not slot pages) to `used`. */
export function walkTree(img: Buffer | ((id: number) => Node), root: Node | null, used: Map<number, string>): void {
  if (!root) return;
  const read = typeof img === 'function' ? img : (id: number) => treeNode(img, id);
  const add = (id: number, what: string) => {
    if (id < META_PAGES) return;
    const was = used.get(id);
    if (was !== undefined) throw new Error(`page ${id} used twice: ${was} and ${what}`);
    used.set(id, what);
  };
  const stack: Node[] = [root];
  while (stack.length) {
    const n = stack.pop()!;
    if (n.leaf) {
      n.vals.forEach((v, i) => {
        if (Buffer.isBuffer(v)) return;
        const r = v as OverflowRef;
        for (let k = 0; k < pagesFor(r.length); k++) add(r.page + k, `overflow of ${n.keys[i]!.toString('hex').slice(0, 16)}`);
      });
    } else {
      for (const c of n.children) {
        const id = c as number;
        add(id, 'tree page');
        stack.push(read(id));
      }
    }
  }
}

export const shapes = { partial: 0, maxLevel: 0 };

/** The valid metas of the image (as open would judge them), each with the pages it reaches. */
export function metasOf(img: Buffer): { meta: Meta; used: Map<number, string>; listed: { start: number; count: number; what: string }[] }[] {
  const out: ReturnType<typeof metasOf> = [];
  for (const slot of [0, 1]) {
    const m = decodeMeta(pageOf(img, 2 * slot), slot);
    if (typeof m === 'string') continue;
    if (m.commitExtents.length > 0) {
      let h = 0;
      let short = false;
      for (const e of m.commitExtents) {
        const b = img.subarray(e.start * PAGE_SIZE, (e.start + e.count) * PAGE_SIZE);
        if (b.length < e.count * PAGE_SIZE) short = true;
        h = crc32(b, h);
      }
      if (short || h !== m.commitHash) continue;
    }
    let root: Node | null = null;
    if (m.root !== 0) {
      const rp = pageOf(img, m.root);
      if (rp.length < PAGE_SIZE || rp.readUInt32LE(0) !== m.rootCrc) continue;
      // A torn slot write can leave the older meta whole and its root page torn: open refuses it.
      if (typeof checkPage(rp, m.root) === 'string') continue;
      root = treeNode(img, m.root);
    }
    const used = new Map<number, string>();
    const label = `txid ${m.txid}`;
    walkTree(img, root, used);
    const version = m.version ?? 5;
    const mark = (start: number, count: number, what: string) => {
      for (let k = 0; k < count; k++) {
        const was = used.get(start + k);
        if (was !== undefined) throw new Error(`${label}: page ${start + k} is ${was} and ${what}`);
        used.set(start + k, what);
      }
    };
    mark(m.freelistPage, m.freelistPages, 'freelist page');
    const entries = [...(m.inlineFree ?? [])];
    for (let i = 0; i < m.freelistPages; i++) entries.push(...freePageEntries(img, m.freelistPage + i, version));
    const listed: { start: number; count: number; what: string }[] = [];
    const segment = (e: FreeEntry, depth: number) => {
      if (e.ref!.taken > 0) shapes.partial++;
      shapes.maxLevel = Math.max(shapes.maxLevel, e.ref!.level);
      mark(e.start, e.count, `segment page (level ${e.ref!.level})`);
      const inner: FreeEntry[] = [];
      for (let i = 0; i < e.count; i++) inner.push(...freePageEntries(img, e.start + i, version));
      if (e.ref!.level > 0) for (const r of inner) segment(r, depth + 1);
      else for (const x of inner.slice(e.ref!.taken)) listed.push({ start: x.start, count: x.count, what: `in a segment at ${e.start} (txid ${x.txid})` });
    };
    for (const e of entries) {
      if (e.ref) segment(e, 0);
      else listed.push({ start: e.start, count: e.count, what: `listed free (txid ${e.txid})` });
    }
    out.push({ meta: m, used, listed });
  }
  return out;
}

/** A meta's freelist may list no page the meta uses, nor one page twice, nor a slot page or one
 *  past its page count; and every page below its page count is used or listed. */
export function checkFreelist(x: ReturnType<typeof metasOf>[number]): void {
  const seen = new Map<number, string>();
  for (const e of x.listed) {
    for (let k = 0; k < e.count; k++) {
      const p = e.start + k;
      const label = `txid ${x.meta.txid}: page ${p}`;
      if (p < META_PAGES || p >= x.meta.pageCount) throw new Error(`${label} ${e.what} lies outside the data pages (page count ${x.meta.pageCount})`);
      const u = x.used.get(p);
      if (u !== undefined) throw new Error(`${label} is ${u} but also ${e.what}`);
      const s = seen.get(p);
      if (s !== undefined) throw new Error(`${label} is listed twice: ${s} and ${e.what}`);
      seen.set(p, e.what);
    }
  }
  for (const p of x.used.keys()) if (p >= x.meta.pageCount) throw new Error(`txid ${x.meta.txid}: page ${p} in use past the page count ${x.meta.pageCount}`);
  // A page neither in use nor listed is lost for good: no later commit can hand it out, so each one
  // grows the file for good.
  let lost = 0;
  let firstLost = -1;
  for (let p = META_PAGES; p < x.meta.pageCount; p++) {
    if (x.used.has(p) || seen.has(p)) continue;
    if (lost++ === 0) firstLost = p;
  }
  if (lost > 0) throw new Error(`txid ${x.meta.txid}: ${lost} pages below the page count ${x.meta.pageCount} are neither in use nor listed, the first ${firstLost}`);
}

// ---- the checker ---------------------------------------------------------------------------

export class ReuseChecker {
  private protectedByMetas: Map<number, string> | undefined;
  readonly snapshots = new Map<Snapshot, Map<number, string>>();
  violations: string[] = [];
  writesChecked = 0;

  constructor(public fs: FaultFS, public store: () => Store | undefined, private readonly file: string) {
    this.attach(fs);
  }

  attach(fs: FaultFS): void {
    this.fs = fs;
    this.protectedByMetas = undefined;
    fs.onOp = (op) => this.onOp(op);
  }

  private metas(): Map<number, string> {
    if (!this.protectedByMetas) {
      const img = this.fs.readVolatile(this.file)!;
      const all = new Map<number, string>();
      for (const x of metasOf(img)) {
        checkFreelist(x);
        for (const [p, w] of x.used) all.set(p, `${w} of txid ${x.meta.txid}`);
      }
      this.protectedByMetas = all;
    }
    return this.protectedByMetas;
  }

  private onOp(op: OpRecord): void {
    if (op.kind !== 'writev' || op.file !== this.file) return;
    const first = Math.floor(op.pos! / PAGE_SIZE);
    const last = Math.floor((op.pos! + op.length! - 1) / PAGE_SIZE);
    try {
      if (first < META_PAGES) {
        const s = this.store();
        const cur = s ? ((s as unknown as { meta: Meta }).meta) : undefined;
        if (cur && Math.floor(first / 2) === cur.txid % 2 && cur.txid > 1) this.violations.push(`op ${op.index}: a slot write over the slot of the last commit ${cur.txid}`);
      } else {
        this.writesChecked++;
        const metas = this.metas();
        for (let p = first; p <= last; p++) {
          const m = metas.get(p);
          if (m !== undefined) this.violations.push(`op ${op.index}: page ${p} written while it is ${m}`);
          for (const set of this.snapshots.values()) {
            const s = set.get(p);
            if (s !== undefined) this.violations.push(`op ${op.index}: page ${p} written while an open snapshot reaches it (${s})`);
          }
        }
      }
    } catch (err) {
      const img = this.fs.readVolatile(this.file)!;
      const metas = [0, 1].map((slot) => { const m = decodeMeta(pageOf(img, 2 * slot), slot); return typeof m === 'string' ? m : `txid ${m.txid} root ${m.root} extents ${m.commitExtents.length}`; });
      const s = this.store() as unknown as { meta: Meta; recoveryNote?: string } | undefined;
      this.violations.push(`op ${op.index}: checking failed: ${(err as Error).message}; slots: ${metas.join(' | ')}; store meta ${s?.meta.txid}, note ${s?.recoveryNote}`);
    }
    // Slot writes change which metas are valid; page writes may change a meta's verification.
    this.protectedByMetas = undefined;
  }

  /** Records the pages a new snapshot reaches (read now, while they are intact). */
  pin(snap: Snapshot): void {
    const img = this.fs.readVolatile(this.file)!;
    const used = new Map<number, string>();
    walkTree(img, (snap as unknown as { root: Node | null }).root, used);
    this.snapshots.set(snap, used);
  }
}

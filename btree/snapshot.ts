// Read snapshots: an immutable view of one commit (its meta, root and pager), read without locks
// for as long as it is held; the store only counts it, so freed pages it can reach are not reused.
import type { Entry, Loss, RangeOptions } from './api';
import type { Meta } from './meta';
import type { Pager } from './pager';
import { lookup } from './tree';
import { isSalvageable, prefixEnd, salvageScan, scan } from './cursor';
import { StoreError } from './errors';
import type { Node, OverflowRef } from './node';

/** What a snapshot needs of its store: whether it closed, and to be told when it is released. */
export interface SnapshotOwner {
  readonly isClosed: boolean;
  unregister(txid: number, pager: Pager): void;
}

/** The value of a cell lookup or a scan found, if any (Pager.cellValue). */
export function readValue(pager: Pager, cell: Buffer | OverflowRef | undefined, alloc: ((length: number) => Buffer) | undefined, fill: boolean): Promise<Buffer> | Buffer | undefined {
  return cell === undefined ? undefined : pager.cellValue(cell, alloc, fill);
}

/** Throws INVALID_ARGUMENT unless `b` is a Buffer (a string or Uint8Array would be measured and
 *  compared differently). */
export function requireBuffer(b: unknown, what: string): asserts b is Buffer {
  if (!Buffer.isBuffer(b)) throw new StoreError('INVALID_ARGUMENT', `${what} must be a Buffer, not ${b === null ? 'null' : typeof b === 'object' ? b.constructor?.name ?? 'object' : typeof b}`);
}

function checkRange(opts: RangeOptions): void {
  for (const f of ['start', 'end', 'prefix'] as const) if (opts[f] !== undefined) requireBuffer(opts[f], `RangeOptions.${f}`);
  // A count: a negative or fractional limit is a caller's bug, which "no limit" (what -1 gave) or a
  // rounding would hide.
  const { limit } = opts;
  if (limit !== undefined && !(Number.isSafeInteger(limit) && limit >= 0)) {
    throw new StoreError('INVALID_ARGUMENT', `RangeOptions.limit must be a whole number >= 0 (0: no limit), not ${String(limit)}`);
  }
}

export class Snapshot {
  private released = false;

  /** `outlivesClose`: compaction's own snapshot, which close() lets finish (it waits for it). */
  constructor(private readonly store: SnapshotOwner, readonly meta: Meta, private readonly root: Node | null, private readonly pager: Pager, private readonly outlivesClose = false) {}

  get txid(): number {
    return this.meta.txid;
  }

  get keys(): number {
    return this.meta.keyCount;
  }

  async get(key: Buffer): Promise<Buffer | undefined> {
    this.checkOpen();
    requireBuffer(key, 'key');
    return readValue(this.pager, lookup(this.pager, this.root, key), undefined, true);
  }

  /** Entries in ascending bytewise key order; values are read lazily, one at a time. */
  async *range(opts: RangeOptions = {}): AsyncGenerator<Entry> {
    this.checkOpen();
    checkRange(opts);
    let start = opts.start;
    let end = opts.end;
    if (opts.prefix && opts.prefix.length > 0) {
      if (!start || Buffer.compare(opts.prefix, start) > 0) start = opts.prefix;
      const pe = prefixEnd(opts.prefix);
      if (pe && (!end || Buffer.compare(pe, end) < 0)) end = pe;
    }
    const limit = opts.limit && opts.limit > 0 ? opts.limit : Infinity;
    let n = 0;
    for (const e of scan(this.pager, this.root, start, end)) {
      if (n++ >= limit) return;
      this.checkOpen();
      const value = opts.keysOnly ? Buffer.alloc(0) : await readValue(this.pager, e.cell, undefined, false);
      // The key lives in a cached leaf: the caller gets a copy (see readValue).
      yield { key: Buffer.from(e.key), value: value as Buffer };
    }
  }

  /** Every entry, in order, reading past damage: a tree page or an overflow value that fails its
   *  checks is reported to `onLoss` and skipped, instead of ending the iteration with CORRUPTION. */
  salvage(onLoss: (loss: Loss) => void): AsyncGenerator<Entry> {
    this.checkOpen();
    return salvageEntries(this.pager, this.root, onLoss, () => this.checkOpen());
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.store.unregister(this.meta.txid, this.pager);
  }

  private checkOpen(): void {
    if (this.released) throw new StoreError('CLOSED', 'snapshot was released');
    // A snapshot from before a compaction reads the old file, which close() leaves open for it.
    if (this.store.isClosed && !this.outlivesClose) throw new StoreError('CLOSED', 'store is closed');
    this.pager.checkOpen();
  }
}

/** The entries under `root` in order, past damage (Snapshot.salvage, Store.rebuild); `check` runs
 *  before each entry (a released snapshot stops). */
export async function* salvageEntries(pager: Pager, root: Node | null, onLoss: (loss: Loss) => void, check: () => void = () => undefined): AsyncGenerator<Entry> {
  for (const e of salvageScan(pager, root, onLoss)) {
    check();
    let value: Buffer | undefined;
    try {
      value = await readValue(pager, e.cell, undefined, false);
    } catch (err) {
      if (!isSalvageable(err)) throw err;
      onLoss({ key: Buffer.from(e.key), page: Buffer.isBuffer(e.cell) ? undefined : e.cell.page, reason: err.message });
      continue;
    }
    yield { key: Buffer.from(e.key), value: value as Buffer };
  }
}

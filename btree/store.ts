// TEMPORARY in-memory stand-in with the final API, so lib/ can be written while the real engine
// lands. Replaced by the copy-on-write B+tree store; do not rely on anything but the signatures.
import { StoreError } from './errors';
import type { Entry, OpenOptions, RangeOptions, StoreStats } from './api';

export class Snapshot {
  constructor(private readonly map: Map<string, Buffer>, readonly txid: number, private readonly owner: Store) {}
  get keys(): number { return this.map.size; }
  async get(key: Buffer): Promise<Buffer | undefined> { return this.map.get(key.toString('latin1')); }
  async *range(opts: RangeOptions = {}): AsyncGenerator<Entry> {
    const keys = [...this.map.keys()].map((k) => Buffer.from(k, 'latin1')).sort(Buffer.compare);
    let n = 0;
    for (const k of keys) {
      if (opts.prefix && !k.subarray(0, opts.prefix.length).equals(opts.prefix)) continue;
      if (opts.start && Buffer.compare(k, opts.start) < 0) continue;
      if (opts.end && Buffer.compare(k, opts.end) >= 0) continue;
      if (opts.limit && n >= opts.limit) return;
      n++;
      yield { key: k, value: opts.keysOnly ? Buffer.alloc(0) : this.map.get(k.toString('latin1'))! };
    }
  }
  release(): void { this.owner.openSnapshots--; }
}

export class Store {
  private map = new Map<string, Buffer>();
  private txid = 0;
  openSnapshots = 0;
  private closed = false;
  private constructor(readonly path: string, private readonly opts: OpenOptions) {}
  static async open(opts: OpenOptions): Promise<Store> { return new Store(opts.path, opts); }
  private check(key: Buffer, value?: Buffer): void {
    if (this.closed) throw new StoreError('CLOSED', 'store is closed');
    const maxKey = this.opts.maxKeyBytes ?? 1024;
    if (key.length < 1 || key.length > maxKey) throw new StoreError('INVALID_ARGUMENT', `key is ${key.length} bytes; keys must be 1..${maxKey} bytes`);
    const maxVal = this.opts.maxValueBytes ?? 64 * 1024 * 1024;
    if (value && value.length > maxVal) throw new StoreError('INVALID_ARGUMENT', `value is ${value.length} bytes; the limit is ${maxVal} bytes`);
  }
  async put(key: Buffer, value: Buffer): Promise<void> { this.check(key, value); this.map = new Map(this.map); this.map.set(key.toString('latin1'), Buffer.from(value)); this.txid++; }
  async putMany(entries: Entry[]): Promise<void> { for (const e of entries) await this.put(e.key, e.value); }
  async get(key: Buffer): Promise<Buffer | undefined> { this.check(key); return this.map.get(key.toString('latin1')); }
  snapshot(): Snapshot { this.openSnapshots++; return new Snapshot(this.map, this.txid, this); }
  stats(): StoreStats {
    return { txid: this.txid, keys: this.map.size, pageCount: 0, freePages: 0, pendingFreePages: 0, fileBytes: 0, commits: this.txid, fsyncs: 0,
      failedCommits: 0, cacheHits: 0, cacheMisses: 0, cachePages: 0, openSnapshots: this.openSnapshots, maxBatch: 1, meanBatch: 1, syncMode: 'one', openMs: 0 };
  }
  async compact(): Promise<void> {}
  async close(): Promise<void> { this.closed = true; }
}

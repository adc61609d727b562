// Engine errors → gRPC status codes, end to end over real gRPC on 127.0.0.1, with the service wired
// to a fake engine that fails on demand (a full disk or a checksum failure is hard to provoke in the
// real lbserver process in a short test; test/durability does that with tmpfs and loop devices).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type * as grpc from '@grpc/grpc-js';
import { StoreError, type Entry, type RangeOptions, type Store, type StoreErrorCode, type StoreStats } from '../btree/index';
import { GrpcStatus, KvClient } from '../lib/client';
import { DEFAULT_CONFIG, type ServerConfig } from '../lib/config';
import { bindServer, createGrpcServer, KvService, toServiceError } from '../lib/service';
import { expectGrpcError } from './support/client-helpers';
import { tempDir } from './support/server';

class FakeStore {
  failWith: StoreErrorCode | 'plain' | undefined;
  /** GetPrefix fails after this many entries (with failWith). */
  failAfter = 0;
  openSnapshots = 0;
  readonly map = new Map<string, Buffer>();

  private maybeFail(): void {
    if (this.failWith === 'plain') throw new TypeError('something unexpected');
    if (this.failWith) throw new StoreError(this.failWith, `simulated ${this.failWith}`);
  }
  async put(key: Buffer, value: Buffer): Promise<void> { this.maybeFail(); this.map.set(key.toString('latin1'), value); }
  async get(key: Buffer): Promise<Buffer | undefined> { this.maybeFail(); return this.map.get(key.toString('latin1')); }
  snapshot() {
    this.openSnapshots++;
    const entries = [...this.map.entries()].sort(([a], [b]) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1')));
    const store = this;
    let released = false;
    return {
      async *range(o: RangeOptions): AsyncGenerator<Entry> {
        let n = 0;
        const p = o.prefix?.toString('latin1') ?? '';
        for (const [k, v] of entries) {
          if (!k.startsWith(p)) continue;
          if (store.failWith && n >= store.failAfter) store.maybeFail();
          n++;
          yield { key: Buffer.from(k, 'latin1'), value: v };
        }
      },
      release() { if (!released) { released = true; store.openSnapshots--; } },
    };
  }
  stats(): StoreStats {
    return { txid: 1, keys: this.map.size, pageCount: 1, freePages: 0, pendingFreePages: 0, fileBytes: 4096, commits: 1, fsyncs: 1, failedCommits: 0,
      cacheHits: 0, cacheMisses: 0, cachePages: 0, openSnapshots: this.openSnapshots, maxBatch: 1, meanBatch: 1, syncMode: 'one', openMs: 0 };
  }
}

const errors = suite<{ store: FakeStore; server: grpc.Server; c: KvClient }>('service: engine errors map to gRPC codes');

errors.before(async (ctx) => {
  ctx.store = new FakeStore();
  const cfg: ServerConfig = { ...DEFAULT_CONFIG, dataDir: tempDir(), prefixMessageBytes: 1024 };
  const service = new KvService(ctx.store as unknown as Store, cfg);
  ctx.server = createGrpcServer(service, cfg);
  const port = await bindServer(ctx.server, '127.0.0.1:0');
  ctx.c = new KvClient(`127.0.0.1:${port}`);
});
errors.after(async (ctx) => {
  ctx.c.close();
  await new Promise<void>((r) => ctx.server.tryShutdown(() => r()));
});
errors.before.each(({ store }) => { store.failWith = undefined; });

const cases: Array<[StoreErrorCode | 'plain', number, RegExp]> = [
  ['NO_SPACE', GrpcStatus.RESOURCE_EXHAUSTED, /disk full: simulated NO_SPACE/],
  ['CORRUPTION', GrpcStatus.DATA_LOSS, /corruption.*simulated CORRUPTION/],
  ['CLOSED', GrpcStatus.UNAVAILABLE, /closed.*simulated CLOSED/],
  ['IO', GrpcStatus.INTERNAL, /I\/O error: simulated IO/],
  ['INVALID_ARGUMENT', GrpcStatus.INVALID_ARGUMENT, /simulated INVALID_ARGUMENT/],
  ['plain', GrpcStatus.INTERNAL, /internal error: something unexpected/],
];

for (const [code, status, re] of cases) {
  errors(`${code} → ${GrpcStatus[status]} on Set and Get; the server keeps serving`, async ({ store, c }) => {
    store.failWith = code;
    await expectGrpcError(c.set('k', 'v'), status, re);
    await expectGrpcError(c.get('k'), status, re);
    store.failWith = undefined;
    await c.set('k', 'v');
    assert.equal((await c.get('k'))?.toString(), 'v');
  });
}

errors('an engine error in the middle of a GetPrefix stream ends it with the mapped code and releases the snapshot', async ({ store, c }) => {
  for (let i = 0; i < 50; i++) await c.set(`p/${String(i).padStart(2, '0')}`, Buffer.alloc(100, i));
  store.failWith = 'CORRUPTION';
  store.failAfter = 20;
  const got: string[] = [];
  const run = (async () => { for await (const e of c.getPrefix('p/')) got.push(e.key.toString()); })();
  await expectGrpcError(run, GrpcStatus.DATA_LOSS, /simulated CORRUPTION/);
  assert.ok(got.length <= 20, `no entries past the failure (${got.length})`);
  assert.equal(got, Array.from({ length: got.length }, (_, i) => `p/${String(i).padStart(2, '0')}`), 'what arrived is in order');
  assert.is(store.openSnapshots, 0);
  store.failWith = undefined;
  assert.is((await c.getPrefixAll('p/')).length, 50);
  assert.is(store.openSnapshots, 0);
});

errors('failed sets are counted in failed_sets, not total_sets', async ({ store, c }) => {
  const before = await c.stat();
  store.failWith = 'NO_SPACE';
  await expectGrpcError(c.set('x', 'y'), GrpcStatus.RESOURCE_EXHAUSTED);
  store.failWith = undefined;
  const after = await c.stat();
  assert.is(after.failedSets, before.failedSets + 1);
  assert.is(after.totalSets, before.totalSets);
});

errors('toServiceError keeps the engine message', () => {
  const e = toServiceError(new StoreError('NO_SPACE', 'ENOSPC while committing txid 7'));
  assert.is(e.code, GrpcStatus.RESOURCE_EXHAUSTED);
  assert.match(e.details, /ENOSPC while committing txid 7/);
});

errors.run();

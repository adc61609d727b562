// Engine errors → gRPC status codes, end to end: the real engine (btree Store) on the failure-injecting
// FileSystem (test/support/fault-fs.ts), served by the real service (createGrpcServer + bindServer)
// over real gRPC on 127.0.0.1 to a real KvClient. Failures are injected into the file operations the
// engine issues (ENOSPC / EIO on a write or fdatasync during a commit, EIO on a read) or made by
// damaging the bytes of a stored value in the simulated file; the store is closed under a live server
// for the shutdown case. Nothing here stands in for the engine or the transport.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type * as grpc from '@grpc/grpc-js';
import { Store, StoreError } from '../btree/index';
import { GrpcStatus, KvClient } from '../lib/client';
import { DEFAULT_CONFIG, type ServerConfig } from '../lib/config';
import { bindServer, createGrpcServer } from '../lib/grpc-server';
import { KvService } from '../lib/service';
import { toServiceError } from '../lib/status';
import { StreamBudget } from '../lib/stream-budget';
import { expectGrpcError, pseudoRandomBytes } from './support/client-helpers';
import { FaultFS, type OpRecord } from './support/fault-fs';
import { META_PAGES, PAGE_SIZE } from '../btree/layout';

const DB = '/db/lbkv.db';

interface Ctx {
  fs: FaultFS;
  store: Store;
  service: KvService;
  server: grpc.Server;
  c: KvClient;
}

const errors = suite<Ctx>('service: real engine errors (fault-injecting FileSystem) map to gRPC codes');

errors.before(async (ctx) => {
  ctx.fs = new FaultFS({ trace: false });
  ctx.store = await Store.open({ path: DB, fs: ctx.fs, cacheMB: 4, growBytes: 1024 * 1024 });
  // Small GetPrefix messages so a stream spans many of them.
  const cfg: ServerConfig = { ...DEFAULT_CONFIG, dataDir: '/db', prefixMessageBytes: 4096 };
  ctx.service = new KvService(ctx.store, cfg);
  ctx.server = createGrpcServer(ctx.service, cfg);
  const port = await bindServer(ctx.server, '127.0.0.1:0');
  ctx.c = new KvClient(`127.0.0.1:${port}`, { callTimeoutMs: 10_000 });
  for (let i = 0; i < 20; i++) await ctx.c.set(`ok/${String(i).padStart(2, '0')}`, `value ${i}`);
});

errors.after(async (ctx) => {
  ctx.c?.close();
  ctx.server?.forceShutdown();
  await ctx.store?.close().catch(() => undefined);
});

errors.after.each(({ fs }) => { fs.clearFailures(); });

/** Every earlier key still reads back, singly and through GetPrefix. */
async function earlierKeysIntact(c: KvClient, what: string): Promise<void> {
  for (let i = 0; i < 20; i += 7) assert.is((await c.get(`ok/${String(i).padStart(2, '0')}`))?.toString(), `value ${i}`, `${what}: Get`);
  const all = await c.getPrefixAll('ok/');
  assert.is(all.length, 20, `${what}: GetPrefix count`);
  assert.equal(all.map((e) => e.value.toString()), Array.from({ length: 20 }, (_, i) => `value ${i}`), `${what}: GetPrefix values`);
}

/** No snapshot and no GetPrefix budget is left behind. */
function nothingLeaked(ctx: Ctx, what: string): void {
  assert.is(ctx.store.stats().openSnapshots, 0, `${what}: open snapshots`);
  assert.is(ctx.service.streamBudget.inUse, 0, `${what}: stream budget in use`);
}

const onDb = (kind: OpRecord['kind']) => (op: OpRecord) => op.kind === kind && op.file === DB;

for (const kind of ['writev', 'datasync'] as const) {
  errors(`ENOSPC on ${kind} during a commit → RESOURCE_EXHAUSTED; reads work; Sets succeed once space is back`, async (ctx) => {
    const { c, fs } = ctx;
    const k = `disk-${kind}/k`;
    const other = `disk-${kind}/other`;
    await c.set(k, 'before');
    const before = await c.stat();
    fs.failWhen({ match: onDb(kind), code: 'ENOSPC', times: 1_000_000 });
    const e = await expectGrpcError(c.set(k, Buffer.alloc(10_000, 1)), GrpcStatus.RESOURCE_EXHAUSTED, /disk full/);
    assert.match(e.details, /ENOSPC|no space left/, 'the message names the errno');
    await expectGrpcError(c.set(other, 'x'), GrpcStatus.RESOURCE_EXHAUSTED, /disk full/);
    // Reads keep working while the disk is full, and show the last durable state.
    assert.is((await c.get(k))?.toString(), 'before');
    assert.is(await c.get(other), undefined);
    await earlierKeysIntact(c, `disk full (${kind})`);
    const during = await c.stat();
    assert.is(during.failedSets, before.failedSets + 2, 'failed sets counted');
    assert.is(during.totalSets, before.totalSets, 'failed sets are not in total_sets');
    fs.clearFailures();
    await c.set(k, 'after');
    await c.set(other, 'y');
    assert.is((await c.get(k))?.toString(), 'after');
    assert.is((await c.get(other))?.toString(), 'y');
    await earlierKeysIntact(c, `after space is back (${kind})`);
    nothingLeaked(ctx, 'after ENOSPC');
  });
}

errors('EIO on a write during a commit → INTERNAL naming the I/O error; the store heals', async (ctx) => {
  const { c, fs } = ctx;
  fs.failWhen({ match: onDb('writev'), code: 'EIO', times: 1 });
  await expectGrpcError(c.set('eio/k', 'v'), GrpcStatus.INTERNAL, /I\/O error.*EIO/);
  assert.is(await c.get('eio/k'), undefined, 'the failed Set is not visible');
  await c.set('eio/k', 'v2');
  assert.is((await c.get('eio/k'))?.toString(), 'v2');
  await earlierKeysIntact(c, 'after EIO on write');
});

errors('EIO on the fdatasync after the meta write and on the rollback → INTERNAL saying the outcome is unknown; not visible; the next Set heals', async (ctx) => {
  const { c, fs } = ctx;
  // Fail the first fdatasync after a write into the slots (the commit's), and the next one (the
  // rollback's, which rewrites the slot's previous meta page).
  let slotWritten = false;
  fs.failWhen({
    match: (op) => {
      if (op.kind === 'writev' && op.file === DB && (op.pos ?? 0) < META_PAGES * PAGE_SIZE) slotWritten = true;
      return slotWritten && op.kind === 'datasync' && op.file === DB;
    },
    code: 'EIO',
    times: 2,
  });
  const e = await expectGrpcError(c.set('unknown/k', 'v'), GrpcStatus.INTERNAL, /I\/O error.*EIO/);
  assert.match(e.details, /outcome unknown/, 'the message says the outcome is unknown');
  assert.is(await c.get('unknown/k'), undefined, 'the failed Set is not visible');
  await c.set('unknown/k', 'v2');
  assert.is((await c.get('unknown/k'))?.toString(), 'v2');
  await earlierKeysIntact(c, 'after a commit with an unknown outcome');
  nothingLeaked(ctx, 'after an unknown outcome');
});

/** Stores `key` with a 40 KiB value (an overflow run: over two pages, so never cached and read from
 *  the file on every Get) between two small neighbours; returns the value's offset in the file. */
async function storeLargeValue(ctx: Ctx, prefix: string, seed: number): Promise<{ key: string; value: Buffer; offset: number }> {
  const key = `${prefix}m`;
  const value = pseudoRandomBytes(40 * 1024, seed);
  await ctx.c.set(`${prefix}a`, 'before the damage');
  await ctx.c.set(key, value);
  await ctx.c.set(`${prefix}z`, 'after the damage');
  const image = ctx.fs.readVolatile(DB)!;
  const offset = image.indexOf(value.subarray(1000, 1064));
  assert.ok(offset >= 0, 'the value is in the file');
  assert.is(image.indexOf(value.subarray(1000, 1064), offset + 1), -1, 'exactly once');
  return { key, value, offset };
}

/** GetPrefix over `prefix` fails with `code`: what arrived before is in order, and nothing leaks. */
async function prefixFails(ctx: Ctx, prefix: string, code: number, re: RegExp): Promise<void> {
  const got: string[] = [];
  const run = (async () => { for await (const e of ctx.c.getPrefix(prefix)) got.push(e.key.toString()); })();
  await expectGrpcError(run, code, re);
  assert.ok(!got.includes(`${prefix}m`) && !got.includes(`${prefix}z`), `no entry at or past the failure (${got.join(',')})`);
  nothingLeaked(ctx, `GetPrefix ${prefix} failed`);
}

errors('damaged bytes of a stored value → DATA_LOSS on Get and GetPrefix; other keys still served', async (ctx) => {
  const { c, fs } = ctx;
  const { key, offset } = await storeLargeValue(ctx, 'rot/', 7);
  const image = fs.readVolatile(DB)!;
  fs.poke(DB, offset + 10, Buffer.from([image[offset + 10]! ^ 0x5a]));
  await expectGrpcError(c.get(key), GrpcStatus.DATA_LOSS, /corruption.*checksum/);
  await expectGrpcError(c.get(key), GrpcStatus.DATA_LOSS, /corruption/); // never served, however often asked
  assert.is((await c.get('rot/a'))?.toString(), 'before the damage');
  assert.is((await c.get('rot/z'))?.toString(), 'after the damage');
  await prefixFails(ctx, 'rot/', GrpcStatus.DATA_LOSS, /corruption/);
  await earlierKeysIntact(c, 'with a damaged value elsewhere');
  // Writing the key again stores a fresh copy; the server keeps serving throughout.
  await c.set(key, 'rewritten');
  assert.is((await c.get(key))?.toString(), 'rewritten');
  assert.is((await c.getPrefixAll('rot/')).length, 3);
  nothingLeaked(ctx, 'after corruption');
});

errors('EIO reading a stored value → INTERNAL on Get and GetPrefix; other keys still served; heals when reads do', async (ctx) => {
  const { c, fs } = ctx;
  const { key, value, offset } = await storeLargeValue(ctx, 'rd/', 8);
  fs.failReads((file, pos, len) => file === DB && pos <= offset && offset < pos + len, 'EIO', 1_000_000);
  await expectGrpcError(c.get(key), GrpcStatus.INTERNAL, /I\/O error.*EIO/);
  assert.is((await c.get('rd/a'))?.toString(), 'before the damage');
  await prefixFails(ctx, 'rd/', GrpcStatus.INTERNAL, /I\/O error.*EIO/);
  await earlierKeysIntact(c, 'while a read fails');
  fs.clearFailures();
  assert.ok((await c.get(key))?.equals(value), 'readable again once the device is');
  assert.is((await c.getPrefixAll('rd/')).length, 3);
  nothingLeaked(ctx, 'after read EIO');
});

errors('a failure in the middle of a long GetPrefix ends it with the mapped code and releases everything', async (ctx) => {
  const { c, fs } = ctx;
  // 63 entries, ~1 KiB each (4 per message), with the damaged value in the middle.
  for (let i = 0; i < 30; i++) await c.set(`mid/${String(i).padStart(2, '0')}`, Buffer.alloc(1000, i));
  const { key, offset } = await storeLargeValue(ctx, 'mid/5', 9); // mid/5a < mid/5m < mid/5z, after mid/29
  for (let i = 60; i < 90; i++) await c.set(`mid/${i}`, Buffer.alloc(1000, i));
  fs.failReads((file, pos, len) => file === DB && pos <= offset && offset < pos + len, 'EIO', 1_000_000);
  const got: string[] = [];
  const run = (async () => { for await (const e of c.getPrefix('mid/')) got.push(e.key.toString()); })();
  await expectGrpcError(run, GrpcStatus.INTERNAL, /I\/O error/);
  const expected = [...Array.from({ length: 30 }, (_, i) => `mid/${String(i).padStart(2, '0')}`), 'mid/5a'];
  assert.ok(got.length >= 4 && got.length <= expected.length, `messages before the failure arrive, nothing past it (${got.length})`);
  assert.equal(got, expected.slice(0, got.length), 'what arrived is the start of the result, in order');
  nothingLeaked(ctx, 'mid-stream failure');
  fs.clearFailures();
  assert.is((await c.getPrefixAll('mid/')).length, 63);
  assert.ok(key.startsWith('mid/5'));
});

errors('GetPrefix budget: a stream waiting for budget resumes when it is freed, and a cancelled one gives up at once', async (ctx) => {
  const { c, service, store } = ctx;
  const budget = service.streamBudget;
  // Other streams hold the whole budget (taken here directly from the real budget object).
  const hold = new AbortController();
  assert.ok(await budget.acquire(budget.capacity, hold.signal));
  const waitFor = async (cond: () => boolean, what: string) => {
    for (let t = Date.now(); !cond(); await new Promise((r) => setTimeout(r, 5))) {
      if (Date.now() - t > 5000) assert.unreachable(`timed out waiting for: ${what}`);
    }
  };
  // 1. A stream that waits at its start, then is cancelled: it holds no snapshot while it waits (it
  // takes one at its first read), and leaves the queue promptly.
  const call = c.raw.getPrefix({ prefix: Buffer.from('ok/'), limit: 0 });
  const ended = new Promise<number>((resolve) => { call.on('error', (e: grpc.ServiceError) => resolve(e.code)); call.on('end', () => resolve(-1)); });
  let early = 0;
  call.on('data', () => { early++; });
  await waitFor(() => budget.waiting === 1, 'the stream waits for budget');
  assert.is(store.stats().openSnapshots, 0, 'no snapshot while it waits for its first budget');
  call.cancel();
  assert.is(await ended, GrpcStatus.CANCELLED);
  assert.is(early, 0, 'no data while the budget is exhausted');
  await waitFor(() => budget.waiting === 0 && store.stats().openSnapshots === 0, 'the cancelled stream gives up');
  // 2. A stream that waits, then gets budget: delivers everything.
  const all = c.getPrefixAll('ok/');
  await waitFor(() => budget.waiting === 1, 'the second stream waits');
  budget.release(budget.capacity);
  assert.is((await all).length, 20);
  nothingLeaked(ctx, 'budget waits');
  hold.abort();
});

errors('GetPrefix budget: a stream that waits for budget mid-stream resumes just past its last key: every entry once, in order', async (ctx) => {
  const { c, service } = ctx;
  const budget = service.streamBudget;
  const keys = Array.from({ length: 20 }, (_, i) => `resume/${String(i).padStart(2, '0')}`);
  for (const [i, k] of keys.entries()) await c.set(k, Buffer.alloc(1000, i));
  // Leave the stream two messages' worth (prefixMessageBytes is 4096 here): 20 KiB of entries cannot
  // be read without waiting for budget, closing the cursor and reopening it after the last key sent.
  const hold = new AbortController();
  const held = budget.capacity - 2 * 4096;
  assert.ok(await budget.acquire(held, hold.signal));
  try {
    const got = await c.getPrefixAll('resume/');
    assert.equal(got.map((e) => e.key.toString()), keys, 'each key once, in order');
    got.forEach((e, i) => assert.ok(e.value.equals(Buffer.alloc(1000, i)), `value of ${keys[i]}`));
  } finally {
    budget.release(held);
    hold.abort();
  }
  nothingLeaked(ctx, 'mid-stream budget waits');
});

errors('StreamBudget: first come first served, no barging, an aborted waiter leaves the queue', async () => {
  const b = new StreamBudget(10);
  const a = new AbortController();
  assert.ok(b.tryAcquire(8));
  const order: string[] = [];
  const big = b.acquire(6, a.signal).then((ok) => { order.push(`big ${ok}`); });
  const small = b.acquire(2, new AbortController().signal).then((ok) => { order.push(`small ${ok}`); });
  assert.not.ok(b.tryAcquire(1), 'no barging past queued waiters');
  assert.is(b.waiting, 2);
  a.abort(); // the head gives up: the small request behind it fits now
  await Promise.all([big, small]);
  assert.equal(order, ['big false', 'small true']);
  assert.is(b.inUse, 10);
  b.release(10);
  assert.is(b.inUse, 0);
});

errors('store closed during shutdown → UNAVAILABLE for Set, Get and GetPrefix; the server process keeps answering', async (ctx) => {
  const { c, store } = ctx;
  await store.close();
  await expectGrpcError(c.set('late/k', 'v'), GrpcStatus.UNAVAILABLE, /closed.*shutting down/);
  await expectGrpcError(c.get('ok/00'), GrpcStatus.UNAVAILABLE, /closed/);
  await expectGrpcError(c.getPrefixAll('ok/'), GrpcStatus.UNAVAILABLE, /closed/);
  assert.is(ctx.service.streamBudget.inUse, 0);
});

errors('toServiceError keeps the engine message and maps non-engine errors to INTERNAL', () => {
  const e = toServiceError(new StoreError('NO_SPACE', 'ENOSPC while committing txid 7'));
  assert.is(e.code, GrpcStatus.RESOURCE_EXHAUSTED);
  assert.match(e.details, /ENOSPC while committing txid 7/);
  const t = toServiceError(new TypeError('something unexpected'));
  assert.is(t.code, GrpcStatus.INTERNAL);
  assert.match(t.details, /internal error: something unexpected/);
});

errors.run();

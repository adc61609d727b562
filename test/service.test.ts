// Service tests: a real lbserver process, real gRPC on 127.0.0.1, real files.
import * as grpc from '@grpc/grpc-js';
import * as http2 from 'node:http2';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { GetPrefixResponse, GetRequest, SetRequest } from '../generated/kv';
import { GrpcStatus, KvClient, statusName } from '../lib/client';
import { eventually, expectGrpcError, pseudoRandomBytes, setMany } from './support/client-helpers';
import { grpcFrame, openCall, rawGrpcCall, SERVICE } from './support/raw-grpc';
import { sleep, startServer, tempDir, type ServerHandle } from './support/server';

const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
const basic = suite<{ srv: ServerHandle; c: KvClient }>('service: operations');

basic.before(async (ctx) => {
  ctx.srv = await startServer();
  ctx.c = ctx.srv.client();
  await ctx.c.waitForReady(5000);
});
basic.after(async (ctx) => { await ctx.srv?.stop(); });

basic('ready line names address, data dir, keys and startup time', ({ srv }) => {
  assert.match(srv.stdout, new RegExp(`^lbserver listening on ${srv.address.replace(/\./g, '\\.')} data=\\S+ keys=0 startup_ms=\\d+(\\.\\d+)?\\n$`));
});

basic('ready line: a data path with a space or a newline is JSON-quoted, so the line stays one and unambiguous', async () => {
  const dataDir = join(tempDir(), 'my data\nkeys=7');
  const srv = await startServer({ dataDir });
  try {
    const line = srv.stdout.split('\n')[0]!;
    assert.is(srv.stdout, `${line}\n`, 'one line');
    const m = /^lbserver listening on \S+ data=("(?:[^"\\]|\\.)*") keys=(\d+) startup_ms=/.exec(line);
    assert.ok(m, line);
    assert.is(JSON.parse(m![1]!), dataDir);
    assert.is(m![2], '0');
  } finally {
    await srv.stop();
  }
});

basic('set then get; absent key; overwrite', async ({ c }) => {
  await c.set('alpha', 'one');
  assert.equal((await c.get('alpha'))?.toString(), 'one');
  assert.is(await c.get('no-such-key'), undefined);
  await c.set('alpha', 'two');
  assert.equal((await c.get('alpha'))?.toString(), 'two');
});

basic('binary keys and values round-trip exactly', async ({ c }) => {
  const key = Buffer.from([0x00, 0xff, 0x0a, 0x80, 0x00]);
  const value = pseudoRandomBytes(777, 9);
  await c.set(key, value);
  assert.ok((await c.get(key))?.equals(value));
  const maxKey = Buffer.alloc(1024, 0x41);
  await c.set(maxKey, 'max-length key');
  assert.equal((await c.get(maxKey))?.toString(), 'max-length key');
});

basic('values of 0 B, 4 KiB, 4 MiB and 32 MiB', async ({ c }) => {
  for (const [i, n] of [0, 4096, 4 * MiB, 32 * MiB].entries()) {
    const key = `size/${String(i)}/${n}`;
    const value = pseudoRandomBytes(n, 100 + i);
    await c.set(key, value);
    const got = await c.get(key);
    assert.ok(got !== undefined, `${n} B value found`);
    assert.is(got!.length, n);
    assert.ok(got!.equals(value), `${n} B value equal`);
  }
  // A 0 B value is present (found), not absent.
  assert.is((await c.get('size/0/0'))?.length, 0);
  // The 32 MiB value comes through GetPrefix too, alone in its message.
  const msgs: Array<Array<{ key: Buffer; value: Buffer }>> = [];
  for await (const m of c.getPrefixMessages('size/')) msgs.push(m);
  const all = msgs.flat();
  assert.equal(all.map((e) => e.key.toString()), ['size/0/0', 'size/1/4096', `size/2/${4 * MiB}`, `size/3/${32 * MiB}`]);
  assert.ok(all[3]!.value.equals(pseudoRandomBytes(32 * MiB, 103)));
  const big = msgs.find((m) => m.some((e) => e.value.length === 32 * MiB))!;
  assert.is(big.length, 1, 'a value over the message target goes alone');
});

basic('GetPrefix: 5,000 entries arrive over many messages, in order, complete', async ({ c }) => {
  const entries = Array.from({ length: 5000 }, (_, i) => ({
    key: Buffer.from(`many/${String(i * 7919 % 5000).padStart(5, '0')}`),
    value: pseudoRandomBytes(2000, i),
  }));
  await setMany(c, entries, 64);
  const want = entries.map((e) => e.key.toString()).sort();
  const valueOf = new Map(entries.map((e) => [e.key.toString(), e.value]));
  let messages = 0;
  const got: Buffer[] = [];
  for await (const batch of c.getPrefixMessages('many/')) {
    messages++;
    const payload = batch.reduce((n, e) => n + e.key.length + e.value.length, 0);
    assert.ok(batch.length > 0, 'no empty messages');
    assert.ok(payload <= 1.1 * MiB, `message payload ${payload} B is about 1 MiB at most`);
    for (const e of batch) {
      assert.ok(valueOf.get(e.key.toString())?.equals(e.value), 'value matches');
      got.push(e.key);
    }
  }
  assert.is(got.length, 5000);
  assert.equal(got.map((k) => k.toString()), want);
  assert.ok(messages >= 8, `5,000 x 2 KB came in ${messages} messages`);
});

basic('GetPrefix: limit', async ({ c }) => {
  const first = await c.getPrefixAll('many/', { limit: 10 });
  assert.equal(first.map((e) => e.key.toString()), Array.from({ length: 10 }, (_, i) => `many/${String(i).padStart(5, '0')}`));
  assert.is((await c.getPrefixAll('many/', { limit: 1 })).length, 1);
  assert.is((await c.getPrefixAll('many/', { limit: 4999 })).length, 4999);
  assert.is((await c.getPrefixAll('many/', { limit: 100000 })).length, 5000);
  assert.is((await c.getPrefixAll('many/', { limit: 0 })).length, 5000, 'limit 0 = no limit');
});

basic('GetPrefix: no match, and prefixes ending in 0xff', async ({ c }) => {
  assert.equal(await c.getPrefixAll('nothing-here/'), []);
  const keys = [
    [0x70, 0xfe, 0xff], [0x70, 0xff], [0x70, 0xff, 0x00], [0x70, 0xff, 0xff, 0x01], [0x71], [0xff], [0xff, 0xff], [0xff, 0xff, 0xff],
  ].map((k) => Buffer.from(k));
  await setMany(c, keys.map((key, i) => ({ key, value: Buffer.from(`v${i}`) })));
  const hex = async (p: number[]) => (await c.getPrefixAll(Buffer.from(p))).map((e) => e.key.toString('hex'));
  assert.equal(await hex([0x70, 0xff]), ['70ff', '70ff00', '70ffff01']);
  assert.equal(await hex([0x70, 0xff, 0xff]), ['70ffff01']);
  assert.equal(await hex([0x70]), ['70feff', '70ff', '70ff00', '70ffff01']);
  assert.equal(await hex([0xff]), ['ff', 'ffff', 'ffffff']);
  assert.equal(await hex([0xff, 0xff]), ['ffff', 'ffffff']);
});

basic('GetPrefix: empty prefix lists every key in bytewise order', async ({ c }) => {
  const all = await c.getPrefixAll('');
  const st = await c.stat();
  assert.is(all.length, st.keys);
  for (let i = 1; i < all.length; i++) assert.ok(Buffer.compare(all[i - 1]!.key, all[i]!.key) < 0, 'strictly ascending');
  assert.is(all[0]!.key.toString('hex'), '00ff0a8000');
  assert.is(all[all.length - 1]!.key.toString('hex'), 'ffffff');
});

basic('invalid arguments: INVALID_ARGUMENT with what and which limit; server keeps serving', async ({ c }) => {
  await expectGrpcError(c.set('', 'x'), GrpcStatus.INVALID_ARGUMENT, /key.*empty.*1\.\.1024/);
  await expectGrpcError(c.get(''), GrpcStatus.INVALID_ARGUMENT, /key.*empty/);
  await expectGrpcError(c.set(Buffer.alloc(1025, 0x61), 'x'), GrpcStatus.INVALID_ARGUMENT, /key is 1025 bytes.*1024/);
  await expectGrpcError(c.get(Buffer.alloc(5000, 0x61)), GrpcStatus.INVALID_ARGUMENT, /key is 5000 bytes.*1024/);
  const prefixErr = c.getPrefixAll(Buffer.alloc(2000, 0x61));
  await expectGrpcError(prefixErr, GrpcStatus.INVALID_ARGUMENT, /prefix is 2000 bytes/);
  await c.set('still', 'serving');
  assert.equal((await c.get('still'))?.toString(), 'serving');
});

basic('malformed protobuf requests: INVALID_ARGUMENT, server keeps serving', async ({ srv, c }) => {
  const raw = new grpc.Client(srv.address, grpc.credentials.createInsecure());
  const id = (b: Buffer) => b;
  const unary = (method: string, body: Buffer) => new Promise<void>((resolve, reject) => {
    raw.makeUnaryRequest(`${SERVICE}/${method}`, id, id, body, (err) => (err ? reject(err) : resolve()));
  });
  await expectGrpcError(unary('Set', Buffer.from([0xff, 0xff, 0xff])), GrpcStatus.INVALID_ARGUMENT, /not a valid message/);
  await expectGrpcError(unary('Get', Buffer.from([0x0a, 0x05, 0x61])), GrpcStatus.INVALID_ARGUMENT, /not a valid message/);
  await expectGrpcError(unary('Stat', Buffer.from([0xff, 0xff, 0xff])), GrpcStatus.INVALID_ARGUMENT, /not a valid message/);
  // GetPrefix 'many/' with limit = 2^64-1: a valid uint64 past a JS number's exact range, so no limit.
  const stream = raw.makeServerStreamRequest(`${SERVICE}/GetPrefix`, id, id,
    Buffer.from([0x0a, 0x05, ...Buffer.from('many/'), 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]));
  let entries = 0;
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (b: Buffer) => { entries += GetPrefixResponse.decode(b).entries.length; });
    stream.on('error', reject);
    stream.on('end', resolve);
  });
  assert.is(entries, 5000, 'limit 2^64-1: every entry');
  // A GetPrefix request that is not valid protobuf.
  const bad = raw.makeServerStreamRequest(`${SERVICE}/GetPrefix`, id, id, Buffer.from([0x0a, 0x09, 0x61]));
  const badErr = new Promise<void>((resolve, reject) => { bad.on('data', () => {}); bad.on('error', reject); bad.on('end', resolve); });
  await expectGrpcError(badErr, GrpcStatus.INVALID_ARGUMENT, /not a valid message/);
  raw.close();
  await c.set('after-garbage', 'ok');
  assert.equal((await c.get('after-garbage'))?.toString(), 'ok');
});

basic('Stat fills every field', async ({ c, srv }) => {
  const s = await c.stat();
  const now = Date.now();
  assert.ok(s.startTimeUnixMs > now - 120_000 && s.startTimeUnixMs <= now, 'start time');
  assert.ok(s.startupMs > 0 && s.startupMs < 60_000, 'startup_ms');
  assert.ok(s.uptimeMs > 0 && s.uptimeMs <= now - s.startTimeUnixMs + 1000, 'uptime_ms');
  assert.ok(s.totalSets > 5000 && s.totalGets > 0 && s.totalGetprefixes > 0);
  assert.ok(s.keys > 5000);
  assert.ok(s.dbFileBytes > 36 * MiB, 'db file holds the 32 MiB value');
  assert.ok(s.commits > 0 && s.fsyncs >= s.commits, 'commits / fsyncs');
  assert.ok(s.maxBatchSize >= 1 && s.meanBatchSize >= 1 && s.meanBatchSize <= s.maxBatchSize);
  // Every commit spends some time before its fdatasync and some in it.
  assert.ok(s.meanCommitPrepareUs > 0 && s.meanCommitSyncUs > 0, `commit times ${s.meanCommitPrepareUs} / ${s.meanCommitSyncUs}`);
  // The totals are the means' sums (each total is rounded down to whole microseconds).
  for (const [total, mean] of [[s.totalCommitPrepareUs, s.meanCommitPrepareUs], [s.totalCommitSyncUs, s.meanCommitSyncUs]] as const) {
    assert.ok(Math.abs(total - mean * s.commits) <= 1, `total ${total} vs mean ${mean} x ${s.commits} commits`);
  }
  // Commits write runs of at least one page before their slot (meta and root; a store whose tree is
  // one leaf writes nothing else), and these thousands of sets went to a deeper tree.
  assert.ok(s.totalCommitRuns > 0 && s.totalCommitPages >= s.totalCommitRuns, `${s.totalCommitPages} pages in ${s.totalCommitRuns} runs, ${s.commits} commits`);
  assert.is(s.setBytesInFlight, 0, 'no Set is waiting for its commit');
  // Filled and within the commits. How many sync on the event loop by default depends on this
  // disk's fdatasync times (under 1 ms, --blocking-sync-us), so it is not asserted here; which
  // commits do is cli.test's --blocking-sync-us case.
  assert.ok(Number.isInteger(s.totalBlockingSyncCommits) && s.totalBlockingSyncCommits >= 0 && s.totalBlockingSyncCommits <= s.commits, `${s.totalBlockingSyncCommits} of ${s.commits} commits synced on the event loop`);
  assert.ok(s.pageCount > 0 && s.lastTxid > 0);
  assert.ok(s.cacheHits + s.cacheMisses > 0);
  assert.is(s.openSnapshots, 0);
  assert.ok(s.failedSets >= 2, 'failed sets counted');
  assert.ok(srv.pid > 0);
});

// ---------------------------------------------------------------------------------------------
const counters = suite<{ srv: ServerHandle; c: KvClient }>('service: Stat counters count completed operations');
counters.before(async (ctx) => {
  ctx.srv = await startServer({ args: ['--max-value-bytes', String(MiB)] });
  ctx.c = ctx.srv.client();
});
counters.after(async (ctx) => { await ctx.srv?.stop(); });

counters('exact counts; failures are not counted as completed', async ({ c }) => {
  let s = await c.stat();
  assert.equal([s.totalSets, s.totalGets, s.totalGetprefixes, s.failedSets, s.failedGets, s.failedGetprefixes, s.keys], [0, 0, 0, 0, 0, 0, 0]);
  await c.set('a', '1');
  await c.set('b', '2');
  await c.set('a', '3');
  await c.get('a');
  await c.get('missing');
  await c.getPrefixAll('');
  // No entry: the status goes out in the response headers alone, and it still counts.
  assert.is((await c.getPrefixAll('no-such-prefix')).length, 0);
  await expectGrpcError(c.set('', 'x'), GrpcStatus.INVALID_ARGUMENT);
  await expectGrpcError(c.get(''), GrpcStatus.INVALID_ARGUMENT);
  await expectGrpcError(c.getPrefixAll(Buffer.alloc(1025, 0x61)), GrpcStatus.INVALID_ARGUMENT);
  s = await c.stat();
  assert.equal([s.totalSets, s.totalGets, s.totalGetprefixes, s.failedSets, s.failedGets, s.failedGetprefixes, s.keys], [3, 2, 2, 1, 1, 1, 2]);
});

counters('value over --max-value-bytes: INVALID_ARGUMENT naming the limit; server keeps serving', async ({ c }) => {
  await c.set('limit/exact', Buffer.alloc(MiB, 1)); // exactly the limit is fine
  const e = await expectGrpcError(c.set('limit/over', Buffer.alloc(MiB + 1, 1)), GrpcStatus.INVALID_ARGUMENT, /value is 1048577 bytes/);
  assert.match(e.details, /1048576/);
  assert.match(e.details, /max-value-bytes/);
  // Far over: refused from the message's length prefix, in the same words; past twice the message
  // limit too (where grpc-js would answer RESOURCE_EXHAUSTED "Received message larger than max").
  await expectGrpcError(c.set('limit/over2', Buffer.alloc(2 * MiB + 512 * 1024, 1)), GrpcStatus.INVALID_ARGUMENT, /value is 2621440 bytes; over the value limit of 1048576 bytes/);
  await expectGrpcError(c.set('limit/over3', Buffer.alloc(8 * MiB, 1)), GrpcStatus.INVALID_ARGUMENT, /value is 8388608 bytes; over the value limit of 1048576 bytes \(--max-value-bytes\)/);
  assert.is(await c.get('limit/over'), undefined);
  assert.is(await c.get('limit/over2'), undefined);
  assert.is(await c.get('limit/over3'), undefined);
  assert.is((await c.get('limit/exact'))?.length, MiB);
  const s = await c.stat();
  assert.is(s.failedSets, 4, 'the Set of an empty key in the test above, and every refused Set here: by its handler or from its length prefix');
});

counters('a request longer than any valid one is refused from its length prefix, before its body arrives: INVALID_ARGUMENT naming the limit; nothing written, the server keeps serving', async ({ srv, c }) => {
  const before = await c.stat();
  const session = http2.connect(`http://${srv.address}`);
  session.on('error', () => undefined);
  /** Opens a call of `method` whose message declares `declared` bytes, sends only `body` of it and
   *  leaves the request open; what status it gets. */
  const partial = (method: string, body: Buffer, declared: number) => {
    const { req, got } = openCall(session, method);
    req.write(grpcFrame(body, { declaredLength: declared }));
    return got;
  };
  try {
    // A Set of a 1 GiB value whose client has sent 64 KiB of it: answered at once, well before
    // --stream-stall-ms (60 s) would end a stalled upload.
    const key = Buffer.from('limit/huge');
    const fields = Buffer.concat([Buffer.from([0x0a, key.length]), key, Buffer.from([0x12, 0x80, 0x80, 0x80, 0x80, 0x04])]);
    const huge = partial('Set', Buffer.concat([fields, Buffer.alloc(64 * 1024, 7)]), fields.length + 2 ** 30);
    // Only the length prefix and two bytes: the field at fault is not known, the limits are named.
    const blind = partial('Set', Buffer.from([0x0a, 0x05]), 64 * MiB);
    const bigKey = partial('Get', Buffer.from([0x0a, 0x80, 0x80, 0x80, 0x01]), 5 + 2 * MiB);
    const bigPrefix = partial('GetPrefix', Buffer.from([0x0a, 0xcc, 0x08]), 3 + 1100);
    const calls = [huge, blind, bigKey, bigPrefix];
    assert.ok(await eventually(() => calls.every((g) => g.status !== undefined), 20_000, 20), `each answered within 20 s: ${JSON.stringify(calls)}`);
    assert.is(huge.status, GrpcStatus.INVALID_ARGUMENT, huge.message);
    assert.is(huge.message, 'value is 1073741824 bytes; over the value limit of 1048576 bytes (--max-value-bytes)');
    assert.is(blind.status, GrpcStatus.INVALID_ARGUMENT, blind.message);
    assert.match(blind.message, /^request is 67108864 bytes, more than any valid Set: a key of at most 1024 bytes \(--max-key-bytes\) and a value of at most 1048576 bytes \(--max-value-bytes\)$/);
    assert.is(bigKey.status, GrpcStatus.INVALID_ARGUMENT, bigKey.message);
    assert.match(bigKey.message, /^key is 2097152 bytes; over the largest key the file format holds \(1024 bytes\)/);
    assert.is(bigPrefix.status, GrpcStatus.INVALID_ARGUMENT, bigPrefix.message);
    assert.match(bigPrefix.message, /^prefix is 1100 bytes; over the largest key/);
  } finally {
    session.destroy();
  }
  assert.is(await c.get('limit/huge'), undefined);
  await c.set('limit/after', 'served');
  assert.is((await c.get('limit/after'))?.toString(), 'served');
  const s = await c.stat();
  assert.is(s.failedSets - before.failedSets, 2, 'the two refused Sets count as failed');
  assert.equal([s.failedGets - before.failedGets, s.failedGetprefixes - before.failedGetprefixes], [1, 1], 'so do the refused Get and GetPrefix');
  assert.is(s.totalSets - before.totalSets, 1);
});

counters('a Set whose client cancels while it waits for its commit is not counted: total_sets grows by the Sets answered OK', async () => {
  const srv = await startServer();
  const c = srv.client();
  const before = (await c.stat()).totalSets;
  // 20 Sets of 8 MiB, each on a connection of its own, all cancelled once the server holds them.
  const clients = Array.from({ length: 20 }, () => new grpc.Client(srv.address, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': -1 }));
  const id = (b: Buffer) => b;
  const outcomes: Promise<string>[] = [];
  const calls = clients.map((cl, i) => {
    let call!: grpc.ClientUnaryCall;
    outcomes.push(new Promise((resolve) => {
      call = cl.makeUnaryRequest(`${SERVICE}/Set`, id, id, Buffer.from(SetRequest.encode({ key: Buffer.from(`cancelled/${i}`), value: Buffer.alloc(8 * MiB, i) }).finish()),
        (err) => resolve(err ? statusName(err.code) : 'OK'));
    }));
    return call;
  });
  try {
    assert.ok(await eventually(async () => (await c.stat()).setBytesInFlight > 0, 30_000, 2), 'the server holds Sets waiting for their commit');
    for (const call of calls) call.cancel();
    const seen = await Promise.all(outcomes);
    const ok = seen.filter((o) => o === 'OK').length;
    assert.ok(seen.every((o) => o === 'OK' || o === 'CANCELLED'), seen.join(' '));
    assert.ok(await eventually(async () => (await c.stat()).setBytesInFlight === 0, 30_000), 'the commits are done');
    const s = await c.stat();
    assert.is(s.totalSets - before, ok, `total_sets grew by ${s.totalSets - before}; ${ok} of 20 Sets were answered OK`);
  } finally {
    for (const cl of clients) cl.close();
    await srv.stop();
  }
});

counters('Stat reports the free and pending pages that overwritten values leave', async ({ c }) => {
  // Three 256 KiB values (64 pages each), then each overwritten by a small inline value. Pages freed
  // by commit T are reusable from commit T + 2 on: the first overwrite's run is free by the third,
  // the last two runs are still pending (the fallback commit on disk reaches one of them).
  for (let i = 0; i < 3; i++) await c.set(`fp/${i}`, Buffer.alloc(256 * 1024, i + 1));
  for (let i = 0; i < 3; i++) await c.set(`fp/${i}`, 'small');
  const s = await c.stat();
  assert.ok(s.freePages >= 32, `free pages ${s.freePages}`); // the first run, less what the last commits took
  assert.ok(s.pendingFreePages >= 64, `pending free pages ${s.pendingFreePages}`);
  assert.ok(s.freePages + s.pendingFreePages < s.pageCount, `${s.freePages} + ${s.pendingFreePages} of ${s.pageCount} pages`);
});

counters('a Get whose client resets the stream before taking the response is not counted', async ({ srv, c }) => {
  await c.set('gone/k', Buffer.alloc(MiB, 7)); // far more than the client's 64 KiB window
  const before = (await c.stat()).totalGets;
  const raw = rawGrpcCall(srv.address, 'Get', GetRequest.encode({ key: Buffer.from('gone/k') }).finish(), { bytesPerSecond: 1000 });
  assert.ok(await eventually(() => raw.bytes > 0, 5000, 10), 'the response has started');
  raw.cancel();
  const r = await raw.done;
  assert.ok(r.bytes > 0 && r.bytes < MiB, `part of the response arrived (${r.bytes} B)`);
  assert.is(r.status, undefined, 'no status reached the client');
  assert.is((await c.get('gone/k'))?.length, MiB);
  await sleep(200); // the reset has long reached the server
  assert.is((await c.stat()).totalGets - before, 1, 'only the Get that was answered counts');
});

// ---------------------------------------------------------------------------------------------
const restart = suite('service: restart keeps data');

restart('data written before SIGTERM is there after restart', async () => {
  const srv = await startServer();
  const c = srv.client();
  const entries = Array.from({ length: 300 }, (_, i) => ({ key: Buffer.from(`r/${String(i).padStart(4, '0')}`), value: pseudoRandomBytes(100 + i * 10, i) }));
  await setMany(c, entries);
  await c.set('r/big', pseudoRandomBytes(3 * MiB, 77));
  assert.is(await srv.stop('SIGTERM'), 0);

  const srv2 = await startServer({ dataDir: srv.dataDir });
  assert.match(srv2.stdout, / keys=301 /);
  const c2 = srv2.client();
  for (const e of entries) assert.ok((await c2.get(e.key))?.equals(e.value), `${e.key} survives`);
  assert.ok((await c2.get('r/big'))?.equals(pseudoRandomBytes(3 * MiB, 77)));
  assert.is((await c2.getPrefixAll('r/')).length, 301);
  const s = await c2.stat();
  assert.is(s.keys, 301);
  assert.is(s.totalSets, 0, 'counters are per process');
  assert.is(await srv2.stop('SIGINT'), 0, 'SIGINT also stops cleanly');
});

restart('Stat last_txid is the store\'s txid, which goes on across restarts, not this process\'s count of commits', async () => {
  const srv = await startServer();
  const c = srv.client();
  for (let i = 0; i < 5; i++) await c.set(`txid/${i}`, 'v');
  const before = await c.stat();
  assert.ok(before.lastTxid >= 5, `last_txid ${before.lastTxid} after 5 acknowledged sets`);
  assert.is(await srv.stop(), 0);
  const srv2 = await startServer({ dataDir: srv.dataDir });
  try {
    const c2 = srv2.client();
    await c2.set('txid/after', 'v');
    const s = await c2.stat();
    assert.ok(s.lastTxid > before.lastTxid, `last_txid ${s.lastTxid} after a restart and a set, was ${before.lastTxid}`);
    assert.ok(s.lastTxid > s.commits, `last_txid ${s.lastTxid} is more than the ${s.commits} commits of this process`);
  } finally {
    assert.is(await srv2.stop(), 0);
  }
});

restart('values stored under a larger --max-value-bytes stay readable after a restart with a smaller one', async () => {
  const srv = await startServer({ args: ['--max-value-bytes', '4MiB'] });
  const big = pseudoRandomBytes(3 * MiB, 31);
  await srv.client().set('lim/big', big);
  assert.is(await srv.stop(), 0);
  const srv2 = await startServer({ dataDir: srv.dataDir, args: ['--max-value-bytes', '1MiB'] });
  const c = srv2.client();
  assert.ok((await c.get('lim/big'))?.equals(big), 'Get returns the stored 3 MiB value');
  const all = await c.getPrefixAll('lim/');
  assert.is(all.length, 1);
  assert.ok(all[0]!.value.equals(big), 'GetPrefix returns it too');
  await expectGrpcError(c.set('lim/new', big), GrpcStatus.INVALID_ARGUMENT, /over the value limit of 1048576 bytes/);
  const s = await c.stat();
  assert.equal([s.totalGets, s.totalGetprefixes, s.failedSets], [1, 1, 1]);
  assert.is(await srv2.stop(), 0);
});

restart('keys stored under a larger --max-key-bytes stay readable after a restart with a smaller one; only Set is held to it', async () => {
  // Before, Get refused such a key (INVALID_ARGUMENT "over the key limit") while GetPrefix listed it.
  const srv = await startServer();
  const long = Buffer.concat([Buffer.from('klim/'), pseudoRandomBytes(600, 32)]);
  await srv.client().set(long, 'stored under 1024');
  await srv.client().set('klim/short', 'short');
  assert.is(await srv.stop(), 0);
  const srv2 = await startServer({ dataDir: srv.dataDir, args: ['--max-key-bytes', '100'] });
  const c = srv2.client();
  try {
    assert.equal((await c.get(long))?.toString(), 'stored under 1024', 'Get of a key longer than --max-key-bytes');
    assert.is(await c.get(Buffer.alloc(1024, 0x61)), undefined, 'a 1024-byte key that is not there: absent, not refused');
    const all = await c.getPrefixAll('klim/');
    assert.equal(all.map((e) => e.key.length).sort((a, b) => a - b), [10, long.length], 'GetPrefix lists both');
    const exact = await c.getPrefixAll(long);
    assert.is(exact.length, 1, 'the whole long key as a prefix (over --max-key-bytes) lists it');
    await expectGrpcError(c.set(long, 'new'), GrpcStatus.INVALID_ARGUMENT, /key is 605 bytes; over the key limit of 100 bytes \(--max-key-bytes/);
    await expectGrpcError(c.set(Buffer.alloc(101, 0x61), 'x'), GrpcStatus.INVALID_ARGUMENT, /over the key limit of 100 bytes/);
    await c.set(Buffer.alloc(100, 0x62), 'at the limit');
    // Past what the file format holds, Get and GetPrefix still refuse: no such key can be stored.
    await expectGrpcError(c.get(Buffer.alloc(1025, 0x61)), GrpcStatus.INVALID_ARGUMENT, /key is 1025 bytes; over the largest key the file format holds \(1024 bytes\)/);
    await expectGrpcError(c.getPrefixAll(Buffer.alloc(1025, 0x61)), GrpcStatus.INVALID_ARGUMENT, /prefix is 1025 bytes; over the largest key the file format holds/);
    assert.equal((await c.get(long))?.toString(), 'stored under 1024', 'the refused Set changed nothing');
  } finally {
    assert.is(await srv2.stop(), 0);
  }
});

basic.run();
counters.run();
restart.run();

// Server memory against clients that hold what the server gives them or send without end: Gets of
// large values whose answers are never read, and requests that keep arriving. A real lbserver, raw
// HTTP/2 clients with a 64 KiB window.
import * as http2 from 'node:http2';
import { gzipSync } from 'node:zlib';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { GetRequest, SetRequest } from '../generated/kv';
import { GrpcStatus } from '../lib/client';
import { eventually, expectGrpcError, pseudoRandomBytes, rssBytes } from './support/client-helpers';
import { grpcFrame, openCall } from './support/raw-grpc';
import { sleep, startServer, type ServerHandle } from './support/server';

const MiB = 1024 * 1024;

/** `n` calls of `method` with `request` spread over `sessions` HTTP/2 connections whose client never
 *  reads a byte of response data; what status each got in its headers (a refusal is trailers-only). */
function nonReaders(address: string, method: string, request: Uint8Array, n: number, sessions: number) {
  const conns = Array.from({ length: sessions }, () => {
    const s = http2.connect(`http://${address}`, { settings: { initialWindowSize: 65535 } });
    s.on('error', () => undefined);
    return s;
  });
  const statuses: Array<{ status?: number; message: string }> = [];
  for (let i = 0; i < n; i++) {
    const { req, got } = openCall(conns[i % sessions]!, method);
    req.pause();
    statuses.push(got);
    req.end(grpcFrame(request));
  }
  return { statuses, close: () => { for (const s of conns) s.destroy(); } };
}

/** Runs `body` against a real lbserver started with `args`, which must then stop cleanly (exit 0). */
async function onServer(args: string[], body: (srv: ServerHandle) => Promise<void>): Promise<void> {
  const srv = await startServer({ args });
  try {
    await body(srv);
    assert.is(await srv.stop(), 0);
  } finally {
    await srv.kill9();
  }
}

const mem = suite('service: memory stays bounded against clients that do not read');

mem('Gets of a large value whose answers are never read: the server holds at most --max-inflight-get-mb of them; the rest get RESOURCE_EXHAUSTED naming it; all served again once the readers go', () => onServer(['--max-value-bytes', '1MiB', '--max-inflight-get-mb', '16', '--cache-mb', '4'], unreadGets));

async function unreadGets(srv: ServerHandle): Promise<void> {
  const c = srv.client();
  await c.set('big', pseudoRandomBytes(MiB, 1));
  await c.set('small', 'x');
  await c.get('big');
  await sleep(200);
  const before = rssBytes(srv.pid);
  // 200 Gets of the 1 MiB value: without a bound the server holds 200 MiB for them (measured: RSS
  // +240 MiB), for as long as their connections live.
  const flood = nonReaders(srv.address, 'Get', GetRequest.encode({ key: Buffer.from('big') }).finish(), 200, 4);
  try {
    assert.ok(await eventually(() => flood.statuses.filter((s) => s.status !== undefined).length >= 150, 20_000, 50), 'the Gets over the bound are answered');
    await sleep(500);
    const peak = rssBytes(srv.pid);
    if (before !== undefined && peak !== undefined) {
      const growth = peak - before;
      assert.ok(growth < 80 * MiB, `server RSS grew by ${(growth / MiB).toFixed(1)} MiB for 200 unread Gets of a 1 MiB value`);
    }
    const refused = flood.statuses.filter((s) => s.status === GrpcStatus.RESOURCE_EXHAUSTED);
    assert.ok(refused.length >= 180, `${refused.length} of 200 refused`);
    assert.match(refused[0]!.message, /server busy: \d+ bytes of Get responses are waiting .* over the bound of 16777216 \(--max-inflight-get-mb\); retry later/);
    // Another client meanwhile: a large Get is refused with the same clear status; Set and Stat are served.
    await expectGrpcError(c.get('big'), GrpcStatus.RESOURCE_EXHAUSTED, /--max-inflight-get-mb/);
    await c.set('during', 'ok');
    assert.ok((await c.stat()).keys >= 3);
  } finally {
    flood.close();
  }
  // Their connections gone, everything they held is released.
  let last: unknown;
  assert.ok(await eventually(async () => {
    try { return (await c.get('big'))?.equals(pseudoRandomBytes(MiB, 1)) === true; } catch (e) { last = e; return false; }
  }, 10_000, 100), `the large Get is served again (last error: ${String((last as Error)?.message)})`);
  assert.is((await c.get('during'))?.toString(), 'ok');
}

mem('Set requests that start arriving and never finish: the server holds at most --max-inflight-set-mb of them; the rest are refused with RESOURCE_EXHAUSTED naming it; small calls and, once they go, large Sets are served', () => onServer(['--max-value-bytes', '4MiB', '--max-inflight-set-mb', '16', '--cache-mb', '4'], unfinishedUploads));

async function unfinishedUploads(srv: ServerHandle): Promise<void> {
  const c = srv.client();
  await c.set('small', 'x');
  await sleep(200);
  const before = rssBytes(srv.pid);
  // 100 Sets whose 4 MB message (no longer than a valid Set's under --max-value-bytes 4MiB, so not
  // refused from its length prefix) arrives but for its last byte: without a bound the server holds all 400 MB (measured: RSS +380
  // MiB), for as long as their connections live.
  const length = 4_000_000;
  const body = Buffer.alloc(length - 1, 0x61);
  const conns = Array.from({ length: 2 }, () => {
    // (Node's default of 10 MB for what a session holds would make this client refuse the server's
    // answers, with ENHANCE_YOUR_CALM, while it has 200 MB to send.)
    const s = http2.connect(`http://${srv.address}`, { maxSessionMemory: 1024 });
    s.on('error', () => undefined);
    return s;
  });
  const statuses: Array<{ status?: number; message: string }> = [];
  for (let i = 0; i < 100; i++) {
    const { req, got } = openCall(conns[i % 2]!, 'Set');
    statuses.push(got);
    req.write(grpcFrame(body, { declaredLength: length }));
  }
  try {
    assert.ok(await eventually(() => statuses.filter((s) => s.status !== undefined).length >= 90, 30_000, 50),
      `the uploads over the bound are refused (${statuses.filter((s) => s.status !== undefined).length} answered)`);
    await sleep(500);
    const peak = rssBytes(srv.pid);
    if (before !== undefined && peak !== undefined) {
      const growth = peak - before;
      assert.ok(growth < 100 * MiB, `server RSS grew by ${(growth / MiB).toFixed(1)} MiB for 100 unfinished 4 MB uploads`);
    }
    const refused = statuses.filter((s) => s.status === GrpcStatus.RESOURCE_EXHAUSTED);
    assert.ok(refused.length >= 90, `${refused.length} of 100 refused`);
    assert.match(refused[0]!.message, /server busy: \d+ bytes of requests are arriving or waiting for their commit and this one has \d+ so far, over the bound of 16777216 \(--max-inflight-set-mb\); nothing was written, retry later/);
    // Meanwhile a grpc-js client: small calls are served; a large Set (4 of the uploads, 16 MB, are
    // held) gets the same clear status.
    assert.is((await c.get('small'))?.toString(), 'x');
    await c.set('small2', 'y');
    assert.ok((await c.stat()).keys >= 2);
    await expectGrpcError(c.set('large', pseudoRandomBytes(1_000_000, 2)), GrpcStatus.RESOURCE_EXHAUSTED, /--max-inflight-set-mb.*nothing was written/);
  } finally {
    for (const s of conns) s.destroy();
  }
  // Their connections gone, what they held is released: a large Set goes through.
  let last: unknown;
  assert.ok(await eventually(async () => {
    try { await c.set('large', pseudoRandomBytes(1_000_000, 2)); return true; } catch (e) { last = e; return false; }
  }, 10_000, 100), `a large Set is served again (last error: ${String((last as Error)?.message)})`);
  assert.ok((await c.get('large'))?.equals(pseudoRandomBytes(1_000_000, 2)));
  assert.is((await c.stat()).keys, 3, 'nothing of the refused uploads was stored');
}

mem('gzip-compressed requests that decompress to far more than they send (4 KB to 4 MB each, 200 at once) are counted as what they can decompress to: the server stays near --max-inflight-set-mb; every one gets a status; compressed calls within the bounds work', () => onServer(['--max-value-bytes', '1MiB', '--max-inflight-set-mb', '64', '--cache-mb', '4'], gzipBombs));

async function gzipBombs(srv: ServerHandle): Promise<void> {
  const c = srv.client();
  await c.set('small', 'x');
  await sleep(200);
  const before = rssBytes(srv.pid);
  // A Set of a 4,189,980-byte value of zeros (under the receive limit, over --max-value-bytes, so
  // each is refused by the handler at best): 4 KB of gzip.
  const message = SetRequest.encode({ key: Buffer.from('k'), value: Buffer.alloc(4_189_980) }).finish();
  const gz = gzipSync(message, { level: 9 });
  assert.ok(gz.length < 8192, `${gz.length} bytes of gzip`);
  const session = http2.connect(`http://${srv.address}`);
  session.on('error', () => undefined);
  let peak = 0;
  const sampler = setInterval(() => { peak = Math.max(peak, rssBytes(srv.pid) ?? 0); }, 20);
  const results = await Promise.all(Array.from({ length: 200 }, () => new Promise<{ status?: number; message: string }>((resolve) => {
    const { req, got } = openCall(session, 'Set', { 'grpc-encoding': 'gzip' });
    req.on('close', () => resolve(got));
    req.resume();
    req.end(grpcFrame(gz, { compressed: true }));
  })));
  await sleep(200);
  clearInterval(sampler);
  session.destroy();
  if (before !== undefined && peak > 0) {
    // Without counting them so, the server decompressed all 200 at once: peak RSS +950 MiB.
    const growth = peak - before;
    assert.ok(growth < 320 * MiB, `server RSS grew by ${(growth / MiB).toFixed(1)} MiB for 200 gzip requests of 4 MB`);
  }
  const missing = results.filter((r) => r.status === undefined).length;
  assert.is(missing, 0, `${missing} of 200 got no status`);
  const refused = results.filter((r) => r.status === GrpcStatus.RESOURCE_EXHAUSTED);
  const tooLarge = results.filter((r) => r.status === GrpcStatus.INVALID_ARGUMENT);
  assert.is(refused.length + tooLarge.length, 200, `every one refused: ${results.map((r) => r.status).join(',')}`);
  assert.ok(refused.length >= 150, `${refused.length} refused as busy`);
  assert.match(refused[0]!.message, /server busy: \d+ bytes of requests are arriving or waiting for their commit and this one can decompress to \d+ \(\d+ bytes of gzip\), over the bound of 67108864 \(--max-inflight-set-mb\); nothing was written, retry later/);
  assert.match(tooLarge[0]!.message, /value is 4189980 bytes; over the value limit of 1048576 bytes/);
  // Compressed calls within the bounds are served, and the server goes on serving.
  const gzClient = srv.client({ channelOptions: { 'grpc.default_compression_algorithm': 2, 'grpc.use_local_subchannel_pool': 1 } });
  const value = pseudoRandomBytes(300_000, 3);
  await gzClient.set('gz', value);
  assert.ok((await gzClient.get('gz'))?.equals(value));
  assert.is((await c.get('small'))?.toString(), 'x');
  assert.is((await c.stat()).keys, 2);
}

mem('a client that opens streams without end (11,000 calls that never finish their request, by default): past --max-open-calls new ones get RESOURCE_EXHAUSTED naming it; once they go, calls are served', () => onServer(['--cache-mb', '4'], manyStreams));

async function manyStreams(srv: ServerHandle): Promise<void> {
  const c = srv.client();
  await c.set('small', 'x');
  // Each open call costs the server about 10 KB, and HTTP/2 bounds nothing by default: without a
  // bound 100,000 such calls on one connection would hold a gigabyte (20,000: RSS +183 MiB).
  const request = grpcFrame(GetRequest.encode({ key: Buffer.from('small') }).finish());
  const conns = Array.from({ length: 2 }, () => {
    const s = http2.connect(`http://${srv.address}`);
    s.on('error', () => undefined);
    return s;
  });
  const statuses: Array<{ status?: number; message: string }> = [];
  for (let i = 0; i < 11_000; i++) {
    const { req, got } = openCall(conns[i % 2]!, 'Get');
    statuses.push(got);
    req.write(request); // and never ended: the call stays open, waiting for the end of its request
  }
  try {
    const answered = () => statuses.filter((s) => s.status !== undefined).length;
    assert.ok(await eventually(() => answered() >= 1000, 30_000, 50), `the calls over the bound are refused (${answered()} answered)`);
    await sleep(300);
    const refused = statuses.filter((s) => s.status === GrpcStatus.RESOURCE_EXHAUSTED);
    assert.is(refused.length, 1000, `${refused.length} of 11,000 refused`);
    assert.is(answered(), 1000, 'the others are still open');
    assert.match(refused[0]!.message, /server busy: 10000 calls are open, the most it serves at once \(--max-open-calls 10000\); nothing was done, retry later/);
    await expectGrpcError(c.get('small'), GrpcStatus.RESOURCE_EXHAUSTED, /--max-open-calls/);
    await expectGrpcError(c.set('refused', 'x'), GrpcStatus.RESOURCE_EXHAUSTED, /--max-open-calls/);
  } finally {
    for (const s of conns) s.destroy();
  }
  let last: unknown;
  assert.ok(await eventually(async () => {
    try { return (await c.get('small'))?.toString() === 'x'; } catch (e) { last = e; return false; }
  }, 10_000, 100), `calls are served again (last error: ${String((last as Error)?.message)})`);
  await c.set('after', 'ok');
  const st = await c.stat();
  assert.is(st.keys, 2);
  assert.is(st.failedSets, 1, 'the Set refused past --max-open-calls counts as failed, as any refused Set');
}


mem('uploads that stop sending: after --stream-stall-ms of nothing they end with ABORTED naming it, and what they held goes back (a large Set is served again while their connection stays open)', async () => {
  const srv = await startServer({ args: ['--max-value-bytes', '2MiB', '--max-inflight-set-mb', '4', '--stream-stall-ms', '1500'] });
  const conn = http2.connect(`http://${srv.address}`);
  conn.on('error', () => undefined);
  try {
    const c = srv.client();
    // Four Sets that send 1.9 MB of their 2 MB message and then nothing, on a connection that stays
    // open: the two that fit hold 3.8 MB of the 4 MiB bound, so a large Set from anyone else is refused.
    const statuses = Array.from({ length: 4 }, () => {
      const { req, got } = openCall(conn, 'Set');
      req.write(grpcFrame(Buffer.alloc(1_900_000, 0x62), { declaredLength: 2_000_000 }));
      return got;
    });
    assert.ok(await eventually(() => statuses.filter((s) => s.status === GrpcStatus.RESOURCE_EXHAUSTED).length === 2, 10_000, 20), `the two uploads past the bound are refused: ${JSON.stringify(statuses)}`);
    await sleep(500); // the two held ones finish sending their 1.9 MB (over loopback)
    await expectGrpcError(c.set('large', pseudoRandomBytes(1_000_000, 3)), GrpcStatus.RESOURCE_EXHAUSTED, /--max-inflight-set-mb/);
    // The ones still held end once they have sent nothing for the stall time.
    assert.ok(await eventually(() => statuses.every((s) => s.status !== undefined), 10_000, 50), `every stalled upload is ended: ${JSON.stringify(statuses)}`);
    const aborted = statuses.filter((s) => s.status === GrpcStatus.ABORTED);
    assert.ok(aborted.length >= 1, JSON.stringify(statuses));
    assert.match(aborted[0]!.message, /sent nothing of its request for 1500 ms \(--stream-stall-ms\), so the server ended the call; nothing of it was done/);
    assert.not.ok(conn.closed || conn.destroyed, 'their connection is still open');
    await c.set('large', pseudoRandomBytes(1_000_000, 3));
    assert.ok((await c.get('large'))?.equals(pseudoRandomBytes(1_000_000, 3)));
    const st = await c.stat();
    assert.is(st.keys, 1, 'nothing of the stalled uploads was stored');
    // Refused before their handler ran, as those refused from their length prefix are: the two
    // uploads refused as busy, the two ended as stalled, and the grpc-js client's refused Set.
    assert.is(st.failedSets, 5, 'every refused Set counts as failed');
    conn.destroy();
    assert.is(await srv.stop(), 0);
  } finally {
    conn.destroy();
    await srv.kill9();
  }
});

mem('Get answers nobody reads: after --stream-stall-ms of nothing taken they are reset and their share of --max-inflight-get-mb goes back while their connections stay open; a slow reader that keeps reading gets its whole value', async () => {
  const srv = await startServer({ args: ['--max-value-bytes', '1MiB', '--max-inflight-get-mb', '8', '--stream-stall-ms', '1500'] });
  const value = pseudoRandomBytes(MiB, 4);
  const c = srv.client();
  await c.set('big', value);
  // 20 Gets of the 1 MiB value whose answers nobody reads: 8 of them take the bound.
  const flood = nonReaders(srv.address, 'Get', GetRequest.encode({ key: Buffer.from('big') }).finish(), 20, 2);
  const slow = http2.connect(`http://${srv.address}`, { settings: { initialWindowSize: 65535 } });
  slow.on('error', () => undefined);
  try {
    assert.ok(await eventually(() => flood.statuses.filter((s) => s.status === GrpcStatus.RESOURCE_EXHAUSTED).length >= 10, 10_000, 20), `the bound is taken: ${JSON.stringify(flood.statuses)}`);
    await expectGrpcError(c.get('big'), GrpcStatus.RESOURCE_EXHAUSTED, /--max-inflight-get-mb/);
    // The unread answers are reset after the stall time, and the bound is free again.
    let last: unknown;
    assert.ok(await eventually(async () => {
      try { return (await c.get('big'))?.equals(value) === true; } catch (e) { last = e; return false; }
    }, 10_000, 100), `a Get is served again while the non-readers stay connected (last error: ${String((last as Error)?.message)})`);
    // A reader that takes one DATA frame (16 KiB) every 100 ms: about 6 s for the value, a 64 KiB
    // slice every 0.4 s, well within the stall time: it is not taken for a stalled one.
    const { req, got } = openCall(slow, 'Get');
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => { chunks.push(d); req.pause(); });
    const ended = new Promise<void>((r) => req.on('close', () => r()));
    req.end(grpcFrame(GetRequest.encode({ key: Buffer.from('big') }).finish()));
    const pacer = setInterval(() => req.resume(), 100);
    await ended;
    clearInterval(pacer);
    assert.is(got.status, 0, `the slow reader got OK: ${JSON.stringify(got)}`);
    const body = Buffer.concat(chunks);
    assert.ok(body.length > MiB && body.subarray(body.length - MiB).equals(value), `the slow reader got the whole value (${body.length} bytes)`);
    flood.close();
    slow.destroy();
    assert.is(await srv.stop(), 0);
  } finally {
    flood.close();
    slow.destroy();
    await srv.kill9();
  }
});

mem('a request grpc-js answered before its handler ran (a Stat declaring 1 GiB) whose client goes on sending: what it sends after its answer is not counted against --max-inflight-set-mb (nobody holds it), and its stream is told to stop', async () => {
  const srv = await startServer({ args: ['--max-value-bytes', '1MiB', '--max-inflight-set-mb', '4', '--stream-stall-ms', '60000'] });
  const conn = http2.connect(`http://${srv.address}`);
  conn.on('error', () => undefined);
  try {
    const c = srv.client();
    // grpc-js refuses it from its length prefix (RESOURCE_EXHAUSTED, larger than its receive limit)
    // and drops the rest; the client sends 16 MiB more, bounded, unless its stream is closed first.
    const { req, got } = openCall(conn, 'Stat');
    req.write(grpcFrame(Buffer.alloc(0), { declaredLength: 1 << 30 }));
    const chunk = Buffer.alloc(64 * 1024);
    let sent = 0;
    const sending = (async () => {
      while (sent < 16 * MiB && !req.closed && !req.destroyed) {
        if (!req.write(chunk)) await Promise.race([new Promise((r) => req.once('drain', r)), new Promise((r) => req.once('close', r)), sleep(2000)]);
        sent += chunk.length;
      }
    })();
    await Promise.race([sending, sleep(10_000)]);
    assert.is(got.status, GrpcStatus.RESOURCE_EXHAUSTED, JSON.stringify(got));
    // Without the fix: 'server busy: 16777221 bytes of requests are arriving ...' (bytes grpc-js dropped).
    await c.set('large', pseudoRandomBytes(1_000_000, 5));
    assert.ok(await eventually(() => req.closed || req.destroyed, 5000, 20), `the stream is closed (sent ${sent} bytes)`);
    assert.ok(sent < 16 * MiB, `the client was told to stop: it sent ${sent} bytes`);
    conn.destroy();
    assert.is(await srv.stop(), 0);
  } finally {
    conn.destroy();
    await srv.kill9();
  }
});

mem.run();

// Item 7 of issue 4: bad input. Malformed protobuf sent raw to each method, malformed gRPC framing on a
// bare HTTP/2 session, wrong field types, huge keys, values just over the limit, a client that opens
// 1,000 streams and vanishes, a slow reader of a large GetPrefix result. The server must answer with
// clear errors, keep serving others and lose nothing. Short version (the slow reader reads ~200 MiB;
// the torture runner reads 1 GiB).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GrpcStatus, KvClient, isServiceError, statusName } from '../../lib/client';
import { startServer, type ServerHandle } from '../support/server';
import { grpcFrame, SERVICE } from '../support/raw-grpc';
import { loadValues, rawHttp2, RawClient, slowReader, streamsRssLimit, vanishingStreams } from './abuse';
import { decodeValue, encodeValue, mib, processAlive, Rng, seedFromEnv } from './support';

const MAX_VALUE = 1024 * 1024;
const SLOW_MIB = Number(process.env.LBKV_SLOW_READER_MIB ?? 200);
const seed = seedFromEnv();
const { INVALID_ARGUMENT, INTERNAL, UNIMPLEMENTED, OK } = GrpcStatus;

let server: ServerHandle;
let cl: KvClient;
const baseline: Buffer[] = [];

async function healthy(what: string): Promise<void> {
  assert.ok(processAlive(server.pid), `server died after ${what}`);
  const k = Buffer.from('bad/health');
  const v = encodeValue(k, Date.now() % 1e9, 0, 200);
  await cl.set(k, v);
  assert.ok((await cl.get(k))?.equals(v), `server does not serve correctly after ${what}`);
}

async function baselineIntact(what: string): Promise<void> {
  for (const key of baseline) {
    const v = await cl.get(key);
    assert.ok(v, `${what}: baseline key ${key} lost`);
    assert.ok(decodeValue(v!).key.equals(key), `${what}: baseline key ${key} damaged`);
  }
}

test.before(async () => {
  console.log(`  seed ${seed}`);
  server = await startServer({ args: ['--max-value-bytes', String(MAX_VALUE), '--cache-mb', '32'] });
  cl = new KvClient(server.address);
  for (let i = 0; i < 50; i++) {
    const key = Buffer.from(`base/${String(i).padStart(3, '0')}`);
    await cl.set(key, encodeValue(key, 1, 0, 100 + i * 997));
    baseline.push(key);
  }
});

test.after(async () => {
  cl?.close();
  await server?.stop('SIGTERM');
});

test('malformed protobuf sent raw to each method: clear error, server keeps serving', async () => {
  const raw = new RawClient(server.address);
  const rng = new Rng(seed);
  const malformed: [string, Buffer][] = [
    ['truncated length-delimited field', Buffer.from([0x0a, 0x05, 0x61])],
    ['field with invalid wire type 7', Buffer.from([0x0f, 0x01])],
    ['field with invalid wire type 6', Buffer.from([0x0e])],
    ['varint longer than 10 bytes', Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])],
    ['length prefix of 4 GiB', Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x41])],
  ];
  // Technically invalid, but protobuf decoders (ours is ts-proto's) skip them as unknown fields; for
  // GetPrefix the request then means "empty prefix", a valid request. Any answer but a crash or hang.
  const lenient: [string, Buffer][] = [
    ['field number 0', Buffer.from([0x02, 0x01, 0x41])],
    ['end-group without start-group', Buffer.from([0x0c])],
  ];
  let n = 0;
  const codes = new Map<string, number>();
  for (const method of ['Set', 'Get', 'GetPrefix', 'Stat']) {
    for (const [what, body] of malformed) {
      const r = method === 'GetPrefix' ? await raw.stream(method, body) : await raw.unary(method, body);
      // Stat's request has no fields: decoders may legitimately skip some of these as unknown fields.
      if (!(method === 'Stat' && r.code === OK)) {
        assert.ok(r.code === INVALID_ARGUMENT || r.code === INTERNAL, `${method} with ${what}: got ${statusName(r.code)} "${r.details}"`);
        assert.ok(r.details.length > 0, `${method} with ${what}: error without a message`);
      }
      codes.set(`${statusName(r.code)}: ${r.details}`, (codes.get(`${statusName(r.code)}: ${r.details}`) ?? 0) + 1);
      n++;
    }
    for (const [what, body] of lenient) {
      const r = method === 'GetPrefix' ? await raw.stream(method, body, 5000) : await raw.unary(method, body, 5000);
      assert.ok(r.code !== GrpcStatus.DEADLINE_EXCEEDED, `${method} with ${what} hung`);
      n++;
    }
    // Random garbage: any answer is acceptable except a crash or a hang.
    for (let i = 0; i < 25; i++) {
      const body = Buffer.alloc(rng.int(1, 300));
      for (let j = 0; j < body.length; j++) body[j] = rng.int(0, 255);
      const r = method === 'GetPrefix' ? await raw.stream(method, body, 5000) : await raw.unary(method, body, 5000);
      assert.ok(r.code !== GrpcStatus.DEADLINE_EXCEEDED, `${method} with random garbage hung`);
      n++;
    }
    await healthy(`malformed ${method} requests`);
  }
  raw.close();
  console.log(`  ${n} malformed requests; answers: ${[...codes].map(([k, v]) => `${v}x ${k}`).join('; ')}`);
  await baselineIntact('after malformed requests');
});

test('wrong field types: key sent as varint / fixed64, limit sent as bytes, past 2^53 or overlong', async () => {
  const raw = new RawClient(server.address);
  const cases: [string, string, Buffer, number[]][] = [
    ['Set', 'key as varint', Buffer.from([0x08, 0x01, 0x12, 0x01, 0x41]), [INVALID_ARGUMENT]],
    ['Set', 'value as varint, key ok', Buffer.from([0x0a, 0x03, 0x62, 0x61, 0x64, 0x10, 0x05]), [OK, INVALID_ARGUMENT]],
    ['Get', 'key as fixed64', Buffer.from([0x09, 1, 2, 3, 4, 5, 6, 7, 8]), [INVALID_ARGUMENT]],
    ['Get', 'key as fixed32', Buffer.from([0x0d, 1, 2, 3, 4]), [INVALID_ARGUMENT]],
    ['GetPrefix', 'limit as bytes', Buffer.from([0x0a, 0x05, 0x62, 0x61, 0x73, 0x65, 0x2f, 0x12, 0x01, 0x41]), [OK, INVALID_ARGUMENT]],
    // 2^64-1 is a valid uint64 and reads as no limit (lib/codec.ts); a varint of 11 bytes is no uint64.
    ['GetPrefix', 'limit 2^64-1', Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), [OK]],
    ['GetPrefix', 'limit as an 11-byte varint', Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), [INVALID_ARGUMENT, INTERNAL]],
    ['GetPrefix', 'prefix as varint', Buffer.from([0x08, 0x07]), [OK, INVALID_ARGUMENT]],
  ];
  for (const [method, what, body, allowed] of cases) {
    const r = method === 'GetPrefix' ? await raw.stream(method, body) : await raw.unary(method, body);
    console.log(`  ${method} ${what}: ${statusName(r.code)}${r.details ? ` "${r.details}"` : ''}`);
    assert.ok(allowed.includes(r.code), `${method} ${what}: got ${statusName(r.code)} "${r.details}", expected ${allowed.map(statusName).join('/')}`);
    if (r.code !== OK) assert.ok(r.details.length > 0, 'error has a message');
  }
  raw.close();
  await healthy('wrong types');
  await baselineIntact('after wrong types');
});

test('malformed gRPC framing on a bare HTTP/2 session', async () => {
  const msg = Buffer.from([0x0a, 0x03, 0x61, 0x62, 0x63]); // GetRequest{key:"abc"}
  // strict: must get an error status. Lenient ones are grpc-js transport behaviour (it ignores the
  // compressed flag without an encoding, for instance): any answer but a hang, and the server lives.
  const cases: [string, Parameters<typeof rawHttp2>[1], boolean][] = [
    ['frame declares 1000 bytes, sends 5', { path: `${SERVICE}/Get`, frame: grpcFrame(msg, { declaredLength: 1000 }) }, true],
    ['compressed flag without grpc-encoding', { path: `${SERVICE}/Get`, frame: grpcFrame(msg, { compressed: true }) }, false],
    ['compressed with an unknown encoding', { path: `${SERVICE}/Get`, frame: grpcFrame(msg, { compressed: true }), headers: { 'grpc-encoding': 'lbkv-bogus' } }, true],
    ['two messages to a unary method', { path: `${SERVICE}/Get`, frame: Buffer.concat([grpcFrame(msg), grpcFrame(msg)]) }, false],
    ['no message at all', { path: `${SERVICE}/Get`, frame: Buffer.alloc(0) }, true],
    ['half a frame header', { path: `${SERVICE}/Set`, frame: Buffer.from([0, 0, 0]) }, true],
    ['frame declares 3 GiB', { path: `${SERVICE}/Set`, frame: grpcFrame(msg, { declaredLength: 3 * 1024 * 1024 * 1024 }) }, true],
    ['unknown method', { path: `${SERVICE}/Delete`, frame: grpcFrame(msg) }, true],
    ['unknown service', { path: '/nope.Nope/Get', frame: grpcFrame(msg) }, true],
    ['wrong content-type', { path: `${SERVICE}/Get`, frame: grpcFrame(msg), headers: { 'content-type': 'text/plain' } }, true],
  ];
  for (const [what, o, strict] of cases) {
    const r = await rawHttp2(server.address, o);
    console.log(`  ${what}: http ${r.http ?? '-'} grpc-status ${r.grpcStatus === undefined ? '-' : statusName(r.grpcStatus)}${r.grpcMessage ? ` "${r.grpcMessage}"` : ''}${r.error ? ` (${r.error})` : ''}`);
    assert.not.equal(r.error, 'timeout', `${what}: no answer within 10 s`);
    if (strict) {
      assert.ok((r.grpcStatus !== undefined && r.grpcStatus !== OK) || (r.http !== undefined && r.http >= 400) || r.error !== undefined,
        `${what}: expected an error status, got http ${r.http} grpc ${r.grpcStatus}`);
    }
    if (what.startsWith('unknown')) assert.is(r.grpcStatus, UNIMPLEMENTED, `${what} answers UNIMPLEMENTED`);
    assert.ok(processAlive(server.pid), `server died after: ${what}`);
  }
  await healthy('malformed framing');
});

test('huge keys and values just over the limit', async () => {
  const expect = async (what: string, p: Promise<unknown>, codes: number[]) => {
    try { await p; assert.unreachable(`${what} succeeded`); } catch (e) {
      if (!isServiceError(e)) throw e;
      console.log(`  ${what}: ${statusName(e.code)} "${e.details}"`);
      assert.ok(codes.includes(e.code), `${what}: got ${statusName(e.code)}`);
      assert.ok(e.details.length > 0);
    }
  };
  const k1024 = Buffer.alloc(1024, 0x6b);
  await cl.set(k1024, Buffer.from('at the key limit'));
  assert.equal((await cl.get(k1024))?.toString(), 'at the key limit');
  await expect('Set with a 1,025-byte key', cl.set(Buffer.alloc(1025, 0x6b), Buffer.from('x')), [INVALID_ARGUMENT]);
  await expect('Get with a 1,025-byte key', cl.get(Buffer.alloc(1025, 0x6b)), [INVALID_ARGUMENT]);
  await expect('Set with a 1 MiB key', cl.set(Buffer.alloc(1024 * 1024, 0x6b), Buffer.from('x')), [INVALID_ARGUMENT]);
  await expect('Get with an 8 MiB key', cl.get(Buffer.alloc(8 * 1024 * 1024, 0x6b)), [INVALID_ARGUMENT]);
  await expect('GetPrefix with a 1,025-byte prefix', cl.getPrefixAll(Buffer.alloc(1025, 0x6b)), [INVALID_ARGUMENT]);
  await expect('Set with an empty key', cl.set(Buffer.alloc(0), Buffer.from('x')), [INVALID_ARGUMENT]);
  const key = Buffer.from('bad/limit');
  await cl.set(key, Buffer.alloc(MAX_VALUE, 1));
  assert.is((await cl.get(key))?.length, MAX_VALUE, 'value of exactly the limit is stored');
  await expect(`Set with a value of limit+1 (${MAX_VALUE + 1} bytes)`, cl.set(key, Buffer.alloc(MAX_VALUE + 1, 2)), [INVALID_ARGUMENT]);
  await expect('Set with a 24 MiB value', cl.set(key, Buffer.alloc(24 * 1024 * 1024, 3)), [INVALID_ARGUMENT]);
  const still = await cl.get(key);
  assert.ok(still && still.length === MAX_VALUE && still[0] === 1, 'rejected sets did not change the stored value');
  await healthy('huge keys and values');
  await baselineIntact('after huge keys and values');
});

test('a client opens 1,000 streams and vanishes (SIGKILL): others served, snapshots released', async () => {
  await loadValues(server.address, 'mid/', 40, 256 * 1024, 4);
  const r = await vanishingStreams(server.address, server.pid, 'mid/', 1000, (l) => console.log(l));
  console.log(`VANISH streams=${r.opened} first-messages=${r.firstMessages} open-snapshots-during=${r.openSnapshotsDuring} after=${r.openSnapshotsAfter} released-in=${r.releasedMs.toFixed(0)}ms server-rss-before=${mib(r.rssBefore)} server-peak-rss=${mib(r.peakRss)} rss-after=${mib(r.rssAfter)} other-client ok=${r.othersOk} failed=${r.othersFailed} slowest=${r.othersMaxMs.toFixed(0)}ms`);
  assert.is(r.opened, 1000, 'the client opened 1,000 streams');
  assert.is(r.othersFailed, 0, 'the other client was served throughout');
  assert.ok(r.othersOk > 0, 'the other client made progress');
  assert.is(r.openSnapshotsAfter, 0, 'every snapshot released after the client vanished');
  // 1,000 stalled streams must not buffer a result, nor even a message, each.
  const limit = streamsRssLimit(r.rssBefore, 1000, 32);
  assert.ok(r.peakRss < limit.bytes, `server peak RSS ${mib(r.peakRss)} with 1,000 stalled streams exceeds ${limit.formula}`);
  await healthy('1,000 vanished streams');
  await baselineIntact('after 1,000 vanished streams');
});

test(`slow reader of a ${SLOW_MIB} MiB GetPrefix result: server RSS under cache + 200 MiB, others served`, async () => {
  const r = await slowReader({ totalMiB: SLOW_MIB, cacheMB: 32, rateMiBps: 40, log: (l) => console.log(l) });
  console.log(`SLOWREADER bytes=${mib(r.totalBytes)} entries=${r.entries} read-s=${(r.readMs / 1000).toFixed(1)} peak-rss=${mib(r.peakRss)} limit=${mib(r.limitBytes)} bad-values=${r.badValues} other-client ok=${r.othersOk} failed=${r.othersFailed}`);
  assert.is(r.entries, SLOW_MIB, 'every entry streamed');
  assert.is(r.badValues, 0, 'every streamed value intact');
  assert.ok(r.peakRss > 0 && r.peakRss < r.limitBytes, `server peak RSS ${mib(r.peakRss)} within ${mib(r.limitBytes)}`);
  assert.is(r.othersFailed, 0, 'the other client was served');
  assert.ok(r.othersOk > 0, 'the other client made progress');
});

test.run();


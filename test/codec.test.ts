// The service's hand-written response encoders against the generated protobuf decoder: the bytes a
// client receives must decode to the message the handler produced, whichever encoder path ran.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeGetPrefixRequest, decodeGetRequest, decodeSetRequest, encodeGetResponse, encodeSetRequest, framedValueBuffer, ServerKeyValueStoreService, setValueBuffer } from '../lib/codec';
import { GetPrefixRequest, GetRequest, GetResponse, KeyValueStoreClient, SetRequest } from '../generated/kv';
import { KvClient } from '../lib/client';
import { startServer } from './support/server';

const pattern = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 13 + 5) & 0xff));

test('a value read into framedValueBuffer() is sent without a copy, as the same bytes as a plain value', () => {
  for (const n of [1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 5 * 1024 * 1024 + 3]) {
    const value = framedValueBuffer(n);
    pattern(n).copy(value);
    const framedBytes = encodeGetResponse({ found: true, value });
    assert.ok(framedBytes.buffer === value.buffer && framedBytes.byteOffset + framedBytes.length === value.byteOffset + n, `n=${n}: the message is the value's own buffer`);
    const plainBytes = encodeGetResponse({ found: true, value: Buffer.from(value) });
    assert.ok(framedBytes.equals(plainBytes), `n=${n}: same bytes on the wire`);
    const back = GetResponse.decode(framedBytes);
    assert.is(back.found, true);
    assert.ok(Buffer.from(back.value).equals(pattern(n)), `n=${n}: decodes to the value`);
  }
});

test('not found and empty values encode as before', () => {
  assert.is(encodeGetResponse({ found: false, value: Buffer.alloc(0) }).length, 0);
  const empty = GetResponse.decode(encodeGetResponse({ found: true, value: Buffer.alloc(0) }));
  assert.is(empty.found, true);
  assert.is(empty.value.length, 0);
});

test('GetPrefixRequest: the hand decoder reads what the generated one reads, and a limit past 2^53 as no limit', () => {
  for (const prefix of [Buffer.alloc(0), Buffer.from('a'), Buffer.alloc(300, 0xff)]) {
    for (const limit of [0, 1, 127, 128, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
      const bytes = Buffer.from(GetPrefixRequest.encode({ prefix, limit }).finish());
      assert.equal(decodeGetPrefixRequest(bytes), GetPrefixRequest.decode(bytes), `prefix ${prefix.length} B, limit ${limit}`);
    }
  }
  // Unknown fields are skipped, as the generated decoder skips them: field 7 varint, field 9 bytes.
  const known = Buffer.from(GetPrefixRequest.encode({ prefix: Buffer.from('p/'), limit: 5 }).finish());
  const withUnknown = Buffer.concat([Buffer.from([0x38, 0x96, 0x01, 0x4a, 0x02, 0x61, 0x62]), known]);
  assert.equal(decodeGetPrefixRequest(withUnknown), { prefix: Buffer.from('p/'), limit: 5 });
  // limit 2^64-1 (ten-byte varint): the generated decoder throws; ours reads "no limit".
  const huge = Buffer.from([0x0a, 0x01, 0x61, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  assert.throws(() => GetPrefixRequest.decode(huge), /MAX_SAFE_INTEGER/);
  assert.equal(decodeGetPrefixRequest(huge), { prefix: Buffer.from('a'), limit: Number.MAX_SAFE_INTEGER });
  assert.throws(() => decodeGetPrefixRequest(Buffer.from([0x0a, 0x09, 0x61])), 'a truncated field is still an error');
});

// Sizes at the varint boundaries of the length prefixes (1, 2 and 3 bytes), and a few MiB.
const SIZES = [0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 3 * 1024 * 1024 + 5];
const KEY_SIZES = [0, 1, 127, 128, 1024];

test('encodeSetRequest (the client\'s Set encoder) gives the bytes the generated encoder gives, for keys and values at the varint boundaries', () => {
  for (const k of KEY_SIZES) {
    for (const n of SIZES) {
      const m = { key: pattern(k).reverse(), value: pattern(n) };
      const ours = encodeSetRequest(m);
      const generated = Buffer.from(SetRequest.encode(m).finish());
      assert.ok(ours.equals(generated), `key ${k} B, value ${n} B: same bytes as ts-proto (${ours.length} vs ${generated.length})`);
      const back = SetRequest.decode(ours);
      assert.ok(Buffer.from(back.key).equals(m.key) && Buffer.from(back.value).equals(m.value), `key ${k} B, value ${n} B: decodes back`);
    }
  }
  // A Uint8Array that is not a Buffer (a caller of the raw stub), and a view into a larger buffer.
  const big = pattern(300);
  const m = { key: new Uint8Array(big.buffer, big.byteOffset + 10, 20) as Buffer, value: big.subarray(100, 250) };
  assert.ok(encodeSetRequest(m).equals(Buffer.from(SetRequest.encode(m).finish())), 'a Uint8Array key and a subarray value');
});

test('a value read into setValueBuffer() is sent without a copy, as the bytes the generated encoder gives; another key length or a subarray is copied', () => {
  for (const k of KEY_SIZES) {
    for (const n of SIZES.filter((n) => n > 0)) {
      const key = pattern(k).reverse();
      const value = setValueBuffer(k, n);
      pattern(n).copy(value);
      const ours = encodeSetRequest({ key, value });
      assert.ok(ours.buffer === value.buffer && ours.byteOffset + ours.length === value.byteOffset + n, `key ${k} B, value ${n} B: the message is the value's own buffer`);
      assert.ok(ours.equals(Buffer.from(SetRequest.encode({ key, value }).finish())), `key ${k} B, value ${n} B: same bytes as ts-proto`);
      // Encoded again (another Set of the same value, while grpc-js may still hold the first message
      // unframed, or keep it for a retry): a copy, and the first message still names its own key.
      const other = pattern(k).fill(0xee);
      const second = encodeSetRequest({ key: other, value });
      assert.ok(second.equals(Buffer.from(SetRequest.encode({ key: other, value }).finish())), `key ${k} B, value ${n} B: a second key`);
      assert.ok(ours.equals(Buffer.from(SetRequest.encode({ key, value }).finish())), `key ${k} B, value ${n} B: the first message unchanged by a second Set of its value`);
    }
  }
  const value = setValueBuffer(5, 300);
  pattern(300).copy(value);
  for (const m of [{ key: pattern(6), value }, { key: pattern(5), value: value.subarray(1) }, { key: pattern(0), value }]) {
    const ours = encodeSetRequest(m);
    assert.not.ok(ours.buffer === value.buffer && ours.byteOffset + ours.length === value.byteOffset + value.length, `key ${m.key.length} B, value ${m.value.length} B: copied`);
    assert.ok(ours.equals(Buffer.from(SetRequest.encode(m).finish())), `key ${m.key.length} B, value ${m.value.length} B: same bytes as ts-proto`);
  }
});

test('Set and Get requests: the server\'s decoders read what the generated ones read, as views of the request buffer, not copies', () => {
  // What the server registers: these decoders (a view comes back), wrapped to turn errors into INVALID_ARGUMENT.
  const wired = Buffer.from(SetRequest.encode({ key: Buffer.from('key'), value: pattern(5000) }).finish());
  assert.ok((ServerKeyValueStoreService.set.requestDeserialize(wired) as SetRequest).value.buffer === wired.buffer, 'the server\'s Set decoder gives a view');
  assert.ok((ServerKeyValueStoreService.get.requestDeserialize(wired) as GetRequest).key.buffer === wired.buffer, 'the server\'s Get decoder gives a view');
  const same = (bytes: Buffer, what: string) => {
    const set = decodeSetRequest(bytes);
    const gen = SetRequest.decode(bytes);
    assert.ok(set.key.equals(gen.key) && set.value.equals(gen.value), `${what}: SetRequest as the generated decoder reads it`);
    assert.ok(decodeGetRequest(bytes).key.equals(GetRequest.decode(bytes).key), `${what}: GetRequest as the generated decoder reads it`);
    for (const [name, b] of [['key', set.key], ['value', set.value]] as const) {
      if (b.length > 0) assert.ok(b.buffer === bytes.buffer && b.byteOffset >= bytes.byteOffset && b.byteOffset + b.length <= bytes.byteOffset + bytes.length, `${what}: the ${name} is a view of the request`);
    }
  };
  for (const k of KEY_SIZES) {
    for (const n of SIZES) same(Buffer.from(SetRequest.encode({ key: pattern(k), value: pattern(n).reverse() }).finish()), `key ${k} B, value ${n} B`);
  }
  const kv = Buffer.from(SetRequest.encode({ key: Buffer.from('k'), value: Buffer.from('v') }).finish());
  // An unknown varint field 3, an unknown bytes field 9, field 1 as a varint (another wire type: skipped).
  same(Buffer.concat([Buffer.from([0x18, 0x96, 0x01, 0x4a, 0x02, 0x61, 0x62, 0x08, 0x05]), kv]), 'unknown fields and a wire type mismatch');
  // A field given twice: the last wins.
  same(Buffer.concat([kv, Buffer.from([0x0a, 0x02, 0x6b, 0x32, 0x12, 0x00])]), 'repeated fields');
  same(Buffer.alloc(0), 'an empty message');
  // Inside a larger buffer (grpc-js may hand over a view), and truncated: an error, as generated.
  const inside = Buffer.concat([Buffer.from('xx'), kv, Buffer.from('yy')]).subarray(2, 2 + kv.length);
  same(inside, 'a view into a larger buffer');
  assert.throws(() => SetRequest.decode(kv.subarray(0, kv.length - 1)));
  assert.throws(() => decodeSetRequest(kv.subarray(0, kv.length - 1)), 'a truncated field is an error');
});

test('KvClient sends Sets through encodeSetRequest, and they round-trip through a real server', async () => {
  const srv = await startServer({ args: ['--max-value-bytes', '4MiB'] });
  const c = new KvClient(srv.address);
  try {
    const stub = c.raw.constructor as typeof KeyValueStoreClient;
    assert.is(stub.service.set.requestSerialize, encodeSetRequest, 'the client\'s Set serializer is encodeSetRequest');
    for (const k of KEY_SIZES.filter((k) => k > 0)) {
      for (const n of SIZES) {
        const key = Buffer.concat([Buffer.from(`k${k}-v${n}-`), pattern(k)]).subarray(0, Math.max(k, 12));
        await c.set(key, pattern(n));
        const got = await c.get(key);
        assert.ok(got !== undefined && got.equals(pattern(n)), `key ${key.length} B, value ${n} B: Get returns what Set sent`);
        if (n === 0) continue;
        const framedKey = Buffer.concat([Buffer.from('f'), key.subarray(1)]);
        const framed = setValueBuffer(framedKey.length, n);
        pattern(n).reverse().copy(framed);
        await c.set(framedKey, framed);
        const gotFramed = await c.get(framedKey);
        assert.ok(gotFramed !== undefined && gotFramed.equals(pattern(n).reverse()), `key ${key.length} B, value ${n} B from setValueBuffer: Get returns what Set sent`);
      }
    }
    assert.is((await c.stat()).keys, KEY_SIZES.filter((k) => k > 0).length * (2 * SIZES.length - 1));
    // One setValueBuffer() value for two keys of the same length at once: each key gets it.
    const shared = setValueBuffer(6, 1000);
    pattern(1000).copy(shared);
    await Promise.all([c.set('both/1', shared), c.set('both/2', shared)]);
    for (const key of ['both/1', 'both/2']) assert.ok((await c.get(key))?.equals(pattern(1000)), `${key}: stored by the Set that shared its value`);
  } finally {
    c.close();
    await srv.stop();
  }
});

test.run();

// The service's hand-written response encoders against the generated protobuf decoder: the bytes a
// client receives must decode to the message the handler produced, whichever encoder path ran.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeGetResponse, framedValueBuffer } from '../lib/codec';
import { GetResponse } from '../generated/kv';

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

test.run();

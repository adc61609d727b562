// GrowingSetValue (lib/codec.ts): a value appended in pieces is sent from its own buffer, as the
// bytes the generated encoder gives, whatever its length beside the most it could have been.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SetRequest } from '../generated/kv';
import { encodeSetRequest, GrowingSetValue } from '../lib/codec';
import { pseudoRandomBytes } from './support/client-helpers';

test('appended in uneven pieces, the value is sent from its own buffer as ts-proto encodes it; a second Set copies', () => {
  // Lengths either side of the varint steps (1, 2, 3 bytes), under a maximum whose length needs 3:
  // the header in front of a shorter value is shorter than the room left for it.
  const max = 20_000;
  for (const k of [0, 1, 130]) {
    for (const n of [1, 127, 128, 16_383, 16_384, max]) {
      const key = pseudoRandomBytes(k, k + 1);
      const bytes = pseudoRandomBytes(n, n);
      const g = new GrowingSetValue(k, max);
      for (let at = 0, step = 1; at < n; at += step, step = step * 3 + 1) g.append(bytes.subarray(at, Math.min(n, at + step)));
      assert.is(g.length, n);
      const value = g.value();
      assert.ok(value.equals(bytes), `key ${k} B, value ${n} B: the bytes appended`);
      const ours = encodeSetRequest({ key, value });
      assert.ok(ours.buffer === value.buffer && ours.byteOffset + ours.length === value.byteOffset + n, `key ${k} B, value ${n} B: the message is the value's own buffer`);
      const generated = Buffer.from(SetRequest.encode({ key, value }).finish());
      assert.ok(ours.equals(generated), `key ${k} B, value ${n} B: same bytes as ts-proto`);
      const other = Buffer.alloc(k, 0xee);
      assert.ok(encodeSetRequest({ key: other, value }).equals(Buffer.from(SetRequest.encode({ key: other, value }).finish())), `key ${k} B, value ${n} B: a second Set`);
      assert.ok(ours.equals(generated), `key ${k} B, value ${n} B: the first message unchanged by a second Set of its value`);
    }
  }
});

test('nothing appended: an empty value; past the maximum: a RangeError, the bytes so far kept', () => {
  assert.is(new GrowingSetValue(3, 10).value().length, 0);
  const g = new GrowingSetValue(3, 10);
  g.append(Buffer.from('0123456789'));
  assert.throws(() => g.append(Buffer.from('x')), (e: unknown) => e instanceof RangeError);
  assert.is(g.value().toString(), '0123456789');
});

test.run();

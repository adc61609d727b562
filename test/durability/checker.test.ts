// Self-tests of the durability tests' own tools: the linearizability checker must accept
// linearizable histories and reject known-bad ones, and the value codec must catch tears.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkRegister, type RegOp } from './linearizability';
import { decodeValue, encodeValue, Rng } from './support';

const w = (value: string, invoke: number, ret: number): RegOp => ({ kind: 'write', value, invoke, ret });
const r = (value: string | null, invoke: number, ret: number): RegOp => ({ kind: 'read', value, invoke, ret });

test('checker: sequential history is linearizable', () => {
  const h = [r(null, 0, 1), w('a', 2, 3), r('a', 4, 5), w('b', 6, 7), r('b', 8, 9)];
  assert.ok(checkRegister(h).ok);
});

test('checker: concurrent read may see old or new value', () => {
  assert.ok(checkRegister([w('a', 0, 1), w('b', 2, 10), r('a', 3, 4), r('b', 5, 6), r('b', 11, 12)]).ok);
  assert.ok(checkRegister([w('a', 0, 1), w('b', 2, 10), r('b', 3, 4)]).ok);
});

test('checker: stale read after acknowledged write is rejected', () => {
  const res = checkRegister([w('a', 0, 1), w('b', 2, 3), r('a', 4, 5)]);
  assert.not.ok(res.ok);
  assert.not.ok(res.inconclusive);
});

test('checker: read flipping back to an older value is rejected', () => {
  // b is concurrent with both reads, but once a read saw b, a later read cannot see a again.
  const res = checkRegister([w('a', 0, 1), w('b', 2, 20), r('b', 3, 4), r('a', 5, 6)]);
  assert.not.ok(res.ok);
});

test('checker: value never written is rejected', () => {
  assert.not.ok(checkRegister([w('a', 0, 1), r('z', 2, 3)]).ok);
});

test('checker: write with unknown outcome may or may not apply', () => {
  assert.ok(checkRegister([w('a', 0, 1), w('b', 2, Infinity), r('a', 3, 4)]).ok);
  assert.ok(checkRegister([w('a', 0, 1), w('b', 2, Infinity), r('b', 3, 4)]).ok);
  assert.not.ok(checkRegister([w('a', 0, 1), w('b', 2, Infinity), r('b', 3, 4), r('a', 5, 6)]).ok);
});

test('checker: random sequentially consistent histories of 8 clients pass quickly', () => {
  // Build a true linearizable history: each op takes effect at a random point inside its interval.
  const rng = new Rng(42);
  for (let round = 0; round < 20; round++) {
    const ops: RegOp[] = [];
    const events: { at: number; op: RegOp }[] = [];
    for (let c = 0; c < 8; c++) {
      let t = rng.next();
      for (let k = 0; k < 40; k++) {
        const invoke = t, ret = t + rng.next() * 3, at = invoke + (ret - invoke) * rng.next();
        const op: RegOp = rng.next() < 0.5 ? { kind: 'write', value: `c${c}-${k}`, invoke, ret } : { kind: 'read', value: null, invoke, ret };
        ops.push(op); events.push({ at, op });
        t = ret + rng.next() * 0.5;
      }
    }
    let cur: string | null = null;
    for (const e of events.sort((a, b) => a.at - b.at)) {
      if (e.op.kind === 'write') cur = e.op.value; else e.op.value = cur;
    }
    const res = checkRegister(ops);
    assert.ok(res.ok, `round ${round}: ${res.explanation}`);
  }
});

test('codec: round trip, tear, other-key and truncation detection', () => {
  const key = Buffer.from('k/0001');
  for (const size of [10, 100, 5000, 300_000]) {
    const v = encodeValue(key, 7, 3, size);
    const d = decodeValue(v);
    assert.equal(d.key.toString(), 'k/0001');
    assert.equal(d.version, 7);
    assert.equal(d.writer, 3);
    const torn = Buffer.from(v); torn[Math.floor(torn.length / 2)] ^= 1;
    assert.throws(() => decodeValue(torn));
    assert.throws(() => decodeValue(v.subarray(0, v.length - 1)));
    // A tear that splices two versions of the same key and size is caught by the CRC.
    const v2 = encodeValue(key, 8, 3, size);
    const spliced = Buffer.concat([v.subarray(0, v.length >> 1), v2.subarray(v.length >> 1)]);
    assert.throws(() => decodeValue(spliced));
  }
});

test.run();

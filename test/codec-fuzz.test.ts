// Differential fuzz of lib/codec.ts against the ts-proto code in generated/kv.ts, in-process.
//
// Decoders: random SetRequest / GetRequest / GetPrefixRequest messages encoded by ts-proto, then
// mutated (truncated, bytes flipped, inserted or deleted; unknown fields of wire types 0/1/2/5 and
// groups 3/4, wire types 6/7; known fields repeated or given with another wire type; overlong 10- and
// 11-byte varints in tags, lengths and the limit; lengths past the end; zero tags, field number 0,
// huge field numbers and tags past 32 bits), sometimes as a view into a larger buffer. Every input
// goes through all three hand-written decoders and the matching ts-proto `X.decode`: both must
// succeed with the same bytes (and the same limit, a number: forceLong=number in buf.gen.yaml), or
// both must throw. The server's registered deserializers (lenient) must give an InvalidRequest exactly
// when the hand decoder throws.
//
// Encoders: encodeSetRequest, encodeGetResponse and encodeGetPrefixResponse on random messages (empty,
// long, Uint8Array and subarray fields, setValueBuffer / framedValueBuffer values) must give the bytes
// ts-proto's encoder gives, and decode with ts-proto to the message.
//
// The seed is printed; LBKV_FUZZ_SEED and LBKV_FUZZ_ROUNDS replay or widen a run.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BinaryReader, BinaryWriter } from '@bufbuild/protobuf/wire';
import {
  decodeGetPrefixRequest, decodeGetRequest, decodeSetRequest, encodeGetPrefixResponse, encodeGetResponse, encodeSetRequest,
  framedValueBuffer, invalidRequestReason, ServerKeyValueStoreService, setValueBuffer,
} from '../lib/codec';
import { GetPrefixRequest, GetPrefixResponse, GetRequest, GetResponse, SetRequest } from '../generated/kv';
import { Rng } from './durability/support';

const SEED = Number(process.env.LBKV_FUZZ_SEED ?? Date.now() % 1_000_000);
const ROUNDS = Number(process.env.LBKV_FUZZ_ROUNDS ?? 20_000);
const ENCODER_ROUNDS = Math.max(1, Math.floor(ROUNDS / 6));
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const U64_MAX = (1n << 64n) - 1n;

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

// ---- The one documented difference -------------------------------------------------------------
// lib/codec.ts decodeGetPrefixRequest (and README / commit 2fcd686): a GetPrefix limit past
// Number.MAX_SAFE_INTEGER, a valid uint64 that ts-proto's decoder refuses ("Value is larger than
// Number.MAX_SAFE_INTEGER"), reads as MAX_SAFE_INTEGER (no limit). The reference for GetPrefixRequest
// is therefore ts-proto's own decoder reading through a BinaryReader whose uint64() clamps such a
// value to MAX_SAFE_INTEGER; on every other input it is ts-proto's decoder unchanged.
class ClampingReader extends BinaryReader {
  override uint64(): bigint | string {
    const v = super.uint64();
    return BigInt(v) > MAX_SAFE ? MAX_SAFE : v;
  }
}
const clampedGetPrefixDecode = (b: Uint8Array) => GetPrefixRequest.decode(new ClampingReader(b));

// ---- Wire pieces ---------------------------------------------------------------------------------
/** A varint of `v` (a uint64, or more bits for a bad tag), padded with continuation bytes to at least `minLen` bytes. */
function varint(v: bigint, minLen = 0): Buffer {
  const out: number[] = [];
  do {
    out.push(Number(v & 0x7fn));
    v >>= 7n;
  } while (v > 0n);
  while (out.length < minLen) out.push(0);
  for (let i = 0; i < out.length - 1; i++) out[i]! |= 0x80;
  return Buffer.from(out);
}
const tag = (fieldNo: bigint | number, wt: number, minLen = 0) => varint((BigInt(fieldNo) << 3n) | BigInt(wt), minLen);

function randBytes(rng: Rng, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = rng.int(0, 255);
  return b;
}

/** Lengths: mostly small, the varint boundaries, now and then a few KiB or past 2^14 / 2^21. */
function randLen(rng: Rng): number {
  const r = rng.next();
  if (r < 0.25) return 0;
  if (r < 0.6) return rng.int(1, 20);
  if (r < 0.8) return rng.pick([1, 126, 127, 128, 129, 255, 256, 300, 1024]);
  if (r < 0.97) return rng.int(0, 5000);
  if (r < 0.995) return rng.pick([16_383, 16_384, 70_000]);
  return rng.pick([2_097_151, 2_097_152]);
}

const LIMITS: bigint[] = [0n, 1n, 127n, 128n, 16_383n, 16_384n, 2n ** 31n - 1n, 2n ** 32n - 1n, 2n ** 32n, MAX_SAFE - 1n, MAX_SAFE, MAX_SAFE + 1n, 2n ** 63n - 1n, 2n ** 63n, U64_MAX - 1n, U64_MAX];
function randLimit(rng: Rng): bigint {
  const r = rng.next();
  if (r < 0.5) return rng.pick(LIMITS);
  if (r < 0.8) return BigInt(rng.int(0, 1_000_000));
  if (r < 0.9) return BigInt(Math.floor(rng.next() * Number.MAX_SAFE_INTEGER));
  return (BigInt(rng.int(0, 0xffffffff)) << 32n) | BigInt(rng.int(0, 0xffffffff));
}

/** A uint64 varint as ts-proto's writer writes it (any value up to 2^64-1), or padded to 10 / 11 bytes. */
function limitVarint(rng: Rng, v: bigint): Buffer {
  const r = rng.next();
  if (r < 0.8) return Buffer.from(new BinaryWriter().uint64(v).finish());
  if (r < 0.93) return varint(v, 10); // overlong but valid: 10 bytes at most
  return varint(v, 11); // 11 bytes: invalid
}

type Kind = 'set' | 'get' | 'prefix';

/** A random message of `kind`, as chunks whose concatenation is ts-proto's encoding of it. */
function validChunks(rng: Rng, kind: Kind): Buffer[] {
  const enc = (b: Uint8Array) => Buffer.from(b);
  if (kind === 'prefix') {
    const prefix = randBytes(rng, randLen(rng));
    const limit = randLimit(rng);
    const chunks: Buffer[] = [];
    if (limit <= MAX_SAFE) {
      chunks.push(enc(GetPrefixRequest.encode({ prefix, limit: Number(limit) }).finish()));
    } else {
      // ts-proto's encoder takes a number; past 2^53 write the field with its writer directly.
      chunks.push(enc(GetPrefixRequest.encode({ prefix, limit: 0 }).finish()));
      chunks.push(enc(new BinaryWriter().uint32(16).uint64(limit).finish()));
    }
    return chunks;
  }
  const key = randBytes(rng, randLen(rng));
  if (kind === 'get') return [enc(GetRequest.encode({ key }).finish())];
  const value = randBytes(rng, randLen(rng));
  // Field by field (each one ts-proto's encoding of a message with that field alone), or whole.
  if (rng.next() < 0.5) return [enc(SetRequest.encode({ key, value }).finish())];
  return [enc(SetRequest.encode({ key, value: Buffer.alloc(0) }).finish()), enc(SetRequest.encode({ key: Buffer.alloc(0), value }).finish())];
}

const FIELD_NOS = [1, 2, 3, 4, 7, 15, 16, 100, 2047, 2048, 2 ** 29 - 1];
const randFieldNo = (rng: Rng) => (rng.next() < 0.7 ? rng.pick(FIELD_NOS) : rng.int(1, 2 ** 29 - 1));

/** An unknown field (or a known number with any wire type) of wire type 0, 1, 2, 5 or a group. */
function someField(rng: Rng, depth = 0): Buffer {
  const fn = randFieldNo(rng);
  const tagPad = rng.next() < 0.1 ? rng.pick([5, 10, 11]) : 0;
  switch (rng.int(0, depth < 3 ? 5 : 4)) {
    case 0: return Buffer.concat([tag(fn, 0, tagPad), rng.next() < 0.3 ? varint(randLimit(rng), rng.pick([10, 11])) : varint(randLimit(rng))]);
    case 1: return Buffer.concat([tag(fn, 1, tagPad), randBytes(rng, 8)]);
    case 2: return Buffer.concat([tag(fn, 5, tagPad), randBytes(rng, 4)]);
    case 3: case 4: {
      const body = randBytes(rng, randLen(rng) % 600);
      return Buffer.concat([tag(fn, 2, tagPad), varint(BigInt(body.length), rng.next() < 0.1 ? rng.pick([10, 11]) : 0), body]);
    }
    default: {
      // A group: fields inside, closed by an end-group of the same number, or another one, or not at all.
      const inner: Buffer[] = [];
      for (let i = rng.int(0, 3); i > 0; i--) inner.push(someField(rng, depth + 1));
      const r = rng.next();
      const end = r < 0.8 ? tag(fn, 4) : r < 0.9 ? tag(randFieldNo(rng), 4) : Buffer.alloc(0);
      return Buffer.concat([tag(fn, 3, tagPad), ...inner, end]);
    }
  }
}

/** A known field of the three messages: given again (the last wins), with another wire type, overlong. */
function knownField(rng: Rng): Buffer {
  switch (rng.int(0, 5)) {
    case 0: case 1: { // field 1 or 2, bytes: key / value / prefix (and GetPrefix's field 2 with wire type 2)
      const body = randBytes(rng, randLen(rng) % 400);
      const pad = rng.next() < 0.15 ? rng.pick([2, 5, 10, 11]) : 0;
      return Buffer.concat([tag(rng.int(1, 2), 2, pad), varint(BigInt(body.length), rng.next() < 0.1 ? rng.pick([10, 11]) : 0), body]);
    }
    case 2: // field 2 as a varint: GetPrefix's limit (and SetRequest's value with wire type 0)
      return Buffer.concat([tag(2, 0, rng.next() < 0.1 ? 10 : 0), limitVarint(rng, randLimit(rng))]);
    case 3: // field 1 as a varint
      return Buffer.concat([tag(1, 0), varint(randLimit(rng))]);
    case 4: // a known number with wire type 1, 5 or a group
      return Buffer.concat([tag(rng.int(1, 2), rng.pick([1, 5])), randBytes(rng, 8)]);
    default: {
      const fn = rng.int(1, 2);
      return Buffer.concat([tag(fn, 3), someField(rng, 2), tag(rng.next() < 0.8 ? fn : 3 - fn, 4)]);
    }
  }
}

/** Odd things at a field boundary. */
function oddPiece(rng: Rng): Buffer {
  switch (rng.int(0, 9)) {
    case 0: return Buffer.from([0x00]); // zero tag
    case 1: return Buffer.concat([tag(0, rng.pick([0, 1, 2, 5])), randBytes(rng, rng.int(0, 9))]); // field number 0
    case 2: return Buffer.concat([tag(randFieldNo(rng), 4)]); // a lone end-group
    case 3: return Buffer.concat([tag(randFieldNo(rng), rng.pick([6, 7])), randBytes(rng, rng.int(0, 4))]); // wire types 6, 7
    case 4: return Buffer.concat([tag(rng.pick([1, 2, 9]), 2), varint(BigInt(rng.pick([1, 100, 2 ** 31, 2 ** 32 - 1]))), randBytes(rng, rng.int(0, 3))]); // length past the end
    case 5: return Buffer.concat([tag(2n ** 29n - 1n + BigInt(rng.int(1, 1000)), rng.pick([0, 2])), Buffer.from([0x01, 0x00])]); // field number past 2^29-1: tag past 32 bits
    case 6: return varint((1n << BigInt(rng.int(32, 69))) | BigInt(rng.pick([0, 2, 10, 16, 18])), 0); // a tag varint of 5..10 bytes with high bits
    case 7: { const n = rng.pick([10, 11, 12]); return Buffer.from(Array.from({ length: n }, (_, i) => (i < n - 1 ? 0xff : 0x01))); } // an overlong tag
    case 8: return Buffer.concat([tag(rng.pick([1, 2]), 2, rng.pick([5, 10])), Buffer.from([0x01, 0x61])]); // padded known tag
    default: return Buffer.from([0x0a]); // a tag and nothing
  }
}

/** Byte-level damage to the whole encoding. */
function damage(rng: Rng, b: Buffer): Buffer {
  if (b.length === 0) return rng.next() < 0.5 ? randBytes(rng, rng.int(1, 8)) : b;
  const at = rng.int(0, b.length - 1);
  switch (rng.int(0, 5)) {
    case 0: return b.subarray(0, at); // truncate
    case 1: { const c = Buffer.from(b); c[at] ^= 1 << rng.int(0, 7); return c; } // flip a bit
    case 2: { const c = Buffer.from(b); c[at] = rng.pick([0x00, 0x80, 0xff, 0x0a, 0x12, 0x10, 0x08, 0x0b, 0x0c, rng.int(0, 255)]); return c; }
    case 3: return Buffer.concat([b.subarray(0, at), randBytes(rng, rng.int(1, 4)), b.subarray(at)]); // insert
    case 4: return Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + rng.int(1, 8)))]); // delete
    default: { const end = Math.min(b.length, at + rng.int(1, 16)); return Buffer.concat([b.subarray(0, end), b.subarray(at, end), b.subarray(end)]); } // duplicate
  }
}

function makeInput(rng: Rng): { bytes: Buffer; how: string } {
  const kind = rng.pick<Kind>(['set', 'get', 'prefix']);
  const chunks = validChunks(rng, kind);
  const how: string[] = [kind];
  // Some messages twice or three times over (a merge: the last of each field wins).
  if (rng.next() < 0.15) { chunks.push(...validChunks(rng, kind)); how.push('merged'); }
  if (rng.next() < 0.1) { chunks.reverse(); how.push('reversed'); }
  const r = rng.next();
  const structural = r < 0.2 ? 0 : rng.int(1, 4);
  for (let i = 0; i < structural; i++) {
    const k = rng.next();
    const piece = k < 0.45 ? someField(rng) : k < 0.8 ? knownField(rng) : oddPiece(rng);
    chunks.splice(rng.int(0, chunks.length), 0, piece);
  }
  if (structural) how.push(`${structural} fields`);
  let bytes: Buffer = Buffer.concat(chunks);
  if (rng.next() < 0.3) {
    for (let i = rng.int(1, 3); i > 0; i--) bytes = damage(rng, bytes);
    how.push('damaged');
  }
  if (rng.next() < 0.2) {
    // A view into a larger buffer, as grpc-js may hand one over.
    const before = randBytes(rng, rng.int(1, 9));
    const whole = Buffer.concat([before, bytes, randBytes(rng, rng.int(1, 9))]);
    bytes = whole.subarray(before.length, before.length + bytes.length);
    how.push('view');
  }
  return { bytes, how: how.join(', ') };
}

// ---- Comparison ------------------------------------------------------------------------------------
type Outcome<T> = { ok: true; m: T } | { ok: false; err: string };
function run<T>(f: () => T): Outcome<T> {
  try { return { ok: true, m: f() }; } catch (e) { return { ok: false, err: (e as Error)?.message ?? String(e) }; }
}

const stats = { inputs: 0, bothOk: 0, bothThrow: 0, clampedLimit: 0, setOk: 0, getOk: 0, prefixOk: 0 };

function isViewOf(part: Buffer, whole: Buffer): boolean {
  return part.length === 0 || (part.buffer === whole.buffer && part.byteOffset >= whole.byteOffset && part.byteOffset + part.length <= whole.byteOffset + whole.length);
}

/** Checks one input against all three decoders; returns a description of the first disagreement. */
function disagreement(bytes: Buffer): string | undefined {
  stats.inputs++;
  const before = Buffer.from(bytes);
  const decoders: [string, () => Outcome<unknown>, () => Outcome<unknown>, (a: any, b: any) => string | undefined, (b: Buffer) => unknown][] = [
    ['SetRequest', () => run(() => decodeSetRequest(bytes)), () => run(() => SetRequest.decode(bytes)), (h: SetRequest, g: SetRequest) =>
      !Buffer.isBuffer(h.key) || !h.key.equals(g.key) ? `key ${hex(h.key)} vs ${hex(g.key)}`
        : !Buffer.isBuffer(h.value) || !h.value.equals(g.value) ? `value ${hex(h.value)} vs ${hex(g.value)}`
          : !isViewOf(h.key, bytes) || !isViewOf(h.value, bytes) ? 'key or value not a view of the request' : undefined,
    ServerKeyValueStoreService.set.requestDeserialize],
    ['GetRequest', () => run(() => decodeGetRequest(bytes)), () => run(() => GetRequest.decode(bytes)), (h: GetRequest, g: GetRequest) =>
      !Buffer.isBuffer(h.key) || !h.key.equals(g.key) ? `key ${hex(h.key)} vs ${hex(g.key)}` : !isViewOf(h.key, bytes) ? 'key not a view of the request' : undefined,
    ServerKeyValueStoreService.get.requestDeserialize],
    ['GetPrefixRequest', () => run(() => decodeGetPrefixRequest(bytes)), () => run(() => clampedGetPrefixDecode(bytes)), (h: GetPrefixRequest, g: GetPrefixRequest) =>
      !Buffer.isBuffer(h.prefix) || !h.prefix.equals(g.prefix) ? `prefix ${hex(h.prefix)} vs ${hex(g.prefix)}`
        : typeof h.limit !== 'number' || !Number.isSafeInteger(h.limit) || h.limit < 0 || h.limit !== g.limit ? `limit ${String(h.limit)} vs ${String(g.limit)}` : undefined,
    ServerKeyValueStoreService.getPrefix.requestDeserialize],
  ];
  let okCount = 0;
  for (const [name, hand, ref, compare, server] of decoders) {
    const h = hand();
    const g = ref();
    if (name === 'GetPrefixRequest') {
      // The documented rule, counted: ts-proto unchanged threw for a limit past 2^53 only.
      const plain = run(() => GetPrefixRequest.decode(bytes));
      if (!plain.ok && g.ok) {
        if (!/MAX_SAFE_INTEGER/.test(plain.err)) return `${name}: the clamping reference accepts what ts-proto refuses for another reason (${plain.err})`;
        stats.clampedLimit++;
      }
      if (plain.ok && (!g.ok || (g.m as GetPrefixRequest).limit !== plain.m.limit || !(g.m as GetPrefixRequest).prefix.equals(plain.m.prefix))) return `${name}: the clamping reference differs from ts-proto on an input it accepts`;
    }
    if (h.ok !== g.ok) return h.ok ? `${name}: hand decoder accepts (${JSON.stringify(h.m, (_, v) => (v?.type === 'Buffer' ? Buffer.from(v.data).toString('hex') : v))}), ts-proto throws: ${(g as { err: string }).err}` : `${name}: hand decoder throws (${h.err}), ts-proto accepts`;
    if (h.ok && g.ok) {
      const d = compare(h.m, g.m);
      if (d) return `${name}: ${d}`;
      okCount++;
      if (name === 'SetRequest') stats.setOk++; else if (name === 'GetRequest') stats.getOk++; else stats.prefixOk++;
    }
    // What the server registers: an InvalidRequest exactly when the hand decoder throws.
    const reason = invalidRequestReason(server(bytes));
    if ((reason !== undefined) !== !h.ok) return `${name}: server deserializer ${reason === undefined ? 'accepts' : `refuses (${reason})`}, hand decoder ${h.ok ? 'accepts' : 'throws'}`;
  }
  if (okCount === 3) stats.bothOk++; else if (okCount === 0) stats.bothThrow++;
  if (!before.equals(bytes)) return 'a decoder wrote to its input';
  return undefined;
}

// ---- Regression and rule cases (fixed inputs) ---------------------------------------------------------
const CASES: [string, string][] = [
  ['empty', ''],
  ['limit 2^64-1, ten bytes (documented: no limit)', '0a0161' + '10ffffffffffffffffff01'],
  ['limit 2^53 (documented: no limit)', '108080808080808010'],
  ['limit 2^64-1 then limit 5: the last wins', '10ffffffffffffffffff01' + '1005'],
  ['limit 1 as an overlong ten-byte varint', '10' + '81808080808080808000'],
  ['limit as an eleven-byte varint', '10' + '8180808080808080808000'],
  ['key tag as a ten-byte varint', '8a808080808080808000' + '0161'],
  ['key tag as an eleven-byte varint', '8a80808080808080808000' + '0161'],
  ['key length as a ten-byte varint', '0a' + '81808080808080808000' + '61'],
  ['key length past the end', '0a0561'],
  ['key length 2^32-1', '0affffffff0f61'],
  ['zero tag ends the message', '0a0161' + '00' + '0a0162'],
  ['field 0, wire type 2', '02' + '0162' + '0a0161'],
  ['end-group ends the message', '0a0161' + '0c' + '0a0162'],
  ['group of field 1 with a key inside', '0b' + '0a0162' + '0c' + '0a0161'],
  ['group closed by another number', '1b' + '0a0162' + '24' + '0a0161'],
  ['unterminated group', '1b0a0162'],
  ['wire type 6', '0e01'],
  ['wire type 7', '0f01'],
  ['value with wire type 0 (skipped)', '1205' + '6869686968' + '1005'],
  ['key with wire type 5 and 1', '0d01020304' + '090102030405060708' + '0a0161'],
  ['field number 2^29-1, each wire type', 'f8ffffff0f01' + 'f9ffffff0f0102030405060708' + 'faffffff0f0100' + 'fdffffff0f01020304' + '0a0161'],
  ['tag past 32 bits', '8a8080801001' + '0a0161'],
  ['tag of six bytes', '8a80808080000161'],
  ['repeated key and value: the last wins', '0a0161' + '12026869' + '0a0162' + '1200'],
];

test(`codec fuzz (seed ${SEED}): fixed cases agree with ts-proto (limits past 2^53 as documented)`, () => {
  console.log(`  seed ${SEED}, ${ROUNDS} decoder rounds, ${ENCODER_ROUNDS} encoder rounds (LBKV_FUZZ_SEED=${SEED} LBKV_FUZZ_ROUNDS=${ROUNDS})`);
  for (const [what, h] of CASES) {
    const d = disagreement(Buffer.from(h, 'hex'));
    assert.is(d, undefined, `${what} (${h}): ${d}`);
  }
  // The rule's own cases, spelled out.
  assert.equal(decodeGetPrefixRequest(Buffer.from('0a0161' + '10ffffffffffffffffff01', 'hex')).limit, Number.MAX_SAFE_INTEGER);
  assert.throws(() => GetPrefixRequest.decode(Buffer.from('10ffffffffffffffffff01', 'hex')), /MAX_SAFE_INTEGER/);
  assert.equal(decodeGetPrefixRequest(Buffer.from('10ffffffffffffffffff01' + '1005', 'hex')).limit, 5);
});

test(`codec fuzz (seed ${SEED}): hand-written request decoders agree with ts-proto on random and mutated encodings`, () => {
  const rng = new Rng(SEED);
  const started = Date.now();
  for (let r = 0; r < ROUNDS; r++) {
    const { bytes, how } = makeInput(rng);
    const d = disagreement(bytes);
    if (d) assert.unreachable(`round ${r} (${how}), input ${bytes.length <= 256 ? hex(bytes) : `${hex(bytes.subarray(0, 256))}... (${bytes.length} B)`}: ${d}\n(replay: LBKV_FUZZ_SEED=${SEED} LBKV_FUZZ_ROUNDS=${r + 1})`);
  }
  console.log(`  decoders: ${stats.inputs} inputs in ${Date.now() - started} ms; all three accepted ${stats.bothOk}, all refused ${stats.bothThrow}; accepted as Set ${stats.setOk}, Get ${stats.getOk}, GetPrefix ${stats.prefixOk}; limit past 2^53 read as no limit ${stats.clampedLimit}`);
  assert.ok(stats.bothOk > ROUNDS / 10 && stats.bothThrow > ROUNDS / 20, 'the generator makes both valid and invalid inputs');
});

// ---- Encoders ------------------------------------------------------------------------------------------
function randBuf(rng: Rng): Buffer {
  const n = randLen(rng);
  const r = rng.next();
  if (r < 0.15 && n > 0) {
    const big = randBytes(rng, n + 20);
    return big.subarray(7, 7 + n); // a view into a larger buffer
  }
  return randBytes(rng, n);
}

test(`codec fuzz (seed ${SEED}): hand-written encoders give ts-proto's bytes, which decode to the message`, () => {
  const rng = new Rng(SEED ^ 0x5eed);
  const started = Date.now();
  const bytesOf = (w: BinaryWriter) => Buffer.from(w.finish());
  for (let r = 0; r < ENCODER_ROUNDS; r++) {
    const at = `round ${r} (replay: LBKV_FUZZ_SEED=${SEED} LBKV_FUZZ_ROUNDS=${(r + 1) * 6})`;
    // SetRequest: plain, a Uint8Array key (the raw stub may be given one), a setValueBuffer() value.
    {
      let key: Buffer = randBuf(rng);
      let value: Buffer = randBuf(rng);
      const k = rng.next();
      if (k < 0.15) key = new Uint8Array(key) as Buffer;
      else if (k < 0.3 && value.length > 0) {
        const framed = setValueBuffer(rng.next() < 0.8 ? key.length : rng.int(0, 300), value.length);
        value.copy(framed);
        value = framed;
      }
      const m = { key, value };
      const ours = encodeSetRequest(m);
      const gen = bytesOf(SetRequest.encode(m));
      assert.ok(ours.equals(gen), `${at}: encodeSetRequest key ${key.length} B value ${value.length} B: ${hex(ours.subarray(0, 64))} vs ${hex(gen.subarray(0, 64))}`);
      const back = SetRequest.decode(ours);
      assert.ok(back.key.equals(key) && back.value.equals(value), `${at}: encodeSetRequest decodes back`);
      // Encoded again (a second Set of the same value): the same bytes, and the first message unchanged.
      const again = encodeSetRequest(m);
      assert.ok(again.equals(gen) && ours.equals(gen), `${at}: encodeSetRequest twice`);
    }
    // GetResponse: found or not, a value or none, a framedValueBuffer() value.
    {
      const found = rng.next() < 0.7;
      let value = randBuf(rng);
      if (rng.next() < 0.3) {
        const framed = framedValueBuffer(value.length);
        value.copy(framed);
        value = framed;
      }
      const m = { found, value };
      const ours = Buffer.from(encodeGetResponse(m)); // a copy: a framed buffer is rewritten by the next encode
      const gen = bytesOf(GetResponse.encode(m));
      assert.ok(ours.equals(gen), `${at}: encodeGetResponse found ${found} value ${value.length} B: ${hex(ours.subarray(0, 64))} vs ${hex(gen.subarray(0, 64))}`);
      const back = GetResponse.decode(ours);
      assert.ok(back.found === found && back.value.equals(value), `${at}: encodeGetResponse decodes back`);
    }
    // GetPrefixResponse: 0..6 entries, empty keys and values among them.
    {
      const entries = Array.from({ length: rng.int(0, 6) }, () => ({ key: rng.next() < 0.1 ? Buffer.alloc(0) : randBuf(rng), value: rng.next() < 0.5 ? randBytes(rng, rng.int(0, 40)) : randBuf(rng) }));
      const m = { entries };
      const ours = encodeGetPrefixResponse(m);
      const gen = bytesOf(GetPrefixResponse.encode(m));
      assert.ok(ours.equals(gen), `${at}: encodeGetPrefixResponse of ${entries.length} entries: ${hex(ours.subarray(0, 64))} vs ${hex(gen.subarray(0, 64))}`);
      const back = GetPrefixResponse.decode(ours);
      assert.is(back.entries.length, entries.length, `${at}: entries`);
      back.entries.forEach((e, i) => assert.ok(e.key.equals(entries[i]!.key) && e.value.equals(entries[i]!.value), `${at}: entry ${i}`));
    }
  }
  console.log(`  encoders: ${ENCODER_ROUNDS} rounds x 3 messages in ${Date.now() - started} ms`);
});

test.run();

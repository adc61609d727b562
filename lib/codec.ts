// The service definition the server registers: the generated one (generated/kv.ts) with
//  - lenient request decoders: a request that is not valid protobuf reaches the handler as an
//    InvalidRequest, which answers INVALID_ARGUMENT (grpc-js itself would say INTERNAL "Error
//    deserializing request"); a GetPrefix limit beyond 2^53, a valid uint64 that the generated
//    decoder refuses, reads as no limit; a Set's key and value and a Get's key are views of the
//    request's own buffer, not copies (decodeKeyValue);
//  - response encoders for GetResponse and GetPrefixResponse that write the value bytes once into the
//    output buffer (the generated encoder copies each value three times: into the writer, when
//    finishing, and in Buffer.from), which matters for multi-MiB values; and none at all for a value
//    the engine read into the tail of a buffer from framedValueBuffer().
// And, for the client, a SetRequest encoder that writes key and value once (encodeSetRequest), and
// none at all for a value read into the tail of a buffer from setValueBuffer() or appended to a
// GrowingSetValue.
// The bytes on the wire are the same protobuf encoding either way.
import { BinaryReader } from '@bufbuild/protobuf/wire';
import { KeyValueStoreService, type GetPrefixRequest, type GetPrefixResponse, type GetRequest, type GetResponse, type SetRequest } from '../generated/kv';

export const INVALID_REQUEST = Symbol('lbkv.invalidRequest');

export interface InvalidRequest {
  [INVALID_REQUEST]: string;
}

export function invalidRequestReason(req: unknown): string | undefined {
  return typeof req === 'object' && req !== null && INVALID_REQUEST in req ? (req as InvalidRequest)[INVALID_REQUEST] : undefined;
}

function lenient<T>(decode: (b: Buffer) => T): (b: Buffer) => T {
  return (b: Buffer) => {
    try {
      return decode(b);
    } catch (e) {
      return { [INVALID_REQUEST]: `request is not a valid message: ${(e as Error)?.message ?? String(e)}` } as unknown as T;
    }
  };
}

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) { n = Math.floor(n / 128); len++; }
  return len;
}

function writeVarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 0x80) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

/** Length of a length-delimited field (tag byte + varint length + bytes) holding `len` bytes. */
export function fieldLength(len: number): number {
  return 1 + varintLength(len) + len;
}

function writeBytesField(out: Buffer, pos: number, tag: number, bytes: Uint8Array): number {
  out[pos++] = tag;
  pos = writeVarint(out, pos, bytes.length);
  out.set(bytes, pos); // a Buffer, or a Uint8Array (a caller of the client's raw stub may pass one)
  return pos + bytes.length;
}

/** One length-delimited field alone, as a message of its own. */
function encodeBytesField(tag: number, bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(fieldLength(bytes.length));
  writeBytesField(out, 0, tag, bytes);
  return out;
}

/** Length of a GetResponse's bytes before its value bytes: `found` (if true), then the value field's
 *  tag and length (if any value). */
function getResponseHeaderLength(found: boolean, length: number): number {
  return (found ? 2 : 0) + (length > 0 ? 1 + varintLength(length) : 0);
}

/** Writes that header at the start of `out`; returns where the value goes. */
function writeGetResponseHeader(out: Buffer, found: boolean, length: number): number {
  let pos = 0;
  if (found) { out[pos++] = 0x08; out[pos++] = 1; }
  if (length > 0) { out[pos++] = 0x12; pos = writeVarint(out, pos, length); }
  return pos;
}

// Values read into framedValueBuffer()'s buffers, and the whole message buffer each belongs to.
const framed = new WeakMap<Buffer, Buffer>();

/** A buffer of `length` bytes for the engine to read a value into (Store.get's `alloc`), with room in
 *  front for the header of a GetResponse that found it, so that encodeGetResponse sends it without a
 *  copy. */
export function framedValueBuffer(length: number): Buffer {
  const whole = Buffer.allocUnsafe(getResponseHeaderLength(true, length) + length);
  const value = whole.subarray(whole.length - length);
  framed.set(value, whole);
  return value;
}

/** GetResponse { bool found = 1; bytes value = 2; } */
export function encodeGetResponse(m: GetResponse): Buffer {
  const v = m.value ?? Buffer.alloc(0);
  const whole = m.found && v.length > 0 ? framed.get(v) : undefined;
  if (whole) {
    writeGetResponseHeader(whole, true, v.length);
    return whole;
  }
  const out = Buffer.allocUnsafe(getResponseHeaderLength(m.found, v.length) + v.length);
  v.copy(out, writeGetResponseHeader(out, m.found, v.length));
  return out;
}

/** GetPrefixResponse { repeated KeyValue entries = 1; }  KeyValue { bytes key = 1; bytes value = 2; } */
export function encodeGetPrefixResponse(m: GetPrefixResponse): Buffer {
  let size = 0;
  const inner: number[] = [];
  for (const e of m.entries) {
    const n = (e.key.length > 0 ? fieldLength(e.key.length) : 0) + (e.value.length > 0 ? fieldLength(e.value.length) : 0);
    inner.push(n);
    size += fieldLength(n);
  }
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  m.entries.forEach((e, i) => {
    out[pos++] = 0x0a;
    pos = writeVarint(out, pos, inner[i]!);
    if (e.key.length > 0) pos = writeBytesField(out, pos, 0x0a, e.key);
    if (e.value.length > 0) pos = writeBytesField(out, pos, 0x12, e.value);
  });
  return out;
}

/** SetRequest { bytes key = 1; bytes value = 2; }, for the client (lib/client.ts): key and value
 *  written once, into one buffer of the message's size. The generated encoder copies the value
 *  three times (into its writer, when finishing, and in Buffer.from): for a 256 MiB Set the client
 *  peaked at about 4 times the value. The same bytes as the generated encoder: an empty field is
 *  left out (proto3), key before value. */
export function encodeSetRequest(m: SetRequest): Buffer {
  const key = m.key ?? EMPTY;
  const value = m.value ?? EMPTY;
  if (value.length === 0) return key.length > 0 ? encodeBytesField(0x0a, key) : EMPTY;
  const header = setRequestHeaderLength(key.length, value.length);
  const whole = framedSet.get(value);
  if (whole?.length === header + value.length) {
    // One message per buffer: grpc-js frames (copies) a message only after an await, and keeps it
    // for a retry, so a second Set of the same value must not write its key over the first's.
    framedSet.delete(value);
    writeSetRequestHeader(whole, key, value.length);
    return whole;
  }
  const out = Buffer.allocUnsafe(header + value.length);
  writeSetRequestHeader(out, key, value.length);
  out.set(value, header);
  return out;
}

const EMPTY = Buffer.alloc(0);

/** Length of a SetRequest's bytes before its value bytes: the key field (if any key), then the value
 *  field's tag and length. */
function setRequestHeaderLength(keyLength: number, length: number): number {
  return (keyLength > 0 ? fieldLength(keyLength) : 0) + 1 + varintLength(length);
}

function writeSetRequestHeader(out: Buffer, key: Uint8Array, length: number): void {
  const pos = key.length > 0 ? writeBytesField(out, 0, 0x0a, key) : 0;
  out[pos] = 0x12;
  writeVarint(out, pos + 1, length);
}

// Values read into setValueBuffer()'s buffers not yet sent, and the whole message buffer each belongs to.
const framedSet = new WeakMap<Buffer, Buffer>();

/** A buffer of `length` (> 0) bytes to read a Set's value into (lbclient reads a file or stdin into
 *  it), with room in front for the SetRequest's key field and value header, so that encodeSetRequest
 *  sends it without a copy: the client then holds the value twice at most (this message and the
 *  copy grpc-js frames), not three times. Only the first Set of it is sent from the buffer itself
 *  (leave the value unmodified until that Set settles); a later Set of it, one with a key of another
 *  length, or one with a subarray of it, is encoded by copying, as any value. */
export function setValueBuffer(keyLength: number, length: number): Buffer {
  const whole = Buffer.allocUnsafe(setRequestHeaderLength(keyLength, length) + length);
  const value = whole.subarray(whole.length - length);
  framedSet.set(value, whole);
  return value;
}

// Resizable ArrayBuffers (ES2024) are in Node 20's V8; the ES2022 lib this compiles against lacks them.
type Resizable = ArrayBuffer & { resize(byteLength: number): void; readonly maxByteLength: number };
const ResizableArrayBuffer = ArrayBuffer as unknown as new (byteLength: number, o: { maxByteLength: number }) => Resizable;

/** setValueBuffer() for a value whose length is known only once it has all been read (lbclient
 *  reading a pipe). The bytes are appended in place, into address space reserved up front for
 *  `maxLength` of them, of which memory is taken only as it is written: nothing is copied as the
 *  value grows and no outgrown buffer waits for the GC. A list of pieces joined into a
 *  setValueBuffer at the end held the value in pieces besides the message when grpc-js framed it:
 *  about three times the value in all. */
export class GrowingSetValue {
  private buf: Resizable;
  private readonly start: number;
  private readonly end: number;
  length = 0;

  constructor(private readonly keyLength: number, maxLength: number) {
    // The header of any shorter value is no longer, so it fits in front of the value at the end.
    this.start = setRequestHeaderLength(keyLength, maxLength);
    this.end = this.start + maxLength;
    this.buf = this.reserve(this.start);
  }

  /** A buffer of `byteLength` bytes with room to grow to maxLength or, when the address space has
   *  not that much (under `ulimit -v` a 1 GiB reservation fails where a small value would fit), to
   *  twice `byteLength`, to be outgrown and copied as any growing buffer. */
  private reserve(byteLength: number): Resizable {
    try {
      return new ResizableArrayBuffer(byteLength, { maxByteLength: this.end });
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      return new ResizableArrayBuffer(byteLength, { maxByteLength: Math.min(this.end, Math.max(2 * byteLength, 64 * 1024)) });
    }
  }

  /** Appends `bytes`, copied; past `maxLength` in all, a RangeError. */
  append(bytes: Uint8Array): void {
    const used = this.start + this.length;
    const end = used + bytes.length;
    if (end > this.end) throw new RangeError(`a value of more than ${this.end - this.start} bytes`);
    if (end > this.buf.maxByteLength) {
      const old = new Uint8Array(this.buf, this.start, this.length);
      this.buf = this.reserve(end);
      new Uint8Array(this.buf).set(old, this.start);
    } else if (end > this.buf.byteLength) {
      // Doubling: a few resize() calls in all; pages not yet written take no memory either way.
      this.buf.resize(Math.min(Math.max(end, 2 * this.buf.byteLength), this.buf.maxByteLength));
    }
    new Uint8Array(this.buf, used, bytes.length).set(bytes);
    this.length += bytes.length;
  }

  /** The bytes appended, as a value from setValueBuffer() (sent from this buffer, not copied); an
   *  empty buffer if none. Append nothing after. */
  value(): Buffer {
    if (this.length === 0) return Buffer.alloc(0);
    const header = setRequestHeaderLength(this.keyLength, this.length);
    const whole = Buffer.from(this.buf, this.start - header, header + this.length);
    const value = whole.subarray(header);
    framedSet.set(value, whole);
    return value;
  }
}

/** GetPrefixRequest { bytes prefix = 1; uint64 limit = 2; }, as the generated decoder reads it, but a
 *  limit past Number.MAX_SAFE_INTEGER (more entries than any store holds) becomes that number, which
 *  limits nothing, where the generated decoder throws. */
export function decodeGetPrefixRequest(b: Buffer): GetPrefixRequest {
  const m: GetPrefixRequest = { prefix: Buffer.alloc(0), limit: 0 };
  readFields(b, (tag, reader) => {
    if (tag === 10) {
      m.prefix = Buffer.from(reader.bytes());
    } else if (tag === 16) {
      const v = BigInt(reader.uint64().toString());
      m.limit = v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
    } else {
      return false;
    }
    return true;
  });
  return m;
}

/** Reads a message's fields as the generated decoders do: `field` takes a tag it knows (and says
 *  so); any other field is skipped, a known number with another wire type too; an end-group or a
 *  zero tag ends the message. */
function readFields(b: Buffer, field: (tag: number, reader: BinaryReader) => boolean): void {
  const reader = new BinaryReader(b);
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if (field(tag, reader)) continue;
    if ((tag & 7) === 4 || tag === 0) break;
    reader.skip(tag & 7);
  }
}

/** Fields 1 and 2 (bytes) of a message, as the generated decoders read SetRequest and GetRequest
 *  (the last of a repeated field wins, unknown fields and a known one of another wire type are
 *  skipped), but as views of `b`, not copies. grpc-js hands each request over in a buffer of its
 *  own (concatenated from the message's frames, or decompressed), which nothing else writes to, so
 *  a view is safe to keep; a Set's value is then held once until its commit, not twice. */
function decodeKeyValue(b: Buffer): { key: Buffer; value: Buffer } {
  const m: { key: Buffer; value: Buffer } = { key: EMPTY, value: EMPTY };
  readFields(b, (tag, reader) => {
    if (tag === 10) m.key = reader.bytes() as Buffer;
    else if (tag === 18) m.value = reader.bytes() as Buffer;
    else return false;
    return true;
  });
  return m;
}

/** SetRequest { bytes key = 1; bytes value = 2; }: key and value are views of `b` (decodeKeyValue). */
export function decodeSetRequest(b: Buffer): SetRequest {
  return decodeKeyValue(b);
}

/** GetRequest { bytes key = 1; }: the key is a view of `b` (decodeKeyValue). */
export function decodeGetRequest(b: Buffer): GetRequest {
  return { key: decodeKeyValue(b).key };
}

const S = KeyValueStoreService;
export const ServerKeyValueStoreService = {
  set: { ...S.set, requestDeserialize: lenient(decodeSetRequest) },
  get: { ...S.get, requestDeserialize: lenient(decodeGetRequest), responseSerialize: encodeGetResponse },
  getPrefix: { ...S.getPrefix, requestDeserialize: lenient(decodeGetPrefixRequest), responseSerialize: encodeGetPrefixResponse },
  stat: { ...S.stat, requestDeserialize: lenient(S.stat.requestDeserialize) },
} as const;

// The text form lbclient prints keys and values in (getprefix, "key not found"): bytes that are
// printable UTF-8 as they are, every other byte as \xNN, and \\, \t, \n, \r escaped. A value may be
// tens of MiB: its escaped form (up to four times its size) is made in Buffers of bounded size, so
// the caller can write each one out (with backpressure) before the next is made.
import { isUtf8 } from 'node:buffer';

const HEX = Buffer.from('0123456789abcdef', 'latin1');
const BACKSLASH = 0x5c;

/** C0/C1 controls, format characters (bidi overrides), line and paragraph separators: they move the
 *  cursor or reorder text on a terminal. */
const UNSAFE_CHAR = /^[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]$/u;
/** UNSAFE_CHAR's answer per BMP code point: 0 not yet asked, 1 safe, 2 unsafe. */
const bmpUnsafe = new Uint8Array(0x10000);

function unsafeCodePoint(cp: number): boolean {
  if (cp >= 0x10000) return UNSAFE_CHAR.test(String.fromCodePoint(cp));
  let v = bmpUnsafe[cp]!;
  if (v === 0) bmpUnsafe[cp] = v = UNSAFE_CHAR.test(String.fromCodePoint(cp)) ? 2 : 1;
  return v === 2;
}

/** The escaped form of `b`, in Buffers of about `chunkBytes` (at most chunkBytes + 16) each; none for
 *  an empty `b`. Each Buffer is new (a caller may hand it to a stream and keep going). */
export function* escapedChunks(b: Buffer, chunkBytes = 64 * 1024): Generator<Buffer> {
  // Most keys and many values are printable ASCII with no backslash: they print as they are, with
  // no buffer to fill (a listing of small entries spent most of its time allocating them).
  let plain = 0;
  while (plain < b.length && b[plain]! >= 0x20 && b[plain]! < 0x7f && b[plain] !== BACKSLASH) plain++;
  if (plain === b.length) {
    for (let at = 0; at < b.length; at += chunkBytes) yield Buffer.from(b.subarray(at, Math.min(b.length, at + chunkBytes)));
    return;
  }
  // The whole of `b` decides: valid UTF-8 prints as text, anything else byte by byte (so that
  // \xNN always stands for one byte, and a key prints the same whatever comes after it).
  const utf8 = isUtf8(b);
  // Escaping at most quadruples a byte; a small input gets a small buffer.
  const bufferBytes = Math.min(chunkBytes, 4 * b.length) + 16;
  let out = Buffer.allocUnsafe(bufferBytes);
  let o = 0;
  const hex = (byte: number): void => {
    out[o++] = BACKSLASH; out[o++] = 0x78; out[o++] = HEX[byte >> 4]!; out[o++] = HEX[byte & 15]!;
  };
  let i = 0;
  const n = b.length;
  while (i < n) {
    if (o >= chunkBytes) {
      yield out.subarray(0, o);
      out = Buffer.allocUnsafe(bufferBytes);
      o = 0;
    }
    const c = b[i]!;
    if (c === BACKSLASH) { out[o++] = BACKSLASH; out[o++] = BACKSLASH; i++; continue; }
    if (c >= 0x20 && c < 0x7f) { out[o++] = c; i++; continue; }
    if (!utf8) { hex(c); i++; continue; }
    if (c < 0x80) {
      if (c === 0x0a) { out[o++] = BACKSLASH; out[o++] = 0x6e; }
      else if (c === 0x09) { out[o++] = BACKSLASH; out[o++] = 0x74; }
      else if (c === 0x0d) { out[o++] = BACKSLASH; out[o++] = 0x72; }
      else hex(c);
      i++;
      continue;
    }
    // A lead byte of a valid sequence (isUtf8 said so): decode its code point.
    let len: number;
    let cp: number;
    if (c >= 0xf0) { len = 4; cp = ((c & 0x07) << 18) | ((b[i + 1]! & 0x3f) << 12) | ((b[i + 2]! & 0x3f) << 6) | (b[i + 3]! & 0x3f); }
    else if (c >= 0xe0) { len = 3; cp = ((c & 0x0f) << 12) | ((b[i + 1]! & 0x3f) << 6) | (b[i + 2]! & 0x3f); }
    else { len = 2; cp = ((c & 0x1f) << 6) | (b[i + 1]! & 0x3f); }
    if (unsafeCodePoint(cp)) for (let k = 0; k < len; k++) hex(b[i + k]!);
    else for (let k = 0; k < len; k++) out[o++] = b[i + k]!;
    i += len;
  }
  if (o > 0) yield out.subarray(0, o);
}

/** The escaped form of `b` as a string (for keys and messages; a value goes out by escapedChunks). */
export function escapeBytes(b: Buffer): string {
  return Buffer.concat([...escapedChunks(b)]).toString('utf8');
}

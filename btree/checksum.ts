import * as zlib from 'node:zlib';
import { PAGE_SIZE, HEADER_SIZE, PageType } from './layout';
import { StoreError } from './errors';

export const crc32 = (data: Buffer, seed = 0): number => zlib.crc32(data, seed);

// crc32(A + B) from crc32(A), crc32(B) and the length of B, without reading the bytes again (zlib's
// crc32_combine, which Node does not expose). Running the CRC over n more bytes is a linear map of
// the 32-bit state over GF(2): BYTE_SHIFTS[k] is the map for 2^k zero bytes as 32 columns, so a
// combine costs one small matrix product per set bit of the length. A commit uses it to chain its
// pages into the commit hash from checksums it has already computed.
const BYTE_SHIFTS: Uint32Array[] = (() => {
  const oneBit = new Uint32Array(32);
  oneBit[0] = 0xedb88320; // reflected polynomial: what shifting in one zero bit does to bit 0
  for (let n = 1; n < 32; n++) oneBit[n] = (1 << (n - 1)) >>> 0;
  let m = square(square(square(oneBit))); // 8 bits: one byte
  const out = [m];
  for (let k = 1; k < 40; k++) out.push((m = square(m)));
  return out;
})();

function times(mat: Uint32Array, vec: number): number {
  let sum = 0;
  for (let i = 0; vec !== 0; i++, vec >>>= 1) if (vec & 1) sum ^= mat[i];
  return sum >>> 0;
}

/** a after b: column n of the product is a applied to column n of b. */
function compose(a: Uint32Array, b: Uint32Array): Uint32Array {
  const out = new Uint32Array(32);
  for (let n = 0; n < 32; n++) out[n] = times(a, b[n]);
  return out;
}

const IDENTITY = Uint32Array.from({ length: 32 }, (_, n) => (1 << n) >>> 0);

function square(mat: Uint32Array): Uint32Array {
  const out = new Uint32Array(32);
  for (let n = 0; n < 32; n++) out[n] = times(mat, mat[n]);
  return out;
}

/** The map for `length` zero bytes as one matrix: the product of BYTE_SHIFTS over its set bits. */
function shiftFor(length: number): Uint32Array {
  let m: Uint32Array | undefined;
  for (let k = 0, n = length; n > 0; k++, n = Math.floor(n / 2)) {
    if (n % 2 === 1) m = m ? compose(BYTE_SHIFTS[k], m) : BYTE_SHIFTS[k];
  }
  return m ?? IDENTITY;
}

// A commit combines the same few lengths over and over (a page, a page less its checksum, a run of
// pages): one matrix each, built once, makes each combine a single product instead of one per set
// bit of the length (4092 has ten).
const SHIFT_CACHE = new Map<number, Uint32Array>();
const SHIFT_CACHE_MAX = 256;

/** crc32 of A followed by B, given crc32(A), crc32(B) and B's length in bytes. */
export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  let m = SHIFT_CACHE.get(lengthB);
  if (!m && SHIFT_CACHE.size < SHIFT_CACHE_MAX) SHIFT_CACHE.set(lengthB, (m = shiftFor(lengthB)));
  if (m) return (times(m, crcA >>> 0) ^ crcB) >>> 0;
  // Cache full (many different lengths): one product per set bit, nothing built.
  let crc = crcA >>> 0;
  for (let k = 0, n = lengthB; n > 0; k++, n = Math.floor(n / 2)) if (n % 2 === 1) crc = times(BYTE_SHIFTS[k], crc);
  return (crc ^ crcB) >>> 0;
}

/** crc32 of a whole sealed page, from the checksum in its header (which covers bytes 4..end). */
export function sealedPageCrc(page: Buffer): number {
  return crc32Combine(crc32(page.subarray(0, 4)), page.readUInt32LE(0), PAGE_SIZE - 4);
}

/** Fills the header and seals the page with its checksum. */
export function sealPage(page: Buffer, type: PageType, count: number, pageId: number, txid: number): void {
  page.writeUInt8(type, 4);
  page.writeUInt8(0, 5);
  page.writeUInt16LE(count, 6);
  page.writeUIntLE(pageId, 8, 6);
  page.writeUInt16LE(0, 14);
  page.writeUIntLE(txid, 16, 6);
  page.writeUInt16LE(0, 22);
  page.writeUInt32LE(crc32(page.subarray(4, PAGE_SIZE)), 0);
}

export interface PageHeader {
  type: PageType;
  count: number;
  pageId: number;
  txid: number;
}

/** Returns the header, or a reason the page is not what it claims to be. */
export function checkPage(page: Buffer, expectId: number): PageHeader | string {
  if (page.length < PAGE_SIZE) return `short page (${page.length} bytes)`;
  const stored = page.readUInt32LE(0);
  const actual = crc32(page.subarray(4, PAGE_SIZE));
  if (stored !== actual) return `checksum mismatch (stored ${hex(stored)}, computed ${hex(actual)})`;
  const pageId = page.readUIntLE(8, 6);
  if (pageId !== expectId) return `page claims id ${pageId}`;
  return { type: page.readUInt8(4), count: page.readUInt16LE(6), pageId, txid: page.readUIntLE(16, 6) };
}

export function corruption(file: string, pageId: number, why: string): StoreError {
  return new StoreError('CORRUPTION', `${file}: page ${pageId} at offset ${pageId * PAGE_SIZE} is corrupt: ${why}`);
}

const hex = (n: number) => '0x' + n.toString(16).padStart(8, '0');
export { HEADER_SIZE };

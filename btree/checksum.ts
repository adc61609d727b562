import * as zlib from 'node:zlib';
import { PAGE_SIZE, HEADER_SIZE, PageType } from './layout';
import { StoreError } from './errors';

export const crc32 = (data: Buffer, seed = 0): number => zlib.crc32(data, seed);

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

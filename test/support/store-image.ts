// Reading a data file's bytes as the crafted-damage tests do: its pages and its meta pages.
import { PAGE_SIZE } from '../../btree/layout';
import { decodeMeta, type Meta } from '../../btree/meta';

export const pageOf = (data: Buffer, id: number): Buffer => data.subarray(id * PAGE_SIZE, (id + 1) * PAGE_SIZE);

/** The meta pages of both slots that decode (slot s's meta is page 2s). */
export function validMetas(data: Buffer): Meta[] {
  return [0, 1].map((slot) => decodeMeta(pageOf(data, 2 * slot), slot)).filter((m): m is Meta => typeof m !== 'string');
}

/** The meta open would take: the valid one with the higher txid. */
export function newestMeta(data: Buffer): Meta {
  const m = validMetas(data).sort((a, b) => b.txid - a.txid)[0];
  if (!m) throw new Error('neither meta page of the image is valid');
  return m;
}

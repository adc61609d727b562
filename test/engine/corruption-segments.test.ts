// A format-5 freelist segment that passes its checksums but lists a page the freelist already holds
// (free, or the segment's own page). Open does not read segments; the commit that needs their pages
// does, and must not hand out one page twice.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Store, StoreError } from '../../btree';
import { writeFreeEntry, type FreeEntry } from '../../btree/freelist';
import { crc32 } from '../../btree/checksum';
import { PAGE_SIZE } from '../../btree/layout';
import { tempDir } from '../support/tmp';
import { newestMeta, pageOf } from '../support/store-image';

const key = (i: number) => Buffer.from(`k${String(i).padStart(8, '0')}`);

interface Built { data: Buffer; model: Map<number, Buffer>; free: FreeEntry[]; seg: FreeEntry }

/** 300 keys, overwrites under a snapshot until segments exist, released, closed: the newest meta
 *  holds free extents and a segment reference inline. */
async function build(): Promise<Built> {
  const file = path.join(tempDir('seg'), 'lbkv.db');
  const s = await Store.open({ path: file });
  const model = new Map<number, Buffer>();
  const put = async (i: number, v: Buffer) => { await s.put(key(i), v); model.set(i, v); };
  await s.putMany(Array.from({ length: 300 }, (_, i) => ({ key: key(i), value: Buffer.alloc(100, i) })));
  for (let i = 0; i < 300; i++) model.set(i, Buffer.alloc(100, i));
  const snap = s.snapshot();
  for (let c = 1; s.stats().freelistSegments < 2; c++) await put((c * 7919) % 300, Buffer.alloc(100, c & 0xff));
  snap.release();
  await put(1, Buffer.alloc(100, 1));
  await s.close();
  const data = fs.readFileSync(file);
  const m = newestMeta(data);
  const list = m.inlineFree ?? [];
  const seg = list.filter((e) => e.ref && e.ref.level === 0).sort((a, b) => a.txid - b.txid)[0];
  assert.ok(seg, `a segment of extents in the meta page's list: ${JSON.stringify(list)}`);
  return { data, model, free: list.filter((e) => !e.ref), seg: seg! };
}

/** The store with the segment's first entry not yet taken naming `start` (one page), resealed. */
function withEntry(b: Built, start: number): string {
  const data = Buffer.from(b.data);
  const page = pageOf(data, b.seg.start);
  const off = 24 + b.seg.ref!.taken * 16;
  writeFreeEntry(page, off, { start, count: 1, txid: page.readUIntLE(off + 10, 6) });
  page.writeUInt32LE(crc32(page.subarray(4)), 0);
  const file = path.join(tempDir('seg'), 'lbkv.db');
  fs.writeFileSync(file, data);
  return file;
}

test('a freelist segment that lists a free page, or its own page: the commit that loads it fails with CORRUPTION, and no page is handed out twice', async () => {
  const b = await build();
  for (const [what, start] of [['a free page', b.free[0]!.start], ['its own page', b.seg.start]] as const) {
    const file = withEntry(b, start);
    const s = await Store.open({ path: file });
    const model = new Map(b.model);
    const refused: string[] = [];
    try {
      // One-page values, more than the free list holds: the segment is loaded.
      for (let i = 300; i < 1100; i += 50) {
        const batch = Array.from({ length: 50 }, (_, j) => ({ key: key(i + j), value: Buffer.alloc(PAGE_SIZE, (i + j) & 0xff) }));
        try {
          await s.putMany(batch);
          for (const e of batch) model.set(Number(e.key.subarray(1).toString()), e.value);
        } catch (e) {
          assert.ok(e instanceof StoreError && e.code === 'CORRUPTION', `${what}: ${String(e)}`);
          refused.push(e.message);
        }
      }
      for (const [i, v] of model) assert.equal(await s.get(key(i)), v, `${what}: key ${i}`);
      assert.ok(refused.some((m) => /freelist segment.*listed twice/.test(m)), `${what}: ${refused[0] ?? 'every put committed'}`);
    } finally {
      await s.close();
    }
  }
});

test.run();

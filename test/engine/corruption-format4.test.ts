// Format-4 freelist segments that pass their checksums but list wrong pages. A format-4 reference
// does not say what its segment lists, so open reads every such segment and keeps its entries in
// memory, and commits take them from there without reading the pages again: what open does not
// check, no one does. The file is test/fixtures/format4-segments.db.gz (written by the last
// format-4 build): three segments, at pages 272, 531-532 and 790.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { Store, StoreError } from '../../btree';
import { writeFreeEntry, type FreeEntry } from '../../btree/freelist';
import { crc32 } from '../../btree/checksum';
import { tempDir } from '../support/tmp';
import { newestMeta, pageOf } from '../support/store-image';

const fixture = zlib.gunzipSync(fs.readFileSync(path.join(__dirname, '../../../test/fixtures/format4-segments.db.gz')));
const SEGMENT = 272;
const OTHER_SEGMENT_ENTRY = 517; // the first page segment 790 lists

/** The fixture with the first slot of segment page SEGMENT rewritten by `write`, resealed. */
function withFirstEntry(write: (page: Buffer, off: number) => void): string {
  const data = Buffer.from(fixture);
  const page = pageOf(data, SEGMENT);
  write(page, 24);
  page.writeUInt32LE(crc32(page.subarray(4)), 0);
  const file = path.join(tempDir('f4'), 'lbkv.db');
  fs.writeFileSync(file, data);
  return file;
}

const entry = (e: FreeEntry) => withFirstEntry((page, off) => { writeFreeEntry(page, off, e); });

test('the fixture: format 4, segment 272 lists extents, its first at page 7; page 517 is listed by segment 790', () => {
  const m = newestMeta(fixture);
  assert.is(m.version, 4);
  assert.ok(m.inlineFree!.some((e) => e.ref && e.start === SEGMENT), 'segment 272 is referenced');
  assert.is(pageOf(fixture, SEGMENT).readUIntLE(24, 6), 7);
  assert.is(pageOf(fixture, 790).readUIntLE(24, 6), OTHER_SEGMENT_ENTRY);
});

test('a format-4 segment that lists a slot page, a page past the end, no pages, a page listed elsewhere or a segment reference: open refuses with CORRUPTION, nothing is written', async () => {
  const m = newestMeta(fixture);
  const top = m.inlineFree!.find((e) => !e.ref)!;
  const cases: [string, string, RegExp][] = [
    ['meta page 0', entry({ start: 0, count: 1, txid: 3 }), /pages 0\.\.0 include a slot page/],
    ['root page 3', entry({ start: 3, count: 1, txid: 3 }), /pages 3\.\.3 include a slot page/],
    ['a page past the end', entry({ start: m.pageCount, count: 1, txid: 3 }), new RegExp(`pages ${m.pageCount}\\.\\.${m.pageCount} run past the last page`)],
    ['no pages', entry({ start: 7, count: 0, txid: 3 }), /are none/],
    ['a page segment 790 lists', entry({ start: OTHER_SEGMENT_ENTRY, count: 1, txid: 3 }), /listed twice/],
    ['a page the meta page lists', entry({ start: top.start, count: 1, txid: 3 }), /listed twice/],
    ['the page of segment 790', entry({ start: 790, count: 1, txid: 3 }), /listed twice/],
    ['itself', entry({ start: SEGMENT, count: 1, txid: 3 }), /listed twice/],
    // Format 4 wrote a reference in one slot: its flag on the count.
    ['a segment reference', withFirstEntry((page, off) => {
      page.writeUIntLE(7, off, 6);
      page.writeUInt32LE((1 | 0x8000_0000) >>> 0, off + 6);
    }), /segment reference/],
  ];
  for (const [what, file, why] of cases) {
    const before = fs.readFileSync(file);
    const got = await Store.open({ path: file }).then((s) => s, (e: unknown) => e);
    if (got instanceof Store) await got.close();
    assert.ok(got instanceof StoreError && got.code === 'CORRUPTION', `segment lists ${what}: ${got instanceof Store ? 'opened' : String(got)}`);
    assert.match((got as StoreError).message, /freelist/, `segment lists ${what}`);
    assert.match((got as StoreError).message, why, `segment lists ${what}`);
    assert.ok(fs.readFileSync(file).equals(before), `segment lists ${what}: the file was written`);
  }
});

test.run();

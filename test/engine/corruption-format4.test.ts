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
import { crc32, sealPage } from '../../btree/checksum';
import { decodeMeta, encodeMeta } from '../../btree/meta';
import { PAGE_SIZE, PageType } from '../../btree/layout';
import { tempDir } from '../support/tmp';
import { FaultFS, mulberry32, POLICY_DROP_ALL } from '../support/fault-fs';
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

/** The fixture as a format-4 build killed right after its last commit would leave it: no seal in
 *  slot 0, and that commit's freelist in a page of its own (format 4: a segment reference in one
 *  slot, flagged on its count), which the commit's extents and hash cover. */
function unsealedWithFreelistPage(): Buffer {
  const last = decodeMeta(pageOf(fixture, 2), 1);
  if (typeof last === 'string') throw new Error(last);
  const fp = last.pageCount;
  const data = Buffer.alloc((fp + 1) * PAGE_SIZE);
  fixture.copy(data);
  pageOf(data, 0).fill(0);
  const page = pageOf(data, fp);
  last.inlineFree!.forEach((e, i) => {
    const off = 24 + i * 16;
    page.writeUIntLE(e.start, off, 6);
    page.writeUInt32LE((e.count | (e.ref ? 0x8000_0000 : 0)) >>> 0, off + 6);
    page.writeUIntLE(e.txid, off + 10, 6);
  });
  sealPage(page, PageType.Freelist, last.inlineFree!.length, fp, last.txid);
  const extents = [...last.commitExtents, { start: fp, count: 1 }].sort((a, b) => a.start - b.start);
  let hash = 0;
  for (const e of extents) hash = crc32(data.subarray(e.start * PAGE_SIZE, (e.start + e.count) * PAGE_SIZE), hash);
  const meta = encodeMeta({ ...last, freelistPage: fp, freelistPages: 1, pageCount: fp + 1, inlineFree: null, commitExtents: extents, commitHash: hash });
  meta.writeUInt32LE(4, 32); // the format version
  meta.writeUInt32LE(crc32(meta.subarray(4)), 0);
  meta.copy(pageOf(data, 2));
  return data;
}

test('a format-4 file whose last commit was not sealed: open and close with nothing written leave it as it was (no seal of this format over a format-4 freelist), and it opens again', async () => {
  const file = path.join(tempDir('f4'), 'lbkv.db');
  fs.writeFileSync(file, unsealedWithFreelistPage());
  const before = fs.readFileSync(file);
  const a = await Store.open({ path: file });
  assert.is(a.stats().txid, 755);
  assert.ok(a.stats().freelistSegments > 0, 'segments referenced from the freelist page');
  const value = await a.get(Buffer.from(`k${String(7).padStart(8, '0')}`));
  assert.is(value?.length, 100, 'key 7 of the fixture');
  await a.close();
  assert.ok(fs.readFileSync(file).equals(before), 'close wrote nothing');
  const b = await Store.open({ path: file });
  try {
    assert.is(b.stats().txid, 755);
    assert.equal(await b.get(Buffer.from(`k${String(7).padStart(8, '0')}`)), value);
    // Its first commit here writes the freelist in this format; close may seal after it.
    await b.put(Buffer.from('after'), Buffer.from('one commit'));
  } finally {
    await b.close();
  }
  const c = await Store.open({ path: file });
  try {
    assert.equal(await c.get(Buffer.from('after')), Buffer.from('one commit'));
    assert.equal(await c.get(Buffer.from(`k${String(7).padStart(8, '0')}`)), value);
  } finally {
    await c.close();
  }
});

test('a failed commit on a format-4 file (no commit of this build yet): its slot gets back what it held, the file opens after a crash, and the next commit succeeds', async () => {
  const ffs = new FaultFS();
  ffs.putFile('/db/lbkv.db', unsealedWithFreelistPage());
  const a = await Store.open({ path: '/db/lbkv.db', fs: ffs });
  const k7 = Buffer.from(`k${String(7).padStart(8, '0')}`);
  const value = await a.get(k7);
  ffs.failWhen({ match: (op) => op.kind === 'datasync', code: 'EIO' });
  const e = await a.put(k7, Buffer.from('failed')).then(() => undefined, (err: unknown) => err);
  assert.ok(e instanceof StoreError && /nothing of this batch was applied/.test(e.message), String(e));
  const crashed = ffs.powerCut(mulberry32(7), POLICY_DROP_ALL).fs;
  const b = await Store.open({ path: '/db/lbkv.db', fs: crashed });
  try {
    assert.is(b.stats().txid, 755, 'the last format-4 commit');
    assert.equal(await b.get(k7), value);
    await b.put(k7, Buffer.from('acknowledged'));
  } finally {
    await b.close();
  }
  const c = await Store.open({ path: '/db/lbkv.db', fs: crashed });
  try {
    assert.equal(await c.get(k7), Buffer.from('acknowledged'));
  } finally {
    await c.close();
  }
});

test.run();

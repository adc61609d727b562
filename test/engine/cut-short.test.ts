// A meta page's page count past the end of the file, on real files: a file cut short opens and its
// next commit grows it back over the cut, but no commit grows a file by more than it holds (or
// 1 GiB), whatever a meta page that passes its checksum counts (btree/commit.ts, unfillableCut).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Store, StoreError } from '../../btree';
import { encodeMeta } from '../../btree/meta';
import { MAX_PAGE_ID, PAGE_SIZE } from '../../btree/layout';
import { tempDir } from '../support/tmp';
import { newestMeta } from '../support/store-image';

const GiB = 2 ** 30;
const key = (i: number) => Buffer.from(`k${String(i).padStart(6, '0')}`);
const value = (i: number) => Buffer.alloc(i === 0 ? 20_000 : 100, i & 0xff);
const KEYS = 300;
const failure = (p: Promise<unknown>) => p.then(() => null, (e: unknown) => e);

let built: Buffer | undefined;

/** A closed store of KEYS keys (key 0 has an overflow value): its file's bytes. */
async function store(): Promise<Buffer> {
  if (built) return built;
  const file = path.join(tempDir('cut'), 'lbkv.db');
  const s = await Store.open({ path: file });
  await s.putMany(Array.from({ length: KEYS }, (_, i) => ({ key: key(i), value: value(i) })));
  await s.close();
  built = fs.readFileSync(file);
  return built;
}


/** A copy of the store whose newest meta counts `pageCount` pages (a valid checksum), its file
 *  `bytes` long (zeros past the store's end, as a growth step leaves them). */
async function withPageCount(pageCount: number, bytes?: number): Promise<string> {
  const data = Buffer.from(await store());
  const m = newestMeta(data);
  encodeMeta({ ...m, pageCount }).copy(data, 2 * (m.txid % 2) * PAGE_SIZE);
  const file = path.join(tempDir('cut'), 'lbkv.db');
  fs.writeFileSync(file, data);
  if (bytes !== undefined) fs.truncateSync(file, bytes);
  return file;
}

async function readsAll(s: Store, what: string): Promise<void> {
  for (let i = 0; i < KEYS; i++) assert.equal(await s.get(key(i)), value(i), `${what}: key ${i}`);
}

test('a meta page counting pages far past the end of the file (2^30, 2^40, 2^41): it opens with a warning and reads; commits fail with CORRUPTION and the file does not grow', async () => {
  for (const count of [2 ** 30, 2 ** 40, MAX_PAGE_ID + 1]) {
    const file = await withPageCount(count);
    const size = fs.statSync(file).size;
    for (let open = 1; open <= 2; open++) {
      const what = `page count ${count}, open ${open}`;
      const s = await Store.open({ path: file });
      try {
        assert.ok(s.openWarnings.some((w) => w.includes(`counts ${count} pages`) && /cut short.*Commits fail with CORRUPTION/.test(w)), `${what}: ${s.openWarnings.join('; ')}`);
        await readsAll(s, what);
        // A small put writes the root only; a large value takes pages past the count.
        for (const v of [Buffer.from('small'), Buffer.alloc(50_000, 9)]) {
          const e = await failure(s.put(key(1), v));
          assert.ok(e instanceof StoreError && e.code === 'CORRUPTION' && e.message.includes(`counts ${count} pages`), `${what}: put of ${v.length} bytes: ${String(e)}`);
        }
        await readsAll(s, `${what}, after the refused puts`);
      } finally {
        await s.close();
      }
      assert.is(fs.statSync(file).size, size, `${what}: the file grew`);
    }
  }
});

test('a file missing as many bytes as it holds, or 1 GiB when it is smaller, is grown back by its next commit; one page more is refused', async () => {
  const small = (await store()).length;
  // A file over 1 GiB: the store padded with zeros (a hole), as a growth step leaves its tail.
  const large = GiB + 64 * PAGE_SIZE;
  for (const [bytes, limit] of [[small, GiB], [large, large]] as const) {
    const fits = (bytes + limit) / PAGE_SIZE;
    for (const count of [fits, fits + 1]) {
      const what = `a ${bytes}-byte file counting ${count} pages`;
      const file = await withPageCount(count, bytes);
      let s = await Store.open({ path: file });
      try {
        assert.ok(s.openWarnings.some((w) => /cut short/.test(w)), `${what}: ${s.openWarnings.join('; ')}`);
        const e = await failure(s.putMany([{ key: key(1), value: Buffer.from('new') }, { key: key(2), value: Buffer.alloc(50_000, 2) }]));
        if (count === fits) assert.is(e, null, `${what}: ${String(e)}`);
        else assert.ok(e instanceof StoreError && e.code === 'CORRUPTION' && /more than a commit grows a file by/.test(e.message), `${what}: ${String(e)}`);
      } finally {
        await s.close();
      }
      const size = fs.statSync(file).size;
      if (count === fits) assert.ok(size >= count * PAGE_SIZE, `${what}: grown to ${size} bytes`);
      else assert.is(size, bytes, `${what}: the file grew`);
      s = await Store.open({ path: file });
      try {
        if (count === fits) {
          assert.equal(s.openWarnings, [], `${what}, reopened`);
          assert.equal(await s.get(key(1)), Buffer.from('new'));
          assert.equal(await s.get(key(2)), Buffer.alloc(50_000, 2));
        }
        assert.equal(await s.get(key(3)), value(3));
      } finally {
        await s.close();
      }
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
  }
});

test('a file cut short by more than a growth step is grown back whole by its next commit: the next open does not warn, and Stat counts the bytes the file has', async () => {
  const file = path.join(tempDir('cut'), 'lbkv.db');
  let s = await Store.open({ path: file });
  for (let r = 0; r < 3; r++) await s.putMany(Array.from({ length: 1000 }, (_, i) => ({ key: key(i), value: Buffer.alloc(3000, r) })));
  // One small put last: the freelist rides in the meta page, so the cut takes tree and value pages.
  await s.put(key(0), Buffer.from('last'));
  const pages = s.stats().pageCount;
  await s.close();
  // About 8 MiB of 12: more than a growth step (a quarter of the file, 1 MiB at least).
  fs.truncateSync(file, (pages - 2000) * PAGE_SIZE);
  s = await Store.open({ path: file });
  try {
    assert.ok(s.openWarnings.some((w) => /cut short/.test(w)), s.openWarnings.join('; '));
    // A put whose path lies in what was cut off fails alone: one of the others commits.
    let put = -1;
    for (let i = 1; i < 1000 && put < 0; i++) {
      const e = await failure(s.put(key(i), Buffer.from('after the cut')));
      if (e === null) put = i;
      else assert.ok(e instanceof StoreError && e.code === 'CORRUPTION', String(e));
    }
    assert.ok(put > 0, 'a put committed');
    assert.is(s.stats().fileBytes, fs.statSync(file).size, "Stat's fileBytes");
  } finally {
    await s.close();
  }
  assert.ok(fs.statSync(file).size >= pages * PAGE_SIZE, `${fs.statSync(file).size} bytes, the commit counts ${pages} pages`);
  s = await Store.open({ path: file });
  try {
    assert.equal(s.openWarnings, []);
  } finally {
    await s.close();
  }
});

test.run();

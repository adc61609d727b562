// The freelist's page encoding: a segment reference takes two slots and never straddles two pages,
// so the slot count at which a page fills up is where a reference may have to move to the next one.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeFreePage, ENTRIES_PER_PAGE, Freelist, pagesForSlots, type FreeEntry, type Segment } from '../../btree/freelist';
import { FORMAT_VERSION } from '../../btree/layout';

function listWith(free: number, segments: number): Freelist {
  const fl = new Freelist();
  // Free extents two pages apart, so that none coalesce.
  fl.free = Array.from({ length: free }, (_, i) => ({ start: 10 + 2 * i, count: 1 }));
  fl.segments = Array.from({ length: segments }, (_, i): Segment => ({
    start: 1_000_000 + 3 * i, count: 1 + (i % 2), maxTxid: 50 + i, level: i % 3, listed: 254 * (i + 1), taken: i % 2 ? 17 : 0,
  }));
  return fl;
}

test('references never straddle two pages, and the pages decode to the entries written, for counts around a page', () => {
  for (let free = ENTRIES_PER_PAGE - 4; free <= ENTRIES_PER_PAGE + 2; free++) {
    for (let segments = 1; segments <= 3; segments++) {
      const fl = listWith(free, segments);
      const pages = pagesForSlots(fl.slotCount());
      const bufs = fl.encode(500, pages, 9);
      const got: FreeEntry[] = [];
      for (const page of bufs) {
        const slots = page.readUInt16LE(6);
        assert.ok(slots <= ENTRIES_PER_PAGE);
        const entries = decodeFreePage(page, slots, FORMAT_VERSION);
        assert.type(entries, 'object', `free ${free}, segments ${segments}: ${String(entries)}`);
        got.push(...(entries as FreeEntry[]));
      }
      assert.equal(got, fl.entries(), `free ${free}, segments ${segments}, ${pages} pages`);
    }
  }
});

test('a page whose last slot is the first half of a reference is refused, and format 4 reads a reference in one slot', () => {
  const fl = listWith(0, 1);
  const [page] = fl.encode(500, 1, 9);
  assert.is(page.readUInt16LE(6), 2);
  assert.type(decodeFreePage(page, 1, FORMAT_VERSION), 'string');
  const old = decodeFreePage(page, 1, 4) as FreeEntry[];
  assert.is(old.length, 1);
  assert.equal({ start: old[0].start, count: old[0].count, txid: old[0].txid, listed: old[0].ref?.listed }, { start: 1_000_000, count: 1, txid: 50, listed: -1 });
});

test.run();

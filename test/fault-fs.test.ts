// Semantics of the power-cut simulator itself (test/support/fault-fs.ts): un-synced writes may
// vanish, synced ones never do, tearing happens at 512-byte sectors, directory entries need syncDir,
// cuts freeze the machine, injected errors surface with errno codes, and it is all deterministic.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as zlib from 'node:zlib';
import {
  FaultFS, mulberry32, POLICY_DROP_ALL, POLICY_KEEP_ALL, POLICY_RANDOM, POLICY_TEAR, SECTOR,
} from './support/fault-fs';

const F = '/db/data.lbkv';
const fill = (n: number, b: number) => Buffer.alloc(n, b);

async function withFile(): Promise<{ fs: FaultFS; h: Awaited<ReturnType<FaultFS['create']>> }> {
  const fs = new FaultFS();
  const h = await fs.create(F);
  await fs.syncDir('/db');
  return { fs, h };
}

test('reads see un-synced writes (page cache)', async () => {
  const { fs, h } = await withFile();
  await h.writev([fill(10, 1), fill(10, 2)], 100);
  const b = Buffer.alloc(20);
  assert.is(h.readSync(b, 0, 20, 100), 20);
  assert.equal(b, Buffer.concat([fill(10, 1), fill(10, 2)]));
  assert.is(h.size(), 120);
  assert.is(await h.read(b, 0, 20, 110), 10); // short read at end of file
  assert.is(fs.pendingWrites(F), 1);
});

test('un-synced writes vanish with dropAll and land with keepAll', async () => {
  const { fs, h } = await withFile();
  await h.writev([fill(4096, 7)], 0);
  await h.datasync();
  await h.writev([fill(4096, 9)], 4096);
  await h.writev([fill(100, 5)], 0);
  const dropped = fs.clone().powerCut(mulberry32(1), POLICY_DROP_ALL).fs;
  assert.equal(dropped.readVolatile(F), fill(4096, 7));
  const kept = fs.clone().powerCut(mulberry32(1), POLICY_KEEP_ALL).fs;
  assert.equal(kept.readVolatile(F), Buffer.concat([fill(100, 5), fill(3996, 7), fill(4096, 9)]));
});

test('synced data never vanishes, whatever the policy', async () => {
  for (let seed = 0; seed < 200; seed++) {
    const { fs, h } = await withFile();
    await h.writev([fill(8192, 3)], 0);
    await h.datasync();
    await h.writev([fill(4096, 4)], 8192); // un-synced, beyond the synced part
    const { fs: after } = fs.powerCut(mulberry32(seed), POLICY_RANDOM);
    const img = after.readVolatile(F)!;
    assert.ok(img.length >= 8192, `seed ${seed}`);
    assert.equal(img.subarray(0, 8192), fill(8192, 3), `seed ${seed}`);
  }
});

test('tearing happens at 512-byte sectors; garbling writes random sectors', async () => {
  let mixed = 0;
  let garbled = 0;
  for (let seed = 0; seed < 200; seed++) {
    const { fs, h } = await withFile();
    await h.writev([fill(4096, 0xaa)], 0);
    await h.datasync();
    await h.writev([fill(4096, 0xbb)], 0);
    const { fs: after, report } = fs.powerCut(mulberry32(seed), POLICY_TEAR);
    const img = after.readVolatile(F)!;
    assert.is(img.length, 4096);
    const kinds = new Set<string>();
    for (let s = 0; s < 4096; s += SECTOR) {
      const sec = img.subarray(s, s + SECTOR);
      if (sec.equals(fill(SECTOR, 0xaa))) kinds.add('old');
      else if (sec.equals(fill(SECTOR, 0xbb))) kinds.add('new');
      else kinds.add('garbage');
    }
    if (report.torn === 1) {
      assert.ok(kinds.has('old') && kinds.has('new') && !kinds.has('garbage'), `seed ${seed}: torn must mix whole sectors`);
      mixed++;
    }
    if (report.garbled === 1) {
      assert.ok(kinds.has('garbage'), `seed ${seed}: garbled must contain a garbage sector`);
      garbled++;
    }
  }
  assert.ok(mixed > 20 && garbled > 5, `torn ${mixed}, garbled ${garbled}`);
});

test('an unaligned write tears only inside the sectors it touches', async () => {
  for (let seed = 0; seed < 50; seed++) {
    const { fs, h } = await withFile();
    await h.writev([fill(3 * SECTOR, 1)], 0);
    await h.datasync();
    await h.writev([fill(SECTOR, 2)], 256); // touches sectors 0 and 1
    const img = fs.powerCut(mulberry32(seed), { ...POLICY_TEAR, garble: 0 }).fs.readVolatile(F)!;
    assert.equal(img.subarray(0, 256), fill(256, 1));
    assert.equal(img.subarray(2 * SECTOR), fill(SECTOR, 1));
  }
});

test('created and renamed entries need syncDir', async () => {
  const fs = new FaultFS();
  const h = await fs.create('/db/tmp');
  await h.writev([fill(10, 1)], 0);
  await h.datasync();
  assert.ok(fs.exists('/db/tmp'));
  assert.is(fs.clone().powerCut(mulberry32(1), POLICY_DROP_ALL).fs.exists('/db/tmp'), false);
  await fs.syncDir('/db');
  assert.ok(fs.clone().powerCut(mulberry32(1), POLICY_DROP_ALL).fs.exists('/db/tmp'));
  await fs.rename('/db/tmp', '/db/final');
  assert.ok(fs.exists('/db/final') && !fs.exists('/db/tmp'));
  const reverted = fs.clone().powerCut(mulberry32(1), POLICY_DROP_ALL).fs;
  assert.ok(reverted.exists('/db/tmp') && !reverted.exists('/db/final'));
  const moved = fs.clone().powerCut(mulberry32(1), POLICY_KEEP_ALL).fs;
  assert.ok(!moved.exists('/db/tmp') && moved.exists('/db/final'));
  await fs.syncDir('/db');
  const after = fs.powerCut(mulberry32(1), POLICY_DROP_ALL).fs;
  assert.equal(after.readVolatile('/db/final'), fill(10, 1));
});

test('a file whose data was not synced comes back empty after a cut', async () => {
  const fs = new FaultFS();
  const h = await fs.create('/db/f');
  await fs.syncDir('/db');
  await h.writev([fill(5000, 1)], 0);
  assert.equal(fs.powerCut(mulberry32(3), POLICY_DROP_ALL).fs.readVolatile('/db/f'), Buffer.alloc(0));
});

test('un-synced growth (extend) may be kept or dropped; datasync makes size durable', async () => {
  const { fs, h } = await withFile();
  await h.extend(65536, 0);
  const d = fs.clone().powerCut(mulberry32(1), POLICY_DROP_ALL).fs;
  assert.is(d.readVolatile(F)!.length, 0);
  const k = fs.clone().powerCut(mulberry32(1), POLICY_KEEP_ALL).fs;
  assert.is(k.readVolatile(F)!.length, 65536);
  await h.datasync();
  assert.is(fs.powerCut(mulberry32(1), POLICY_DROP_ALL).fs.readVolatile(F)!.length, 65536);
});

test('datasync only covers writes issued before it', async () => {
  const { fs, h } = await withFile();
  await h.writev([fill(4096, 1)], 0);
  const sync = h.datasync();
  const late = h.writev([fill(4096, 2)], 4096); // issued while the sync is in flight
  await Promise.all([sync, late]);
  const img = fs.powerCut(mulberry32(1), POLICY_DROP_ALL).fs.readVolatile(F)!;
  assert.equal(img, fill(4096, 1));
});

test('cutAt: the k-th op never completes, later ops hang, reads throw', async () => {
  const { fs, h } = await withFile(); // ops 1 (create), 2 (syncDir)
  fs.cutAt(4);
  await h.writev([fill(4096, 1)], 0); // op 3
  let settled = false;
  void h.writev([fill(4096, 2)], 4096).then(() => (settled = true), () => (settled = true)); // op 4: cut
  const cut = await fs.cutReached;
  assert.is(cut.index, 4);
  assert.is(cut.kind, 'writev');
  let later = false;
  void h.datasync().then(() => (later = true), () => (later = true));
  await new Promise((r) => setTimeout(r, 20));
  assert.is(settled, false);
  assert.is(later, false);
  assert.throws(() => h.readSync(Buffer.alloc(1), 0, 1, 0), /power is off/);
  assert.is(fs.opCount, 4);
  // The cut write is pending: kept with keepAll, absent with dropAll.
  assert.is(fs.clone().powerCut(mulberry32(1), POLICY_KEEP_ALL).fs.readVolatile(F)!.length, 8192);
  assert.is(fs.clone().powerCut(mulberry32(1), POLICY_DROP_ALL).fs.readVolatile(F)!.length, 0);
});

test('freezeMode reject: calls after the cut reject with EIO', async () => {
  const fs = new FaultFS({ freezeMode: 'reject' });
  const h = await fs.create(F);
  fs.freezeNow();
  await h.writev([fill(1, 1)], 0).then(() => assert.unreachable('should reject'), (e) => assert.match(String(e), /power is off/));
});

test('failure injection: EIO on a write, ENOSPC on a sync, ENOSPC on growth', async () => {
  const { fs, h } = await withFile();
  fs.failNth('writev', 2, 'EIO');
  fs.failNth('datasync', 1, 'ENOSPC');
  fs.failNth('truncate', 1, 'ENOSPC');
  await h.writev([fill(10, 1)], 0);
  const e1 = await h.writev([fill(10, 2)], 10).then(() => null, (e) => e);
  assert.is(e1?.code, 'EIO');
  assert.is(h.size(), 10); // the failed write wrote nothing
  const e2 = await h.datasync().then(() => null, (e) => e);
  assert.is(e2?.code, 'ENOSPC');
  assert.is(fs.clone().powerCut(mulberry32(1), POLICY_DROP_ALL).fs.readVolatile(F)!.length, 0); // nothing durable
  const e3 = await h.extend(1 << 20, 0).then(() => null, (e) => e);
  assert.is(e3?.code, 'ENOSPC');
  await h.datasync(); // later ops succeed
  assert.equal(fs.powerCut(mulberry32(1), POLICY_DROP_ALL).fs.readVolatile(F), fill(10, 1));
});

test('partial write failure leaves a sector-aligned prefix in the page cache', async () => {
  const { fs, h } = await withFile();
  fs.failWhen({ match: (op) => op.kind === 'writev', code: 'EIO', partial: true });
  const e = await h.writev([fill(4 * SECTOR, 1)], 0).then(() => null, (err) => err);
  assert.is(e?.code, 'EIO');
  assert.is(h.size(), 2 * SECTOR);
});

test('failReads: matching reads throw EIO the given number of times', async () => {
  const { fs, h } = await withFile();
  await h.writev([fill(8192, 1)], 0);
  fs.failReads((_f, pos) => pos >= 4096, 'EIO', 1);
  const b = Buffer.alloc(10);
  assert.is(h.readSync(b, 0, 10, 0), 10);
  assert.throws(() => h.readSync(b, 0, 10, 4096), (e: NodeJS.ErrnoException) => e.code === 'EIO');
  assert.is(h.readSync(b, 0, 10, 4096), 10);
  fs.failReads(() => true, 'EIO', 1);
  const e = await h.read(b, 0, 10, 0).then(() => null, (err) => err);
  assert.is(e?.code, 'EIO');
});

test('deterministic: same seed, same crash image', async () => {
  const build = async () => {
    const { fs, h } = await withFile();
    for (let i = 0; i < 20; i++) await h.writev([fill(3000 + i * 100, i)], i * 4096);
    return fs;
  };
  const a = (await build()).powerCut(mulberry32(42), POLICY_RANDOM).fs.readVolatile(F)!;
  const b = (await build()).powerCut(mulberry32(42), POLICY_RANDOM).fs.readVolatile(F)!;
  const c = (await build()).powerCut(mulberry32(43), POLICY_RANDOM).fs.readVolatile(F)!;
  assert.is(zlib.crc32(a), zlib.crc32(b));
  assert.is.not(zlib.crc32(a), zlib.crc32(c));
});

test('trace records ops with positions and data checksums', async () => {
  const { fs, h } = await withFile();
  await h.writev([fill(4096, 1)], 8192);
  await h.datasync();
  assert.equal(fs.trace.map((o) => o.kind), ['create', 'syncDir', 'writev', 'datasync']);
  assert.is(fs.trace[2]!.pos, 8192);
  assert.is(fs.trace[2]!.length, 4096);
  assert.is(fs.trace[2]!.crc, zlib.crc32(fill(4096, 1)));
  assert.is(fs.completedOps, 4);
});

test.run();

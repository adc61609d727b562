// The durability floor: how long one 4 KiB write + fdatasync takes on the data disk. A durable put can
// not be faster than this (lbkv's one-sync commit pays about one of these; two-sync pays two).
//
//   node dist/experiments/fsync-floor.js [--dir DIR] [--count N] [--bytes 4096]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { dataDirRoot, type Hist, LatencySummary, newHist, summarize, usSince } from './lib/common';

export interface FsyncFloor extends LatencySummary { bytes: number; dir: string; preallocatedBytes: number; sparse: boolean }

/** Writes `bytes` at a random 4 KiB-aligned offset of a preallocated (and synced) 64 MiB file, then
 *  fdatasyncs; `count` times. The file is preallocated so that the size does not change: that is what
 *  a commit into an already grown data file pays. */
export async function measureFsync(dir: string = dataDirRoot(), count = 200, bytes = 4096, sparse = false, into?: Hist): Promise<FsyncFloor> {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `lbkv-fsync-floor-${process.pid}.bin`);
  const size = 64 * 1024 * 1024;
  const fd = fs.openSync(file, 'w+');
  try {
    if (sparse) {
      // Grown with ftruncate only (as a data file grown that way): every first write into a page
      // allocates its block, so the fdatasync also has to commit that allocation.
      fs.ftruncateSync(fd, size);
    } else {
      const block = Buffer.alloc(1024 * 1024, 0xab);
      for (let off = 0; off < size; off += block.length) fs.writeSync(fd, block, 0, block.length, off);
    }
    fs.fsyncSync(fd);
    const buf = Buffer.alloc(bytes, 0x5a);
    const h = newHist();
    const pages = Math.floor((size - bytes) / 4096);
    const datasync = () => new Promise<void>((res, rej) => fs.fdatasync(fd, (e) => (e ? rej(e) : res())));
    const write = (pos: number) => new Promise<void>((res, rej) => fs.write(fd, buf, 0, bytes, pos, (e) => (e ? rej(e) : res())));
    for (let i = 0; i < count + 5; i++) {
      const pos = Math.floor(Math.random() * pages) * 4096;
      buf.writeUInt32LE(i, 0);
      const t0 = process.hrtime.bigint();
      await write(pos);
      await datasync();
      if (i >= 5) {
        const us = Math.max(1, Math.round(usSince(t0)));
        h.recordValue(us);
        into?.recordValue(us);
      }
    }
    return { ...summarize(h), bytes, dir: path.resolve(dir), preallocatedBytes: sparse ? 0 : size, sparse };
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
}

/** What one fdatasync costs for the write patterns a commit can have, each measured in turns with
 *  the others (so the disk's slow and fast spells fall on all alike), in a preallocated 64 MiB file:
 *  - one page: the floor itself;
 *  - one page + page 0: a commit whose data is one page, plus its meta page;
 *  - 4 contiguous pages + page 0: a one-put commit (value, leaf, branch, root) placed as one run;
 *  - 4 scattered pages + page 0: the same commit with its pages reused from scattered free space;
 *  - one page, fdatasync on the calling thread (fs.fdatasyncSync): no thread-pool round trip, which
 *    Node's asynchronous fdatasync pays; shows what that round trip costs on this machine.
 *  The writes themselves are synchronous pwrites (as lbkv's small commits); the time is from the
 *  first write to the end of the fdatasync. */
export async function measureSyncShapes(dir: string = dataDirRoot(), rounds = 300): Promise<Record<string, LatencySummary>> {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `lbkv-sync-shapes-${process.pid}.bin`);
  const size = 64 * 1024 * 1024;
  const pages = size / 4096;
  const fd = fs.openSync(file, 'w+');
  try {
    const block = Buffer.alloc(1024 * 1024, 0xab);
    for (let off = 0; off < size; off += block.length) fs.writeSync(fd, block, 0, block.length, off);
    fs.fsyncSync(fd);
    const page = Buffer.alloc(4096, 0x5a);
    const run = Buffer.alloc(4 * 4096, 0x5b);
    const at = () => (2 + Math.floor(Math.random() * (pages - 8))) * 4096;
    const datasync = () => new Promise<void>((res, rej) => fs.fdatasync(fd, (e) => (e ? rej(e) : res())));
    const shapes: Record<string, () => Promise<void> | void> = {
      'one page': () => { fs.writeSync(fd, page, 0, 4096, at()); return datasync(); },
      'one page + meta page': () => { fs.writeSync(fd, page, 0, 4096, at()); fs.writeSync(fd, page, 0, 4096, 0); return datasync(); },
      '4 contiguous pages + meta page': () => { fs.writeSync(fd, run, 0, run.length, at()); fs.writeSync(fd, page, 0, 4096, 0); return datasync(); },
      '4 scattered pages + meta page': () => {
        for (let i = 0; i < 4; i++) fs.writeSync(fd, page, 0, 4096, at());
        fs.writeSync(fd, page, 0, 4096, 0);
        return datasync();
      },
      'one page, fdatasync on the calling thread': () => { fs.writeSync(fd, page, 0, 4096, at()); fs.fdatasyncSync(fd); },
    };
    const hists = Object.fromEntries(Object.keys(shapes).map((k) => [k, newHist()]));
    for (let i = 0; i < rounds + 5; i++) {
      for (const [name, run1] of Object.entries(shapes)) {
        const t0 = process.hrtime.bigint();
        await run1();
        if (i >= 5) hists[name].recordValue(Math.max(1, Math.round(usSince(t0))));
      }
    }
    return Object.fromEntries(Object.entries(hists).map(([k, h]) => [k, summarize(h)]));
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
}

async function main(): Promise<void> {
  const opts = new Command()
    .name('fsync-floor')
    .description('measure one write + fdatasync of a 4 KiB block on the data disk (the durability floor)')
    .option('--dir <dir>', 'directory on the data disk', dataDirRoot())
    .option('--count <n>', 'number of write+fdatasync rounds', '200')
    .option('--bytes <n>', 'bytes written per round', '4096')
    .option('--sparse', 'grow the file with ftruncate only (each write allocates a block) instead of writing it first', false)
    .option('--shapes', 'instead: one fdatasync after the write patterns of a commit (one page, + meta, 4 pages contiguous or scattered, sync on the calling thread)', false)
    .parse()
    .opts<{ dir: string; count: string; bytes: string; sparse: boolean; shapes: boolean }>();
  const r = opts.shapes ? await measureSyncShapes(opts.dir, Number(opts.count)) : await measureFsync(opts.dir, Number(opts.count), Number(opts.bytes), opts.sparse);
  console.log(JSON.stringify(r, null, 2));
}

if (require.main === module) {
  main().catch((e) => { console.error(e); process.exit(1); });
}

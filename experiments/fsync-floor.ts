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

async function main(): Promise<void> {
  const opts = new Command()
    .name('fsync-floor')
    .description('measure one write + fdatasync of a 4 KiB block on the data disk (the durability floor)')
    .option('--dir <dir>', 'directory on the data disk', dataDirRoot())
    .option('--count <n>', 'number of write+fdatasync rounds', '200')
    .option('--bytes <n>', 'bytes written per round', '4096')
    .option('--sparse', 'grow the file with ftruncate only (each write allocates a block) instead of writing it first', false)
    .parse()
    .opts<{ dir: string; count: string; bytes: string; sparse: boolean }>();
  const r = await measureFsync(opts.dir, Number(opts.count), Number(opts.bytes), opts.sparse);
  console.log(JSON.stringify(r, null, 2));
}

if (require.main === module) {
  main().catch((e) => { console.error(e); process.exit(1); });
}

// The durability floor: how long one 4 KiB write + fdatasync takes on the data disk. A durable put can
// not be faster than this (lbkv's one-sync commit pays about one of these; two-sync pays two).
//
//   node dist/experiments/fsync-floor.js [--dir DIR] [--count N] [--bytes 4096]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { dataDirRoot, type Hist, LatencySummary, newHist, summarize, usSince, wholeArg } from './lib/common';

export interface FsyncFloor extends LatencySummary { bytes: number; dir: string; preallocatedBytes: number; sparse: boolean }

const PROBE_FILE_BYTES = 64 * 1024 * 1024;

/** Creates `file` with `bytes` written and synced, so that later writes into it change no size and
 *  allocate no block (what a commit into an already grown data file pays); `sparse`: grown by
 *  ftruncate only, as a data file grown that way (every first write allocates its block). */
export function preallocatedFile(file: string, bytes = PROBE_FILE_BYTES, sparse = false): number {
  const fd = fs.openSync(file, 'w+');
  if (sparse) {
    fs.ftruncateSync(fd, bytes);
  } else {
    const block = Buffer.alloc(1024 * 1024, 0xab);
    for (let off = 0; off < bytes; off += block.length) fs.writeSync(fd, block, 0, Math.min(block.length, bytes - off), off);
  }
  fs.fsyncSync(fd);
  return fd;
}

/** One write of `bytes` at a random 4 KiB-aligned offset + fdatasync, repeatedly, into one
 *  preallocated file: opened once, so that measuring between the rounds of a benchmark does not
 *  write a new file each time. The write is made on the calling thread, as lbkv's commit makes its
 *  small writes (btree/file-io.ts); the fdatasync goes to the thread pool, as lbkv's default commit
 *  does, or with `blocking` stays on the calling thread (OpenOptions.blockingSyncUs). Until 6f95e2a
 *  the pool probe made its write through the pool too: one thread hand-off more than lbkv pays,
 *  60-80 us on this VM, which made every ratio against it look better than it was. */
export class FsyncProbe {
  private readonly buf: Buffer;
  private readonly pages: number;
  private n = 0;

  private constructor(private readonly fd: number, private readonly file: string, readonly bytes: number, readonly fileBytes: number) {
    this.buf = Buffer.alloc(bytes, 0x5a);
    this.pages = Math.floor((fileBytes - bytes) / 4096);
  }

  /** A probe on a new file of its own in `dir`. */
  static open(dir: string, o: { bytes?: number; fileBytes?: number; sparse?: boolean } = {}): FsyncProbe {
    fs.mkdirSync(dir, { recursive: true });
    return FsyncProbe.at(path.join(dir, `lbkv-fsync-probe-${process.pid}-${Math.random().toString(36).slice(2, 8)}.bin`), o);
  }

  /** A probe on `file`, created (or replaced) and preallocated; close() removes it. */
  static at(file: string, o: { bytes?: number; fileBytes?: number; sparse?: boolean } = {}): FsyncProbe {
    const fileBytes = o.fileBytes ?? PROBE_FILE_BYTES;
    return new FsyncProbe(preallocatedFile(file, fileBytes, o.sparse), file, o.bytes ?? 4096, fileBytes);
  }

  /** One write + fdatasync. */
  async once(blocking = false): Promise<void> {
    const pos = Math.floor(Math.random() * this.pages) * 4096;
    this.buf.writeUInt32LE(this.n++, 0);
    fs.writeSync(this.fd, this.buf, 0, this.bytes, pos);
    if (blocking) {
      fs.fdatasyncSync(this.fd);
      return;
    }
    await new Promise<void>((res, rej) => fs.fdatasync(this.fd, (e) => (e ? rej(e) : res())));
  }

  /** `warmup` unrecorded probes, then `count` recorded (microseconds) into every histogram given. */
  async run(count: number, into: Hist[], warmup = 0, blocking = false): Promise<void> {
    for (let i = 0; i < warmup + count; i++) {
      const t0 = process.hrtime.bigint();
      await this.once(blocking);
      if (i < warmup) continue;
      const us = Math.max(1, Math.round(usSince(t0)));
      for (const h of into) h.recordValue(us);
    }
  }

  close(): void {
    fs.closeSync(this.fd);
    fs.rmSync(this.file, { force: true });
  }
}

/** `count` probes (after 5 unrecorded ones) into a fresh preallocated 64 MiB file. */
export async function measureFsync(dir: string = dataDirRoot(), count = 200, bytes = 4096, sparse = false): Promise<FsyncFloor> {
  const probe = FsyncProbe.open(dir, { bytes, sparse });
  try {
    const h = newHist();
    await probe.run(count, [h], 5);
    return { ...summarize(h), bytes, dir: path.resolve(dir), preallocatedBytes: sparse ? 0 : probe.fileBytes, sparse };
  } finally {
    probe.close();
  }
}

/** What one fdatasync costs for the write patterns a commit can have, each measured in turns with
 *  the others (so the disk's slow and fast spells fall on all alike), in a preallocated 64 MiB file:
 *  - one page: the floor itself;
 *  - one page + page 0: a commit whose data is one page, plus its meta page;
 *  - 4 contiguous pages + page 0: a one-put commit (value, leaf, branch, root) placed as one run;
 *  - 4 scattered pages + page 0: the same commit with its pages reused from scattered free space;
 *  - 3 scattered pages + page 0, and 2 scattered pages + pages 0-1 in one write: a one-put commit
 *    into a two-level tree (value, leaf, root) before and since format 3 moved the root next to
 *    the meta page;
 *  - page 0 + 4 pages in one write: the commit laid out behind its meta page, as a write-ahead slot
 *    would write it (what a one-write commit could cost, if its pages needed no second copy);
 *  - 16 and 64 contiguous pages + page 0: how the cost grows with the run's length, i.e. what filling
 *    the gaps between a commit's scattered pages (to write them as one run) would cost;
 *  - one page, fdatasync on the calling thread (fs.fdatasyncSync): no thread-pool round trip, which
 *    Node's asynchronous fdatasync pays; shows what that round trip costs on this machine.
 *  The writes themselves are synchronous pwrites (as lbkv's small commits); the time is from the
 *  first write to the end of the fdatasync. */
export async function measureSyncShapes(dir: string = dataDirRoot(), rounds = 300): Promise<Record<string, LatencySummary>> {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `lbkv-sync-shapes-${process.pid}.bin`);
  const pages = PROBE_FILE_BYTES / 4096;
  const fd = preallocatedFile(file);
  try {
    const page = Buffer.alloc(4096, 0x5a);
    const long = Buffer.alloc(64 * 4096, 0x5c);
    const at = () => (2 + Math.floor(Math.random() * (pages - 70))) * 4096;
    const contiguous = (n: number) => () => { fs.writeSync(fd, long, 0, n * 4096, at()); fs.writeSync(fd, page, 0, 4096, 0); return datasync(); };
    const datasync = () => new Promise<void>((res, rej) => fs.fdatasync(fd, (e) => (e ? rej(e) : res())));
    const scattered = (n: number, slotPages: number) => () => {
      for (let i = 0; i < n; i++) fs.writeSync(fd, page, 0, 4096, at());
      fs.writeSync(fd, long, 0, slotPages * 4096, 0);
      return datasync();
    };
    const shapes: Record<string, () => Promise<void> | void> = {
      'one page': () => { fs.writeSync(fd, page, 0, 4096, at()); return datasync(); },
      'one page + meta page': contiguous(1),
      '4 contiguous pages + meta page': contiguous(4),
      '4 scattered pages + meta page': scattered(4, 1),
      '3 scattered pages + meta page': scattered(3, 1),
      '2 scattered pages + meta and root pages, one write': scattered(2, 2),
      'meta page + 4 pages, one write': () => { fs.writeSync(fd, long, 0, 5 * 4096, 0); return datasync(); },
      '16 contiguous pages + meta page': contiguous(16),
      '64 contiguous pages + meta page': contiguous(64),
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
    .option('--count <n>', 'number of write+fdatasync rounds', wholeArg(1), 200)
    .option('--bytes <n>', 'bytes written per round', wholeArg(1), 4096)
    .option('--sparse', 'grow the file with ftruncate only (each write allocates a block) instead of writing it first', false)
    .option('--shapes', 'instead: one fdatasync after the write patterns of a commit (one page, + meta, 4 pages contiguous or scattered, meta + 4 pages as one write, 16 and 64 contiguous pages, sync on the calling thread)', false)
    .parse()
    .opts<{ dir: string; count: number; bytes: number; sparse: boolean; shapes: boolean }>();
  const r = opts.shapes ? await measureSyncShapes(opts.dir, opts.count) : await measureFsync(opts.dir, opts.count, opts.bytes, opts.sparse);
  console.log(JSON.stringify(r, null, 2));
}

if (require.main === module) {
  main().catch((e) => { console.error(e); process.exit(1); });
}

// Every byte the engine reads or writes goes through these two interfaces, so a test can put a
// power-cut simulator underneath (test/support/fault-fs.ts) and the real store runs on node:fs.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface FileHandle {
  /** Positional read; returns bytes read (short at end of file). Synchronous: B-tree pages are small
   *  and usually in the OS page cache, and a thread-pool round trip per page would dominate a get. */
  readSync(buf: Buffer, offset: number, length: number, position: number): number;
  /** Positional read through the thread pool, for large overflow values. */
  read(buf: Buffer, offset: number, length: number, position: number): Promise<number>;
  /** Positional gather write of all buffers, back to back, starting at `position`. */
  writev(buffers: Buffer[], position: number): Promise<void>;
  /** fdatasync: data and the metadata needed to read it back (including the size) are durable.
   *  `blocking`: on the calling thread, not the thread pool. A small commit's sync takes about
   *  100-300 us here, and the pool's two hand-offs (wake a worker, wake the event loop with the
   *  result) add tens of microseconds to that, which a blocked caller does not pay (while every
   *  other task on that thread waits). */
  datasync(blocking?: boolean): Promise<void>;
  /** Grows the file to `size` bytes of written zeros, not a hole: later overwrites of those pages
   *  need no block allocation, so their fdatasync flushes data only. The caller is about to write
   *  [current size, zeroFrom) itself; a large such range (a big value) is not written twice, and
   *  stays a hole until then. Not durable until the next datasync. */
  extend(size: number, zeroFrom: number): Promise<void>;
  size(): number;
  close(): Promise<void>;
}

export interface FileSystem {
  /** Opens an existing file for reading and writing ('r+': positional writes work, unlike 'a'). */
  open(file: string, readOnly?: boolean): Promise<FileHandle>;
  /** Creates (or replaces) a file, empty. */
  create(file: string): Promise<FileHandle>;
  exists(file: string): boolean;
  rename(from: string, to: string): Promise<void>;
  unlink(file: string): Promise<void>;
  /** fsync of a directory, so a created or renamed entry survives a power cut. */
  syncDir(dir: string): Promise<void>;
}

const SYNC_WRITE_BYTES = 64 * 1024;
const ZEROS = Buffer.alloc(1024 * 1024);
const SKIP_ZEROS_BYTES = 1024 * 1024;

class NodeFileHandle implements FileHandle {
  constructor(private readonly fd: number) {}

  readSync(buf: Buffer, offset: number, length: number, position: number): number {
    return fs.readSync(this.fd, buf, offset, length, position);
  }

  read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    return new Promise((resolve, reject) =>
      fs.read(this.fd, buf, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))));
  }

  async writev(buffers: Buffer[], position: number): Promise<void> {
    // A few pages land in the OS page cache in microseconds; a thread-pool round trip costs more
    // than that, so small writes go straight through and only large ones use the pool.
    let total = 0;
    for (const b of buffers) total += b.length;
    if (total <= SYNC_WRITE_BYTES) {
      let done = 0;
      while (done < total) done += fs.writevSync(this.fd, dropBytes(buffers, done), position + done);
      return;
    }
    let pos = position;
    let pending = buffers;
    // writev may write less than asked (signals, huge requests); loop until everything is written.
    while (pending.length > 0) {
      const written = await new Promise<number>((resolve, reject) =>
        fs.writev(this.fd, pending, pos, (err, n) => (err ? reject(err) : resolve(n))));
      pos += written;
      pending = dropBytes(pending, written);
    }
  }

  datasync(blocking = false): Promise<void> {
    if (blocking) {
      try {
        fs.fdatasyncSync(this.fd);
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return new Promise((resolve, reject) => fs.fdatasync(this.fd, (err) => (err ? reject(err) : resolve())));
  }

  async extend(size: number, zeroFrom: number): Promise<void> {
    const from = this.size();
    if (size <= from) return;
    try {
      // A gap left for the caller would be a hole, and every later write into a hole makes its
      // fdatasync allocate a block (bench-engine's sparse floor); only a large gap, a big value about
      // to be written in full by this commit, is skipped.
      const start = zeroFrom - from >= SKIP_ZEROS_BYTES ? zeroFrom : from;
      // Nothing written reaches `size` when the skipped range runs to it, and its pages need not
      // all be written: those a file cut short lost are written by no commit. The size must be set
      // anyway, or the growth the commit syncs before its meta counts the pages is no growth, and
      // every later open warns that the file was cut short.
      if (start >= size) {
        await new Promise<void>((resolve, reject) => fs.ftruncate(this.fd, size, (err) => (err ? reject(err) : resolve())));
        return;
      }
      for (let pos = start; pos < size; pos += ZEROS.length) {
        const n = Math.min(ZEROS.length, size - pos);
        let done = 0;
        while (done < n) {
          done += await new Promise<number>((resolve, reject) =>
            fs.write(this.fd, ZEROS, done, n - done, pos + done, (err, w) => (err ? reject(err) : resolve(w))));
        }
      }
    } catch (err) {
      // Give back what was written (a full disk wants every block); the caller reports the error.
      await new Promise<void>((resolve) => fs.ftruncate(this.fd, from, () => resolve()));
      throw err;
    }
  }

  size(): number {
    return fs.fstatSync(this.fd).size;
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) => fs.close(this.fd, (err) => (err ? reject(err) : resolve())));
  }
}

function dropBytes(buffers: Buffer[], n: number): Buffer[] {
  const out: Buffer[] = [];
  let skip = n;
  for (const b of buffers) {
    if (skip >= b.length) { skip -= b.length; continue; }
    out.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}

export const nodeFileSystem: FileSystem = {
  async open(file, readOnly = false) {
    return new NodeFileHandle(fs.openSync(file, readOnly ? 'r' : 'r+'));
  },
  async create(file) {
    return new NodeFileHandle(fs.openSync(file, 'w+'));
  },
  exists(file) {
    return fs.existsSync(file);
  },
  async rename(from, to) {
    await fs.promises.rename(from, to);
  },
  async unlink(file) {
    await fs.promises.unlink(file);
  },
  async syncDir(dir) {
    const fd = fs.openSync(path.resolve(dir), 'r');
    try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
  },
};

// Shared pieces of the durability tests (test/durability/*.test.ts) and the torture runner:
// self-describing values, a seeded RNG, loop-device / tmpfs scripting, /proc readers.
// Server processes are spawned only through test/support/server.ts (the service engineer's helper).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';

// ---------------------------------------------------------------------------------------------
// Self-describing values: a value carries its key, its writer, its version and a CRC over all of
// it, so a reader can tell a correct value from a torn one, a stale one or another key's.
//
//   0  magic 'LBV1'           4
//   4  total length (u32 BE)  4
//   8  version (u32 BE)       4
//  12  writer  (u16 BE)       2
//  14  key length (u16 BE)    2
//  16  key bytes              k
//  16+k payload               (fill derived from sha256(key, version, writer))
//  end-4 crc32 of bytes [0, end-4)
// ---------------------------------------------------------------------------------------------
const MAGIC = Buffer.from('LBV1');
export const MIN_VALUE_OVERHEAD = 20;

export interface Decoded {
  key: Buffer;
  version: number;
  writer: number;
}

export function encodeValue(key: Buffer, version: number, writer: number, size: number): Buffer {
  const n = Math.max(size, MIN_VALUE_OVERHEAD + key.length);
  const buf = Buffer.allocUnsafe(n);
  MAGIC.copy(buf, 0);
  buf.writeUInt32BE(n, 4);
  buf.writeUInt32BE(version >>> 0, 8);
  buf.writeUInt16BE(writer & 0xffff, 12);
  buf.writeUInt16BE(key.length, 14);
  key.copy(buf, 16);
  const seed = createHash('sha256').update(key).update(`:${version}:${writer}`).digest();
  buf.fill(seed, 16 + key.length, n - 4);
  buf.writeUInt32BE(zlib.crc32(buf.subarray(0, n - 4)), n - 4);
  return buf;
}

/** Decodes and verifies a value; throws with a description when it is torn or malformed. */
export function decodeValue(value: Buffer): Decoded {
  if (value.length < MIN_VALUE_OVERHEAD) throw new Error(`value of ${value.length} bytes is too short to be ours`);
  if (!value.subarray(0, 4).equals(MAGIC)) throw new Error(`bad magic ${value.subarray(0, 4).toString('hex')}`);
  const n = value.readUInt32BE(4);
  if (n !== value.length) throw new Error(`length field says ${n}, value has ${value.length} bytes (torn or truncated)`);
  const crc = value.readUInt32BE(n - 4);
  const actual = zlib.crc32(value.subarray(0, n - 4));
  if (crc !== actual) throw new Error(`crc mismatch: stored ${crc.toString(16)}, computed ${actual.toString(16)} (torn value)`);
  const klen = value.readUInt16BE(14);
  if (16 + klen + 4 > n) throw new Error('key length field out of range');
  return { version: value.readUInt32BE(8), writer: value.readUInt16BE(12), key: Buffer.from(value.subarray(16, 16 + klen)) };
}

/** Mostly small sizes, some medium, a few up to `max` (default 4 MiB). */
export function pickSize(rng: Rng, max = 4 * 1024 * 1024): number {
  const r = rng.next();
  if (r < 0.80) return rng.int(100, 4096);
  if (r < 0.96) return rng.int(4096, Math.min(256 * 1024, max));
  return rng.int(Math.min(256 * 1024, max), max);
}

// ---------------------------------------------------------------------------------------------
// Seeded RNG (mulberry32), so a failing run can be repeated with LBKV_SEED=<seed>.
// ---------------------------------------------------------------------------------------------
export class Rng {
  private s: number;
  constructor(readonly seed: number) { this.s = seed >>> 0; }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number { return lo + Math.floor(this.next() * (hi - lo + 1)); }
  pick<T>(xs: readonly T[]): T { return xs[Math.floor(this.next() * xs.length)]; }
}

export function seedFromEnv(): number {
  const s = process.env.LBKV_SEED;
  return s ? Number(s) >>> 0 : (Date.now() ^ (process.pid << 8)) >>> 0;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
export const nowMs = (): number => performance.now();

/** Human-readable bytes. */
export function mib(n: number): string { return `${(n / 1048576).toFixed(1)} MiB`; }

export function tmpDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `lbkv-${tag}-`));
}

export function rmrf(p: string): void {
  try { fs.rmSync(p, { recursive: true, force: true }); } catch { /* best effort */ }
}

// ---------------------------------------------------------------------------------------------
// /proc readers
// ---------------------------------------------------------------------------------------------
/** Resident set size of a process in bytes, or undefined when it is gone. */
export function rssBytes(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export function processAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

// ---------------------------------------------------------------------------------------------
// Root-only helpers: loop-mounted ext4 images and size-limited tmpfs. Every device and mount is
// recorded and undone by name (never "detach all"), also on process exit.
// ---------------------------------------------------------------------------------------------
function sh(cmd: string, args: string[], timeoutMs = 60_000): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
}

const liveMounts = new Set<string>();
const liveLoops = new Set<string>();

function cleanupAll(): void {
  for (const m of [...liveMounts]) umount(m);
  for (const d of [...liveLoops]) detachLoop(d);
}
process.on('exit', cleanupAll);

export function umount(mnt: string): void {
  for (let i = 0; i < 20; i++) {
    try { sh('umount', [mnt]); liveMounts.delete(mnt); return; } catch (e) {
      const msg = String((e as { stderr?: string }).stderr ?? e);
      if (/not mounted|no mount point/i.test(msg)) { liveMounts.delete(mnt); return; }
      execFileSync('sleep', ['0.2']);
    }
  }
  // Last resort: lazy unmount, so the test run does not leave a busy mount behind.
  try { sh('umount', ['-l', mnt]); } catch { /* reported by the caller's checks */ }
  liveMounts.delete(mnt);
}

export function detachLoop(dev: string): void {
  for (let i = 0; i < 20; i++) {
    try { sh('losetup', ['-d', dev]); liveLoops.delete(dev); return; } catch (e) {
      const msg = String((e as { stderr?: string }).stderr ?? e);
      if (/No such device|not a block device|failed to use device/i.test(msg)) { liveLoops.delete(dev); return; }
      execFileSync('sleep', ['0.2']);
    }
  }
  liveLoops.delete(dev);
}

/** An ext4 filesystem in an image file, attached to a loop device and mounted. */
export class LoopFs {
  private constructor(readonly image: string, readonly dev: string, readonly mnt: string) {}

  /** Creates a sparse image of `sizeMB`, formats it ext4, attaches and mounts it. */
  static create(image: string, sizeMB: number, mnt: string): LoopFs {
    fs.closeSync(fs.openSync(image, 'w'));
    fs.truncateSync(image, sizeMB * 1024 * 1024);
    // Small journal, no lazy init (its background thread would keep writing to the image).
    sh('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', '-J', 'size=8', image]);
    return LoopFs.attach(image, mnt);
  }

  /** Attaches an existing image (e.g. a copy) and mounts it; mounting replays the ext4 journal. */
  static attach(image: string, mnt: string): LoopFs {
    const dev = sh('losetup', ['--find', '--show', image]).trim();
    liveLoops.add(dev);
    try {
      fs.mkdirSync(mnt, { recursive: true });
      sh('mount', ['-t', 'ext4', dev, mnt]);
      liveMounts.add(mnt);
    } catch (e) {
      detachLoop(dev);
      throw e;
    }
    return new LoopFs(image, dev, mnt);
  }

  /** Unmounts and detaches (idempotent). */
  close(): void {
    umount(this.mnt);
    detachLoop(this.dev);
  }
}

/** Copies a file with plain reads, no sync of anything first: what the block device held. */
export function copyImage(src: string, dst: string): void {
  const inFd = fs.openSync(src, 'r');
  const outFd = fs.openSync(dst, 'w');
  try {
    const size = fs.fstatSync(inFd).size;
    const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
    const zero = Buffer.alloc(buf.length);
    for (let pos = 0; pos < size;) {
      const n = fs.readSync(inFd, buf, 0, Math.min(buf.length, size - pos), pos);
      if (n <= 0) throw new Error(`short read of ${src} at ${pos}`);
      // Keep the copy sparse: skip all-zero chunks.
      if (!buf.subarray(0, n).equals(zero.subarray(0, n))) fs.writeSync(outFd, buf, 0, n, pos);
      pos += n;
    }
    fs.ftruncateSync(outFd, size);
  } finally {
    fs.closeSync(inFd);
    fs.closeSync(outFd);
  }
}

export type Probe = { ok: true } | { ok: false; reason: string };

/** Can this process create, format, attach and mount a loop-device ext4 image? */
export function probeLoop(): Probe {
  if (process.getuid?.() !== 0) return { ok: false, reason: 'not running as root (losetup and mount need root)' };
  for (const tool of ['losetup', 'mkfs.ext4', 'mount', 'umount']) {
    try { sh('sh', ['-c', `command -v ${tool}`]); } catch { return { ok: false, reason: `${tool} not found` }; }
  }
  const dir = tmpDir('loopprobe');
  let lfs: LoopFs | undefined;
  try {
    lfs = LoopFs.create(path.join(dir, 'probe.img'), 32, path.join(dir, 'mnt'));
    fs.writeFileSync(path.join(lfs.mnt, 'probe'), 'ok');
    if (fs.readFileSync(path.join(lfs.mnt, 'probe'), 'utf8') !== 'ok') return { ok: false, reason: 'probe file did not read back' };
    return { ok: true };
  } catch (e) {
    const err = e as { stderr?: string; message?: string };
    return { ok: false, reason: `loop device probe failed: ${(err.stderr || err.message || String(e)).trim().split('\n')[0]}` };
  } finally {
    lfs?.close();
    rmrf(dir);
  }
}

/** A size-limited tmpfs. */
export class Tmpfs {
  private constructor(readonly mnt: string) {}
  static mount(mnt: string, sizeMB: number): Tmpfs {
    fs.mkdirSync(mnt, { recursive: true });
    sh('mount', ['-t', 'tmpfs', '-o', `size=${sizeMB}m`, 'tmpfs', mnt]);
    liveMounts.add(mnt);
    return new Tmpfs(mnt);
  }
  close(): void { umount(this.mnt); }
}

export function probeTmpfs(): Probe {
  if (process.getuid?.() !== 0) return { ok: false, reason: 'not running as root (mount needs root)' };
  const dir = tmpDir('tmpfsprobe');
  try {
    const t = Tmpfs.mount(path.join(dir, 'mnt'), 4);
    t.close();
    return { ok: true };
  } catch (e) {
    const err = e as { stderr?: string; message?: string };
    return { ok: false, reason: `tmpfs mount failed: ${(err.stderr || err.message || String(e)).trim().split('\n')[0]}` };
  } finally {
    rmrf(dir);
  }
}

/** Free bytes on the filesystem holding `p`. */
export function freeBytes(p: string): number {
  const s = fs.statfsSync(p);
  return Number(s.bavail) * Number(s.bsize);
}

// ---------------------------------------------------------------------------------------------
// Kill during startup: test/support/server.ts's startServer waits for the ready line; this small
// addition starts lbserver and SIGKILLs it (by its PID) `delayMs` after the spawn, ready or not, to
// crash it in the middle of opening / recovering the store.
// ---------------------------------------------------------------------------------------------
export async function killDuringStartup(dataDir: string, args: string[], delayMs: number): Promise<{ becameReady: boolean; stderr: string }> {
  const { spawn } = await import('node:child_process');
  const { LBSERVER_JS } = await import('../support/server');
  const child = spawn(process.execPath, [LBSERVER_JS, '--listen', '127.0.0.1:0', '--data', dataDir, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => { out += c; });
  child.stderr!.setEncoding('utf8').on('data', (c: string) => { err += c; });
  const closed = new Promise<void>((r) => child.once('close', () => r()));
  await Promise.race([sleep(delayMs), closed]);
  if (child.exitCode === null && child.signalCode === null && child.pid) {
    try { process.kill(child.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
  await closed;
  return { becameReady: /listening on/.test(out), stderr: err };
}

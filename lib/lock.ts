// The data directory's LOCK file: holds the owning lbserver's PID. Taken atomically: the PID is
// written and fsynced to a private temporary file (opened 'wx'), which is then hard-linked to LOCK;
// link() fails with EEXIST if LOCK exists, and a LOCK never exists without its PID in it (no window
// where a concurrent starter could see an empty lock and think it stale). A lock left by a dead
// process (or by a PID now reused by a process that is not lbserver) is stale and replaced, under a
// second file, LOCK.break, taken with O_EXCL: between reading a stale PID and removing the file, a
// starter without it could remove the lock another starter had just taken in its place (two of eight
// simultaneous starters on a stale lock both got it in a review's run), and only breakers remove
// other processes' locks. LOCK.break holds its breaker's PID, so one left by a breaker that died in
// its few system calls (a kill -9 or a power cut during startup) is removed at once when that PID is
// dead; before, it blocked every start for 10 s and a start within them failed 'contended'.
import { closeSync, fsyncSync, linkSync, lstatSync, openSync, readFileSync, readlinkSync, statSync, symlinkSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { LOCK_FILE_NAME } from './config';

export class LockError extends Error {
  constructor(message: string, readonly holderPid?: number) { super(message); }
}

export interface DirLock {
  path: string;
  /** Set when a stale lock was replaced: whose it was (for the log). */
  replaced?: string;
  release(): void;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True if `pid` is alive and (where /proc tells us) runs lbserver. */
function pidHoldsLock(pid: number): boolean {
  if (pid === process.pid) return false;
  if (!pidAlive(pid)) return false;
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return /lbserver/.test(cmd);
  } catch {
    return true; // no /proc: trust the PID
  }
}

function readPid(path: string): number | undefined {
  try {
    const text = (lstatSync(path).isSymbolicLink() ? readlinkSync(path) : readFileSync(path, 'utf8')).trim();
    const n = Number.parseInt(text, 10);
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** A LOCK.break whose PID cannot be read (a power cut before its write reached the disk) is taken to
 *  be a dead breaker's leftover after this long. A starter keeps trying a little longer than that. */
const BREAK_STALE_MS = 10_000;
const TAKE_TRY_MS = BREAK_STALE_MS + 5_000;

/** Removes `path` if it still names `stalePid` (undefined: unreadable), holding LOCK.break meanwhile;
 *  if another starter holds LOCK.break, leaves the lock to it and returns (the caller tries again).
 *  Returns whether it removed the lock. */
function breakStaleLock(path: string, stalePid: number | undefined): boolean {
  const breaker = `${path}.break`;
  let fd: number;
  try {
    fd = openSync(breaker, 'wx', 0o644);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new LockError(`cannot create ${breaker}: ${(e as Error).message}`);
    try {
      const breakerPid = readPid(breaker);
      const dead = breakerPid !== undefined && !pidHoldsLock(breakerPid);
      if (dead || Date.now() - statSync(breaker).mtimeMs > BREAK_STALE_MS) unlinkSync(breaker);
    } catch { /* gone meanwhile */ }
    sleepMs(20);
    return false;
  }
  try {
    try { writeSync(fd, `${process.pid}\n`); } catch { /* a full disk: the mtime rule covers it */ }
    closeSync(fd);
    if (readPid(path) === stalePid) {
      try {
        unlinkSync(path);
        return true;
      } catch { /* gone meanwhile */ }
    }
    return false;
  } finally {
    try { unlinkSync(breaker); } catch { /* gone */ }
  }
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function acquireDirLock(dataDir: string): DirLock {
  const path = join(dataDir, LOCK_FILE_NAME);
  const tmp = join(dataDir, `${LOCK_FILE_NAME}.${process.pid}.tmp`);
  try { unlinkSync(tmp); } catch { /* none */ }
  let fd: number;
  try {
    fd = openSync(tmp, 'wx', 0o644);
  } catch (e) {
    throw new LockError(`cannot create lock file in ${dataDir}: ${(e as Error).message}`);
  }
  let full = false;
  try {
    writeSync(fd, `${process.pid}\n`);
    fsyncSync(fd);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOSPC' && code !== 'EDQUOT') throw e;
    // A full disk must not keep the server from starting to serve reads: a symlink whose target is
    // the PID lives in the inode (no data block), and is created just as atomically.
    full = true;
  } finally {
    closeSync(fd);
  }
  const take = full ? () => symlinkSync(String(process.pid), path) : () => linkSync(tmp, path);
  let taken = false;
  let replaced: string | undefined;
  const started = Date.now();
  try {
    while (!taken && Date.now() - started < TAKE_TRY_MS) {
      try {
        take();
        taken = true;
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new LockError(`cannot create lock file ${path}: ${(e as Error).message}`);
        }
      }
      const pid = readPid(path);
      if (pid !== undefined && pidHoldsLock(pid)) {
        throw new LockError(`data directory ${dataDir} is in use by another lbserver (pid ${pid}); lock file ${path}`, pid);
      }
      if (breakStaleLock(path, pid)) {
        replaced = pid === undefined ? 'an unreadable LOCK'
          : `a stale LOCK of pid ${pid} (${pid === process.pid ? 'this process: left by an earlier run under the same pid' : 'no lbserver runs as that pid'})`;
      }
    }
  } finally {
    try { unlinkSync(tmp); } catch { /* gone */ }
  }
  if (!taken) throw new LockError(`could not take lock file ${path} (contended)`);
  let released = false;
  return {
    path,
    replaced,
    release() {
      if (released) return;
      released = true;
      if (readPid(path) === process.pid) {
        try { unlinkSync(path); } catch { /* already gone */ }
      }
    },
  };
}

// The data directory's LOCK file: holds the owning lbserver's PID (first line), the boot it runs in
// and its start time (see Holder). Taken atomically: the text is written and fsynced to a private temporary file (opened 'wx'), which is then hard-linked to LOCK;
// link() fails with EEXIST if LOCK exists, and a LOCK never exists without its PID in it (no window
// where a concurrent starter could see an empty lock and think it stale). A lock left by a dead
// process (or by a PID now reused by another process) is stale and replaced, under a
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

/** What tells a holder apart from a later process under the same PID: the boot it ran in and its
 *  start time (clock ticks since boot, /proc/PID/stat field 22). A PID alone was not enough: after a
 *  reboot (or a crash and enough process churn) the PID in a stale LOCK can belong to any process, and
 *  one whose command line merely contains "lbserver" (`tail -f lbserver.log`, another data
 *  directory's server) kept the server from starting. */
interface Holder { pid: number; boot?: string; start?: string }

function bootId(): string | undefined {
  try { return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined; } catch { return undefined; }
}

/** /proc/PID/stat from field 3 (the state) on, or undefined where there is no /proc. */
function procStat(pid: number | 'self'): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces or ')': count after the last.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

const startTicks = (stat: string[] | undefined): string | undefined => stat?.[19];

/** A killed process its parent has not yet reaped (state Z, or X while it goes) keeps its PID and
 *  start time but has closed every file: it holds no data directory. */
const exited = (stat: string[] | undefined): boolean => stat?.[0] === 'Z' || stat?.[0] === 'X';

/** This process as a LOCK records it: the PID on the first line (all that older LOCKs hold). */
function holderText(): string {
  const boot = bootId();
  const start = startTicks(procStat('self'));
  return `${process.pid}\n${boot ? `boot=${boot}\n` : ''}${start ? `start=${start}\n` : ''}`;
}

/** True if the process that wrote `h` is still alive (where /proc tells us). Without the boot and start
 *  time (a LOCK written before they were recorded, or no /proc) a live PID counts when it runs lbserver. */
function holderAlive(h: Holder): boolean {
  if (h.pid === process.pid) return false;
  const boot = h.boot !== undefined ? bootId() : undefined;
  if (boot !== undefined && boot !== h.boot) return false; // written in an earlier boot
  if (!pidAlive(h.pid)) return false;
  const stat = procStat(h.pid);
  if (exited(stat)) return false;
  const start = h.start !== undefined ? startTicks(stat) : undefined;
  if (start !== undefined) return start === h.start;
  try {
    const cmd = readFileSync(`/proc/${h.pid}/cmdline`, 'utf8');
    return /lbserver/.test(cmd);
  } catch {
    return true; // no /proc: trust the PID
  }
}

function readHolder(path: string): Holder | undefined {
  try {
    const text = lstatSync(path).isSymbolicLink() ? readlinkSync(path) : readFileSync(path, 'utf8');
    const [first, ...rest] = text.split('\n');
    const pid = Number.parseInt(first.trim(), 10);
    if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
    const h: Holder = { pid };
    for (const line of rest) {
      const eq = line.indexOf('=');
      const name = line.slice(0, eq);
      if (eq > 0 && (name === 'boot' || name === 'start')) h[name] = line.slice(eq + 1).trim();
    }
    return h;
  } catch {
    return undefined;
  }
}

function readPid(path: string): number | undefined {
  return readHolder(path)?.pid;
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
      const dead = breakerPid !== undefined && !holderAlive({ pid: breakerPid });
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
      } catch (e) {
        // Anything but "gone meanwhile" (a directory named LOCK: EISDIR) stays so: retrying spun for
        // TAKE_TRY_MS and then blamed other starters ("contended").
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new LockError(`cannot remove the stale lock file ${path}: ${(e as Error).message}`);
      }
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
  const text = holderText();
  try {
    writeSync(fd, text);
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
  const take = full ? () => symlinkSync(text, path) : () => linkSync(tmp, path);
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
      const holder = readHolder(path);
      const pid = holder?.pid;
      if (holder !== undefined && holderAlive(holder)) {
        throw new LockError(`data directory ${dataDir} is in use by another lbserver (pid ${pid}); lock file ${path}`, pid);
      }
      if (breakStaleLock(path, pid)) {
        replaced = pid === undefined ? 'an unreadable LOCK'
          : `a stale LOCK of pid ${pid} (${pid === process.pid ? 'this process: left by an earlier run under the same pid' : 'the lbserver that wrote it no longer runs'})`;
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

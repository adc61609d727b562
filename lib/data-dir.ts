// The data directory around the store: making it (and taking a failed start's making away again),
// the partial copy an interrupted compaction leaves in it, and the second name a damaged data file
// keeps when a salvaged copy replaces it.
import { closeSync, constants as fsConstants, copyFileSync, existsSync, fsyncSync, linkSync, lstatSync, mkdirSync, openSync, readlinkSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { compactFileOf } from '../btree/index';
import type { DirLock } from './lock';
import { log, mib } from './server-log';

/** mkdir -p one level at a time; returns the directories it made, outermost first. Node's
 *  recursive mkdirSync never returns where a directory cannot be made in an existing parent that
 *  answers ENOENT (under /proc: it spins at 100 % CPU, deaf to SIGTERM); this gives up with that
 *  error. */
export function makeDirs(dir: string): string[] {
  const abs = resolve(dir);
  try {
    return makeDir(abs) ? [abs] : [];
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(abs) === abs) throw e;
    const made = makeDirs(dirname(abs));
    return makeDir(abs) ? [...made, abs] : made;
  }
}

/** mkdir, content with a directory that is already there (another starter may have made it);
 *  whether it made it. */
function makeDir(abs: string): boolean {
  try {
    mkdirSync(abs);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || !statSync(abs).isDirectory()) throw e;
    return false;
  }
}

/** Why makeDirs(`dir`) failed, for the log. mkdir says EEXIST for a file named `dir`, and ENOTDIR
 *  for a file above it (--data notes.txt/data), which is then the one to name: "--data
 *  notes.txt/data is not a directory" spoke of a directory that is not there. */
export function makeDirsFailure(dir: string, e: NodeJS.ErrnoException): string {
  if (e.code === 'EEXIST') return `--data ${dir} is not a directory`;
  if (e.code === 'ENOTDIR') {
    for (let p = dirname(dir); p !== dirname(p); p = dirname(p)) {
      try {
        if (!statSync(p).isDirectory()) return `--data ${dir}: ${p} is not a directory`;
      } catch { /* not there, or under the file: look higher */ }
    }
    return `--data ${dir}: part of the path is not a directory`;
  }
  if (e.code === 'ENOENT') {
    // mkdir finds the link (EEXIST) and stat follows it to nothing: say so, not "ENOENT ... stat".
    try {
      if (lstatSync(dir).isSymbolicLink()) return `--data ${dir} is a symbolic link to ${resolve(dirname(dir), readlinkSync(dir))}, which does not exist`;
    } catch { /* not there at all */ }
  }
  return `cannot create data directory ${dir}: ${e.message}`;
}

/** A start that failed after making a fresh store takes it away again, and the directories it made:
 *  a mistyped --listen must not leave an empty store behind. Only empty directories go. The store
 *  goes while we still hold the LOCK, which is released only then: a starter that took the LOCK
 *  the moment it was free could otherwise have its new store removed under it. The directories go
 *  after (the LOCK is in the innermost; rmdir removes only empty ones, so not one another starter
 *  has put its LOCK or store in). */
export function unmake(dataFile: string | undefined, dirs: string[], lock: DirLock): void {
  try {
    if (dataFile) rmSync(dataFile, { force: true });
  } finally {
    lock.release();
  }
  for (const d of [...dirs].reverse()) {
    try { rmdirSync(d); } catch { break; }
  }
}

/** Gives the data file a second name (a hard link, else a copy), so that installing the salvaged
 *  copy over it does not destroy it; returns that name. */
export function keepDamaged(dataFile: string): string {
  const kept = `${dataFile}.damaged-${new Date().toISOString().replace(/[-:]|\.\d+/g, '')}`;
  try {
    linkSync(dataFile, kept);
  } catch {
    copyFileSync(dataFile, kept, fsConstants.COPYFILE_EXCL);
    // A copy's bytes must be durable before the rename over the data file drops its last other name.
    const copy = openSync(kept, 'r');
    try { fsyncSync(copy); } finally { closeSync(copy); }
  }
  const dir = openSync(dirname(kept), 'r');
  try { fsyncSync(dir); } finally { closeSync(dir); }
  return kept;
}

/** Removes the partial copy an interrupted compaction left (see its call in bin/lbserver.ts); the caller holds the LOCK. */
export function removeLeftoverCopy(dataFile: string): void {
  const tmp = compactFileOf(dataFile);
  let bytes: number;
  try {
    bytes = statSync(tmp).size;
  } catch {
    return; // none (the usual case)
  }
  if (!existsSync(dataFile)) {
    // Not what a compaction leaves (it renames its copy over a data file that exists): someone moved
    // the data file away. The copy may be all there is; leave it to them.
    log(`warning: ${tmp} is there but ${dataFile} is not; left as it is (a new, empty store is created beside it)`);
    return;
  }
  try {
    rmSync(tmp, { force: true });
    log(`note: removed ${tmp} (${mib(bytes)} MiB), the partial copy of a compaction that was interrupted; ${dataFile} is as it was`);
  } catch (e) {
    log(`warning: cannot remove ${tmp}, the partial copy of an interrupted compaction: ${(e as Error).message}`);
  }
}

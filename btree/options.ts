// Store options (defaults, checks) and the per-process claim on a data file.
import { realpathSync } from 'node:fs';
import * as nodePath from 'node:path';
import type { OpenOptions } from './api';
import { nodeFileSystem, type FileSystem } from './file-io';
import { MAX_KEY_BYTES, PAGE_SIZE } from './layout';
import { StoreError } from './errors';

const MiB = 1024 * 1024;

/** OpenOptions as a store uses them: every default filled in. */
export type StoreOptions = Required<Omit<OpenOptions, 'fs' | 'path'>>;

/** OpenOptions with the defaults filled in, checked. */
export function withDefaults(options: OpenOptions): StoreOptions {
  if (typeof options?.path !== 'string' || options.path === '') throw new StoreError('INVALID_ARGUMENT', 'OpenOptions.path must name the data file');
  const opts = {
    cacheMB: options.cacheMB ?? 64,
    syncMode: options.syncMode ?? 'one',
    maxValueBytes: options.maxValueBytes ?? 64 * MiB,
    maxKeyBytes: options.maxKeyBytes ?? MAX_KEY_BYTES,
    maxBatchOps: options.maxBatchOps ?? 4096,
    maxBatchBytes: options.maxBatchBytes ?? 64 * MiB,
    growBytes: options.growBytes ?? 64 * MiB,
    blockingSyncUs: options.blockingSyncUs ?? 0,
    blockingSyncWhen: options.blockingSyncWhen ?? alwaysAllowed,
  };
  checkOptions(opts);
  return opts;
}

const alwaysAllowed = (): boolean => true;

/** Data files open in this process, per file system: a second Store on one file would commit over
 *  the first one's pages (each keeps its own freelist) and lose acknowledged puts. Across processes
 *  the caller must lock (lbserver's LOCK file does). */
const openFiles = new WeakMap<FileSystem, Set<string>>();

export function claimFile(fs: FileSystem, path: string): () => void {
  const name = fs === nodeFileSystem ? realName(path) : path;
  let names = openFiles.get(fs);
  if (!names) openFiles.set(fs, (names = new Set()));
  if (names.has(name)) throw new StoreError('LOCKED', `${path} is already open in this process (close that Store first)`);
  names.add(name);
  let released = false;
  return () => {
    if (!released) names!.delete(name);
    released = true;
  };
}

/** The path with symbolic links resolved (the file's if it exists, else its directory's), so that
 *  two names for one file are one claim. Hard links remain two names. */
function realName(path: string): string {
  const abs = nodePath.resolve(path);
  try {
    return realpathSync(abs);
  } catch {
    try { return nodePath.join(realpathSync(nodePath.dirname(abs)), nodePath.basename(abs)); } catch { return abs; }
  }
}

function checkOptions(o: StoreOptions): void {
  const bad = (what: string, want: string, v: unknown) => new StoreError('INVALID_ARGUMENT', `OpenOptions.${what} is ${String(v)}; it must be ${want}`);
  const whole = (what: keyof typeof o, min: number, max = Number.MAX_SAFE_INTEGER) => {
    const v = o[what];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(what, `a whole number in ${min}..${max}`, v);
  };
  if (typeof o.cacheMB !== 'number' || !(o.cacheMB > 0) || !Number.isFinite(o.cacheMB)) throw bad('cacheMB', 'a positive number', o.cacheMB);
  if (o.syncMode !== 'one' && o.syncMode !== 'two') throw bad('syncMode', "'one' or 'two'", o.syncMode);
  whole('maxKeyBytes', 1, MAX_KEY_BYTES);
  whole('maxValueBytes', 0);
  whole('maxBatchOps', 1);
  whole('maxBatchBytes', 1);
  whole('growBytes', PAGE_SIZE);
  if (typeof o.blockingSyncUs !== 'number' || !(o.blockingSyncUs >= 0) || !Number.isFinite(o.blockingSyncUs)) throw bad('blockingSyncUs', 'a number >= 0', o.blockingSyncUs);
  if (typeof o.blockingSyncWhen !== 'function') throw bad('blockingSyncWhen', 'a function', o.blockingSyncWhen);
}

// The copy that compact() and Store.rebuild() make: live entries into a fresh file, which then
// replaces the data file by an atomic rename, or goes away if anything stops it first.
import type { Entry, Loss } from './api';
import type { FileSystem } from './file-io';
import { ioError, StoreError } from './errors';

const MiB = 1024 * 1024;

/** What copyInto writes to: the Store open on the copy. */
interface CopyTarget {
  putMany(entries: Entry[]): Promise<void>;
  close(): Promise<void>;
}

/** The file compact() copies the live data of `path` into before renaming it over `path`. */
export function compactFileOf(path: string): string {
  return path + '.compact';
}

/** Copies `entries` into `copy` in large atomic batches, then closes `copy`; returns how many.
 *  `progress` gets the count so far. */
export async function copyInto(entries: AsyncIterable<Entry>, copy: CopyTarget, progress?: (copied: number) => void, signal?: AbortSignal): Promise<number> {
  try {
    signal?.throwIfAborted();
    let batch: Entry[] = [];
    let bytes = 0;
    let copied = 0;
    for await (const e of entries) {
      batch.push(e);
      bytes += e.key.length + e.value.length;
      if (batch.length >= 2000 || bytes >= 32 * MiB) {
        await copy.putMany(batch);
        copied += batch.length;
        progress?.(copied);
        signal?.throwIfAborted();
        batch = [];
        bytes = 0;
      }
    }
    if (batch.length) await copy.putMany(batch);
    copied += batch.length;
    progress?.(copied);
    return copied;
  } finally {
    await copy.close();
  }
}

/** Unlinks a copy being made; whether it is gone. */
function removeFile(fs: FileSystem, file: string): Promise<boolean> {
  return fs.unlink(file).then(() => true, () => !fs.exists(file));
}

/** A copy (compact, rebuild) that failed before it was installed: it goes, whatever stopped it (on
 *  a full disk it holds the space it took). The caller's abort and an exception from the caller's
 *  own callbacks (progress, onLoss) pass through as they are; anything else is an I/O error. */
export async function failedCopy(fs: FileSystem, tmp: string, err: unknown, signal: AbortSignal | undefined, what: string): Promise<never> {
  const removed = await removeFile(fs, tmp);
  if (signal?.aborted && err === signal.reason) throw err;
  if (!(err instanceof StoreError) && typeof (err as NodeJS.ErrnoException)?.code !== 'string') throw err;
  throw ioError(`${what} (the original is unchanged; ${removed ? 'the partial copy was removed' : 'removing the partial copy failed too'})`, err, { wrapStoreErrors: true });
}

/** Renames a finished copy over `path`. A rename can fail yet have happened (a network file system
 *  retrying it): then the copy is no longer under its own name and counts as installed. */
export async function installCopy(fs: FileSystem, tmp: string, path: string, what: string): Promise<void> {
  try {
    await fs.rename(tmp, path);
  } catch (err) {
    if (!fs.exists(tmp)) return;
    const removed = await removeFile(fs, tmp);
    throw ioError(`${path}: installing the ${what} file (the original is unchanged; ${removed ? 'the copy was removed' : `removing the copy ${tmp} failed too`})`, err);
  }
}

export interface CompactOptions {
  signal?: AbortSignal;
  onInstall?: () => void;
  onLoss?: (loss: Loss) => void;
}

export interface CompactResult {
  beforeBytes: number;
  afterBytes: number;
  keys: number;
}

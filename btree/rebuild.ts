// Store.rebuild: a new data file for one that will not open, from its tree when a meta page still
// verifies, else from its leaf pages (salvage-file.ts), installed like a compaction's copy.
import * as nodePath from 'node:path';
import type { Entry, OpenOptions } from './api';
import { nodeFileSystem, type FileHandle, type FileSystem } from './file-io';
import { PAGE_SIZE } from './layout';
import { makeCaches } from './cache';
import { Pager } from './pager';
import { recover } from './recovery';
import { foreignFormat, leavesNewestFirst, newestValues } from './salvage-file';
import { ioError, StoreError } from './errors';
import { salvageEntries } from './snapshot';
import { compactFileOf, copyInto, failedCopy, installCopy, type CompactOptions, type CompactResult } from './copy';
import { claimFile, withDefaults, type StoreOptions } from './options';
import type { Store } from './store';

export type RebuildOptions = CompactOptions & { progress?: (phase: 'scan' | 'copy', done: number, total: number) => void };

/** Opens a fresh file at `tmp` for the copy, with txids past `pastTxid` (Store.openCopy). */
export type OpenCopy = (tmp: string, fs: FileSystem, opts: StoreOptions, pastTxid: number) => Promise<Store>;

/** Store.rebuild: for a file that cannot be opened, builds a new file and installs it over `options.path` like
 *  compact(); everything it could not read goes to `onLoss`. If a meta page still verifies (only
 *  the freelist it names is damaged), the copy is that commit's tree, exactly (`from: 'tree'`).
 *  Else (both meta pages damaged) it is built from the leaf pages alone, each key with the newest
 *  value that passes its checks (`from: 'pages'`; salvage-file.ts says why that is the newest,
 *  and what it cannot tell). Best effort: a key whose newest leaf is damaged comes back older,
 *  and values of a commit that never completed may come back. `progress` is called with the pages scanned, then the leaves copied.
 *  The damaged file is replaced and not kept: a caller that wants it keeps a copy first, in
 *  `onInstall` at the latest (lbserver links it as lbkv.db.damaged-<time>). */
export async function rebuildFile(options: OpenOptions, { signal, onInstall, onLoss, progress }: RebuildOptions, openCopy: OpenCopy): Promise<CompactResult & { from: 'tree' | 'pages' }> {
  const opts = withDefaults(options);
  const fs = options.fs ?? nodeFileSystem;
  const path = options.path;
  const tmp = compactFileOf(path);
  const report = onLoss ?? (() => undefined);
  const release = claimFile(fs, path);
  try {
    const releaseTmp = claimFile(fs, tmp);
    try {
      let file: FileHandle;
      try {
        file = await fs.open(path, true);
      } catch (err) {
        throw ioError(`${path}: opening the data file to rebuild it`, err);
      }
      const pager = new Pager(file, path, makeCaches(1));
      const beforeBytes = file.size();
      let keys: number;
      let from: 'tree' | 'pages';
      let tree: Awaited<ReturnType<typeof recover>> | undefined;
      let copy: Store;
      try {
        const foreign = foreignFormat(pager);
        if (foreign) throw new StoreError('CORRUPTION', `${path}: not rebuilt: ${foreign}`);
        // A meta that still verifies names an exact tree: only its freelist failed, which a copy
        // does not need. The page scan is for a file with no usable meta.
        tree = await recover(fs, path, makeCaches(opts.cacheMB), true).catch(() => undefined);
        let entries: AsyncIterable<Entry>;
        let newest: number;
        if (tree) {
          from = 'tree';
          newest = tree.meta.txid;
          entries = salvageEntries(tree.pager, tree.root, report);
        } else {
          from = 'pages';
          // The scan of a large file takes a while: a signal stops it between pages too.
          const leaves = await leavesNewestFirst(pager, Math.floor(beforeBytes / PAGE_SIZE), report, (d, t) => {
            signal?.throwIfAborted();
            progress?.('scan', d, t);
          });
          if (leaves.length === 0) throw new StoreError('CORRUPTION', `${path}: not rebuilt: none of its ${Math.floor(beforeBytes / PAGE_SIZE)} pages passes its checks as a leaf (is it an lbkv data file?)`);
          newest = leaves[0].txid;
          entries = newestValues(pager, leaves, report, (d, t) => progress?.('copy', d, t));
        }
        signal?.throwIfAborted();
        copy = await openCopy(tmp, fs, opts, newest);
        const total = tree?.meta.keyCount ?? 0;
        keys = await copyInto(entries, copy, tree ? (n) => progress?.('copy', n, total) : undefined, signal);
        signal?.throwIfAborted();
        onInstall?.();
      } catch (err) {
        return await failedCopy(fs, tmp, err, signal, `${path}: rebuilding it into ${tmp}`);
      } finally {
        await pager.close().catch(() => undefined);
        await tree?.pager.close().catch(() => undefined);
      }
      await installCopy(fs, tmp, path, 'rebuilt');
      try {
        await fs.syncDir(nodePath.dirname(nodePath.resolve(path)));
      } catch (err) {
        throw ioError(`${path}: the rebuilt file is in place, but syncing its directory failed (a crash may bring back the damaged one)`, err);
      }
      // The copy was closed clean (copyInto): its size is the installed file's.
      return { beforeBytes, afterBytes: copy.stats().fileBytes, keys, from };
    } finally {
      releaseTmp();
    }
  } finally {
    release();
  }
}

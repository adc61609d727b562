// Replaces fdatasync and fdatasyncSync on node:fs for the measuring launchers (nosync-lbserver,
// timeline-server), before the server they start loads. btree/file-io.ts reads both from the module
// at each call, so the replacements reach the engine's commits; directory fsyncs are left alone.
import * as fs from 'node:fs';

export type SyncCallback = (err: NodeJS.ErrnoException | null) => void;
type FdatasyncFns = { fdatasync: (fd: number, cb: SyncCallback) => void; fdatasyncSync: (fd: number) => void };

/** Installs what `make` builds from the originals; throws if node:fs did not take them (the
 *  launcher would then measure the real fdatasync without saying so). */
export function replaceFdatasync(make: (original: FdatasyncFns) => FdatasyncFns): void {
  const nodeFs = require('node:fs') as FdatasyncFns;
  const next = make({ fdatasync: nodeFs.fdatasync, fdatasyncSync: nodeFs.fdatasyncSync });
  nodeFs.fdatasync = next.fdatasync;
  nodeFs.fdatasyncSync = next.fdatasyncSync;
  if (fs.fdatasync !== next.fdatasync || fs.fdatasyncSync !== next.fdatasyncSync) throw new Error('replacing fdatasync on node:fs did not take');
}

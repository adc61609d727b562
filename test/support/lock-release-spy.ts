// Preloaded into lbserver (NODE_OPTIONS=--require) by a test: when the process removes its data
// directory's LOCK, writes to stderr whether the data file was still there at that moment, e.g.
//   lock-release-spy: LOCK removed, lbkv.db present
// A start that made a fresh store and then fails must remove that store before it lets go of the
// LOCK: once the LOCK is gone another starter may take it and create its own store there.
import fs = require('node:fs');
import { basename, dirname, join } from 'node:path';
import { DATA_FILE_NAME, LOCK_FILE_NAME } from '../../lib/config';

const unlinkSync = fs.unlinkSync;
fs.unlinkSync = (path: fs.PathLike) => {
  if (basename(String(path)) === LOCK_FILE_NAME) {
    const there = fs.existsSync(join(dirname(String(path)), DATA_FILE_NAME));
    process.stderr.write(`lock-release-spy: LOCK removed, ${DATA_FILE_NAME} ${there ? 'present' : 'absent'}\n`);
  }
  unlinkSync(path);
};

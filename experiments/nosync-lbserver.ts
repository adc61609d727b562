// lbserver with every fdatasync made a no-op: NOT DURABLE, for measuring only. bench-service runs it
// beside the real lbserver to split the Set's distance from the floor in two: what the server's work
// costs (this one against the floor) and what waiting for the disk costs (lbserver against this one).
// Everything else is lbserver's own code, unchanged: the fdatasync calls are replaced on node:fs
// before lbserver loads (btree/file-io.ts reads them from the module at each call), and answer in
// the next turn of the event loop, as a completed thread-pool call would, or at once on the calling
// thread. Directory fsyncs (data directory, lock file) are left alone: they happen at start only.
//
//   node dist/experiments/nosync-lbserver.js [lbserver options]
import { replaceFdatasync } from './lib/fdatasync-hook';

replaceFdatasync(() => ({ fdatasync: (_fd, cb) => { setImmediate(cb, null); }, fdatasyncSync: () => {} }));
process.stderr.write('nosync-lbserver: every fdatasync is a no-op: nothing this server acknowledges is durable (a measuring tool only)\n');

require('../bin/lbserver');

// A server (lbserver or the floor server) with a timestamp at each phase of every call it serves
// alone, for experiments/set-phases: a measuring tool, not for serving. The server's own code runs
// unchanged; the hooks are put on the modules it loads before it loads them:
//   stream   an HTTP/2 stream arrives (http2.createServer's servers, which grpc-js makes)
//   put      the engine is handed the Set (Store.prototype.put)
//   commit   its commit starts (btree/commit's commit)
//   syncStart, syncEnd   the last fdatasync before the answer starts and returns (node:fs)
//   durable  put's promise resolves: the Set is durable
//   close    the stream closes: the answer is sent
// A call is recorded only if no other stream was open at any time during it, so the events between
// its stream and its close are its own. Recording is off until SIGUSR2, which toggles it; at exit
// the records go to the JSON file LBKV_TIMELINE_OUT as {events: [{stream, put, ...}, ...]} (ms).
//
//   LBKV_TIMELINE_OUT=/tmp/t.json node dist/experiments/timeline-server.js <server.js> [its options]
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Http2Stream } from 'node:http2';
import { replaceFdatasync } from './lib/fdatasync-hook';

export const TIMELINE_EVENTS = ['stream', 'put', 'commit', 'syncStart', 'syncEnd', 'durable', 'close'] as const;
export type TimelineEvent = (typeof TIMELINE_EVENTS)[number];
/** The times of a call's events (ms), and the recording turn it fell in (a SIGUSR2 that turned recording on starts one). */
export type TimelineRecord = Partial<Record<TimelineEvent, number>> & { turn?: number };

const USAGE = 'Usage: LBKV_TIMELINE_OUT=<file.json> node timeline-server.js <server.js> [its options]\n\n' +
  'Runs the server (lbserver.js or floor-server.js) with a timestamp at each phase of every call it serves alone,\n' +
  'while recording is on (SIGUSR2 toggles it; off at start), and writes them to the file at exit.\n' +
  'A measuring tool for experiments/set-phases, not for serving.\n';
const outFile = process.env.LBKV_TIMELINE_OUT;
const [script, ...args] = process.argv.slice(2);
if (script === '--help' || script === '-h') {
  process.stdout.write(USAGE);
  process.exit(0);
}
if (!outFile || !script) {
  process.stderr.write(USAGE);
  process.exit(2);
}

let recording = false;
let turn = 0;
const records: TimelineRecord[] = [];
/** The streams open now, each with its record (undefined once another stream overlapped it). */
const open = new Map<Http2Stream, { rec: TimelineRecord | undefined }>();
/** Marks `e` on the one open call; `last`: a later occurrence replaces an earlier one (syncs: a
 *  commit that grows the file syncs twice, and the answer waits for the last). */
function mark(e: TimelineEvent, last = false): void {
  if (open.size !== 1) return;
  const entry = open.values().next().value!;
  if (entry.rec && (last || entry.rec[e] === undefined)) entry.rec[e] = performance.now();
}

const http2 = require('node:http2') as typeof import('node:http2');
const createServer = http2.createServer;
(http2 as { createServer: unknown }).createServer = (...a: unknown[]) => {
  const server = (createServer as (...x: unknown[]) => import('node:http2').Http2Server)(...a);
  server.on('stream', (st: Http2Stream) => {
    const entry = { rec: recording && open.size === 0 ? { stream: performance.now(), turn } as TimelineRecord : undefined };
    for (const other of open.values()) other.rec = undefined;
    open.set(st, entry);
    st.once('close', () => {
      if (entry.rec) {
        entry.rec.close = performance.now();
        records.push(entry.rec);
      }
      open.delete(st);
    });
  });
  return server;
};

replaceFdatasync(({ fdatasync, fdatasyncSync }) => ({
  fdatasync: (fd, cb) => {
    mark('syncStart', true);
    fdatasync(fd, (err) => { mark('syncEnd', true); cb(err); });
  },
  fdatasyncSync: (fd) => {
    mark('syncStart', true);
    fdatasyncSync(fd);
    mark('syncEnd', true);
  },
}));

// lbserver's engine; the floor server loads neither module, and has no put or commit events.
if (path.basename(script) === 'lbserver.js') {
  const dist = path.resolve(path.dirname(script), '..');
  const { Store } = require(path.join(dist, 'btree', 'store')) as typeof import('../btree/store');
  const put = Store.prototype.put;
  Store.prototype.put = function (this: import('../btree/store').Store, key: Buffer, value: Buffer): Promise<void> {
    mark('put');
    const p = put.call(this, key, value);
    p.then(() => mark('durable'), () => {});
    return p;
  };
  const commitModule = require(path.join(dist, 'btree', 'commit')) as { commit: (...a: unknown[]) => unknown };
  const commit = commitModule.commit;
  commitModule.commit = (...a: unknown[]) => { mark('commit'); return commit(...a); };
}

process.on('SIGUSR2', () => { recording = !recording; if (recording) turn++; });
process.on('exit', () => { fs.writeFileSync(outFile, JSON.stringify({ events: records })); });

process.argv = [process.argv[0]!, path.resolve(script), ...args];
// lbserver starts when loaded; the floor server when it is the program, so it is started here.
const server = require(path.resolve(script)) as { main?: () => Promise<void> };
if (typeof server.main === 'function') server.main().catch((e) => { console.error(e); process.exit(1); });

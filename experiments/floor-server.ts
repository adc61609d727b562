// The RPC floor: a bare grpc-js server on lbkv's proto whose storage is an in-memory Map. No disk, no
// B-tree, no validation beyond what gRPC does. Whatever lbkv costs above this is ours; what this
// costs is gRPC + Node + the loopback on this machine.
//
//   node dist/experiments/floor-server.js --listen 127.0.0.1:PORT
// prints one line "floor-server listening on 127.0.0.1:PORT" when ready; SIGINT/SIGTERM stop it.
import * as grpc from '@grpc/grpc-js';
import { Command } from 'commander';
import { FsyncProbe } from './fsync-floor';
import {
  GetPrefixRequest, GetPrefixResponse, GetRequest, GetResponse, KeyValueStoreServer, KeyValueStoreService,
  SetRequest, SetResponse, StatRequest, StatResponse,
} from '../generated/kv';

export const MAX_MESSAGE = 80 * 1024 * 1024;

/** With `durable` (the fsync floor's probe: one 4 KiB write + fdatasync), Set also makes one probe
 *  before it replies: the RPC floor plus the durability floor, measured together in one process. */
export function floorService(durable?: FsyncProbe): { impl: KeyValueStoreServer; map: Map<string, Buffer> } {
  const map = new Map<string, Buffer>();
  const started = Date.now();
  let sets = 0, gets = 0, prefixes = 0;
  const impl: KeyValueStoreServer = {
    set(call: grpc.ServerUnaryCall<SetRequest, SetResponse>, cb: grpc.sendUnaryData<SetResponse>) {
      sets++;
      map.set(call.request.key.toString('latin1'), call.request.value);
      if (!durable) return cb(null, {});
      durable.once().then(() => cb(null, {}), (e: Error) => cb({ code: grpc.status.INTERNAL, details: e.message }));
    },
    get(call: grpc.ServerUnaryCall<GetRequest, GetResponse>, cb: grpc.sendUnaryData<GetResponse>) {
      gets++;
      const v = map.get(call.request.key.toString('latin1'));
      cb(null, v ? { found: true, value: v } : { found: false, value: Buffer.alloc(0) });
    },
    getPrefix(call: grpc.ServerWritableStream<GetPrefixRequest, GetPrefixResponse>) {
      prefixes++;
      const p = call.request.prefix.toString('latin1');
      const keys = [...map.keys()].filter((k) => k.startsWith(p)).sort((a, b) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1')));
      const limit = call.request.limit || keys.length;
      for (let i = 0; i < Math.min(limit, keys.length); i += 64) {
        const chunk = keys.slice(i, Math.min(i + 64, limit)).map((k) => ({ key: Buffer.from(k, 'latin1'), value: map.get(k)! }));
        call.write({ entries: chunk });
      }
      call.end();
    },
    stat(_call: grpc.ServerUnaryCall<StatRequest, StatResponse>, cb: grpc.sendUnaryData<StatResponse>) {
      cb(null, {
        startTimeUnixMs: started, startupMs: 0, uptimeMs: Date.now() - started, totalSets: sets, totalGets: gets,
        totalGetprefixes: prefixes, keys: map.size, dbFileBytes: 0, commits: 0, fsyncs: 0, cacheHits: 0, cacheMisses: 0,
        maxBatchSize: 0, meanBatchSize: 0, openSnapshots: 0, freePages: 0, pageCount: 0, lastTxid: 0, failedSets: 0,
        meanCommitPrepareUs: 0, meanCommitSyncUs: 0, totalCommitPrepareUs: 0, totalCommitSyncUs: 0, totalCommitPages: 0, totalCommitRuns: 0, totalBlockingSyncCommits: 0, setBytesInFlight: 0, stalledGetprefixes: 0, pendingFreePages: 0, freelistSegments: 0, freelistLevels: 0, freelistSegmentPages: 0, openWarnings: [], failedGets: 0, failedGetprefixes: 0,
      });
    },
  };
  return { impl, map };
}

/** Runs the floor server (when this file is the program, or under experiments/timeline-server). */
export async function main(): Promise<void> {
  const program = new Command()
    .name('floor-server')
    .description('bare grpc-js server on the lbkv proto backed by an in-memory Map (the RPC floor)')
    .option('--listen <addr>', 'host:port to listen on (port 0 picks one)', '127.0.0.1:0')
    .option('--durable-file <path>', 'Set also writes 4 KiB at a random page of this preallocated 64 MiB file and fdatasyncs before replying')
    .parse();
  const opts = program.opts<{ listen: string; durableFile?: string }>();
  const durable = opts.durableFile ? FsyncProbe.at(opts.durableFile) : undefined;
  const server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_MESSAGE, 'grpc.max_send_message_length': MAX_MESSAGE });
  server.addService(KeyValueStoreService, floorService(durable).impl);
  const host = opts.listen.replace(/:\d+$/, '');
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(opts.listen, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  process.stdout.write(`floor-server listening on ${host}:${port}\n`);
  const stop = () => server.tryShutdown(() => {
    durable?.close();
    process.exit(0);
  });
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (require.main === module) {
  main().catch((e) => { console.error(e); process.exit(1); });
}

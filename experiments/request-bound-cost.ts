// What judging a request from its gRPC length prefix (lib/request-bound.ts, run for every call's
// first DATA frame in KvService.meterArrival) costs per call: the same steps on a 4 KiB Set's frame,
// in a loop, so it can be set against the server's CPU per Set that bench-service reports.
//
//   node dist/experiments/request-bound-cost.js [--calls N] [--rounds R]
import { Command } from 'commander';
import { DEFAULT_CONFIG } from '../lib/config';
import { methodOf, oversizeRequestReason } from '../lib/request-bound';
import { wholeArg } from './lib/common';

const o = new Command('request-bound-cost')
  .description('ns per call of the length-prefix check every call gets (lib/request-bound.ts)')
  .option('--calls <n>', 'calls per round', wholeArg(1), 2_000_000)
  .option('--rounds <n>', 'rounds, each timed on its own', wholeArg(1), 3)
  .parse()
  .opts<{ calls: number; rounds: number }>();

const path = '/lbkv.v1.KeyValueStore/Set';
const NOTHING_YET = Buffer.alloc(0);
const frame = Buffer.alloc(5 + 4096 + 128 + 6);
frame.writeUInt32BE(frame.length - 5, 1);
let refused = 0;
for (let r = 0; r < o.rounds; r++) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < o.calls; i++) {
    // As meterArrival does: the method from :path, the first frame judged.
    const method = methodOf(path);
    let head: Buffer | undefined = NOTHING_YET;
    head = head.length === 0 ? frame : Buffer.concat([head, frame]);
    if (head[0] === 0 && oversizeRequestReason(method, head.readUInt32BE(1), head.subarray(5), DEFAULT_CONFIG)) refused++;
  }
  console.log(`request-bound-cost: round ${r + 1}: ${(Number(process.hrtime.bigint() - t0) / o.calls).toFixed(0)} ns per call (${o.calls} calls${refused ? `, ${refused} refused` : ''})`);
}

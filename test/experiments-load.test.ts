// The experiments' load runner (experiments/lib/load.ts and its worker processes): what it reports
// for the measured window, and the maxOps bound, against a real lbserver or a small in-process gRPC
// server that fails on cue (the worker runs in its own process, as in the experiments).
import * as grpc from '@grpc/grpc-js';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runLoad } from '../experiments/lib/load';
import { KeyValueStoreService, type KeyValueStoreServer } from '../generated/kv';
import { startServer } from './support/server';

/** Gets fail (INTERNAL) for the first `failFirst` calls, then find nothing for the next `missNext`,
 *  then find a 16-byte value. */
async function scriptedServer(failFirst: number, missNext: number): Promise<{ server: grpc.Server; address: string; calls: () => number }> {
  let calls = 0;
  const impl: KeyValueStoreServer = {
    get: (_call, cb) => {
      const n = calls++;
      if (n < failFirst) return cb({ code: grpc.status.INTERNAL, details: `scripted failure ${n}` });
      if (n < failFirst + missNext) return cb(null, { found: false, value: Buffer.alloc(0) });
      cb(null, { found: true, value: Buffer.alloc(16, 1) });
    },
    set: (_call, cb) => cb(null, {}),
    getPrefix: (call) => call.end(),
    stat: (_call, cb) => cb({ code: grpc.status.UNIMPLEMENTED, details: 'not in this server' }),
  };
  const server = new grpc.Server();
  server.addService(KeyValueStoreService, impl);
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  return { server, address: `127.0.0.1:${port}`, calls: () => calls };
}

/** What `p` was refused with. Its success fails the test: an assert.unreachable inside a try whose
 *  catch matches the message would pass on the words of its own message. */
async function refusal(p: Promise<unknown>): Promise<string> {
  const outcome = await p.then(() => undefined, (e: unknown) => String(e));
  if (outcome === undefined) assert.unreachable('accepted');
  return outcome as string;
}

const warmup = suite('experiments load: the warm-up');

warmup('a failed or empty get in the warm-up is not counted as the measured window\'s', async () => {
  // One client: its first 10 calls are exactly its warm-up.
  const s = await scriptedServer(6, 4);
  try {
    const r = await runLoad({ address: s.address, clients: 1, processes: 1, op: 'get', keyPrefix: 'w/', valueBytes: 16, keyCount: 10, warmupOps: 10, maxOps: 30, verify: true, hardTimeoutMs: 60_000 });
    assert.is(s.calls(), 40);
    assert.is(r.ops, 30);
    assert.is(r.errors, 0, `errors ${r.errors}: ${r.firstError}`);
    assert.is(r.firstError, undefined);
    assert.is(r.notFound, 0);
    // Not hidden either: reported as the warm-up's.
    assert.is(r.warmupErrors, 6);
    assert.is(r.warmupCalls, 10);
    assert.match(r.firstWarmupError ?? '', /scripted failure 0/);
  } finally {
    s.server.forceShutdown();
  }
});

warmup('a failure in the measured window is still counted there', async () => {
  const s = await scriptedServer(13, 0);
  try {
    const r = await runLoad({ address: s.address, clients: 1, processes: 1, op: 'get', keyPrefix: 'w/', valueBytes: 16, keyCount: 10, warmupOps: 10, maxOps: 20, hardTimeoutMs: 60_000 });
    assert.is(r.warmupErrors, 10);
    assert.is(r.errors, 3);
    assert.match(r.firstError ?? '', /scripted failure 10/);
    // A failed call is no measured operation: the 20 are all successes.
    assert.is(r.ops, 20);
  } finally {
    s.server.forceShutdown();
  }
});

warmup('with warmupMs the warm-up lasts that long before any measured call, and its calls stay out of ops', async () => {
  const srv = await startServer();
  try {
    const c = srv.client();
    const warmupMs = 1500;
    const sets = async () => (await c.stat()).totalSets;
    const before = await sets();
    const t0 = performance.now();
    let goAfterMs = 0, atGo = 0;
    // Two processes, so that the barrier waits for both; 3 calls per client would take far less.
    const r = await runLoad({
      address: srv.address, clients: 2, processes: 2, op: 'set', keyPrefix: 'wm/', valueBytes: 64, keyCount: 100, warmupOps: 3, warmupMs, maxOps: 25, hardTimeoutMs: 60_000,
      onGo: async () => { goAfterMs = performance.now() - t0; atGo = await sets(); },
    });
    const after = await sets();
    assert.is(r.errors + r.warmupErrors, 0, r.firstError ?? r.firstWarmupError);
    assert.ok(goAfterMs >= warmupMs, `told to measure ${goAfterMs} ms after the run began`);
    assert.ok(r.warmedMs >= warmupMs, `a process measured ${r.warmedMs} ms after its warm-up began`);
    assert.ok(r.warmupCalls >= 2 * 3, `${r.warmupCalls} warm-up calls`);
    // The server saw exactly the warm-up's calls before the go, and exactly the measured ones after.
    assert.is(atGo - before, r.warmupCalls);
    assert.is(r.ops, 25);
    assert.is(after - atGo, 25);
  } finally {
    await srv.stop();
  }
});

warmup('a negative warmupMs is refused', async () => {
  const e = await refusal(runLoad({ address: '127.0.0.1:1', clients: 1, op: 'get', keyPrefix: 'x/', valueBytes: 1, maxOps: 1, warmupMs: -1 }));
  assert.match(e, /warmupMs/);
});

const bound = suite('experiments load: maxOps');

bound('several clients sharing one process\'s budget make at most maxOps sets (lbserver counts them)', async () => {
  const srv = await startServer();
  try {
    for (const maxOps of [10, 7]) {
      const c = srv.client();
      const before = (await c.stat()).totalSets;
      const r = await runLoad({ address: srv.address, clients: 4, processes: 1, op: 'set', keyPrefix: `b${maxOps}/`, valueBytes: 64, keyCount: 100, maxOps, hardTimeoutMs: 60_000 });
      const sent = (await c.stat()).totalSets - before;
      assert.is(r.errors, 0, r.firstError);
      assert.is(r.ops, maxOps);
      assert.is(sent, maxOps, 'sets the server received');
    }
  } finally {
    await srv.stop();
  }
});

bound('a total split over processes: the shares sum to maxOps, one smaller than the processes too', async () => {
  const srv = await startServer();
  try {
    const c = srv.client();
    for (const [maxOps, processes] of [[10, 4], [2, 3]] as const) {
      const before = (await c.stat()).totalSets;
      const r = await runLoad({ address: srv.address, clients: processes, processes, op: 'set', keyPrefix: `p${maxOps}/`, valueBytes: 64, keyCount: 100, maxOps, hardTimeoutMs: 60_000 });
      assert.is(r.ops, maxOps, `${maxOps} over ${processes} processes`);
      assert.is((await c.stat()).totalSets - before, maxOps);
    }
  } finally {
    await srv.stop();
  }
});

bound('a maxOps of 0 or a fraction is refused (0 used to mean no bound at all)', async () => {
  for (const maxOps of [0, 2.5]) {
    const e = await refusal(runLoad({ address: '127.0.0.1:1', clients: 1, op: 'get', keyPrefix: 'x/', valueBytes: 1, maxOps }));
    assert.match(e, /maxOps/);
  }
});

warmup.run();
bound.run();

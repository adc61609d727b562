// bin/demo-client's read check against a server that is correct but answers in another order than
// lbserver happens to: a Get may take effect at any moment before its reply, so it may see a Set
// that began after it and is not acknowledged yet. The checker must not call that a mismatch.
import * as grpc from '@grpc/grpc-js';
import { resolve } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KeyValueStoreService, type KeyValueStoreServer } from '../generated/kv';
import { runNode, sleep } from './support/server';

const DEMO_CLIENT_JS = resolve(__dirname, '../bin/demo-client.js');

/** One in-memory register per key, linearizable: a Set takes effect on arrival and is acknowledged
 *  40 ms later; a Get reads 10 ms after arrival, when it replies. `lose`: Sets are acknowledged and
 *  dropped, a server the checker must catch. */
async function slowAckServer(lose = false): Promise<{ server: grpc.Server; address: string }> {
  const data = new Map<string, Buffer>();
  const impl: KeyValueStoreServer = {
    set: (call, cb) => {
      if (!lose) data.set(call.request.key.toString('hex'), call.request.value);
      void sleep(40).then(() => cb(null, {}));
    },
    get: (call, cb) => {
      void sleep(10).then(() => {
        const v = data.get(call.request.key.toString('hex'));
        cb(null, { found: v !== undefined, value: v ?? Buffer.alloc(0) });
      });
    },
    getPrefix: (call) => call.end(),
    stat: (_call, cb) => cb({ code: grpc.status.UNIMPLEMENTED, details: 'not in this fake' }),
  };
  const server = new grpc.Server();
  server.addService(KeyValueStoreService, impl);
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  return { server, address: `127.0.0.1:${port}` };
}

test('demo-client: a Get that overlaps a Set of its key may return either value, and is no mismatch', async () => {
  const { server, address } = await slowAckServer();
  try {
    // One key and four workers: Gets overlap Sets that began after them all the time.
    const r = await runNode(DEMO_CLIENT_JS, ['--server', address, '--keys', '1', '--ops', '400', '--concurrency', '4'], { timeoutMs: 60_000 });
    assert.not.match(r.stderr, /got .* want/);
    assert.is(r.code, 0, r.stderr);
  } finally {
    server.forceShutdown();
  }
});

test('demo-client: a server that loses acknowledged Sets is still caught', async () => {
  const { server, address } = await slowAckServer(true);
  try {
    // One worker: no Get overlaps a Set, so every Get after the first Set must be checked (with four,
    // a Set of the key is in flight nearly always and the checker, rightly, may skip them all).
    const r = await runNode(DEMO_CLIENT_JS, ['--server', address, '--keys', '1', '--ops', '200', '--concurrency', '1'], { timeoutMs: 60_000 });
    assert.match(r.stderr, /key 0: got undefined want v0\./);
    assert.is(r.code, 1);
  } finally {
    server.forceShutdown();
  }
});

test.run();

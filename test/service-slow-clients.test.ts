// GetPrefix clients that read slowly, mid-message, and what they get when the server stops: a real
// lbserver, raw HTTP/2 clients with a 64 KiB window (test/support/raw-grpc.ts) and grpc-js clients.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as grpc from '@grpc/grpc-js';
import * as http2 from 'node:http2';
import { constants as h2 } from 'node:http2';
import { GetPrefixRequest, GetPrefixResponse, GetRequest, SetRequest } from '../generated/kv';
import { GrpcStatus, statusName } from '../lib/client';
import { eventually, pseudoRandomBytes, setMany } from './support/client-helpers';
import { grpcFrame, rawGrpcCall, SERVICE, takeGrpcStatus } from './support/raw-grpc';
import { sleep, startServer } from './support/server';

const MiB = 1024 * 1024;
const prefixRequest = (prefix: string) => GetPrefixRequest.encode({ prefix: Buffer.from(prefix), limit: 0 }).finish();

const slow = suite('service: GetPrefix stall detection counts bytes, not whole messages');

slow('a reader taking one 8 MiB value at ~2 MB/s is not "stalled"; one that stops mid-value is ended after --stream-stall-ms', async () => {
  const srv = await startServer({ args: ['--stream-stall-ms', '1500'] });
  const c = srv.client();
  const big = pseudoRandomBytes(8 * MiB, 5);
  await c.set('big/v', big);

  // ~4 s for the one message, far over the 1.5 s stall limit, but never 1.5 s without a byte.
  const t0 = Date.now();
  const r = await rawGrpcCall(srv.address, 'GetPrefix', prefixRequest('big/'), { bytesPerSecond: 2_000_000 }).done;
  const took = Date.now() - t0;
  assert.is(r.status, GrpcStatus.OK, `status ${r.status} "${r.message}", RST_STREAM ${r.rstCode}, ${r.bytes} B after ${took} ms`);
  assert.ok(took > 3000, `the read was slow (${took} ms)`);
  assert.is(r.messages.length, 1);
  const entries = GetPrefixResponse.decode(r.messages[0]!).entries;
  assert.is(entries.length, 1);
  assert.ok(Buffer.from(entries[0]!.value).equals(big), 'the whole value arrived intact');

  // Takes 1 MiB of the value, then nothing: ended with ABORTED, its stream reset a stall later.
  const stuck = rawGrpcCall(srv.address, 'GetPrefix', prefixRequest('big/'));
  assert.ok(await eventually(() => stuck.bytes >= MiB, 10_000, 5), 'the second reader got going');
  stuck.stopReading();
  const t1 = Date.now();
  const s = await Promise.race([stuck.done, sleep(10_000).then(() => undefined)]);
  assert.ok(s, 'the stalled stream was closed by the server');
  assert.is(s!.rstCode, h2.NGHTTP2_CANCEL, 'reset: its ABORTED status could not pass the data it left unread');
  assert.ok(Date.now() - t1 >= 1400, `not before the stall time (${Date.now() - t1} ms)`);
  const st = await c.stat();
  assert.equal([st.stalledGetprefixes, st.totalGetprefixes, st.openSnapshots], [1, 1, 0]);
  assert.is(await srv.stop(), 0);
});

slow('a reader ended as stalled that comes back and keeps reading gets its ABORTED status, not a reset', async () => {
  const srv = await startServer({ args: ['--stream-stall-ms', '1000'] });
  try {
    await resumedReader(srv);
  } finally {
    await srv.stop();
  }
});

async function resumedReader(srv: Awaited<ReturnType<typeof startServer>>): Promise<void> {
  const c = srv.client();
  await c.set('big/v', pseudoRandomBytes(8 * MiB, 6));
  const r = rawGrpcCall(srv.address, 'GetPrefix', prefixRequest('big/'), { bytesPerSecond: 4_000_000 });
  assert.ok(await eventually(() => r.bytes >= MiB, 10_000, 5), 'the reader got going');
  r.stopReading();
  await sleep(1600); // past the stall limit: the server ends the stream; its status waits behind the value
  const st = await c.stat();
  assert.is(st.stalledGetprefixes, 1, 'ended as stalled while the client paused');
  // The rest of the value at ~2 MB/s takes over 3 s: longer than the 1 s after which a client that
  // takes nothing is reset, but never 1 s without data.
  r.resume();
  const t0 = Date.now();
  let bound: NodeJS.Timeout | undefined;
  const res = await Promise.race([r.done, new Promise<undefined>((ok) => { bound = setTimeout(() => ok(undefined), 20_000); })]);
  clearTimeout(bound);
  assert.ok(res, 'the stream closed');
  assert.ok(Date.now() - t0 > 1500, `the rest was read slowly (${Date.now() - t0} ms)`);
  assert.is(res!.rstCode, 0, `closed normally, not reset (RST_STREAM ${res!.rstCode}; ${res!.bytes} B taken)`);
  assert.is(res!.status, GrpcStatus.ABORTED, `status ${res!.status} "${res!.message}"`);
  assert.match(res!.message, /took no data for 1000 ms/);
  assert.is((await c.stat()).openSnapshots, 0);
}

const stop = suite('service: calls still open when a stop is forced');

/** A grpc-js GetPrefix call; `pauseMs(n)`: how long to stop reading after the n-th message. */
function prefixCall(client: grpc.Client, prefix: string, pauseMs: (n: number) => number) {
  const id = (b: Buffer) => b;
  const call = client.makeServerStreamRequest(`${SERVICE}/GetPrefix`, id, id, Buffer.from(prefixRequest(prefix)));
  let messages = 0;
  const ended = new Promise<{ code: number; details: string; messages: number }>((resolve) => {
    call.on('data', () => {
      const ms = pauseMs(++messages);
      if (ms > 0) { call.pause(); setTimeout(() => call.resume(), ms); }
    });
    call.on('error', (e: grpc.ServiceError) => resolve({ code: e.code, details: e.details, messages }));
    call.on('end', () => resolve({ code: GrpcStatus.OK, details: '', messages }));
  });
  return ended;
}

stop('SIGTERM: calls open after --shutdown-timeout-ms end with UNAVAILABLE "shutting down" (slow reader) or UNAVAILABLE (reader that reads nothing); exit 0', async () => {
  const srv = await startServer({ args: ['--shutdown-timeout-ms', '500'] });
  const c = srv.client();
  await setMany(c, Array.from({ length: 40 }, (_, i) => ({ key: Buffer.from(`s/${String(i).padStart(2, '0')}`), value: pseudoRandomBytes(512 * 1024, i) })), 8);
  await c.set('g/big', Buffer.alloc(4 * MiB, 1));
  // A Get answered and still being sent: an open call too.
  const get = rawGrpcCall(srv.address, 'Get', GetRequest.encode({ key: Buffer.from('g/big') }).finish(), { bytesPerSecond: 500_000 });
  const clients = [0, 1].map(() => new grpc.Client(srv.address, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 * MiB }));
  try {
    const slowReader = prefixCall(clients[0]!, 's/', () => 150); // 40 messages would take 6 s
    const nonReader = prefixCall(clients[1]!, 's/', (n) => (n === 1 ? 8000 : 0)); // takes one, then nothing for 8 s
    await sleep(300);
    const t0 = Date.now();
    process.kill(srv.pid, 'SIGTERM');
    const [a, b, g] = await Promise.all([slowReader, nonReader, get.done]);
    const code = await srv.exited();
    assert.is(code, 0, `exit code (stderr: ${srv.stderr})`);
    assert.ok(Date.now() - t0 < 9000, 'the stop did not wait for the non-reading client');
    assert.is(statusName(a.code), 'UNAVAILABLE', `slow reader: ${a.details}`);
    assert.match(a.details, /server is shutting down/);
    assert.ok(a.messages > 1 && a.messages < 40, `the slow reader got ${a.messages} messages first`);
    assert.is(statusName(b.code), 'UNAVAILABLE', `non-reading client: ${b.details}`);
    assert.ok(g.status === GrpcStatus.UNAVAILABLE || g.rstCode === h2.NGHTTP2_REFUSED_STREAM, `the Get being sent: status ${g.status}, RST_STREAM ${g.rstCode}`);
    assert.match(srv.stderr, /SIGTERM: shutting down \(finishing 3 in-flight calls\)/);
    assert.match(srv.stderr, /forcing/);
  } finally {
    for (const cl of clients) cl.close();
  }
});

stop('SIGTERM: a Set whose request is still arriving at the forced stop has its stream refused (UNAVAILABLE to gRPC clients), is counted as in flight, and is not applied', async () => {
  const srv = await startServer({ args: ['--shutdown-timeout-ms', '500'] });
  const dataDir = srv.dataDir;
  // A client that sends the start of a 16 MiB Set and then nothing more: grpc-js has a stream for it
  // but runs no handler until the whole request is in.
  const session = http2.connect(`http://${srv.address}`);
  session.on('error', () => undefined);
  const req = session.request({ ':method': 'POST', ':path': `${SERVICE}/Set`, 'content-type': 'application/grpc', te: 'trailers' });
  req.on('error', () => undefined);
  const frame = grpcFrame(SetRequest.encode({ key: Buffer.from('uploading'), value: Buffer.alloc(16 * MiB, 3) }).finish());
  req.write(frame.subarray(0, 256 * 1024));
  const closed = new Promise<{ rstCode: number; status: number | undefined }>((resolve) => {
    const got: { status?: number; message: string } = { message: '' };
    req.on('response', (h) => takeGrpcStatus(h, got));
    req.on('trailers', (h) => takeGrpcStatus(h, got));
    req.on('close', () => resolve({ rstCode: req.rstCode ?? 0, status: got.status }));
  });
  try {
    await sleep(300);
    process.kill(srv.pid, 'SIGTERM');
    const r = await closed;
    assert.is(r.rstCode, h2.NGHTTP2_REFUSED_STREAM, `the upload's stream: RST_STREAM ${r.rstCode}, status ${r.status}`);
    assert.is(await srv.exited(), 0, srv.stderr);
    assert.match(srv.stderr, /SIGTERM: shutting down \(finishing 1 in-flight calls\)/);
  } finally {
    session.destroy();
  }
  const again = await startServer({ dataDir });
  try {
    assert.is(await again.client().get('uploading'), undefined, 'nothing of the refused Set was applied');
  } finally {
    await again.stop();
  }
});

slow.run();
stop.run();

// The typed client library (lib/client.ts) as a program that embeds it uses it, against a real
// lbserver over gRPC on 127.0.0.1: one kind of error (ServiceError-shaped) for bad arguments and a
// closed client, a getPrefix that a signal can stop even while it waits for a stalled server, stream
// deadlines apart from unary ones, and no message limit of the client's own.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { GrpcStatus, isServiceError, KvClient, MAX_DEADLINE_MS, type KvEntry } from '../lib/client';
import { eventually, expectGrpcError, setMany } from './support/client-helpers';
import { freePort, sleep, startServer, type ServerHandle } from './support/server';

const BIG = 30;
const bigKey = (i: number) => `big/${String(i).padStart(2, '0')}`;

const client = suite<{ srv: ServerHandle }>('client library');

client.before(async (ctx) => {
  ctx.srv = await startServer();
  const c = ctx.srv.client();
  // 30 values of 700 KiB: each GetPrefix message (about 1 MiB) carries one, and a slow reader
  // keeps the stream open well after the client's buffers are full.
  for (let i = 0; i < BIG; i++) await c.set(bigKey(i), Buffer.alloc(700 * 1024, 0x41 + i));
});

client.after(async (ctx) => {
  await ctx.srv.stop();
});

client('bad arguments are refused before anything is sent, as INVALID_ARGUMENT ServiceErrors', async ({ srv }) => {
  const c = srv.client();
  const before = (await c.stat()).totalSets;
  for (const limit of [-1, 1.5, Number.NaN]) {
    await expectGrpcError(c.getPrefixAll('big/', { limit }), GrpcStatus.INVALID_ARGUMENT, /limit is (-1|1\.5|NaN); it must be a whole number >= 0/);
  }
  await expectGrpcError(c.getPrefixAll('big/', { timeoutMs: 0 }), GrpcStatus.INVALID_ARGUMENT, /timeoutMs is 0/);
  await expectGrpcError(c.set(123 as unknown as string, 'v'), GrpcStatus.INVALID_ARGUMENT, /key must be a Buffer, Uint8Array or string, not number/);
  await expectGrpcError(c.set('k', null as unknown as string), GrpcStatus.INVALID_ARGUMENT, /value must be .* not null/);
  // Two different lone surrogates would both become U+FFFD, one key for two.
  await expectGrpcError(c.set('\ud800', 'v'), GrpcStatus.INVALID_ARGUMENT, /lone UTF-16 surrogate/);
  await expectGrpcError(c.get('a\udfff'), GrpcStatus.INVALID_ARGUMENT, /lone UTF-16 surrogate/);
  assert.is((await c.stat()).totalSets, before, 'none of them reached the server');
  // A well-formed string with a surrogate pair is fine.
  await c.set('emoji/\u{1F600}', 'ok');
  assert.equal(await c.get(Buffer.from('emoji/\u{1F600}', 'utf8')), Buffer.from('ok'));
});

client('a callTimeoutMs or getPrefix timeoutMs that is not a number > 0 and at most MAX_DEADLINE_MS is refused as INVALID_ARGUMENT (NaN was no deadline, -5 an expired one, "abc" a bare Error at each call, 2^31 - 1 an expired one on the server)', async ({ srv }) => {
  for (const t of [Number.NaN, -5, 0, '2000' as unknown as number, true as unknown as number, MAX_DEADLINE_MS + 1, 2 ** 31 - 1]) {
    let err: unknown;
    try { new KvClient(srv.address, { callTimeoutMs: t }).close(); } catch (e) { err = e; }
    assert.ok(isServiceError(err), `callTimeoutMs ${String(t)}: ${String(err)}`);
    assert.is(err.code, GrpcStatus.INVALID_ARGUMENT);
    assert.match(err.details, /callTimeoutMs is .*; it must be a number of milliseconds > 0 and at most 2147483000/);
    const c = srv.client();
    await expectGrpcError(c.getPrefixAll('timeout-', { timeoutMs: t }), GrpcStatus.INVALID_ARGUMENT, /timeoutMs is .*; it must be a number of milliseconds > 0/);
  }
  // The longest deadline allowed, and none at all, let a call that takes a while (a 4 MiB value) finish.
  const big = Buffer.alloc(4 << 20, 7);
  for (const t of [undefined, 1500, MAX_DEADLINE_MS, Infinity]) {
    const c = new KvClient(srv.address, { callTimeoutMs: t });
    await c.set('timeout-ok', big);
    assert.equal(await c.get('timeout-ok'), big, `callTimeoutMs ${String(t)}`);
    assert.is((await c.getPrefixAll('timeout-ok', { timeoutMs: t })).length, 1, `getPrefix timeoutMs ${String(t)}`);
    c.close();
  }
});

client('calls on a closed client fail UNAVAILABLE with a ServiceError, not a bare Error', async ({ srv }) => {
  const c = new KvClient(srv.address);
  await c.set('closed/k', 'v');
  c.close();
  c.close(); // twice is harmless
  for (const [what, p] of [['set', c.set('closed/k', 'w')], ['get', c.get('closed/k')], ['stat', c.stat()], ['getPrefix', c.getPrefixAll('closed/')]] as const) {
    const e = await (p as Promise<unknown>).then(() => undefined, (err: unknown) => err);
    assert.ok(isServiceError(e), `${what}: ${String(e)}`);
    assert.is(e.code, GrpcStatus.UNAVAILABLE, what);
    assert.match(e.details, /the client is closed/, what);
  }
  assert.equal(await srv.client().get('closed/k'), Buffer.from('v'), 'the Set after close was never sent');
});

client('waitForReady: resolves against a server; with nothing listening it rejects at its deadline, or UNAVAILABLE at close()', async ({ srv }) => {
  const up = new KvClient(srv.address);
  await up.waitForReady(10_000);
  up.close();
  const port = await freePort();
  const never = new KvClient(`127.0.0.1:${port}`);
  const late = await never.waitForReady(300).then(() => undefined, (err: unknown) => err);
  assert.ok(isServiceError(late), String(late));
  assert.is(late.code, GrpcStatus.DEADLINE_EXCEEDED);
  // grpc-js's own waitForReady, closed under it, restarted the channel and never settled.
  const waiting = never.waitForReady(60_000).then(() => 'ready', (err: unknown) => err);
  await sleep(100);
  never.close();
  const closed = await Promise.race([waiting, sleep(10_000).then(() => 'still waiting 10 s after close()')]);
  assert.ok(isServiceError(closed), String(closed));
  assert.is(closed.code, GrpcStatus.UNAVAILABLE);
  assert.match(closed.details, /the client is closed/);
});

client('callTimeoutMs bounds unary calls only; a slow reader of a getPrefix is cut off only by its own timeoutMs', async ({ srv }) => {
  const c = new KvClient(srv.address, { callTimeoutMs: 300 });
  try {
    const got: string[] = [];
    const t0 = Date.now();
    for await (const e of c.getPrefix('big/')) {
      got.push(e.key.toString());
      await sleep(50); // 1.5 s in all, far past callTimeoutMs, with the stream still open
    }
    assert.equal(got, Array.from({ length: BIG }, (_, i) => bigKey(i)));
    assert.ok(Date.now() - t0 > 1000);
    let read = 0;
    const slow = (async () => {
      for await (const _ of c.getPrefix('big/', { timeoutMs: 300 })) { read++; await sleep(50); }
    })();
    await expectGrpcError(slow, GrpcStatus.DEADLINE_EXCEEDED);
    assert.ok(read < BIG, `cut off after ${read} entries`);
  } finally {
    c.close();
  }
});

client('aborting a getPrefix signal ends a step that waits for a stalled server, and the server then releases the snapshot', async ({ srv }) => {
  const c = new KvClient(srv.address);
  const stat = srv.client();
  const abort = new AbortController();
  const it = c.getPrefix('big/', { signal: abort.signal })[Symbol.asyncIterator]();
  const first = await it.next();
  assert.is((first.value as KvEntry).key.toString(), bigKey(0));
  process.kill(srv.pid, 'SIGSTOP'); // our own server, by PID: it sends nothing more
  try {
    await sleep(100);
    const pending = it.next();
    const reason = new Error('the caller gave up');
    const t0 = Date.now();
    setTimeout(() => abort.abort(reason), 200);
    const got = await pending.then(() => 'resolved', (e: unknown) => e);
    assert.is(got, reason, 'the waiting step throws the abort reason');
    assert.ok(Date.now() - t0 < 3000, `ended ${Date.now() - t0} ms after the wait began, while the server was still stopped`);
  } finally {
    process.kill(srv.pid, 'SIGCONT');
  }
  assert.ok(await eventually(async () => (await stat.stat()).openSnapshots === 0, 10_000), 'the server released the snapshot');
  // An already aborted signal: nothing is started.
  await expectGrpcError(Promise.resolve().then(async () => {
    try { await c.getPrefixAll('big/', { signal: AbortSignal.abort(Object.assign(new Error('aborted before'), { code: GrpcStatus.CANCELLED, details: 'aborted before' })) }); } finally { c.close(); }
  }), GrpcStatus.CANCELLED, /aborted before/);
});

client('an abort stops the iteration at its next step, though the entries of a message already received are still at hand, and after the stream ended', async ({ srv }) => {
  const c = srv.client();
  await setMany(c, Array.from({ length: 300 }, (_, i) => ({ key: Buffer.from(`few/${String(i).padStart(3, '0')}`), value: Buffer.from('v') })));
  // 300 small entries arrive in one message: every one of them was yielded after the abort.
  const abort = new AbortController();
  const reason = new Error('enough');
  let seen = 0;
  const whole = (async () => {
    for await (const _ of c.getPrefix('few/', { signal: abort.signal })) {
      if (++seen === 1) abort.abort(reason);
    }
  })();
  assert.is(await whole.then(() => 'finished', (e: unknown) => e), reason);
  assert.is(seen, 1, 'no entry after the abort');
  // Aborted after the last entry, once the stream had ended: the step that asks for more throws too.
  const late = new AbortController();
  const done = (await c.stat()).totalGetprefixes;
  const it = c.getPrefix('few/', { limit: 1, signal: late.signal })[Symbol.asyncIterator]();
  assert.ok(!(await it.next()).done);
  // The server counts the stream once it is delivered; its end then reaches this client at once.
  assert.ok(await eventually(async () => (await c.stat()).totalGetprefixes > done, 10_000), 'the stream ended');
  await sleep(50);
  late.abort(reason);
  assert.is(await it.next().then(() => 'resolved', (e: unknown) => e), reason);
});

client('with its default options the client sends a value over the server limit and gets the server\'s INVALID_ARGUMENT, not a limit of its own', async () => {
  const srv = await startServer({ args: ['--max-value-bytes', '80MiB'] });
  try {
    const c = new KvClient(srv.address);
    // 70 MiB: over the old client-side default of 65 MiB, under this server's limit.
    const big = Buffer.alloc(70 * 1024 * 1024, 0x5a);
    await c.set('huge', big);
    const back = await c.get('huge');
    assert.ok(back?.equals(big), 'read back whole');
    await expectGrpcError(c.set('huger', Buffer.alloc(81 * 1024 * 1024)), GrpcStatus.INVALID_ARGUMENT, /over the value limit of 83886080 bytes/);
    c.close();
  } finally {
    await srv.stop();
  }
});

client.run();

// Service tests under concurrency and process events: concurrent writers and readers on the same
// keys, SIGTERM with calls in flight, the LOCK file, cancelled streams and backpressure.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { GrpcStatus, isServiceError, KvClient, statusName } from '../lib/client';
import { GetPrefixRequest } from '../generated/kv';
import { eventually, pseudoRandomBytes, rssBytes, setMany } from './support/client-helpers';
import { rawGrpcCall } from './support/raw-grpc';
import { freePort, LBSERVER_JS, logs, runServerExpectingFailure, sleep, startServer, tempDir } from './support/server';

const MiB = 1024 * 1024;

/** A self-describing value: header "w<writer>:<seq>:<len>;" then `len` bytes derived from the header. */
function makeValue(writer: number, seq: number, len: number): Buffer {
  const head = Buffer.from(`w${writer}:${seq}:${len};`);
  return Buffer.concat([head, pseudoRandomBytes(len, writer * 1_000_003 + seq)]);
}
function checkValue(v: Buffer): string | undefined {
  const s = v.subarray(0, 40).toString('latin1');
  const m = /^w(\d+):(\d+):(\d+);/.exec(s);
  if (!m) return undefined;
  const expect = makeValue(Number(m[1]), Number(m[2]), Number(m[3]));
  return expect.equals(v) ? m[0] : undefined;
}

// ---------------------------------------------------------------------------------------------
const conc = suite('service: concurrent writers and readers on the same keys');

conc('every read returns a value some writer wrote, whole, never a mix', async () => {
  const srv = await startServer();
  const keys = Array.from({ length: 6 }, (_, i) => Buffer.from(`hot/${i}`));
  const attempted = keys.map(() => new Set<string>());
  const writers = Array.from({ length: 4 }, () => srv.client());
  const readers = Array.from({ length: 4 }, () => srv.client());
  const stopAt = Date.now() + 2500;
  let writes = 0, reads = 0, prefixReads = 0;
  const problems: string[] = [];
  const sizes = [0, 10, 3000, 5000, 70_000, 300_000];

  const writeLoop = async (w: number) => {
    let seq = 0;
    while (Date.now() < stopAt) {
      const k = (w + seq) % keys.length;
      const v = makeValue(w, seq, sizes[(seq * 7 + w) % sizes.length]!);
      attempted[k]!.add(v.subarray(0, v.indexOf(0x3b) + 1).toString('latin1'));
      await writers[w]!.set(keys[k]!, v);
      seq++;
      writes++;
    }
  };
  const verify = (k: number, v: Buffer | undefined) => {
    if (v === undefined) return; // not yet written
    const head = checkValue(v);
    if (!head) problems.push(`key ${k}: value is not one whole written value (${v.length} B, starts ${v.subarray(0, 20).toString('latin1')})`);
    else if (!attempted[k]!.has(head)) problems.push(`key ${k}: value ${head} was never written to this key`);
  };
  const readLoop = async (r: number) => {
    let i = 0;
    while (Date.now() < stopAt) {
      if (i++ % 5 === 4) {
        for await (const e of readers[r]!.getPrefix('hot/')) verify(Number(e.key.toString().slice(4)), e.value);
        prefixReads++;
      } else {
        const k = (r * 3 + i) % keys.length;
        verify(k, await readers[r]!.get(keys[k]!));
        reads++;
      }
    }
  };
  await Promise.all([...writers.map((_, w) => writeLoop(w)), ...readers.map((_, r) => readLoop(r))]);
  assert.equal(problems.slice(0, 5), []);
  assert.ok(writes > 20 && reads > 20 && prefixReads > 2, `did work: ${writes} writes, ${reads} reads, ${prefixReads} prefix reads`);
  // After the writers stop, every key holds a whole value that was written to it.
  for (const [k, key] of keys.entries()) verify(k, await readers[0]!.get(key));
  assert.equal(problems, []);
  assert.is(await srv.stop(), 0);
});

// ---------------------------------------------------------------------------------------------
const term = suite('service: SIGTERM with calls in flight');

// SIGHUP (its terminal closed) killed the server by Node's default: no call finished, LOCK left.
for (const signal of ['SIGTERM', 'SIGHUP'] as const) term(`${signal}: in-flight calls finish, exit 0, every acknowledged set survives a restart`, async () => {
  const srv = await startServer();
  const clients = Array.from({ length: 8 }, () => srv.client());
  await clients[0]!.set('warm', 'up');
  const valueFor = (i: number) => pseudoRandomBytes(i % 10 === 0 ? 256 * 1024 : 1000, i);
  const acked = new Map<string, Buffer>();
  const failures = new Map<string, number>();
  let ackedAfterSignal = 0;
  let signalled = false;
  let next = 0;
  // Closed-loop writers keep calls in flight until the server refuses them.
  const loop = async (c: KvClient) => {
    for (;;) {
      const i = next++;
      const key = `t/${String(i).padStart(5, '0')}`;
      try {
        await c.set(key, valueFor(i));
        acked.set(key, valueFor(i));
        if (signalled) ackedAfterSignal++;
      } catch (e) {
        failures.set(key, isServiceError(e) ? e.code : -1);
        return;
      }
    }
  };
  const loops = clients.map(loop);
  assert.ok(await eventually(() => acked.size >= 30, 20_000, 1), 'writers running');
  signalled = true;
  process.kill(srv.pid, signal);
  await Promise.all(loops);
  const code = await srv.exited();
  assert.is(code, 0, `exit code (stderr: ${srv.stderr})`);
  assert.match(srv.stderr, new RegExp(`${signal}: shutting down`));
  assert.ok(ackedAfterSignal > 0, `calls in flight at ${signal} were finished and acknowledged`);
  for (const [key, c] of failures) {
    assert.ok(c === GrpcStatus.UNAVAILABLE, `${key}: a refused call fails with UNAVAILABLE, got ${statusName(c)}`);
  }
  assert.not.ok(existsSync(join(srv.dataDir, 'LOCK')), 'LOCK removed on clean exit');

  const srv2 = await startServer({ dataDir: srv.dataDir });
  const c2 = srv2.client();
  for (const [key, value] of acked) assert.ok((await c2.get(key))?.equals(value), `acknowledged ${key} survived`);
  for (const key of failures.keys()) {
    const v = await c2.get(key);
    if (v !== undefined) assert.ok(v.equals(valueFor(Number(key.slice(2)))), 'an unacknowledged set is all or nothing');
  }
  assert.is(await srv2.stop(), 0);
});

term('a stalled GetPrefix reader does not block shutdown forever (forced after --shutdown-timeout-ms)', async () => {
  const srv = await startServer({ args: ['--shutdown-timeout-ms', '800'] });
  const c = srv.client();
  await setMany(c, Array.from({ length: 40 }, (_, i) => ({ key: Buffer.from(`s/${i}`), value: Buffer.alloc(512 * 1024, i) })));
  const call = c.raw.getPrefix({ prefix: Buffer.from('s/'), limit: 0 });
  call.on('error', () => {});
  await new Promise<void>((r) => call.once('data', () => { call.pause(); r(); }));
  const t0 = Date.now();
  const code = await srv.stop('SIGTERM', 15_000);
  assert.is(code, 0);
  const took = Date.now() - t0;
  assert.ok(took >= 700 && took < 8000, `stopped after the timeout (${took} ms)`);
  assert.match(srv.stderr, /forcing/);
  call.cancel();
});

// ---------------------------------------------------------------------------------------------
const lock = suite('service: the LOCK file');

lock('a second server on the same data directory is refused with a clear message', async () => {
  const srv = await startServer();
  const lockText = readFileSync(join(srv.dataDir, 'LOCK'), 'utf8');
  assert.is(lockText.split('\n')[0], String(srv.pid), 'LOCK holds the PID on its first line');
  const port = await freePort();
  const r = await runServerExpectingFailure(['--listen', `127.0.0.1:${port}`, '--data', srv.dataDir]);
  assert.is(r.code, 3, 'exit 3: the data directory is in use');
  assert.match(r.stderr, `data directory ${srv.dataDir} is in use by another lbserver (pid ${srv.pid})`);
  assert.is(r.stdout, '', 'no ready line');
  const c = srv.client();
  await c.set('first', 'still serving');
  assert.equal((await c.get('first'))?.toString(), 'still serving');
  assert.is(readFileSync(join(srv.dataDir, 'LOCK'), 'utf8'), lockText, 'the refused server left the lock alone');
  assert.is(await srv.stop(), 0);
  assert.not.ok(existsSync(join(srv.dataDir, 'LOCK')));
});

/** The PID of a process that has exited. */
async function deadPid(): Promise<number> {
  const dead = spawn(process.execPath, ['-e', '0']);
  await new Promise((r) => dead.on('close', r));
  return dead.pid!;
}

lock('a stale LOCK (dead PID, or a live PID that is not lbserver) is replaced', async () => {
  const dir = tempDir();
  const pid = await deadPid();
  writeFileSync(join(dir, 'LOCK'), `${pid}\n`);
  const srv = await startServer({ dataDir: dir });
  assert.is(readFileSync(join(dir, 'LOCK'), 'utf8').split('\n')[0], String(srv.pid));
  assert.ok(await logs(srv, `note: replaced a stale LOCK of pid ${pid} (the lbserver that wrote it no longer runs) in ${dir}`), srv.stderr);
  await srv.client().set('k', 'v');
  await srv.kill9();
  assert.ok(existsSync(join(dir, 'LOCK')), 'kill -9 leaves the LOCK behind');

  const srv2 = await startServer({ dataDir: dir });
  assert.equal((await srv2.client().get('k'))?.toString(), 'v');
  assert.is(await srv2.stop(), 0);

  writeFileSync(join(dir, 'LOCK'), `${process.pid}\n`); // alive, but this test process is not an lbserver
  const srv3 = await startServer({ dataDir: dir });
  assert.ok(await logs(srv3, `replaced a stale LOCK of pid ${process.pid}`), srv3.stderr);
  assert.is(await srv3.stop(), 0);
  const srv4 = await startServer({ dataDir: dir });
  assert.is(await srv4.stop(), 0);
  assert.not.match(srv4.stderr, /replaced/, 'a LOCK removed at a clean stop leaves nothing to replace');
});

lock('a LOCK whose PID now runs another process named like lbserver (a reboot, PID reuse) is replaced; one of a running lbserver is not', async () => {
  // Alive, with "lbserver" in its command line, as `tail -f lbserver.log` or another data
  // directory's server would be: a PID-only LOCK naming it is (still) taken as held.
  const imposter = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)', 'lbserver.log']);
  try {
    assert.ok(await eventually(() => readFileSync(`/proc/${imposter.pid}/cmdline`, 'utf8').includes('lbserver.log')), 'the imposter has started');
    const dir = tempDir();
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const stat = readFileSync(`/proc/${imposter.pid}/stat`, 'utf8');
    const start = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    const port = await freePort();
    const args = ['--listen', `127.0.0.1:${port}`, '--data', dir];
    writeFileSync(join(dir, 'LOCK'), `${imposter.pid}\n`);
    const r = await runServerExpectingFailure(args);
    assert.is(r.code, 3, `a PID-only LOCK of a live process running "lbserver": ${r.stderr}`);
    for (const [what, text] of [['written in an earlier boot', `${imposter.pid}\nboot=00000000-0000-0000-0000-000000000000\nstart=${start}\n`],
      ['written by a process that started at another time', `${imposter.pid}\nboot=${boot}\nstart=${start + 1}\n`]]) {
      writeFileSync(join(dir, 'LOCK'), text);
      const srv = await startServer({ dataDir: dir });
      assert.ok(await logs(srv, `replaced a stale LOCK of pid ${imposter.pid}`), `${what}: ${srv.stderr}`);
      // The LOCK it wrote names it exactly: a second server is refused.
      const again = await runServerExpectingFailure(args);
      assert.is(again.code, 3, `${what}: the new LOCK holds: ${again.stderr}`);
      assert.is(await srv.stop(), 0);
    }
  } finally {
    imposter.kill('SIGKILL');
  }
});

lock('a LOCK of an lbserver killed but not yet reaped by its parent (a zombie) is replaced', async () => {
  // The parent here is `sleep`, which never waits for children: the killed server stays a zombie,
  // which keeps its PID and start time but holds no file any more. A supervisor slow to reap (init
  // took ~1.5 s on this VM) left restarts failing 'in use' meanwhile.
  const dir = tempDir();
  const port = await freePort();
  const out = join(dir, 'first.log');
  const parent = spawn('sh', ['-c', `"$0" "$1" --listen 127.0.0.1:${port} --data "$2" >"$3" 2>&1 & echo $!; exec sleep 60`, process.execPath, LBSERVER_JS, dir, out], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const pid = Number((await new Promise<Buffer>((r) => parent.stdout!.once('data', r))).toString().trim());
    assert.ok(await eventually(() => existsSync(out) && readFileSync(out, 'utf8').includes('listening'), 20_000), 'the first server serves');
    process.kill(pid, 'SIGKILL');
    const state = () => { const s = readFileSync(`/proc/${pid}/stat`, 'utf8'); return s[s.lastIndexOf(')') + 2]; };
    assert.ok(await eventually(() => state() === 'Z'), 'the killed server is a zombie');
    const srv = await startServer({ dataDir: dir });
    assert.ok(await logs(srv, `replaced a stale LOCK of pid ${pid}`), srv.stderr);
    assert.is(state(), 'Z', 'still a zombie when the second server took the LOCK');
    assert.is(await srv.stop(), 0);
  } finally {
    parent.kill('SIGKILL');
  }
});

lock('a server whose LOCK another process has taken meanwhile leaves that LOCK alone when it stops', async () => {
  const srv = await startServer();
  const lockPath = join(srv.dataDir, 'LOCK');
  // What another starter leaves after an operator removed this server's LOCK: its own PID.
  writeFileSync(lockPath, '999999999\n');
  assert.is(await srv.stop(), 0);
  assert.ok(existsSync(lockPath), 'the stopping server did not remove a LOCK that is not its own');
  assert.is(readFileSync(lockPath, 'utf8'), '999999999\n');
});

lock('a LOCK.break left by a breaker that died (kill -9 or power cut during startup) does not stop the next start', async () => {
  const dir = tempDir();
  const pid = await deadPid();
  // What a server killed inside its break of a stale lock leaves: the stale LOCK and its LOCK.break,
  // both just written (the leftover is not yet old enough to pass as stale by its age).
  writeFileSync(join(dir, 'LOCK'), `${pid}\n`);
  writeFileSync(join(dir, 'LOCK.break'), `${pid}\n`);
  const t0 = Date.now();
  const srv = await startServer({ dataDir: dir });
  try {
    assert.ok(Date.now() - t0 < 8_000, `started without waiting out the leftover's age (${Date.now() - t0} ms)`);
    assert.is(readFileSync(join(dir, 'LOCK'), 'utf8').split('\n')[0], String(srv.pid));
    assert.not.ok(existsSync(join(dir, 'LOCK.break')), 'the leftover is gone');
  } finally {
    assert.is(await srv.stop(), 0);
  }
});

lock('starters racing for a stale LOCK: exactly one takes it (8 processes, 10 rounds)', async () => {
  const starter = join(__dirname, 'support', 'lbserver-lock-starter.js');
  for (let round = 0; round < 10; round++) {
    const dir = tempDir();
    writeFileSync(join(dir, 'LOCK'), '999999999\n'); // beyond any PID: stale
    // The start moment is named once all eight are loaded, and all stay alive (the taker holding the
    // lock) until all have tried, however slowly the machine runs them: see the starter.
    const starters = Array.from({ length: 8 }, () => {
      const p = spawn(process.execPath, [starter, dir], { stdio: ['pipe', 'pipe', 'inherit'] });
      p.stdin!.on('error', () => undefined); // one that died early shows as its missing line
      const closed = new Promise((r) => p.on('close', r));
      const lines = createInterface({ input: p.stdout! })[Symbol.asyncIterator]();
      return { p, closed, next: async () => ((await lines.next()).value as string | undefined) ?? `exited (${p.exitCode})` };
    });
    try {
      assert.equal(await Promise.all(starters.map((s) => s.next())), Array(8).fill('READY'));
      const at = Date.now() + 100;
      for (const s of starters) s.p.stdin!.write(`${at}\n`);
      const outs = await Promise.all(starters.map((s) => s.next()));
      assert.is(outs.filter((o) => o === 'TAKEN').length, 1, `round ${round}: ${outs.join(', ')}`);
      assert.is(outs.filter((o) => o === 'REFUSED').length, 7);
    } finally {
      for (const s of starters) s.p.stdin!.end();
      await Promise.all(starters.map((s) => s.closed));
    }
  }
});

// ---------------------------------------------------------------------------------------------
const streams = suite('service: GetPrefix streams: cancel, backpressure');

streams('a cancelled stream releases its snapshot', async () => {
  const srv = await startServer();
  const c = srv.client();
  const other = srv.client();
  await setMany(c, Array.from({ length: 1500 }, (_, i) => ({ key: Buffer.from(`c/${String(i).padStart(5, '0')}`), value: pseudoRandomBytes(4096, i) })));
  let seen = 0;
  for await (const batch of c.getPrefixMessages('c/')) {
    seen += batch.length;
    assert.is((await other.stat()).openSnapshots, 1, 'the stream holds one snapshot');
    break; // cancels the call
  }
  assert.ok(seen > 0 && seen < 1500);
  assert.ok(await eventually(async () => (await other.stat()).openSnapshots === 0, 5000), 'snapshot released after cancel');
  // A completed stream releases it too, and the server counts it once.
  assert.is((await c.getPrefixAll('c/')).length, 1500);
  const s = await other.stat();
  assert.is(s.openSnapshots, 0);
  assert.is(s.totalGetprefixes, 1, 'the cancelled stream is not a completed operation');
  assert.is(await srv.stop(), 0);
});

streams('a paused reader holds the server to a bounded amount of memory; the stream then completes', async () => {
  const srv0 = await startServer({ args: ['--cache-mb', '4'] });
  const n = 192; // 192 x 512 KiB = 96 MiB result
  await setMany(srv0.client(), Array.from({ length: n }, (_, i) => ({ key: Buffer.from(`bp/${String(i).padStart(3, '0')}`), value: pseudoRandomBytes(512 * 1024, i) })), 8);
  assert.is(await srv0.stop(), 0);
  // A fresh process, so the baseline is not inflated by garbage from the writes.
  const srv = await startServer({ dataDir: srv0.dataDir, args: ['--cache-mb', '4'] });
  const c = srv.client();
  await c.get('bp/000');
  await sleep(200);
  const before = rssBytes(srv.pid);
  const call = c.raw.getPrefix({ prefix: Buffer.from('bp/'), limit: 0 });
  const got: Buffer[] = [];
  let peak = 0;
  await new Promise<void>((resolve, reject) => {
    let paused = false;
    call.on('data', (m: { entries: Array<{ key: Buffer; value: Buffer }> }) => {
      for (const e of m.entries) got.push(e.key);
      if (!paused) {
        paused = true;
        call.pause();
        void (async () => {
          for (let i = 0; i < 15; i++) { await sleep(100); peak = Math.max(peak, rssBytes(srv.pid) ?? 0); }
          call.resume();
        })();
      }
    });
    call.on('error', reject);
    call.on('end', resolve);
  });
  assert.is(got.length, n, 'all entries arrive after the reader resumes');
  for (let i = 1; i < got.length; i++) assert.ok(Buffer.compare(got[i - 1]!, got[i]!) < 0);
  if (before !== undefined && peak > 0) {
    // Without backpressure the server would buffer the whole 96 MiB result (measured: +100 MiB);
    // with it, a few messages plus the client's receive buffer and garbage (measured: about +30 MiB).
    const growth = peak - before;
    assert.ok(growth < 48 * MiB, `server RSS grew by ${(growth / MiB).toFixed(1)} MiB while a 96 MiB result was paused`);
  }
  assert.is((await c.stat()).openSnapshots, 0);
  assert.is(await srv.stop(), 0);
});

streams('a reader that takes nothing for --stream-stall-ms is ended with ABORTED and its snapshot released; a slow one that keeps reading is not', async () => {
  const srv = await startServer({ args: ['--stream-stall-ms', '1500'] });
  const c = srv.client();
  const other = srv.client();
  const n = 40; // 40 x 512 KiB: far more than the client's and the transport's buffers hold
  const keyOf = (i: number) => Buffer.from(`st/${String(i).padStart(3, '0')}`);
  await setMany(c, Array.from({ length: n }, (_, i) => ({ key: keyOf(i), value: pseudoRandomBytes(512 * 1024, i) })), 8);

  // Slow but reading: one message every 500 ms (under the 1.5 s limit), 3 s in all.
  const slow = c.raw.getPrefix({ prefix: Buffer.from('st/'), limit: 12 });
  const slowKeys: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    slow.on('data', (m: { entries: Array<{ key: Buffer }> }) => {
      for (const e of m.entries) slowKeys.push(e.key);
      slow.pause();
      setTimeout(() => slow.resume(), 500);
    });
    slow.on('error', reject);
    slow.on('end', resolve);
  });
  assert.is(slowKeys.length, 12, 'the slow reader got every entry');

  // Stalled: takes one message, then nothing.
  const call = c.raw.getPrefix({ prefix: Buffer.from('st/'), limit: 0 });
  const got: Buffer[] = [];
  let error: unknown;
  const ended = new Promise<void>((resolve) => {
    call.on('data', (m: { entries: Array<{ key: Buffer }> }) => { for (const e of m.entries) got.push(e.key); });
    call.on('error', (e) => { error = e; resolve(); });
    call.on('end', resolve);
  });
  await new Promise<void>((r) => call.once('data', () => { call.pause(); r(); }));
  assert.is((await other.stat()).openSnapshots, 1, 'the stalled stream holds its snapshot');
  // Writes go on meanwhile; once the stream is ended, the snapshot no longer pins their pages.
  await other.set('st-other', 'written while a reader stalls');
  assert.ok(await eventually(async () => (await other.stat()).stalledGetprefixes === 1, 10_000), 'the server ended the stalled stream');
  assert.is((await other.stat()).openSnapshots, 0, 'and released its snapshot');
  call.resume();
  await ended;
  assert.ok(isServiceError(error), `the stalled reader gets an error status, got ${String(error)}`);
  assert.is(statusName((error as { code: number }).code), 'ABORTED');
  assert.match((error as Error).message, /took no data for 1500 ms/);
  assert.ok(got.length > 0 && got.length < n, `${got.length} entries arrived before the error`);
  got.forEach((k, i) => assert.equal(k, keyOf(i), 'what arrived is the start of the result, in order'));
  const s = await other.stat();
  assert.is(s.totalGetprefixes, 1, 'only the completed stream counts');
  assert.equal((await other.get('st-other'))?.toString(), 'written while a reader stalls');
  assert.is(await srv.stop(), 0);
});

streams('clients that never read: after --stream-stall-ms, and as long again for their status, their streams are reset and give their budget back; other GetPrefix calls go on', async () => {
  // A 2 MiB budget: one stalled stream's written messages fill it.
  const srv = await startServer({ args: ['--stream-stall-ms', '1000', '--stream-buffer-mb', '2'] });
  const c = srv.client();
  const n = 40;
  await setMany(c, Array.from({ length: n }, (_, i) => ({ key: Buffer.from(`nr/${String(i).padStart(3, '0')}`), value: pseudoRandomBytes(512 * 1024, i) })), 8);
  // Raw HTTP/2 clients that never read the response (a 64 KiB window): clients that stop reading
  // without going away.
  const request = GetPrefixRequest.encode({ prefix: Buffer.from('nr/'), limit: 0 }).finish();
  const stuck = [0, 1].map(() => rawGrpcCall(srv.address, 'GetPrefix', request, { bytesPerSecond: 0 }));
  try {
    // The first fills the budget; the second waits for it from its start, and takes its snapshot
    // only once it has budget: until the first is ended, one snapshot is open.
    let most = 0;
    for (let t = 0; t < 16; t++) {
      await sleep(50);
      most = Math.max(most, (await c.stat()).openSnapshots);
    }
    assert.is(most, 1, 'open snapshots while one stream waits for budget at its start');
    assert.ok(await eventually(async () => (await c.stat()).stalledGetprefixes === 2, 15_000), 'the server ended both stalled streams');
    assert.is((await c.stat()).openSnapshots, 0, 'and released their snapshots');
    const codes = await Promise.race([Promise.all(stuck.map(async (s) => (await s.done).rstCode)), sleep(15_000).then(() => 'still open')]);
    assert.equal(codes, [http2.constants.NGHTTP2_CANCEL, http2.constants.NGHTTP2_CANCEL], 'their HTTP/2 streams were reset (CANCEL)');
    // With their messages still charged, this call would wait for budget forever.
    const reader = new KvClient(srv.address, { callTimeoutMs: 30_000 });
    try {
      assert.is((await reader.getPrefixAll('nr/', { timeoutMs: 30_000 })).length, n, 'a reading client gets the whole result');
    } finally { reader.close(); }
  } finally {
    for (const s of stuck) s.destroy();
  }
  assert.is(await srv.stop(), 0);
});

conc.run();
term.run();
lock.run();
streams.run();

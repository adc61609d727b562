// Abusive clients (issue 4, item 7), shared by test/durability/bad-input.test.ts and the torture
// runner: raw malformed gRPC/protobuf, a client that opens many streams and vanishes, a slow reader
// of a large GetPrefix result.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { describeError, KvClient } from '../../lib/client';
import { DEFAULT_CONFIG } from '../../lib/config';

const MiB = 1024 * 1024;
import { SERVICE, takeGrpcStatus } from '../support/raw-grpc';
import { startServer, tempDir } from '../support/server';
import { decodeValue, encodeValue, mib, nowMs, rssBytes, sleep } from './support';

const ident = (b: Buffer) => b;

/** A grpc-js client that sends arbitrary bytes as the request message of `method`. */
export class RawClient {
  private readonly c: grpc.Client;
  constructor(address: string) {
    this.c = new grpc.Client(address, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 128 * 1024 * 1024,
      'grpc.max_send_message_length': 128 * 1024 * 1024,
    });
  }
  unary(method: string, body: Buffer, timeoutMs = 10_000): Promise<{ code: number; details: string }> {
    return new Promise((resolve) => {
      this.c.makeUnaryRequest<Buffer, Buffer>(`${SERVICE}/${method}`, ident, ident, body, new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs }, (err) => resolve(err ? { code: err.code, details: err.details } : { code: 0, details: '' }));
    });
  }
  stream(method: string, body: Buffer, timeoutMs = 10_000): Promise<{ code: number; details: string; messages: number }> {
    return new Promise((resolve) => {
      const call = this.c.makeServerStreamRequest<Buffer, Buffer>(`${SERVICE}/${method}`, ident, ident, body, new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs });
      let messages = 0;
      call.on('data', () => { messages++; });
      call.on('error', (e: grpc.ServiceError) => resolve({ code: e.code, details: e.details, messages }));
      call.on('status', (s: grpc.StatusObject) => { if (s.code === 0) resolve({ code: 0, details: s.details, messages }); });
    });
  }
  close(): void { this.c.close(); }
}

/** One gRPC request over a bare HTTP/2 session, with full control of the frame. */
export function rawHttp2(address: string, o: { path: string; frame: Buffer; headers?: Record<string, string>; timeoutMs?: number }):
  Promise<{ http: number | undefined; grpcStatus: number | undefined; grpcMessage: string; error?: string }> {
  return new Promise((resolve) => {
    const session = http2.connect(`http://${address}`);
    let http: number | undefined;
    const got: { status?: number; message: string } = { message: '' };
    let settled = false;
    const done = (error?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.destroy();
      resolve({ http, grpcStatus: got.status, grpcMessage: got.message, error });
    };
    const timer = setTimeout(() => done('timeout'), o.timeoutMs ?? 10_000);
    session.on('error', (e) => done(String(e)));
    const req = session.request({
      ':method': 'POST', ':path': o.path, 'content-type': 'application/grpc', te: 'trailers', ...o.headers,
    });
    req.on('response', (h) => { http = Number(h[':status']); takeGrpcStatus(h, got); });
    req.on('trailers', (h) => takeGrpcStatus(h, got));
    req.on('data', () => {});
    req.on('end', () => done());
    req.on('close', () => done());
    req.on('error', (e) => done(String(e)));
    req.end(o.frame);
  });
}

/** Writes `count` values of `size` bytes under `prefix` with `parallel` clients. */
export async function loadValues(address: string, prefix: string, count: number, size: number, parallel = 4): Promise<void> {
  const clients = Array.from({ length: parallel }, () => new KvClient(address));
  let next = 0;
  try {
    await Promise.all(clients.map(async (cl) => {
      for (let i = next++; i < count; i = next++) {
        const key = Buffer.from(`${prefix}${String(i).padStart(6, '0')}`);
        await cl.set(key, encodeValue(key, 1, 0, size));
      }
    }));
  } finally {
    for (const c of clients) c.close();
  }
}

// ------------------------------------------------------------------------------------------------
// Many streams, then the client vanishes (SIGKILL of a child process that holds them).
// ------------------------------------------------------------------------------------------------
export interface VanishResult {
  opened: number;
  firstMessages: number;
  /** Server RSS right before the streams open. */
  rssBefore: number;
  peakRss: number;
  rssAfter: number;
  openSnapshotsDuring: number;
  openSnapshotsAfter: number;
  releasedMs: number;
  othersOk: number;
  othersFailed: number;
  othersMaxMs: number;
}

/**
 * The most a server may take in RSS while `streams` stalled GetPrefix streams are open and then
 * vanish: what it had before they opened, plus what each part may grow to. Streams that each buffered
 * a message of 256 KiB would need 250 MiB for those alone at 1,000 streams, more than all of this
 * allowance (about 190 MiB there).
 *  - the page cache filling up (--cache-mb) and the server-wide stream buffer (--stream-buffer-mb);
 *  - 64 KiB per open stream: its grpc-js call, HTTP/2 stream and snapshot. Measured: peak RSS grows by
 *    about 55 KiB per stream between 250 and 2,000 streams (npm run bench:stream-memory);
 *  - 64 MiB of buffers sent but not yet collected: the server's arrayBuffers reach up to 67 MiB
 *    above what cache and stream buffer may hold in this load (the same runs); this is the term
 *    that varies from run to run, and its highs do not come with the others' (the highest peak RSS
 *    of those runs at 1,000 streams was 226 MiB, against about 276 MiB here).
 * Memory the server held before, retained or not, is in both `rssBefore` and the peak: what is
 * bounded is the growth.
 */
export function streamsRssLimit(rssBefore: number, streams: number, cacheMB: number, streamBufferMB = DEFAULT_CONFIG.streamBufferBytes / MiB): { bytes: number; formula: string } {
  const bytes = rssBefore + (cacheMB + streamBufferMB) * MiB + streams * 64 * 1024 + 64 * MiB;
  return { bytes, formula: `RSS before ${mib(rssBefore)} + cache ${cacheMB} MiB + stream buffer ${streamBufferMB} MiB + ${streams} x 64 KiB + 64 MiB uncollected = ${mib(bytes)}` };
}

export async function vanishingStreams(address: string, serverPid: number, prefix: string, streams: number, log: (l: string) => void): Promise<VanishResult> {
  const dir = tempDir('lbkv-vanish-');
  const script = path.join(dir, 'vanish.js');
  const clientJs = path.resolve(__dirname, '../../lib/client.js');
  fs.writeFileSync(script, `
const { KvClient } = require(${JSON.stringify(clientJs)});
const [address, prefix, n] = [process.argv[2], process.argv[3], Number(process.argv[4])];
const c = new KvClient(address);
let opened = 0, first = 0;
const calls = [];
for (let i = 0; i < n; i++) {
  const call = c.raw.getPrefix({ prefix: Buffer.from(prefix), limit: 0 });
  opened++;
  let got = false;
  call.on('data', () => { call.pause(); if (!got) { got = true; first++; } });
  call.on('error', () => {});
  calls.push(call);
}
const t = setInterval(() => { process.stdout.write('STATUS ' + opened + ' ' + first + '\\n'); }, 200);
`);
  const child = spawn(process.execPath, [script, address, prefix, String(streams)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let opened = 0, first = 0;
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    const m = /STATUS (\d+) (\d+)\s*$/.exec(s.trim().split('\n').pop() ?? '');
    if (m) { opened = Number(m[1]); first = Number(m[2]); }
  });
  const other = new KvClient(address);
  const res: VanishResult = { opened: 0, firstMessages: 0, rssBefore: rssBytes(serverPid) ?? 0, peakRss: 0, rssAfter: 0, openSnapshotsDuring: 0, openSnapshotsAfter: -1,
    releasedMs: -1, othersOk: 0, othersFailed: 0, othersMaxMs: 0 };
  let stopOthers = false;
  // Another client keeps using the server the whole time.
  const others = (async () => {
    for (let i = 0; !stopOthers; i++) {
      const t0 = nowMs();
      try {
        const key = Buffer.from(`vanish-other/${i % 50}`);
        await other.set(key, encodeValue(key, i + 1, 0, 300));
        const v = await other.get(key);
        if (!v || decodeValue(v).version !== i + 1) throw new Error('read back wrong value');
        res.othersOk++;
      } catch (e) { res.othersFailed++; log(`  other client: ${describeError(e)}`); }
      res.othersMaxMs = Math.max(res.othersMaxMs, nowMs() - t0);
      await sleep(20);
    }
  })();
  const sample = setInterval(() => { res.peakRss = Math.max(res.peakRss, rssBytes(serverPid) ?? 0); }, 50);
  try {
    const deadline = nowMs() + 60_000;
    while (first < streams && nowMs() < deadline && child.exitCode === null) await sleep(100);
    await sleep(500);
    res.opened = opened;
    res.firstMessages = first;
    res.openSnapshotsDuring = Number((await other.stat()).openSnapshots);
    log(`  ${opened} streams opened, ${first} got a first message; server open snapshots ${res.openSnapshotsDuring}, RSS ${mib(rssBytes(serverPid) ?? 0)}; killing the client`);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('close', r));
    const t0 = nowMs();
    for (;;) {
      res.openSnapshotsAfter = Number((await other.stat()).openSnapshots);
      if (res.openSnapshotsAfter === 0 || nowMs() - t0 > 20_000) break;
      await sleep(100);
    }
    res.releasedMs = res.openSnapshotsAfter === 0 ? nowMs() - t0 : -1;
    await sleep(300);
    res.rssAfter = rssBytes(serverPid) ?? 0;
  } finally {
    clearInterval(sample);
    stopOthers = true;
    await others;
    other.close();
    if (child.exitCode === null) { child.kill('SIGKILL'); }
  }
  return res;
}

// ------------------------------------------------------------------------------------------------
// Slow reader of a large GetPrefix result, with RSS sampling and another client served meanwhile.
// ------------------------------------------------------------------------------------------------
export interface SlowReaderResult {
  skipped?: string;
  totalBytes: number;
  entries: number;
  readMs: number;
  loadMs: number;
  cacheMB: number;
  rssBefore: number;
  peakRss: number;
  limitBytes: number;
  badValues: number;
  othersOk: number;
  othersFailed: number;
  othersMaxMs: number;
}

export async function slowReader(o: { totalMiB: number; cacheMB: number; rateMiBps: number; log: (l: string) => void; dataDir?: string }): Promise<SlowReaderResult> {
  const server = await startServer({ dataDir: o.dataDir, args: ['--cache-mb', String(o.cacheMB)] });
  const valueSize = 1024 * 1024;
  const count = o.totalMiB;
  const res: SlowReaderResult = { totalBytes: 0, entries: 0, readMs: 0, loadMs: 0, cacheMB: o.cacheMB, rssBefore: 0, peakRss: 0,
    limitBytes: (o.cacheMB + 200) * 1024 * 1024, badValues: 0, othersOk: 0, othersFailed: 0, othersMaxMs: 0 };
  try {
    const t0 = nowMs();
    await loadValues(server.address, 'big/', count, valueSize, 4);
    res.loadMs = nowMs() - t0;
    o.log(`  loaded ${count} x 1 MiB under big/ in ${(res.loadMs / 1000).toFixed(1)} s`);
    res.rssBefore = rssBytes(server.pid) ?? 0;
    const reader = new KvClient(server.address);
    const other = new KvClient(server.address);
    let stop = false;
    const sample = setInterval(() => { res.peakRss = Math.max(res.peakRss, rssBytes(server.pid) ?? 0); }, 50);
    const others = (async () => {
      for (let i = 0; !stop; i++) {
        const t = nowMs();
        try {
          const key = Buffer.from(`big/${String(i * 7919 % count).padStart(6, '0')}`);
          const v = await other.get(key);
          if (!v || !decodeValue(v).key.equals(key)) throw new Error(`wrong value for ${key}`);
          const sk = Buffer.from(`slow-other/${i % 100}`);
          await other.set(sk, encodeValue(sk, i + 1, 0, 500));
          res.othersOk++;
        } catch (e) { res.othersFailed++; o.log(`  other client: ${describeError(e)}`); }
        res.othersMaxMs = Math.max(res.othersMaxMs, nowMs() - t);
        await sleep(50);
      }
    })();
    const t1 = nowMs();
    try {
      let lastLog = t1;
      for await (const batch of reader.getPrefixMessages('big/')) {
        for (const e of batch) {
          res.entries++;
          res.totalBytes += e.value.length;
          try { if (!decodeValue(e.value).key.equals(e.key)) res.badValues++; } catch { res.badValues++; }
        }
        // Pace the reading: at most rateMiBps.
        const due = t1 + (res.totalBytes / 1048576 / o.rateMiBps) * 1000;
        const wait = due - nowMs();
        if (wait > 0) await sleep(wait);
        if (nowMs() - lastLog > 5000) {
          lastLog = nowMs();
          o.log(`  slow reader: ${mib(res.totalBytes)} read, server RSS ${mib(rssBytes(server.pid) ?? 0)} (peak ${mib(res.peakRss)})`);
        }
      }
    } finally {
      res.readMs = nowMs() - t1;
      stop = true;
      clearInterval(sample);
      await others;
      reader.close();
      other.close();
    }
    o.log(`  slow reader: ${res.entries} entries, ${mib(res.totalBytes)} in ${(res.readMs / 1000).toFixed(1)} s; server RSS before ${mib(res.rssBefore)}, peak ${mib(res.peakRss)}, limit ${mib(res.limitBytes)} (cache ${o.cacheMB} MiB + 200 MiB); other client ${res.othersOk} ok, ${res.othersFailed} failed, slowest ${res.othersMaxMs.toFixed(0)} ms`);
  } finally {
    await server.stop('SIGTERM');
  }
  return res;
}

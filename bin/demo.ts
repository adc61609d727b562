// `make demo`: start lbserver on a fresh temporary data directory and a free port on 127.0.0.1, run
// 10 client processes doing 10,000 operations each (sets, gets, some getprefixes), print a progress
// line while they run, print the server's Stat, then stop the server (SIGTERM) and remove the data.
// Bounded in time; exits non-zero on any failure.
import { SingleBar } from 'cli-progress';
import { Command } from 'commander';
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { KvClient } from '../lib/client';
import { freePort } from '../lib/ports';
import { argsOrExit, CLIENT_USAGE_EXIT, parseIntArg } from '../lib/config';
import { mixOf } from './demo-client';

const opts = new Command()
  .name('demo')
  .description('lbkv demo (`make demo`): lbserver on a fresh temporary data directory and a free port on 127.0.0.1, ' +
    'client processes doing a mix of Set / Get / GetPrefix, a progress line, the server\'s Stat (start time, ' +
    'total_sets, total_gets, total_getprefixes), then SIGTERM to the server and the data directory removed. ' +
    'Exit status (as lbclient\'s where they overlap): 0 OK; 1 a client read a wrong value, a counter disagrees, or anything ' +
    'else failed; 4 bad usage (an unknown option or a bad value); 129/130/143 stopped by SIGHUP/SIGINT/SIGTERM (server stopped, data removed).')
  .option('--clients <n>', 'client processes (env LBKV_DEMO_CLIENTS)', process.env.LBKV_DEMO_CLIENTS ?? '10')
  .option('--ops <n>', 'operations per client; of every 20, 10 Sets, 9 Gets and 1 GetPrefix (env LBKV_DEMO_OPS)', process.env.LBKV_DEMO_OPS ?? '10000')
  .option('--timeout-ms <n>', 'give up (and stop everything) after this long (env LBKV_DEMO_TIMEOUT_MS)', process.env.LBKV_DEMO_TIMEOUT_MS ?? '300000')
  // Commander's own errors (an unknown option, a missing value) exit 1 by default: the status of a
  // failed run. Bad usage is 4, whichever part of it is bad; --help is 0.
  .exitOverride((e) => process.exit(e.exitCode === 0 ? 0 : CLIENT_USAGE_EXIT))
  .parse()
  .opts<{ clients: string; ops: string; timeoutMs: string }>();
const { CLIENTS, OPS, DEADLINE_MS } = argsOrExit('demo', () => ({
  CLIENTS: parseIntArg(opts.clients, '--clients', 1, 256),
  OPS: parseIntArg(opts.ops, '--ops', 1, 100_000_000),
  DEADLINE_MS: parseIntArg(opts.timeoutMs, '--timeout-ms', 1000, 24 * 3_600_000),
}), CLIENT_USAGE_EXIT);

const children = new Set<ChildProcess>();
let dataDir: string | undefined;

function cleanup(): void {
  // Only a child still running: the PID of one that has exited may be another process's by now.
  for (const c of children) { try { if (c.pid && c.exitCode === null && c.signalCode === null) process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ } }
  if (dataDir) { try { rmSync(dataDir, { recursive: true, force: true }); } catch { /* ignore */ } }
}

// Whatever ends this process (an uncaught error too) takes its server and clients with it: a crash
// left lbserver running, orphaned, with its data directory.
process.on('exit', cleanup);
// A reader that goes away (`make demo | head`) is no failure of the demo: it runs on unseen and still
// stops its server cleanly. Unhandled, the EPIPE crashed it with the server left running.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE') throw e;
});


function exitPromise(c: ChildProcess): Promise<number | null> {
  return new Promise((res) => {
    if (c.exitCode !== null || c.signalCode !== null) return res(c.exitCode);
    c.on('exit', (code) => { children.delete(c); res(code); });
  });
}

/** A client's exit code, once its IPC channel has closed as well: its last message ('done') may be
 *  delivered after 'exit', never after 'close'. Called right after fork, before either can happen. */
function closePromise(c: ChildProcess): Promise<number | null> {
  return new Promise((res) => {
    c.on('close', (code) => { children.delete(c); res(code); });
  });
}

async function startServer(dir: string): Promise<{ proc: ChildProcess; address: string; line: string }> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    const proc = spawn(process.execPath, [resolve(__dirname, 'lbserver.js'), '--listen', address, '--data', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(proc);
    let out = '';
    let err = '';
    proc.stderr!.setEncoding('utf8').on('data', (c: string) => { err += c; });
    const line = await new Promise<string | undefined>((res) => {
      const t = setTimeout(() => res(undefined), 30_000);
      proc.stdout!.setEncoding('utf8').on('data', (c: string) => {
        out += c;
        const m = /^lbserver listening on .*$/m.exec(out);
        if (m) { clearTimeout(t); res(m[0]); }
      });
      proc.on('exit', () => { clearTimeout(t); res(undefined); });
    });
    if (line) return { proc, address, line };
    try { proc.kill('SIGKILL'); } catch { /* gone */ }
    await exitPromise(proc);
    if (attempt < 3 && /EADDRINUSE|in use/.test(err)) continue;
    throw new Error(`lbserver did not start:\n${err}`);
  }
}

interface DoneMsg { type: 'done'; id: number; sets: number; gets: number; getprefixes: number; mismatches: number }

async function main(): Promise<void> {
  const started = Date.now();
  dataDir = mkdtempSync(join(tmpdir(), 'lbkv-demo-'));
  console.log(`demo: data directory ${dataDir}`);
  const server = await startServer(dataDir);
  console.log(server.line);
  const serverExit = exitPromise(server.proc);

  // The clients' mix is fixed by construction (bin/demo-client.ts): these counts are exact.
  const mix = mixOf(OPS);
  console.log(`demo: ${CLIENTS} client processes x ${OPS} operations (each ${mix.sets} sets, ${mix.gets} gets, ${mix.getprefixes} getprefixes; 128-byte keys, values under 100 bytes)`);
  const bar = new SingleBar({
    format: 'demo: [{bar}] {percentage}% | {value}/{total} ops | {rate} ops/s | {elapsed}s',
    noTTYOutput: true,
    notTTYSchedule: 1000,
    stream: process.stdout,
    hideCursor: false,
  });
  const progress = new Array<number>(CLIENTS).fill(0);
  const results: DoneMsg[] = [];
  const t0 = Date.now();
  bar.start(CLIENTS * OPS, 0, { rate: '0', elapsed: '0.0' });
  const update = () => {
    const sum = progress.reduce((x, y) => x + y, 0);
    const secs = (Date.now() - t0) / 1000;
    bar.update(sum, { rate: secs > 0 ? Math.round(sum / secs).toString() : '0', elapsed: secs.toFixed(1) });
  };
  const workers = Array.from({ length: CLIENTS }, (_, id) => {
    const w = fork(resolve(__dirname, 'demo-client.js'), ['--server', server.address, '--id', String(id), '--ops', String(OPS)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.add(w);
    w.on('message', (m: { type: string; id: number; done?: number }) => {
      if (m.type === 'progress') { progress[m.id] = m.done ?? 0; update(); }
      if (m.type === 'done') results.push(m as DoneMsg);
    });
    return closePromise(w);
  });
  const ticker = setInterval(update, 500);
  const codes = await Promise.all(workers);
  clearInterval(ticker);
  update();
  bar.stop();
  const runSecs = (Date.now() - t0) / 1000;
  const failedWorkers = codes.filter((c) => c !== 0).length;

  const client = new KvClient(server.address);
  const s = await client.stat();
  client.close();
  const expect = results.reduce((a, r) => ({ sets: a.sets + r.sets, gets: a.gets + r.gets, getprefixes: a.getprefixes + r.getprefixes }), { sets: 0, gets: 0, getprefixes: 0 });
  const totalOps = expect.sets + expect.gets + expect.getprefixes;
  console.log(`demo: ${totalOps} operations (${expect.sets} sets, ${expect.gets} gets, ${expect.getprefixes} getprefixes) in ${runSecs.toFixed(1)} s (${Math.round(totalOps / runSecs)} ops/s)`);
  console.log('');
  console.log(`server start time: ${new Date(s.startTimeUnixMs).toISOString()} (start_time_unix_ms ${s.startTimeUnixMs}, startup_ms ${s.startupMs}, uptime_ms ${s.uptimeMs})`);
  console.log(`total_sets: ${s.totalSets}`);
  console.log(`total_gets: ${s.totalGets}`);
  console.log(`total_getprefixes: ${s.totalGetprefixes}`);
  console.log(`failed_sets: ${s.failedSets}`);
  console.log(`keys: ${s.keys}`);
  console.log(`db_file_bytes: ${s.dbFileBytes}`);
  console.log(`commits: ${s.commits}  fsyncs: ${s.fsyncs}  mean_batch_size: ${s.meanBatchSize.toFixed(2)}  max_batch_size: ${s.maxBatchSize}`);
  console.log(`cache_hits: ${s.cacheHits}  cache_misses: ${s.cacheMisses}  page_count: ${s.pageCount}  free_pages: ${s.freePages}  last_txid: ${s.lastTxid}  open_snapshots: ${s.openSnapshots}`);
  console.log('');

  const problems: string[] = [];
  if (failedWorkers > 0) problems.push(`${failedWorkers} client process(es) failed`);
  if (results.length !== CLIENTS) problems.push(`${CLIENTS - results.length} client(s) did not report`);
  const offMix = results.filter((r) => r.sets !== mix.sets || r.gets !== mix.gets || r.getprefixes !== mix.getprefixes);
  if (offMix.length) problems.push(`${offMix.length} client(s) ran another mix than announced, e.g. ${offMix[0].sets}/${offMix[0].gets}/${offMix[0].getprefixes}`);
  const mismatches = results.reduce((a, r) => a + r.mismatches, 0);
  if (mismatches > 0) problems.push(`${mismatches} wrong read(s)`);
  if (s.totalSets !== expect.sets || s.totalGets !== expect.gets || s.totalGetprefixes !== expect.getprefixes) {
    problems.push(`Stat counters (${s.totalSets}/${s.totalGets}/${s.totalGetprefixes}) differ from the clients' counts (${expect.sets}/${expect.gets}/${expect.getprefixes})`);
  }

  server.proc.kill('SIGTERM');
  const killTimer = setTimeout(() => { try { server.proc.kill('SIGKILL'); } catch { /* gone */ } }, 15_000);
  const code = await serverExit;
  clearTimeout(killTimer);
  console.log(`demo: server stopped (exit ${code})`);
  if (code !== 0) problems.push(`lbserver exited with ${code} after SIGTERM`);
  rmSync(dataDir, { recursive: true, force: true });
  dataDir = undefined;
  console.log(`demo: removed the data directory; total ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (problems.length) {
    console.error(`demo: FAILED: ${problems.join('; ')}`);
    process.exitCode = 1;
  } else {
    console.log('demo: OK');
  }
}

const deadline = setTimeout(() => {
  console.error(`demo: FAILED: did not finish within ${DEADLINE_MS} ms`);
  cleanup();
  process.exit(1);
}, DEADLINE_MS);
deadline.unref();
// 128 + the signal's number, as a shell reports a process a signal ended.
// SIGHUP too: a closed terminal must not leave the server running or its data directory behind.
for (const [sig, code] of [['SIGHUP', 129], ['SIGINT', 130], ['SIGTERM', 143]] as const) process.on(sig, () => { cleanup(); process.exit(code); });

main().catch((e) => {
  console.error(`demo: FAILED: ${(e as Error)?.stack ?? e}`);
  cleanup();
  process.exitCode = 1;
});

// Experiment 2: restart time vs number of keys, and cold vs warm gets.
// Loads N pairs of 4 KiB (cumulatively: 10K, then up to 30K, then up to 100K, ...) with many concurrent
// sets from several client processes (group commit), SIGKILLs the server, restarts it and measures the
// time from process start until the first get is answered. Cold: OS page cache dropped before the
// restart (when permitted; recorded). Gets: the first K gets after a cold restart vs K gets on the
// long-running server right before the kill (warm).
//
//   node dist/experiments/exp2-restart.js [--full] [--n 10000,30000,100000] [--help]
import { Command } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { KvClient } from '../lib/client';
import { DATA_FILE_NAME } from '../lib/config';
import { Store } from '../btree';
import { dropCaches, median, fmtBytes, keepDataDir, KiB, log, makeDataDir, renderPlot, resultDir, rmrf, summarize, usSince, writeDat, newHist, keyFor, rng, diskInfo, dataDirRoot, countsArg, syncModeOption, wholeArg, type LatencySummary } from './lib/common';
import { runLoad } from './lib/load';
import { writeSummary } from './lib/report';
import { startAndFirstGet, startServer, type RunningServer } from './lib/servers';

export interface Exp2Options {
  full?: boolean;
  ns?: number[];
  restarts?: number;
  coldGets?: number;
  valueBytes?: number;
  clients?: number;
  processes?: number;
  out?: string;
  cacheMB?: number;
  syncMode?: 'one' | 'two';
  keep?: boolean;
}

interface Restart {
  cache: 'cold' | 'warm';
  dropped: boolean;
  readyMs: number;
  firstGetMs: number;
  serverStartupMs?: number;
  /** In-process Store.open + one get + close on the killed server's file (cold: after a cache drop). */
  engineOpenMs?: number;
}

interface Point {
  n: number;
  fileBytes: number;
  loadSetsPerSec: number;
  loadErrors: number;
  loadMeanBatch?: number;
  restarts: Restart[];
  medianColdFirstGetMs: number;
  medianWarmFirstGetMs: number;
  medianReadyMs: number;
  /** Server-reported startup (Stat.startup_ms: store open + service setup), median over all restarts. */
  medianServerStartupMs: number;
  /** Median in-process Store.open + first get on the data file with a dropped page cache. */
  medianEngineOpenMs: number;
  coldGets: LatencySummary;
  warmGets: LatencySummary;
  cacheDropped: boolean;
}

/** The keys exp2 loads: e2/<i>, 32 bytes (runLoad's key size); cold-restart-ab reads them too. */
export const EXP2_KEY_PREFIX = 'e2/';
export const exp2Key = (i: number): Buffer => keyFor(EXP2_KEY_PREFIX, i, 32);

/** Time from spawn() to the first answered get, and the server's own startup time from Stat. */
async function restartAndFirstGet(start: () => Promise<RunningServer>, key: Buffer): Promise<{ server: RunningServer; readyMs: number; firstGetMs: number; startupMs?: number }> {
  const r = await startAndFirstGet(start, key);
  const st = await r.client.stat().catch(() => undefined);
  r.client.close();
  return { server: r.server, readyMs: r.readyMs, firstGetMs: r.firstGetMs, startupMs: st?.startupMs };
}

/** K single-client gets of uniform random keys, in this process (one client, sequential). */
async function timedGets(address: string, n: number, k: number, seed: number): Promise<LatencySummary> {
  const c = new KvClient(address);
  await c.waitForReady(10_000);
  const h = newHist();
  const r = rng(seed);
  let missing = 0;
  for (let i = 0; i < k; i++) {
    const key = exp2Key(Math.floor(r() * n));
    const t0 = process.hrtime.bigint();
    const v = await c.get(key);
    h.recordValue(Math.max(1, Math.round(usSince(t0))));
    if (!v) missing++;
  }
  c.close();
  if (missing) throw new Error(`${missing} of ${k} gets found nothing: data lost?`);
  return summarize(h);
}

// Bytes of free disk to ask for before loading n pairs: value, key and cell overhead (300 B) plus 15 %
// for tree pages and free space that the load leaves behind.
function diskNeeded(n: number, valueBytes: number): number {
  return n * (valueBytes + 300) * 1.15;
}

export async function runExp2(o: Exp2Options = {}): Promise<string> {
  const full = o.full ?? false;
  // Once each: a count given twice loaded nothing the second time and measured the same point again.
  const ns = [...new Set(o.ns ?? (full ? [10_000, 100_000, 300_000, 1_000_000] : [10_000, 30_000, 100_000]))].sort((a, b) => a - b);
  const restarts = o.restarts ?? (full ? 9 : 5);
  const coldGets = o.coldGets ?? (full ? 2000 : 500);
  const valueBytes = o.valueBytes ?? 4 * KiB;
  const clients = o.clients ?? 64;
  const processes = o.processes ?? 3;
  const dir = resultDir('exp2-restart', o.out);
  const need = diskNeeded(ns[ns.length - 1], valueBytes);
  const free = diskInfo(dataDirRoot()).freeBytes ?? Infinity;
  if (need > free) throw new Error(`N=${ns[ns.length - 1]} needs about ${(need / 1e9).toFixed(1)} GB on ${dataDirRoot()}; ${(free / 1e9).toFixed(1)} GB free`);
  log(`exp2: N = ${ns.join(', ')}; ${valueBytes} B values; ${restarts} cold + ${restarts} warm restarts per N; ${coldGets} cold/warm gets`);

  // The floor: time for a bare grpc-js server process (no data) to answer its first get.
  const floorTimes: number[] = [];
  for (let i = 0; i < restarts; i++) {
    const r = await restartAndFirstGet(() => startServer({ kind: 'floor' }), Buffer.from('k'));
    floorTimes.push(r.firstGetMs);
    await r.server.stop('SIGKILL');
  }
  const floorFirstGetMs = median(floorTimes);
  log(`exp2: floor server process start -> first get: median ${floorFirstGetMs.toFixed(1)} ms`);

  const dataDir = makeDataDir('exp2');
  if (o.keep) keepDataDir(dataDir);
  const points: Point[] = [];
  let anyDropped = false;
  let server = await startServer({ kind: 'lbkv', dataDir, cacheMB: o.cacheMB, syncMode: o.syncMode });
  const start = () => startServer({ kind: 'lbkv', dataDir, cacheMB: o.cacheMB, syncMode: o.syncMode, port: server.port });
  try {
    let loaded = 0;
    for (const n of ns) {
      const t0 = Date.now();
      const ld = await runLoad({ address: server.address, clients, processes, op: 'load', keyPrefix: EXP2_KEY_PREFIX, valueBytes, loadFrom: loaded, loadCount: n - loaded, label: `load to ${n}`, hardTimeoutMs: 4 * 3600_000 });
      if (ld.errors) throw new Error(`load failed: ${ld.errors} errors, first: ${ld.firstError}`);
      const statC = new KvClient(server.address);
      const st = await statC.stat();
      statC.close();
      log(`exp2: loaded ${n - loaded} keys (to ${n}) in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${Math.round(ld.throughput)} sets/s; server: ${st.keys} keys, file ${st.dbFileBytes} B, mean batch ${st.meanBatchSize.toFixed(1)}`);
      loaded = n;
      // Warm gets: the long-running server that just did the load.
      const warmGets = await timedGets(server.address, n, coldGets, n + 1);
      const rs: Restart[] = [];
      const probe = exp2Key(Math.floor(n / 2));
      for (const cache of ['warm', 'cold'] as const) {
        for (let i = 0; i < restarts; i++) {
          await server.kill9();
          let engineOpenMs: number | undefined;
          if (cache === 'cold') {
            // The engine alone, in this process: open the file the killed server left, one get, close.
            dropCaches();
            const t0 = process.hrtime.bigint();
            const st = await Store.open({ path: path.join(dataDir, DATA_FILE_NAME) });
            const v = await st.get(probe);
            engineOpenMs = usSince(t0) / 1000;
            await st.close();
            if (!v) throw new Error('probe key missing after SIGKILL');
          }
          const dropped = cache === 'cold' ? dropCaches() : false;
          anyDropped ||= dropped;
          const r = await restartAndFirstGet(start, probe);
          server = r.server;
          rs.push({ cache, dropped, readyMs: r.readyMs, firstGetMs: r.firstGetMs, serverStartupMs: r.startupMs, engineOpenMs });
        }
      }
      // The server now runs after a cold restart and has answered one get: the first K gets are cold.
      const lastDropped = rs[rs.length - 1].dropped;
      const cold = await timedGets(server.address, n, coldGets, n + 2);
      const p: Point = {
        n, fileBytes: st.dbFileBytes, loadSetsPerSec: ld.throughput, loadErrors: ld.errors, loadMeanBatch: st.meanBatchSize, restarts: rs,
        medianColdFirstGetMs: median(rs.filter((r) => r.cache === 'cold').map((r) => r.firstGetMs)),
        medianWarmFirstGetMs: median(rs.filter((r) => r.cache === 'warm').map((r) => r.firstGetMs)),
        medianReadyMs: median(rs.map((r) => r.readyMs)),
        medianServerStartupMs: median(rs.map((r) => r.serverStartupMs ?? NaN).filter((x) => !Number.isNaN(x))),
        medianEngineOpenMs: median(rs.map((r) => r.engineOpenMs ?? NaN).filter((x) => !Number.isNaN(x))),
        coldGets: cold, warmGets, cacheDropped: lastDropped,
      };
      points.push(p);
      log(`exp2: N=${n}: start->first get cold ${p.medianColdFirstGetMs.toFixed(1)} ms, warm ${p.medianWarmFirstGetMs.toFixed(1)} ms (page cache dropped: ${lastDropped}); gets cold p50 ${cold.p50Us} us / warm p50 ${warmGets.p50Us} us`);
    }
  } finally {
    await server.stop('SIGTERM');
    if (!o.keep) rmrf(dataDir);
  }

  writeDat(path.join(dir, 'exp2-restart.dat'),
    ['n_keys', 'cold_first_get_ms', 'warm_first_get_ms', 'ready_line_ms', 'floor_first_get_ms', 'cold_get_mean_ms', 'cold_get_p50_ms', 'cold_get_p99_ms', 'warm_get_mean_ms', 'warm_get_p50_ms', 'warm_get_p99_ms', 'file_bytes', 'server_startup_ms', 'engine_open_cold_ms'],
    `Experiment 2: restart (process start -> first get answered) and cold/warm gets; OS page cache dropped before cold restarts: ${anyDropped}`,
    points.map((p) => [p.n, p.medianColdFirstGetMs, p.medianWarmFirstGetMs, p.medianReadyMs, floorFirstGetMs,
      p.coldGets.meanUs / 1000, p.coldGets.p50Us / 1000, p.coldGets.p99Us / 1000, p.warmGets.meanUs / 1000, p.warmGets.p50Us / 1000, p.warmGets.p99Us / 1000, p.fileBytes, p.medianServerStartupMs, p.medianEngineOpenMs]));
  const plot = renderPlot(dir, 'exp2-restart', `
set logscale x
# 10k, 100k, 1M: full numbers at the right edge were cut off; a margin on both sides.
set format x '%.0s%c'
set offsets graph 0.04, graph 0.04, 0, 0
set grid lc rgb '#dddddd'
set xlabel 'keys in the store (${fmtBytes(valueBytes)} values)'
set key top left font ',8' box opaque
set multiplot layout 1,2 title 'Experiment 2: restart after SIGKILL, and cold vs warm gets (${anyDropped ? 'OS page cache dropped before cold restarts' : 'OS page cache could NOT be dropped'})'
set title 'process start -> first get answered (median of ${restarts})'
set ylabel 'ms (log scale)'
set logscale y
set yrange [0.1:3000]
plot 'exp2-restart.dat' u 1:2 w lp lw 2 pt 7 lc rgb '#1f77b4' t 'lbkv, cold page cache', \\
     '' u 1:3 w lp lw 2 pt 5 lc rgb '#ff7f0e' t 'lbkv, warm page cache', \\
     '' u 1:4 w lp lw 1 pt 2 lc rgb '#2ca02c' t 'lbkv ready line (all restarts, median)', \\
     '' u 1:13 w lp lw 1 pt 9 lc rgb '#9467bd' t 'lbserver ready, by its own clock (Stat startup\\_ms)', \\
     '' u 1:14 w lp lw 2 pt 13 lc rgb '#8c564b' t 'engine alone: Store.open + 1 get, cold page cache', \\
     '' u 1:5 w l dt 2 lw 2 lc rgb '#555555' t 'floor: bare gRPC server process, start -> first get'
set title 'first ${coldGets} gets after a cold restart vs on the long-running server'
set ylabel 'get latency (ms)'
set yrange [*:*]
plot 'exp2-restart.dat' u 1:7 w lp lw 2 pt 7 lc rgb '#1f77b4' t 'cold p50', \\
     '' u 1:8 w lp lw 2 pt 9 lc rgb '#1f77b4' dt 4 t 'cold p99', \\
     '' u 1:6 w lp lw 1 pt 6 lc rgb '#1f77b4' dt 2 t 'cold mean', \\
     '' u 1:10 w lp lw 2 pt 5 lc rgb '#ff7f0e' t 'warm p50', \\
     '' u 1:11 w lp lw 2 pt 11 lc rgb '#ff7f0e' dt 4 t 'warm p99', \\
     '' u 1:9 w lp lw 1 pt 4 lc rgb '#ff7f0e' dt 2 t 'warm mean'
unset multiplot`);
  if (plot.error) log(`exp2: plot: ${plot.error}`);
  const json = writeSummary(dir, 'exp2-restart', { full, ns, restarts, coldGets, valueBytes, keyBytes: 32, loadClients: clients, loadProcesses: processes, cacheMB: o.cacheMB ?? 'server default', syncMode: o.syncMode ?? 'server default',
    diskNeededFor10M: `about ${(diskNeeded(10_000_000, valueBytes) / 1e9).toFixed(1)} GB` },
  points, { pageCacheDropped: anyDropped, floorFirstGetMs, floorFirstGetRunsMs: floorTimes, plot: plot.png ? 'exp2-restart.png' : null });
  log(`exp2: wrote ${path.relative(process.cwd(), json)}`);
  void fs;
  return json;
}

if (require.main === module) {
  const opts = new Command()
    .name('exp2-restart')
    .description('Experiment 2: load N 4 KiB pairs, SIGKILL, restart; time to first get vs N; cold vs warm gets')
    .option('--full', 'full configuration (N up to 1,000,000)', false)
    .option('--n <list>', 'key counts, cumulative (default 10000,30000,100000; with --full 10000,100000,300000,1000000), e.g. 10000,100000,1000000,10000000 (checks for 4,396 B per pair + 15 % free disk: ~50.6 GB for 10M)', countsArg)
    .option('--restarts <n>', 'cold and warm restarts per N (default 5; 9 with --full)', wholeArg(1))
    .option('--cold-gets <k>', 'gets measured after a cold restart (and warm) (default 500; 2000 with --full)', wholeArg(1))
    .option('--clients <n>', 'concurrent loading clients', wholeArg(1), 64)
    .option('--processes <n>', 'loading client processes', wholeArg(1), 3)
    .option('--cache-mb <n>', 'lbserver --cache-mb', wholeArg(1))
    .addOption(syncModeOption())
    .option('--keep', 'keep the data directory', false)
    .option('--out <dir>', 'result directory (default experiments/results/exp2-restart)')
    .parse()
    .opts<Exp2Options & { n?: number[]; cacheMb?: number }>();
  runExp2({ ...opts, ns: opts.n, cacheMB: opts.cacheMb }).then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
}

// Experiment 3: throughput and latency vs number of concurrent clients. 1, 2, 4, 8, ... clients (spread
// over up to 4 worker processes) until throughput stops rising (two steps in a row under 5 % gain over
// the best so far, for every target), read-only and 50/50, 4 KiB values; lbkv and the floor server
// take each step in turns.
//
//   node dist/experiments/exp3-clients.js [--full] [--max-clients 256] [--help]
import { Command } from 'commander';
import * as path from 'node:path';
import { CLIENT_WARMUP_MS, fmtBytes, inTurn, KiB, log, makeDataDir, renderPlot, resultDir, rmrf, subsetArg, syncModeOption, warmupMsOption, wholeArg, type LatencySummary } from './lib/common';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { measureFsync } from './fsync-floor';
import { plain, runLoad } from './lib/load';
import { writeSummary } from './lib/report';
import { SERVER_KINDS, startServer, type ServerKind } from './lib/servers';

export interface Exp3Options {
  full?: boolean;
  targets?: ServerKind[];
  maxClients?: number;
  /** Do not apply the stop rule below this many clients (noise on a shared machine). */
  minClients?: number;
  durationMs?: number;
  keys?: number;
  valueBytes?: number;
  processes?: number;
  /** Least warm-up of each step's fresh client processes (default CLIENT_WARMUP_MS). */
  warmupMs?: number;
  out?: string;
  cacheMB?: number;
  syncMode?: 'one' | 'two';
}

interface Step {
  target: ServerKind;
  workload: 'read-only' | 'mixed-50-50';
  clients: number;
  processes: number;
  ops: number;
  errors: number;
  warmupErrors: number;
  throughput: number;
  all: LatencySummary;
  read: LatencySummary;
  write: LatencySummary;
  /** lbserver's Stat over the measured window (after the warm-up): its commits and fsyncs, and the
   *  measured sets per commit; maxBatchSinceStart is Stat's max_batch_size, the largest batch since
   *  the server started (the preload's, as a rule), not this step's. */
  server?: { commits: number; meanBatch: number; maxBatchSinceStart: number; fsyncs: number };
}

export async function runExp3(o: Exp3Options = {}): Promise<string> {
  const full = o.full ?? false;
  const targets = o.targets ?? ['floor', 'lbkv'];
  const maxClients = o.maxClients ?? (full ? 1024 : 256);
  const minClients = o.minClients ?? 16;
  const durationMs = o.durationMs ?? (full ? 10_000 : 2_500);
  const keys = o.keys ?? (full ? 100_000 : 10_000);
  const valueBytes = o.valueBytes ?? 4 * KiB;
  const maxProcs = o.processes ?? 4;
  const warmupMs = o.warmupMs ?? CLIENT_WARMUP_MS;
  const dir = resultDir('exp3-clients', o.out);
  log(`exp3: targets ${targets.join(', ')}; ${keys} keys of ${valueBytes} B; ${durationMs} ms per step after ${warmupMs} ms of warm-up; up to ${maxClients} clients`);
  const fsync = await measureFsync(undefined, full ? 1000 : 200);

  const steps: Step[] = [];
  const stopReasons: Record<string, string> = {};
  // All targets run at once and take each step in turns (first in turn alternating), so that every
  // client count is measured on each of them under the same spell of the shared machine, and the
  // curves stop together: when every target has had two steps in a row under 5 % gain over its best.
  const prefix = 'e3/';
  const servers = new Map<ServerKind, { server: Awaited<ReturnType<typeof startServer>>; dataDir?: string }>();
  try {
    for (const target of targets) {
      const dataDir = target === 'lbkv' ? makeDataDir('exp3') : undefined;
      const server = await startServer({ kind: target, dataDir, cacheMB: o.cacheMB, syncMode: o.syncMode });
      servers.set(target, { server, dataDir });
      const pre = await runLoad({ address: server.address, clients: 64, processes: 2, op: 'load', keyPrefix: prefix, valueBytes, loadCount: keys, label: `${target} preload`, hardTimeoutMs: 15 * 60_000 });
      if (pre.errors) throw new Error(`${target} preload failed: ${pre.firstError}`);
      log(`exp3: ${target} preloaded ${keys} keys at ${Math.round(pre.throughput)} sets/s`);
    }
    const { KvClient } = await import('../lib/client');
    for (const workload of ['read-only', 'mixed-50-50'] as const) {
      const best = new Map<ServerKind, number>(targets.map((t) => [t, 0]));
      const flat = new Map<ServerKind, number>(targets.map((t) => [t, 0]));
      let reason = `reached --max-clients ${maxClients}`;
      let turn = 0;
      for (let clients = 1; clients <= maxClients; clients *= 2, turn++) {
        for (const target of inTurn(targets, turn)) {
          const { server } = servers.get(target)!;
          const statClient = new KvClient(server.address);
          // Read when the workers have finished their warm-up and before they start measuring: the
          // commits of the warm-up's sets must not be counted against the
          // measured sets (a Stat taken before the warm-up gave 0.99 puts per commit with one client).
          let before: Awaited<ReturnType<typeof statClient.stat>> | undefined;
          const r = await runLoad({
            address: server.address, clients, processes: Math.min(maxProcs, clients), op: workload === 'read-only' ? 'get' : 'mixed', readFraction: 0.5,
            keyPrefix: prefix, valueBytes, keyCount: keys, durationMs, warmupOps: 20, warmupMs, label: `${target} ${workload} ${clients} clients`, hardTimeoutMs: durationMs + 120_000,
            onGo: async () => { before = await statClient.stat().catch(() => undefined); },
          });
          const after = await statClient.stat().catch(() => undefined);
          statClient.close();
          const p = plain(r);
          const step: Step = { target, workload, clients, processes: p.processes, ops: p.ops, errors: p.errors, warmupErrors: p.warmupErrors, throughput: p.throughput, all: p.all, read: p.read, write: p.write };
          if (before && after && target === 'lbkv') {
            const commits = after.commits - before.commits;
            step.server = { commits, fsyncs: after.fsyncs - before.fsyncs, maxBatchSinceStart: after.maxBatchSize, meanBatch: commits > 0 ? p.writes / commits : 0 };
          }
          steps.push(step);
          log(`exp3: ${target} ${workload} ${clients} clients: ${Math.round(p.throughput)} ops/s, mean ${p.all.meanUs} us, p99 ${p.all.p99Us} us${p.errors ? `, ${p.errors} errors (${p.firstError})` : ''}${p.warmupErrors ? `, ${p.warmupErrors} errors in the warm-up (${p.firstWarmupError})` : ''}${step.server ? `, ${step.server.commits} commits` : ''}`);
          flat.set(target, p.throughput > best.get(target)! * 1.05 ? 0 : flat.get(target)! + 1);
          best.set(target, Math.max(best.get(target)!, p.throughput));
        }
        if (clients >= minClients && targets.every((t) => flat.get(t)! >= 2)) {
          reason = `every target had two steps in a row under 5 % gain (stopped at ${clients} clients)`;
          break;
        }
      }
      for (const t of targets) stopReasons[`${t}/${workload}`] = reason;
    }
  } finally {
    for (const { server, dataDir } of servers.values()) {
      await server.stop('SIGTERM');
      if (dataDir) rmrf(dataDir);
    }
  }

  // One gnuplot index block per (target, workload), in this order.
  const series: [ServerKind, Step['workload']][] = [['lbkv', 'read-only'], ['lbkv', 'mixed-50-50'], ['floor', 'read-only'], ['floor', 'mixed-50-50']];
  const lines: string[] = [`# Experiment 3: closed-loop clients, ${fmtBytes(valueBytes)} values; latencies in ms; one block per series (gnuplot index)`,
    '# clients\tthroughput_ops_s\tmean_ms\tp50_ms\tp99_ms\tget_mean_ms\tset_mean_ms\tset_p99_ms'];
  for (const [t, w] of series) {
    if (lines.length > 2) lines.push('', '');
    lines.push(`# ${t} ${w}`);
    const ss = steps.filter((s) => s.target === t && s.workload === w);
    if (ss.length === 0) lines.push('1\t?\t?\t?\t?\t?\t?\t?');
    for (const s of ss) {
      lines.push([s.clients, s.throughput.toFixed(1), s.all.meanUs / 1000, s.all.p50Us / 1000, s.all.p99Us / 1000,
        s.read.count ? s.read.meanUs / 1000 : '?', s.write.count ? s.write.meanUs / 1000 : '?', s.write.count ? s.write.p99Us / 1000 : '?']
        .map((x) => (typeof x === 'number' ? (Number.isInteger(x) ? String(x) : x.toFixed(3)) : x)).join('\t'));
    }
  }
  fs.writeFileSync(path.join(dir, 'exp3-clients.dat'), lines.join('\n') + '\n');
  // This run's value size and machine (a fixed "4 KiB values, 2 shared cores" was true of one VM only).
  const shape = `${fmtBytes(valueBytes)} values, ${os.cpus().length} cores shared by the servers and the clients`;
  const fs50 = (fsync.p50Us / 1000).toFixed(3);
  const common = `
set datafile missing '?'
set grid lc rgb '#dddddd'
set xlabel 'throughput (operations/s, all clients)'
set logscale y
set key top left font ',9'
set label 1 'labels: number of clients' at graph 0.99, graph 0.03 right font ',8'
`;
  const curves = (col: number) => `plot 'exp3-clients.dat' index 0 u 2:${col} w lp lw 2 pt 7 lc rgb '#1f77b4' t 'lbkv read-only', \\
     '' index 0 u 2:${col}:(sprintf('%d',$1)) w labels offset 0,0.8 font ',7' tc rgb '#1f77b4' notitle, \\
     '' index 1 u 2:${col} w lp lw 2 pt 5 lc rgb '#d62728' t 'lbkv 50/50', \\
     '' index 1 u 2:${col}:(sprintf('%d',$1)) w labels offset 0,-0.8 font ',7' tc rgb '#d62728' notitle, \\
     '' index 2 u 2:${col} w lp dt 2 pt 6 lc rgb '#1f77b4' t 'floor (gRPC + Map) read-only', \\
     '' index 2 u 2:${col}:(sprintf('%d',$1)) w labels left offset 0.7,0 font ',7' tc rgb '#7f9fbf' notitle, \\
     '' index 3 u 2:${col} w lp dt 2 pt 4 lc rgb '#d62728' t 'floor (gRPC + Map) 50/50', \\
     '' index 3 u 2:${col}:(sprintf('%d',$1)) w labels left offset 0.7,0 font ',7' tc rgb '#cf8f8f' notitle, \\
     ${fs50} w l dt 3 lw 2 lc rgb '#555555' t 'one fdatasync 4 KiB (p50)'`;
  const p1 = renderPlot(dir, 'exp3-clients', `${common}
set title 'Experiment 3: mean latency vs throughput, 1, 2, 4, ... clients (${shape})'
set ylabel 'mean latency (ms)'
${curves(3)}`);
  const p2 = renderPlot(dir, 'exp3-clients-p99', `${common}
set title 'Experiment 3: p99 latency vs throughput, 1, 2, 4, ... clients (${shape})'
set ylabel 'p99 latency (ms)'
${curves(5)}`);
  const p3 = renderPlot(dir, 'exp3-clients-throughput', `
set datafile missing '?'
set grid lc rgb '#dddddd'
set logscale x 2
set xlabel 'concurrent clients'
set ylabel 'throughput (operations/s, all clients)'
set yrange [0:*]
set key bottom right font ',9'
set title 'Experiment 3: throughput vs clients (${shape})'
plot 'exp3-clients.dat' index 0 u 1:2 w lp lw 2 pt 7 lc rgb '#1f77b4' t 'lbkv read-only', \\
     '' index 1 u 1:2 w lp lw 2 pt 5 lc rgb '#d62728' t 'lbkv 50/50', \\
     '' index 2 u 1:2 w lp dt 2 pt 6 lc rgb '#1f77b4' t 'floor (gRPC + Map) read-only', \\
     '' index 3 u 1:2 w lp dt 2 pt 4 lc rgb '#d62728' t 'floor (gRPC + Map) 50/50'`);
  for (const p of [p1, p2, p3]) if (p.error) log(`exp3: plot: ${p.error}`);
  const peak: Record<string, { clients: number; throughput: number }> = {};
  for (const [t, w] of series) {
    const ss = steps.filter((s) => s.target === t && s.workload === w);
    if (!ss.length) continue;
    const b = ss.reduce((a, s) => (s.throughput > a.throughput ? s : a));
    peak[`${t}/${w}`] = { clients: b.clients, throughput: Math.round(b.throughput) };
  }
  const json = writeSummary(dir, 'exp3-clients', { full, targets, maxClients, durationMs, warmupOps: 20, warmupMs, keys, valueBytes, keyBytes: 32, maxProcesses: maxProcs, stopRule: 'every target had two steps in a row under 5 % gain over its best so far, not before minClients; targets take each step in turns', minClients, cacheMB: o.cacheMB ?? 'server default', syncMode: o.syncMode ?? 'server default' },
    steps, { fdatasync4k: fsync, stopReasons, peak, plots: [p1, p2, p3].filter((p) => p.png).map((p) => path.basename(p.png!)) });
  log(`exp3: wrote ${path.relative(process.cwd(), json)}`);
  return json;
}

if (require.main === module) {
  const opts = new Command()
    .name('exp3-clients')
    .description('Experiment 3: 1, 2, 4, ... concurrent clients until throughput stops rising; read-only and 50/50, 4 KiB values; the servers take each step in turns')
    .option('--full', 'full configuration', false)
    .option('--targets <list>', 'servers: floor,lbkv', subsetArg(SERVER_KINDS), [...SERVER_KINDS])
    .option('--max-clients <n>', 'upper bound on clients (default 256; 1024 with --full)', wholeArg(1))
    .option('--min-clients <n>', 'apply the stop rule only from this many clients on', wholeArg(1), 16)
    .option('--duration-ms <n>', 'measured time per step (default 2500; 10000 with --full)', wholeArg(1))
    .option('--keys <n>', 'preloaded keys (default 10000; 100000 with --full)', wholeArg(1))
    .option('--processes <n>', 'max worker processes the clients are spread over', wholeArg(1), 4)
    .addOption(warmupMsOption(CLIENT_WARMUP_MS))
    .option('--cache-mb <n>', 'lbserver --cache-mb', wholeArg(1))
    .addOption(syncModeOption())
    .option('--out <dir>', 'result directory (default experiments/results/exp3-clients)')
    .parse()
    .opts<Exp3Options & { cacheMb?: number }>();
  runExp3({ ...opts, cacheMB: opts.cacheMb }).then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
}

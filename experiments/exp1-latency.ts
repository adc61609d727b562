// Experiment 1: latency vs value size. One client (one worker process), values of 512 B .. 4 MiB, keys
// uniform from a preloaded set; read-only and 50/50 read/write; end-to-end mean, p50, p99 per size;
// the same against the floor server (in-memory Map over the same gRPC proto), the two taking each
// point in turns, and one fdatasync.
//
//   node dist/experiments/exp1-latency.js [--full] [--sizes 512,4k,512k,1m,4m] [--help]
import { Command } from 'commander';
import * as path from 'node:path';
import { CLIENT_WARMUP_MS, fmtBytes, inTurn, KiB, log, makeDataDir, MiB, renderPlot, resultDir, rmrf, sizesArg, subsetArg, syncModeOption, warmupMsOption, wholeArg, writeDat, type LatencySummary } from './lib/common';
import { measureFsync } from './fsync-floor';
import { plain, runLoad } from './lib/load';
import { writeSummary } from './lib/report';
import { SERVER_KINDS, startServer, type ServerKind } from './lib/servers';

export interface Exp1Options {
  full?: boolean;
  sizes?: number[];
  targets?: ServerKind[];
  durationMs?: number;
  maxOps?: number;
  /** Least warm-up of each point's fresh client process (default CLIENT_WARMUP_MS). */
  warmupMs?: number;
  out?: string;
  cacheMB?: number;
  syncMode?: 'one' | 'two';
}

interface Row {
  target: ServerKind;
  workload: 'read-only' | 'mixed-50-50';
  valueBytes: number;
  keys: number;
  ops: number;
  errors: number;
  warmupErrors: number;
  notFound: number;
  throughput: number;
  all: LatencySummary;
  read: LatencySummary;
  write: LatencySummary;
}

/** Keys preloaded per size: enough to be "a set", bounded to ~64 MiB (full: ~256 MiB) of values. */
function keysFor(size: number, full: boolean): number {
  const budget = (full ? 256 : 64) * MiB;
  return Math.max(16, Math.min(full ? 10_000 : 1000, Math.floor(budget / size)));
}

export async function runExp1(o: Exp1Options = {}): Promise<string> {
  const full = o.full ?? false;
  // In order and once each: the plot joins the points in the order of the rows, and a size given
  // twice was measured twice with only the first kept.
  const sizes = [...new Set(o.sizes ?? [512, 4 * KiB, 512 * KiB, MiB, 4 * MiB])].sort((a, b) => a - b);
  const targets = o.targets ?? ['floor', 'lbkv'];
  const durationMs = o.durationMs ?? (full ? 20_000 : 3_000);
  const maxOps = o.maxOps ?? (full ? 50_000 : 3_000);
  const warmupMs = o.warmupMs ?? CLIENT_WARMUP_MS;
  const dir = resultDir('exp1-latency', o.out);
  log(`exp1: sizes ${sizes.map(fmtBytes).join(', ')}; targets ${targets.join(', ')}; <= ${maxOps} ops or ${durationMs} ms per point after ${warmupMs} ms of warm-up`);

  const fsync = await measureFsync(undefined, full ? 1000 : 200);
  log(`exp1: fdatasync of 4 KiB p50 ${fsync.p50Us} us, mean ${fsync.meanUs} us`);

  const rows: Row[] = [];
  // Both servers run at once and take each point in turns (the first in turn alternating), so that
  // lbkv and the floor at the same size are measured in the same minutes of the shared machine, not
  // one after the other's whole sweep (their p50 ratio is the result).
  const servers = new Map<ServerKind, { server: Awaited<ReturnType<typeof startServer>>; dataDir?: string }>();
  try {
    for (const target of targets) {
      const dataDir = target === 'lbkv' ? makeDataDir('exp1') : undefined;
      servers.set(target, { server: await startServer({ kind: target, dataDir, cacheMB: o.cacheMB, syncMode: o.syncMode }), dataDir });
    }
    let turn = 0;
    for (const size of sizes) {
      const keys = keysFor(size, full);
      const prefix = `e1/${size}/`;
      for (const target of targets) {
        const pre = await runLoad({
          address: servers.get(target)!.server.address, clients: Math.min(32, keys), processes: size >= 512 * KiB ? 1 : 2, op: 'load', keyPrefix: prefix,
          valueBytes: size, loadCount: keys, label: `${target} preload ${fmtBytes(size)}`, hardTimeoutMs: 10 * 60_000,
        });
        if (pre.errors) throw new Error(`preload failed: ${pre.firstError}`);
      }
      for (const workload of ['read-only', 'mixed-50-50'] as const) {
        for (const target of inTurn(targets, turn++)) {
          const r = await runLoad({
            address: servers.get(target)!.server.address, clients: 1, processes: 1, op: workload === 'read-only' ? 'get' : 'mixed', readFraction: 0.5,
            keyPrefix: prefix, valueBytes: size, keyCount: keys, durationMs, maxOps, warmupOps: size >= MiB ? 5 : 200, warmupMs,
            verify: true, label: `${target} ${workload} ${fmtBytes(size)}`, hardTimeoutMs: durationMs + 120_000,
          });
          const p = plain(r);
          rows.push({ target, workload, valueBytes: size, keys, ops: p.ops, errors: p.errors, warmupErrors: p.warmupErrors, notFound: p.notFound, throughput: p.throughput, all: p.all, read: p.read, write: p.write });
          log(`exp1: ${target} ${workload} ${fmtBytes(size)}: ${p.ops} ops, mean ${p.all.meanUs} us, p50 ${p.all.p50Us} us, p99 ${p.all.p99Us} us${p.errors ? `, ${p.errors} errors (${p.firstError})` : ''}${p.warmupErrors ? `; ${p.warmupErrors} errors in the warm-up (${p.firstWarmupError})` : ''}`);
        }
      }
    }
  } finally {
    for (const { server, dataDir } of servers.values()) {
      await server.stop('SIGTERM');
      if (dataDir) rmrf(dataDir);
    }
  }

  const get = (t: ServerKind, w: Row['workload'], s: number) => rows.find((r) => r.target === t && r.workload === w && r.valueBytes === s);
  const ms = (x?: number) => (x === undefined ? NaN : x / 1000);
  const datRows = sizes.map((s) => {
    const cols: number[] = [s];
    for (const t of ['lbkv', 'floor'] as const) for (const w of ['read-only', 'mixed-50-50'] as const) {
      const r = get(t, w, s);
      cols.push(ms(r?.all.meanUs), ms(r?.all.p50Us), ms(r?.all.p99Us));
    }
    for (const t of ['lbkv', 'floor'] as const) {
      const r = get(t, 'mixed-50-50', s);
      cols.push(ms(r?.read.p50Us), ms(r?.write.p50Us));
    }
    cols.push(fsync.p50Us / 1000);
    return cols.map((x) => (Number.isNaN(x) ? '?' : x)) as (number | string)[];
  });
  const header = ['value_bytes',
    'lbkv_ro_mean_ms', 'lbkv_ro_p50_ms', 'lbkv_ro_p99_ms', 'lbkv_rw_mean_ms', 'lbkv_rw_p50_ms', 'lbkv_rw_p99_ms',
    'floor_ro_mean_ms', 'floor_ro_p50_ms', 'floor_ro_p99_ms', 'floor_rw_mean_ms', 'floor_rw_p50_ms', 'floor_rw_p99_ms',
    'lbkv_rw_get_p50_ms', 'lbkv_rw_set_p50_ms', 'floor_rw_get_p50_ms', 'floor_rw_set_p50_ms', 'fdatasync_4k_p50_ms'];
  writeDat(path.join(dir, 'exp1-latency.dat'), header, 'Experiment 1: end-to-end latency (ms) vs value size, one client; ro = read-only, rw = 50/50', datRows);
  const plot = renderPlot(dir, 'exp1-latency', `
set datafile missing '?'
set logscale xy
set grid xtics ytics mxtics mytics lc rgb '#dddddd'
set xlabel 'value size (bytes)'
set ylabel 'latency (ms)'
set xtics ('512 B' 512, '4 KiB' 4096, '32 KiB' 32768, '512 KiB' 524288, '1 MiB' 1048576, '4 MiB' 4194304) rotate by -35 font ',8'
set xrange [256:8388608]
set key top left font ',8' box opaque
set multiplot layout 1,2 title 'Experiment 1: latency vs value size (one client, 127.0.0.1; lbkv solid, floor = bare gRPC + Map dashed)'
set title 'read-only'
${plotLatencies(2, 8)}
set title '50 % get / 50 % set'
${plotLatencies(5, 11, "'' u 1:15 w lp lw 1 pt 2 lc rgb '#9467bd' t 'lbkv set p50'")}
unset multiplot`);
  if (plot.error) log(`exp1: plot: ${plot.error}`);
  const json = writeSummary(dir, 'exp1-latency', { full, sizes, targets, order: 'the targets take each point in turns, the first alternating', durationMs, maxOps, warmupMs, clients: 1, keyBytes: 32, cacheMB: o.cacheMB ?? 'server default', syncMode: o.syncMode ?? 'server default' },
    rows, { fdatasync4k: fsync, plot: plot.png ? 'exp1-latency.png' : null });
  log(`exp1: wrote ${path.relative(process.cwd(), json)}`);
  return json;
}

/** The gnuplot `plot` of one panel: mean, p50 and p99 of lbkv (solid, from column `lbkv` on) and
 *  of the floor (dashed, from column `floor` on), any extra series, and the fdatasync line. */
function plotLatencies(lbkv: number, floor: number, extra?: string): string {
  const stats = [['mean', 7, 6, '#1f77b4'], ['p50', 5, 4, '#2ca02c'], ['p99', 9, 8, '#d62728']] as const;
  const series = [
    ...stats.map(([name, pt, , color], i) => `'' u 1:${lbkv + i} w lp lw 2 pt ${pt} lc rgb '${color}' t 'lbkv ${name}'`),
    ...(extra ? [extra] : []),
    ...stats.map(([name, , pt, color], i) => `'' u 1:${floor + i} w lp dt 2 pt ${pt} lc rgb '${color}' t 'floor ${name}'`),
    "'' u 1:18 w l dt 3 lw 2 lc rgb '#555555' t 'one fdatasync 4 KiB (p50)'",
  ];
  return `plot 'exp1-latency.dat' ${series.join(', \\\n     ').slice(3)}`;
}

if (require.main === module) {
  const opts = new Command()
    .name('exp1-latency')
    .description('Experiment 1: latency vs value size (one client; read-only and 50/50), with the gRPC and fdatasync floors')
    .option('--full', 'full configuration (longer runs, bigger key sets)', false)
    .option('--sizes <list>', 'value sizes (default 512,4k,512k,1m,4m)', sizesArg)
    .option('--targets <list>', 'servers to measure: floor,lbkv', subsetArg(SERVER_KINDS), [...SERVER_KINDS])
    .option('--duration-ms <n>', 'time bound per point (default 3000; 20000 with --full)', wholeArg(1))
    .option('--max-ops <n>', 'operation bound per point (default 3000; 50000 with --full)', wholeArg(1))
    .addOption(warmupMsOption(CLIENT_WARMUP_MS))
    .option('--cache-mb <n>', 'lbserver --cache-mb', wholeArg(1))
    .addOption(syncModeOption())
    .option('--out <dir>', 'result directory (default experiments/results/exp1-latency)')
    .parse()
    .opts<Exp1Options & { cacheMb?: number }>();
  runExp1({ ...opts, cacheMB: opts.cacheMb }).then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
}

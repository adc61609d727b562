// What lbserver's --blocking-sync-us buys and costs: the same loads against three lbservers, one that
// always fdatasyncs on the thread pool (--blocking-sync-us 0), one where small commits sync on the
// event loop while the median recent sync is at most 1 ms (1000, the default) and one where they do
// whatever the syncs take (--blocking-sync-us 1000000). Since f27e004 the last two do so only for a
// Set alone with the server (KvService.blockingSyncAllowed); before, for every small commit. The servers take each measurement
// in turns, in short rounds. 4 KiB values, 128-byte keys, clients in separate processes, fresh for
// each round, which warm up for WARMUP_OPS calls per client and at least --warmup-ms (default CLIENT_WARMUP_MS,
// as in experiments 1 and 3) before the round's measured seconds.
//
//   node dist/experiments/bench-blocking-sync.js [--rounds 4] [--seconds 2] [--warmup-ms <ms>]
import { Command } from 'commander';
import * as path from 'node:path';
import { CLIENT_WARMUP_MS, inTurn, KiB, log, makeDataDir, resultDir, rmrf, secondsArg, warmupMsOption, wholeArg } from './lib/common';
import { mergeLoads, runLoad, type LoadResult } from './lib/load';
import { writeSummary } from './lib/report';
import { startServer, statOf, type RunningServer } from './lib/servers';
import { blockingSyncTable, type BlockingSyncRow } from './lib/tables';
import type { StatResponse } from '../generated/kv';

const MODES = [
  { name: 'pool', flag: '0' },
  { name: 'auto', flag: '1000' },
  { name: 'always', flag: '1000000' },
] as const;
type Mode = (typeof MODES)[number]['name'];

const LOADS = [
  { name: 'set, 1 client', op: 'set', clients: 1 },
  { name: '50/50, 1 client', op: 'mixed', clients: 1 },
  { name: '50/50, 8 clients', op: 'mixed', clients: 8 },
  { name: '50/50, 32 clients', op: 'mixed', clients: 32 },
  { name: 'set, 32 clients', op: 'set', clients: 32 },
] as const;

/** Unrecorded calls per client before each round's measured window, besides --warmup-ms. */
const WARMUP_OPS = 20;

/** warmedMs: the least time any client process of the load's rounds warmed up for before measuring. */
type Row = BlockingSyncRow & { mode: Mode; warmedMs: number };

async function main(): Promise<void> {
  const opts = new Command()
    .name('bench-blocking-sync')
    .description('lbserver with --blocking-sync-us 0 (thread pool), 1000 (the default) and 1000000 (the event loop whatever the syncs take; both only for a Set alone with the server) under the same loads, taken in turns')
    .option('--rounds <n>', 'rounds per load; the servers take each round in turns', wholeArg(1), 4)
    .option('--seconds <s>', 'measured seconds per round and server', secondsArg, 2)
    .option('--keys <n>', 'preloaded 4 KiB values per server', wholeArg(100), 10000)
    .addOption(warmupMsOption(CLIENT_WARMUP_MS))
    .option('--out <dir>', 'result directory (default experiments/results/bench-blocking-sync)')
    .parse()
    .opts<{ rounds: number; seconds: number; keys: number; warmupMs: number; out?: string }>();
  const rounds = opts.rounds;
  const ms = Math.max(200, opts.seconds * 1000);
  const keys = opts.keys;
  const out = resultDir('bench-blocking-sync', opts.out);
  const root = makeDataDir('bench-blocking-sync');
  log(`bench-blocking-sync: ${rounds} rounds x ${ms / 1000} s per server and load, each after ${opts.warmupMs} ms of client warm-up (and ${WARMUP_OPS} calls per client)`);
  const started = Date.now();
  const servers = {} as Record<Mode, RunningServer>;
  const rows: Row[] = [];
  try {
    for (const m of MODES) {
      servers[m.name] = await startServer({ kind: 'lbkv', dataDir: path.join(root, m.name), extraArgs: ['--blocking-sync-us', m.flag] });
      const r = await runLoad({ address: servers[m.name].address, clients: 32, processes: 2, op: 'load', keyPrefix: 'k/', keyBytes: 128, valueBytes: 4 * KiB, loadCount: keys, label: `${m.name} preload`, hardTimeoutMs: 600_000 });
      if (r.errors) throw new Error(`${m.name} preload: ${r.firstError}`);
    }
    for (const load of LOADS) {
      const runs: Partial<Record<Mode, LoadResult[]>> = {};
      // The servers' commit counts over the measured windows alone: read when the warmed-up clients are
      // told to go and after they are done. Read once before all the rounds and once after them, they
      // counted every round's warm-up commits too: with the time warm-up, several times the measured ones.
      const counted = {} as Record<Mode, { commits: number; blockingSyncCommits: number }>;
      for (let round = 0; round < rounds; round++) {
        for (const m of inTurn(MODES, round)) {
          let atGo: StatResponse | undefined;
          const r = await runLoad({
            onGo: async () => { atGo = await statOf(servers[m.name].address); },
            address: servers[m.name].address, clients: load.clients, processes: Math.min(load.clients, 4), op: load.op, readFraction: 0.5,
            keyPrefix: 'k/', keyBytes: 128, valueBytes: 4 * KiB, keyCount: keys, durationMs: ms, warmupOps: WARMUP_OPS, warmupMs: opts.warmupMs, seed: round + 1,
            label: `${m.name} ${load.name} ${round + 1}/${rounds}`, hardTimeoutMs: ms + 120_000,
          });
          if (r.errors) throw new Error(`${m.name} ${load.name}: ${r.errors} errors, ${r.firstError}`);
          if (r.warmupErrors) throw new Error(`${m.name} ${load.name}: ${r.warmupErrors} errors in the warm-up, ${r.firstWarmupError}`);
          (runs[m.name] ??= []).push(r);
          const atEnd = await statOf(servers[m.name].address);
          const c = (counted[m.name] ??= { commits: 0, blockingSyncCommits: 0 });
          c.commits += atEnd.commits - atGo!.commits;
          c.blockingSyncCommits += atEnd.totalBlockingSyncCommits - atGo!.totalBlockingSyncCommits;
        }
      }
      for (const m of MODES) {
        const r = mergeLoads(runs[m.name]!);
        const row: Row = { load: load.name, mode: m.name, throughput: r.throughput, read: r.read, write: r.write, ...counted[m.name], warmedMs: Math.round(r.warmedMs) };
        rows.push(row);
        log(`  ${load.name}, ${m.name}: ${Math.round(r.throughput)} ops/s; read p50/p99 ${r.read.p50Us}/${r.read.p99Us} us; write p50/p99 ${r.write.p50Us}/${r.write.p99Us} us; ` +
          `${row.blockingSyncCommits} of ${row.commits} commits synced on the event loop`);
      }
    }
  } finally {
    for (const m of MODES) await servers[m.name]?.stop('SIGTERM');
    rmrf(root);
  }
  console.log(`\nbench-blocking-sync: lbserver --blocking-sync-us 0 (pool) / 1000 (auto, the default) / 1000000 (always; auto and always only for a Set alone with the server); ${rounds} rounds x ${ms / 1000} s per server and load, each after ${opts.warmupMs} ms of client warm-up`);
  for (const line of blockingSyncTable(rows)) console.log(line);
  const json = writeSummary(out, 'bench-blocking-sync', { rounds, secondsPerRound: ms / 1000, warmupMs: opts.warmupMs, warmupOps: WARMUP_OPS, keys, valueBytes: 4 * KiB, keyBytes: 128 }, { rows },
    { runSeconds: Math.round((Date.now() - started) / 1000) });
  log(`bench-blocking-sync: wrote ${path.relative(process.cwd(), json)}`);
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });

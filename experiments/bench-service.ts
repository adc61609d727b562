// npm run bench:service — the service against the RPC floor (a bare grpc-js server on the same proto
// with an in-memory Map), both running in this run, 128-byte keys, clients in separate processes:
// single-client Get of 512 B and of 4 MiB (p50 ratios), single-client Set of 4 KiB vs (floor Set + one
// fdatasync of 4 KiB), and 32 concurrent clients Set 4 KiB and Get 4 KiB throughput vs the floor.
// Beside them, in the Sets, the floor doing a 4 KiB write + fdatasync in its Set (the single Set only)
// and lbserver without fdatasync (experiments/nosync-lbserver.ts): references, no target on them.
//
//   node dist/experiments/bench-service.js [--seconds 24] [--rounds 3] [--help]
import { Command } from 'commander';
import * as path from 'node:path';
import { inTurn, KiB, log, makeDataDir, MiB, newHist, resultDir, rmrf, round3 as r3, summarize, secondsArg, syncModeOption, warmupMsOption, wholeArg } from './lib/common';
import { FsyncProbe, measureFsync } from './fsync-floor';
import { mergeLoads, partStart, plain, runLoad, runLoadWithServerCpu, type LoadResult, type ServerCpu } from './lib/load';
import { writeSummary } from './lib/report';
import { NOSYNC_LBSERVER_JS, startServer, statOf, type RunningServer } from './lib/servers';
import { GET_4MIB_1CLIENT, GET_512B_1CLIENT, get4KiBClients, SET_4KIB_1CLIENT, set4KiBClients } from './lib/service-measurements';
import type { StatResponse } from '../generated/kv';

const KEY_BYTES = 128;
type Kind = 'floor' | 'lbkv' | 'durable' | 'nosync';

async function main(): Promise<void> {
  const opts = new Command()
    .name('bench-service')
    .description('lbkv service vs the bare gRPC floor server: single-client Get/Set latency, throughput of --clients concurrent clients (default 32); in the Sets also lbserver without fdatasync (not durable), to split their distance from the floor')
    // Rounds of 8 s: each round starts fresh client processes, which spend their first seconds
    // warming up; in the 0.5 s rounds used until the twenty-first session they took the CPU the
    // servers compete for, and the 32-client Set ratio read 0.74x where steady state gives 0.58x.
    .option('--seconds <s>', 'time bound per measurement and server', secondsArg, 24)
    .option('--rounds <n>', 'each measurement is split into this many rounds taken in turns by the servers', wholeArg(1), 3)
    .option('--clients <n>', 'concurrent clients for the throughput measurements', wholeArg(1), 32)
    .option('--processes <n>', 'client processes for the throughput measurements', wholeArg(1), 4)
    // 0: the 8 s rounds above outlast the clients' warm-up; a time warm-up is for trying shorter ones.
    .addOption(warmupMsOption(0))
    .addOption(syncModeOption())
    .option('--out <dir>', 'result directory (default experiments/results/bench-service)')
    .parse()
    .opts<{ seconds: number; rounds: number; clients: number; processes: number; warmupMs: number; syncMode?: 'one' | 'two'; out?: string }>();
  const ms = opts.seconds * 1000;
  const { rounds, clients: many, processes: procs } = opts;
  const out = resultDir('bench-service', opts.out);
  const dataDir = makeDataDir('bench-service');
  const nosyncDir = makeDataDir('bench-service-nosync');
  const started = Date.now();
  const fsyncBefore = await measureFsync(dataDir, 300);
  log(`bench-service: one 4 KiB write + fdatasync p50 ${fsyncBefore.p50Us} us`);
  // The same write + fdatasync, also measured between the rounds of the single-client Set: that one is
  // the reference of the Set target (like bench-engine's interleaved floor); and the same on the
  // calling thread, as lbserver's small commits sync with --blocking-sync-us (for comparison).
  const fsyncRounds = newHist();
  const fsyncBlockingRounds = newHist();
  // The blocking one per round too, for the single Set's per-round ratio.
  const fsyncBlockingPerRound: number[] = [];
  const fsyncProbe = FsyncProbe.open(dataDir);
  // 'durable': the floor server whose Set also does the fsync floor's 4 KiB write + fdatasync before
  // it replies, in the same process, on the thread pool as lbserver's commits by default: what a
  // durable Set costs at least with gRPC on this machine.
  const servers: Record<Kind, RunningServer> = {
    floor: await startServer({ kind: 'floor' }),
    lbkv: await startServer({ kind: 'lbkv', dataDir, syncMode: opts.syncMode }),
    durable: await startServer({ kind: 'floor', extraArgs: ['--durable-file', path.join(dataDir, 'floor-durable.bin')] }),
    // 'nosync': lbserver with its fdatasyncs made no-ops (experiments/nosync-lbserver.ts), NOT durable,
    // in the Set measurements only: against the floor, what the server's own work costs a Set; lbkv
    // against it, what waiting for the disk costs.
    nosync: await startServer({ kind: 'lbkv', script: NOSYNC_LBSERVER_JS, dataDir: nosyncDir, syncMode: opts.syncMode }),
  };
  type Measured = ReturnType<typeof plain> & { serverCpuUsPerOp: number; serverMainThreadCpuUsPerOp: number; serverMainThreadKernelCpuUsPerOp: number; machineBusyPct: number };
  const results: Record<string, Partial<Record<Kind, Measured>> & Record<'floor' | 'lbkv', Measured>> = {};
  // lbserver's own account of each measurement's commits (Stat before and after it).
  const commitTimes: Record<string, CommitTimes> = {};
  // Each round's results per server, for ratios taken within one round (see roundRatios).
  const perRound: Record<string, Partial<Record<Kind, LoadResult[]>>> = {};
  try {
    // Preload: 512 B x 2000, 4 MiB x 16, 4 KiB x 10,000 on both servers.
    const sets = [
      { prefix: 'b512/', size: 512, n: 2000 },
      { prefix: 'b4m/', size: 4 * MiB, n: 16 },
      { prefix: 'b4k/', size: 4 * KiB, n: 10_000 },
    ];
    for (const t of ['floor', 'lbkv', 'nosync'] as const) {
      for (const s of sets.filter((x) => t !== 'nosync' || x.prefix === 'b4k/')) {
        const r = await runLoad({ address: servers[t].address, clients: Math.min(32, s.n), processes: s.size > MiB ? 1 : 2, op: 'load', keyPrefix: s.prefix, keyBytes: KEY_BYTES, valueBytes: s.size, loadCount: s.n, label: `${t} preload ${s.prefix}`, hardTimeoutMs: 600_000 });
        if (r.errors) throw new Error(`${t} preload ${s.prefix}: ${r.firstError}`);
      }
    }
    const measure = async (name: string, spec: Omit<Parameters<typeof runLoad>[0], 'address'>, kinds: Kind[] = ['floor', 'lbkv'], withFsync = false) => {
      results[name] = {} as (typeof results)[string];
      // The servers take turns in short rounds (first in turn rotating), so that the shared machine's
      // background load and its slow and fast spells fall on all of them alike.
      const runs: Partial<Record<Kind, LoadResult[]>> = {};
      // Where the CPU went: the server process's own time per operation, and how busy the whole machine
      // (server, client processes, everything else) was while the load ran.
      const cpu: Partial<Record<Kind, ServerCpu & { ops: number }>> = {};
      const st0 = kinds.includes('lbkv') ? await statOf(servers.lbkv.address) : undefined;
      for (let round = 0; round < rounds; round++) {
        for (const t of inTurn(kinds, round)) {
          // CPU over the measured window only: the warm-up is not counted in ops.
          const { result: r, cpu: used } = await runLoadWithServerCpu(servers[t].pid, {
            ...spec, warmupMs: opts.warmupMs, address: servers[t].address, label: `${t} ${name} ${round + 1}/${rounds}`, hardTimeoutMs: ms + 120_000,
            durationMs: spec.durationMs !== undefined ? Math.ceil(spec.durationMs / rounds) : undefined,
            // Shares summing to maxOps, at least one op a round.
            maxOps: spec.maxOps !== undefined ? Math.max(1, partStart(spec.maxOps, rounds, round + 1) - partStart(spec.maxOps, rounds, round)) : undefined,
          });
          if (r.errors) throw new Error(`${t} ${name}: ${r.errors} errors, ${r.firstError}`);
          if (r.warmupErrors) throw new Error(`${t} ${name}: ${r.warmupErrors} errors in the warm-up, ${r.firstWarmupError}`);
          (runs[t] ??= []).push(r);
          const c = (cpu[t] ??= { serverUs: 0, mainUs: 0, mainKernelUs: 0, machineBusyUs: 0, machineTotalUs: 0, ops: 0 });
          for (const k of ['serverUs', 'mainUs', 'mainKernelUs', 'machineBusyUs', 'machineTotalUs'] as const) c[k] += used[k];
          c.ops += r.ops;
        }
        if (withFsync) {
          await fsyncProbe.run(60, [fsyncRounds]);
          const h = newHist();
          await fsyncProbe.run(60, [fsyncBlockingRounds, h], 0, true);
          fsyncBlockingPerRound.push(summarize(h).p50Us);
        }
      }
      if (st0) commitTimes[name] = commitTimesBetween(st0, await statOf(servers.lbkv.address));
      perRound[name] = runs;
      for (const t of kinds) {
        const r = mergeLoads(runs[t]!);
        const c = cpu[t]!;
        const serverCpuUsPerOp = Math.round(c.serverUs / Math.max(1, c.ops));
        const serverMainThreadCpuUsPerOp = Math.round(c.mainUs / Math.max(1, c.ops));
        const serverMainThreadKernelCpuUsPerOp = Math.round(c.mainKernelUs / Math.max(1, c.ops));
        const machineBusyPct = Math.round((c.machineBusyUs / Math.max(1, c.machineTotalUs)) * 1000) / 10;
        results[name][t] = { ...plain(r), serverCpuUsPerOp, serverMainThreadCpuUsPerOp, serverMainThreadKernelCpuUsPerOp, machineBusyPct };
        log(`  ${t.padEnd(7)} ${name}: ${r.ops} ops in ${rounds} rounds, ${Math.round(r.throughput)} ops/s, p50 ${r.all.p50Us} us, mean ${r.all.meanUs} us, p99 ${r.all.p99Us} us; ` +
          `server CPU ${serverCpuUsPerOp} us/op (main thread ${serverMainThreadCpuUsPerOp}, ${serverMainThreadKernelCpuUsPerOp} of it in the kernel), machine ${machineBusyPct}% busy`);
      }
    };
    await measure(GET_512B_1CLIENT, { clients: 1, processes: 1, op: 'get', keyPrefix: 'b512/', keyBytes: KEY_BYTES, valueBytes: 512, keyCount: 2000, durationMs: ms, maxOps: 20_000, warmupOps: 300, verify: true });
    await measure(GET_4MIB_1CLIENT, { clients: 1, processes: 1, op: 'get', keyPrefix: 'b4m/', keyBytes: KEY_BYTES, valueBytes: 4 * MiB, keyCount: 16, durationMs: ms, maxOps: 2000, warmupOps: 10, verify: true });
    await measure(SET_4KIB_1CLIENT, { clients: 1, processes: 1, op: 'set', keyPrefix: 'b4k/', keyBytes: KEY_BYTES, valueBytes: 4 * KiB, keyCount: 10_000, durationMs: ms, maxOps: 20_000, warmupOps: 100 }, ['floor', 'lbkv', 'durable', 'nosync'], true);
    await measure(set4KiBClients(many), { clients: many, processes: procs, op: 'set', keyPrefix: 'b4k/', keyBytes: KEY_BYTES, valueBytes: 4 * KiB, keyCount: 10_000, durationMs: ms, warmupOps: 20 }, ['floor', 'lbkv', 'nosync']);
    await measure(get4KiBClients(many), { clients: many, processes: procs, op: 'get', keyPrefix: 'b4k/', keyBytes: KEY_BYTES, valueBytes: 4 * KiB, keyCount: 10_000, durationMs: ms, warmupOps: 20, verify: true });
  } finally {
    for (const k of Object.keys(servers) as Kind[]) await servers[k].stop('SIGTERM');
    fsyncProbe.close();
    rmrf(dataDir);
    rmrf(nosyncDir);
  }
  const fsync = summarize(fsyncRounds);
  const fsyncBlocking = summarize(fsyncBlockingRounds);
  const g512 = results[GET_512B_1CLIENT], g4m = results[GET_4MIB_1CLIENT], s1 = results[SET_4KIB_1CLIENT];
  const sN = results[set4KiBClients(many)], gN = results[get4KiBClients(many)];
  // Targets are judged on the unrounded ratios (0.796 must not pass a 0.8 bound by rounding).
  const raw = {
    get512BP50VsFloor: g512.lbkv.all.p50Us / g512.floor.all.p50Us,
    get4MiBP50VsFloor: g4m.lbkv.all.p50Us / g4m.floor.all.p50Us,
    set4KiBP50VsFloorPlusFsync: s1.lbkv.all.p50Us / (s1.floor.all.p50Us + fsync.p50Us),
    set4KiBP50VsFloorPlusBlockingFsync: s1.lbkv.all.p50Us / (s1.floor.all.p50Us + fsyncBlocking.p50Us),
    set4KiBP50VsDurableFloor: s1.lbkv.all.p50Us / s1.durable!.all.p50Us,
    setThroughputVsFloor: sN.lbkv.throughput / sN.floor.throughput,
    getThroughputVsFloor: gN.lbkv.throughput / gN.floor.throughput,
    // Not targets: the Set's distance from the floor split in two (nosync: lbserver without fdatasync).
    set4KiBP50NoSyncVsFloor: s1.nosync!.all.p50Us / s1.floor.all.p50Us,
    set4KiBP50VsNoSync: s1.lbkv.all.p50Us / s1.nosync!.all.p50Us,
    setThroughputNoSyncVsFloor: sN.nosync!.throughput / sN.floor.throughput,
    setThroughputVsNoSync: sN.lbkv.throughput / sN.nosync!.throughput,
  };
  const ratios = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, r3(v)])) as typeof raw;
  // A target judged on the whole measurement can turn on one slow spell of the shared machine; the
  // same ratio in each round (its servers ran one right after the other) says whether it held in all.
  const p50s = (name: string, t: Kind) => perRound[name][t]!.map((r) => r.all.p50Us);
  const ops = (name: string, t: Kind) => perRound[name][t]!.map((r) => r.throughput);
  const over = (a: number[], b: number[]) => a.map((x, i) => x / b[i]);
  const targets = [
    { target: 'single-client Get 512 B p50 within 1.15x of the floor', ratio: raw.get512BP50VsFloor, max: 1.15,
      perRound: over(p50s(GET_512B_1CLIENT, 'lbkv'), p50s(GET_512B_1CLIENT, 'floor')) },
    { target: 'single-client Get 4 MiB p50 within 1.2x of the floor', ratio: raw.get4MiBP50VsFloor, max: 1.2,
      perRound: over(p50s(GET_4MIB_1CLIENT, 'lbkv'), p50s(GET_4MIB_1CLIENT, 'floor')) },
    // Since f27e004 lbserver makes a lone client's fdatasync on the event loop (--blocking-sync-us
    // 1000, KvService.blockingSyncAllowed), so its reference is the fdatasync made so too: the
    // cheaper one, which makes the ratio the stricter. (Before, both were on the thread pool.)
    { target: 'single-client Set 4 KiB p50 within 1.15x of (floor Set p50 + one fdatasync p50, on the calling thread as lbserver makes it)', ratio: raw.set4KiBP50VsFloorPlusBlockingFsync, max: 1.15,
      perRound: over(p50s(SET_4KIB_1CLIENT, 'lbkv'), p50s(SET_4KIB_1CLIENT, 'floor').map((f, i) => f + fsyncBlockingPerRound[i])) },
    { target: `${many} clients Set 4 KiB throughput >= 0.8x of the floor`, ratio: raw.setThroughputVsFloor, min: 0.8,
      perRound: over(ops(set4KiBClients(many), 'lbkv'), ops(set4KiBClients(many), 'floor')) },
    { target: `${many} clients Get 4 KiB throughput >= 0.9x of the floor`, ratio: raw.getThroughputVsFloor, min: 0.9,
      perRound: over(ops(get4KiBClients(many), 'lbkv'), ops(get4KiBClients(many), 'floor')) },
  ].map(({ target, ratio, perRound: rs, ...bound }) => {
    const holds = (x: number) => ('max' in bound ? x <= bound.max! : x >= bound.min!);
    return { target, value: r3(ratio), met: holds(ratio), perRound: rs.map(r3), roundsMet: rs.filter(holds).length };
  });
  console.log('\nbench-service: 128-byte keys; clients in separate processes; floor = bare grpc-js + Map');
  console.log(`one 4 KiB write + fdatasync p50: ${fsyncBefore.p50Us} us before the runs, ${fsync.p50Us} us between the rounds of the single-client Set (used for its ratio), ` +
    `${fsyncBlocking.p50Us} us there with both calls on the calling thread`);
  console.log(`${''.padEnd(28)} ${'lbkv'.padStart(12)} ${'floor'.padStart(12)} ${'ratio'.padStart(8)}`);
  const line = (l: string, a: number, b: number) => console.log(`${l.padEnd(28)} ${String(Math.round(a)).padStart(12)} ${String(Math.round(b)).padStart(12)} ${(a / b).toFixed(3).padStart(8)}`);
  line('Get 512 B p50 us', g512.lbkv.all.p50Us, g512.floor.all.p50Us);
  line('Get 4 MiB p50 us', g4m.lbkv.all.p50Us, g4m.floor.all.p50Us);
  line('Set 4 KiB p50 us', s1.lbkv.all.p50Us, s1.floor.all.p50Us);
  line('  vs floor + fdatasync', s1.lbkv.all.p50Us, s1.floor.all.p50Us + fsync.p50Us);
  line('  vs floor + blocking fdatasync', s1.lbkv.all.p50Us, s1.floor.all.p50Us + fsyncBlocking.p50Us);
  line('  vs floor doing the write', s1.lbkv.all.p50Us, s1.durable!.all.p50Us);
  line(`Set 4 KiB ${many} clients ops/s`, sN.lbkv.throughput, sN.floor.throughput);
  line(`Get 4 KiB ${many} clients ops/s`, gN.lbkv.throughput, gN.floor.throughput);
  line(`  server CPU us per Set`, sN.lbkv.serverCpuUsPerOp, sN.floor.serverCpuUsPerOp);
  line(`    of which main thread`, sN.lbkv.serverMainThreadCpuUsPerOp, sN.floor.serverMainThreadCpuUsPerOp);
  line('      of that in the kernel', sN.lbkv.serverMainThreadKernelCpuUsPerOp, sN.floor.serverMainThreadKernelCpuUsPerOp);
  // The single Set's main thread too: its fdatasync runs there (--blocking-sync-us), and a sync's
  // kernel time is CPU the floor does not spend.
  line('Set 1 client, main thread us', s1.lbkv.serverMainThreadCpuUsPerOp, s1.floor.serverMainThreadCpuUsPerOp);
  line('  of that in the kernel', s1.lbkv.serverMainThreadKernelCpuUsPerOp, s1.floor.serverMainThreadKernelCpuUsPerOp);
  console.log(`  (machine busy during the ${many}-client Set: ${sN.lbkv.machineBusyPct}% with lbkv, ${sN.floor.machineBusyPct}% with the floor)`);
  for (const [label, name] of [['single-client', SET_4KIB_1CLIENT], [`${many}-client`, set4KiBClients(many)]]) {
    const ct = commitTimes[name];
    if (ct) console.log(`lbserver during the ${label} Set: ${ct.commits} commits (${ct.blockingSyncCommits} synced on the event loop), mean ${ct.meanPrepareUs} us before the fdatasync + ${ct.meanSyncUs} us in it, ${ct.putsPerCommit} puts, ${ct.pagesPerCommit} pages in ${ct.runsPerCommit} runs + the slot (meta and root pages) per commit`);
  }
  console.log(`lbserver without fdatasync (not durable; the same code otherwise): single-client Set p50 ${s1.nosync!.all.p50Us} us, ${ratios.set4KiBP50NoSyncVsFloor}x the floor's, ` +
    `so lbkv's is ${ratios.set4KiBP50VsNoSync}x of it; ${many}-client Set ${Math.round(sN.nosync!.throughput)} ops/s, ${ratios.setThroughputNoSyncVsFloor}x the floor's, lbkv ${ratios.setThroughputVsNoSync}x of it; ` +
    `server CPU per ${many}-client Set ${sN.nosync!.serverCpuUsPerOp} us (main thread ${sN.nosync!.serverMainThreadCpuUsPerOp})`);
  console.log(`(floor doing the write: its Set also writes 4 KiB + fdatasync on the thread pool before replying: p50 ${s1.durable!.all.p50Us} us, ` +
    `${Math.round(s1.durable!.all.p50Us - s1.floor.all.p50Us)} us above the floor vs ${fsync.p50Us} us for the same write + fdatasync measured alone)`);
  console.log('\ntargets (the whole measurement; then the same ratio in each round, and in how many rounds it held):');
  for (const t of targets) console.log(`  [${t.met ? 'met' : 'MISSED'}] ${t.target}: ${t.value}x; rounds ${t.perRound.join(' ')}, held in ${t.roundsMet} of ${rounds}`);
  const json = writeSummary(out, 'bench-service', { keyBytes: KEY_BYTES, secondsPerMeasurement: ms / 1000, warmupMs: opts.warmupMs, clients: many, processes: procs, syncMode: opts.syncMode ?? 'server default' },
    { fsync4k: fsyncBefore, fsync4kInterleaved: fsync, fsync4kInterleavedBlocking: fsyncBlocking, rounds, measurements: results, lbserverCommitTimes: commitTimes, ratios, targets }, { runSeconds: Math.round((Date.now() - started) / 1000) });
  log(`bench-service: wrote ${path.relative(process.cwd(), json)}`);
}

interface CommitTimes { commits: number; blockingSyncCommits: number; putsPerCommit: number; meanPrepareUs: number; meanSyncUs: number; pagesPerCommit: number; runsPerCommit: number }


function commitTimesBetween(a: StatResponse, b: StatResponse): CommitTimes {
  const n = b.commits - a.commits;
  const per = (f: 'totalCommitPrepareUs' | 'totalCommitSyncUs') => (n > 0 ? Math.round((b[f] - a[f]) / n) : 0);
  const mean = (f: 'totalSets' | 'totalCommitPages' | 'totalCommitRuns') => (n > 0 ? Math.round(((b[f] - a[f]) / n) * 100) / 100 : 0);
  return { commits: n, blockingSyncCommits: b.totalBlockingSyncCommits - a.totalBlockingSyncCommits, putsPerCommit: mean('totalSets'), meanPrepareUs: per('totalCommitPrepareUs'), meanSyncUs: per('totalCommitSyncUs'), pagesPerCommit: mean('totalCommitPages'), runsPerCommit: mean('totalCommitRuns') };
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });

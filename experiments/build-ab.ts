// Two lbserver builds (or one build with two sets of flags) under the same load (one client by default), taken
// in turns: rounds of a few seconds each, the first in turn alternating. Written to tell whether a
// ratio against the floor that moved between two commits' bench-service runs belongs to the code or
// to the hour it ran in (the shared machine has slow and fast spells): here both builds share the
// same minutes, and the clients are this checkout's for both, so only the server differs.
//
//   git clone -q . /tmp/old && git -C /tmp/old checkout -q <commit> && make -C /tmp/old build
//   node dist/experiments/build-ab.js --a /tmp/old --b . [--op get --value-bytes 512] [--rounds 6]
//   node dist/experiments/build-ab.js --a . --b . --b-args '--blocking-sync-us 0' --op set
//   node dist/experiments/build-ab.js --a /tmp/old --b . --op set --clients 32 --nosync   (CPU alone)
import { Command } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { inTurn, log, makeDataDir, median, parseSize, readGit, resultDir, rmrf, round3 as r3, secondsArg, wholeArg, type GitInfo } from './lib/common';
import { mergeLoads, plain, runLoad, runLoadWithServerCpu, type LoadResult } from './lib/load';
import { writeSummary } from './lib/report';
import { startServer, type RunningServer } from './lib/servers';

const KEY_BYTES = 128;

interface Build {
  name: 'a' | 'b';
  checkout: string;
  /** The server it runs: the checkout's lbserver, or with --nosync its lbserver without fdatasync. */
  script: string;
  args: string[];
  git: GitInfo;
}

function buildOf(name: 'a' | 'b', dir: string, args: string, nosync: boolean): Build {
  const checkout = path.resolve(dir);
  const lbserver = path.join(checkout, 'dist', 'bin', 'lbserver.js');
  if (!fs.existsSync(lbserver)) throw new Error(`--${name} ${dir}: no ${lbserver}; build that checkout first (make -C ${dir} build)`);
  const script = nosync ? path.join(checkout, 'dist', 'experiments', 'nosync-lbserver.js') : lbserver;
  if (!fs.existsSync(script)) throw new Error(`--${name} ${dir}: no ${script}: --nosync needs checkouts from 7ed0df9 on (experiments/nosync-lbserver.ts)`);
  return { name, checkout, script, args: args.split(/\s+/).filter(Boolean), git: readGit(checkout) };
}

async function main(): Promise<void> {
  const o = new Command()
    .name('build-ab')
    .description('two lbserver builds (checkouts with dist/ built), or one with two sets of flags, under the same Gets or Sets (one client by default), taken in turns')
    .requiredOption('--a <checkout>', 'first build: a checkout of lbkv with dist/ built')
    .requiredOption('--b <checkout>', 'second build (may be the same checkout as --a, with other --b-args)')
    .option('--a-args <flags>', 'extra lbserver flags for a, one string', '')
    .option('--b-args <flags>', 'extra lbserver flags for b, one string', '')
    .option('--op <get|set>', 'what the client does: get (preloaded keys, values checked) or set (overwrites)', (v: string) => {
      if (v !== 'get' && v !== 'set') throw new Error(`--op: get or set, not ${v}`);
      return v;
    }, 'get')
    .option('--value-bytes <n>', 'value size (suffixes KiB/MiB)', parseSize, 512)
    .option('--keys <n>', 'keys preloaded into each store and used by the client', wholeArg(1), 2000)
    .option('--clients <n>', 'concurrent clients (1: latency of one client; more: throughput under load)', wholeArg(1), 1)
    .option('--processes <n>', 'client processes the clients are spread over', wholeArg(1), 4)
    .option('--rounds <n>', 'rounds; each build takes one turn per round', wholeArg(2), 6)
    .option('--round-seconds <s>', 'length of one turn', secondsArg, 4)
    // Sets then cost what the server does for them, without the disk's wait and its noise: for
    // comparing the CPU of two builds' commit paths. NOT durable.
    .option('--nosync', 'run each build\'s lbserver with its fdatasyncs made no-ops (experiments/nosync-lbserver.ts; not durable)', false)
    .option('--out <dir>', 'result directory (default experiments/results/build-ab)')
    .parse()
    .opts<{ a: string; b: string; aArgs: string; bArgs: string; op: 'get' | 'set'; valueBytes: number; keys: number; clients: number; processes: number; rounds: number; roundSeconds: number; nosync: boolean; out?: string }>();
  const builds = [buildOf('a', o.a, o.aArgs, o.nosync), buildOf('b', o.b, o.bArgs, o.nosync)];
  for (const b of builds) log(`${b.name}: ${b.checkout} at ${b.git.commit.slice(0, 7)}${b.git.dirty ? ' (with uncommitted changes)' : ''}${b.args.length ? `, flags ${b.args.join(' ')}` : ''}${o.nosync ? ', without fdatasync (not durable)' : ''}`);
  const dirs = builds.map((b) => makeDataDir(`build-ab-${b.name}`));
  const servers: RunningServer[] = [];
  const turns: Record<'a' | 'b', LoadResult[]> = { a: [], b: [] };
  // The server's CPU per operation in each turn (all threads, and its main thread): steadier than
  // latency on a shared machine, and what a change to the code path shows first.
  const cpu: Record<'a' | 'b', { us: number; mainUs: number }[]> = { a: [], b: [] };
  const keyPrefix = 'ab/';
  try {
    for (const [i, b] of builds.entries()) {
      servers.push(await startServer({ kind: 'lbkv', script: b.script, dataDir: dirs[i], extraArgs: b.args }));
      const r = await runLoad({ address: servers[i].address, clients: Math.min(32, o.keys), processes: 2, op: 'load', keyPrefix, keyBytes: KEY_BYTES, valueBytes: o.valueBytes, loadCount: o.keys, label: `${b.name} preload`, hardTimeoutMs: 600_000 });
      if (r.errors) throw new Error(`${b.name} preload: ${r.firstError}`);
    }
    for (let round = 0; round < o.rounds; round++) {
      for (const i of inTurn([0, 1], round)) {
        const b = builds[i];
        const { result: r, cpu: used } = await runLoadWithServerCpu(servers[i].pid, {
          address: servers[i].address, clients: o.clients, processes: Math.min(o.clients, o.processes), op: o.op, keyPrefix, keyBytes: KEY_BYTES, valueBytes: o.valueBytes, keyCount: o.keys,
          durationMs: o.roundSeconds * 1000, warmupOps: o.op === 'get' ? 300 : 100, verify: o.op === 'get', label: `${b.name} ${round + 1}/${o.rounds}`, hardTimeoutMs: o.roundSeconds * 1000 + 120_000,
        });
        if (r.errors) throw new Error(`${b.name} round ${round + 1}: ${r.errors} errors, ${r.firstError}`);
        turns[b.name].push(r);
        const c = { us: Math.round(used.serverUs / Math.max(1, r.ops)), mainUs: Math.round(used.mainUs / Math.max(1, r.ops)) };
        cpu[b.name].push(c);
        log(`round ${round + 1} ${b.name}: ${r.ops} ${o.op}s, p50 ${r.all.p50Us} us, mean ${r.all.meanUs} us, ${Math.round(r.throughput)} ops/s; server CPU ${c.us} us/op (main thread ${c.mainUs})`);
      }
    }
  } finally {
    for (const s of servers) await s.stop('SIGTERM');
    for (const d of dirs) rmrf(d);
  }
  const p50 = (n: 'a' | 'b') => turns[n].map((r) => r.all.p50Us);
  const perRound = p50('b').map((x, i) => r3(x / p50('a')[i]));
  const opsOf = (n: 'a' | 'b') => turns[n].map((r) => r.throughput);
  const perRoundOps = opsOf('b').map((x, i) => r3(x / opsOf('a')[i]));
  const summary = builds.map((b) => {
    const all = mergeLoads(turns[b.name]);
    const mainUs = cpu[b.name].map((c) => c.mainUs);
    return { name: b.name, checkout: b.checkout, script: path.relative(b.checkout, b.script), git: b.git, args: b.args, roundP50Us: p50(b.name), medianRoundP50Us: median(p50(b.name)), all: plain(all),
      roundServerCpuUsPerOp: cpu[b.name].map((c) => c.us), roundMainThreadCpuUsPerOp: mainUs, medianRoundMainThreadCpuUsPerOp: median(mainUs) };
  });
  for (const s of summary) {
    log(`${s.name}: median of the rounds' p50 ${s.medianRoundP50Us} us (rounds ${s.roundP50Us.join(', ')}); all rounds together p50 ${s.all.all.p50Us} us, ${Math.round(s.all.throughput)} ops/s; ` +
      `server main-thread CPU per op, median of the rounds ${s.medianRoundMainThreadCpuUsPerOp} us (rounds ${s.roundMainThreadCpuUsPerOp.join(', ')})`);
  }
  log(`b / a p50 per round: ${perRound.join(', ')}; median ${median(perRound)}; b slower in ${perRound.filter((x) => x > 1).length} of ${o.rounds} rounds`);
  log(`b / a throughput per round: ${perRoundOps.join(', ')}; median ${median(perRoundOps)}`);
  writeSummary(resultDir('build-ab', o.out), 'build-ab',
    { op: o.op, valueBytes: o.valueBytes, keyBytes: KEY_BYTES, keys: o.keys, rounds: o.rounds, roundSeconds: o.roundSeconds, clients: o.clients, processes: Math.min(o.clients, o.processes), nosync: o.nosync },
    { summary, perRoundBOverA: perRound, medianBOverA: median(perRound), perRoundThroughputBOverA: perRoundOps, medianThroughputBOverA: median(perRoundOps) });
}

main().then(() => process.exit(0), (e) => { console.error(e instanceof Error ? e.message : e); process.exit(1); });

// Where a lone Set's time goes, phase by phase, inside lbserver and inside the floor servers: each
// runs under experiments/timeline-server (timestamps at stream arrival, engine put, commit start,
// fdatasync start and end, durable, stream close; their own code unchanged), one client's 4 KiB Sets,
// the servers in turns over a few rounds, only the measured windows recorded. Prints the median of
// each phase per server, and what lbkv spends beyond the floor in each.
//
//   node dist/experiments/set-phases.js [--seconds 15] [--rounds 3] [--keys 10000]
import { Command } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { inTurn, KiB, log, makeDataDir, median, parseSize, resultDir, rmrf, ROOT, secondsArg, wholeArg } from './lib/common';
import { mergeLoads, runLoad, type LoadResult } from './lib/load';
import { writeSummary } from './lib/report';
import { startServer, type RunningServer } from './lib/servers';
import type { TimelineEvent, TimelineRecord } from './timeline-server';

const TIMELINE_JS = path.join(ROOT, 'dist', 'experiments', 'timeline-server.js');
const KEY_BYTES = 128;
type Kind = 'floor' | 'durable' | 'lbkv';

/** The phases each server's records have, in order: [name, from, to]. */
const PHASES: Record<Kind, [string, TimelineEvent, TimelineEvent][]> = {
  floor: [['request in -> answer sent (stream -> close)', 'stream', 'close']],
  durable: [
    ['request in -> fdatasync starts', 'stream', 'syncStart'],
    ['fdatasync', 'syncStart', 'syncEnd'],
    ['fdatasync returns -> answer sent', 'syncEnd', 'close'],
  ],
  lbkv: [
    ['request in -> engine put', 'stream', 'put'],
    ['put -> commit starts (queue, batch, writer lock)', 'put', 'commit'],
    ['commit starts -> fdatasync starts (tree, pages, writes)', 'commit', 'syncStart'],
    ['fdatasync', 'syncStart', 'syncEnd'],
    ['fdatasync returns -> Set durable (commit end, promises)', 'syncEnd', 'durable'],
    ['durable -> answer sent', 'durable', 'close'],
  ],
};

interface PhaseStat { phase: string; count: number; p50Us: number; meanUs: number }

function phaseStat(records: TimelineRecord[], phase: string, from: TimelineEvent, to: TimelineEvent): PhaseStat {
  const d = records.filter((r) => r[from] !== undefined && r[to] !== undefined).map((r) => (r[to]! - r[from]!) * 1000);
  const round1 = (x: number) => Math.round(x * 10) / 10;
  return { phase, count: d.length, p50Us: round1(median(d)), meanUs: round1(d.reduce((s, x) => s + x, 0) / Math.max(1, d.length)) };
}

type Options = { seconds: number; rounds: number; keys: number; valueBytes: number; out?: string };
type Results = Record<Kind, { clientP50Us: number; sets: number; recorded: number; phases: PhaseStat[]; total: PhaseStat; nextRequest: PhaseStat }>;

/** Runs the three servers under timeline-server in `dataDir`, their lone Sets in turns, and reads
 *  back the records each writes as it exits. */
async function measure(o: Options, dataDir: string): Promise<Results> {
  const files: Record<Kind, string> = { floor: path.join(dataDir, 'floor.json'), durable: path.join(dataDir, 'durable.json'), lbkv: path.join(dataDir, 'lbkv.json') };
  const wrap = (script: string, args: string[]) => ({ cmd: process.execPath, args: [TIMELINE_JS, script, ...args] });
  const servers: Partial<Record<Kind, RunningServer>> = {};
  const loads: Record<Kind, LoadResult[]> = { floor: [], durable: [], lbkv: [] };
  const keyPrefix = 'ph/';
  try {
    servers.floor = await startServer({ kind: 'floor', wrap, env: { LBKV_TIMELINE_OUT: files.floor } });
    servers.durable = await startServer({ kind: 'floor', wrap, env: { LBKV_TIMELINE_OUT: files.durable }, extraArgs: ['--durable-file', path.join(dataDir, 'floor-durable.bin')] });
    servers.lbkv = await startServer({ kind: 'lbkv', dataDir: path.join(dataDir, 'lbkv'), wrap, env: { LBKV_TIMELINE_OUT: files.lbkv } });
    const pre = await runLoad({ address: servers.lbkv.address, clients: Math.min(32, o.keys), processes: 2, op: 'load', keyPrefix, keyBytes: KEY_BYTES, valueBytes: o.valueBytes, loadCount: o.keys, label: 'lbkv preload', hardTimeoutMs: 600_000 });
    if (pre.errors) throw new Error(`lbkv preload: ${pre.firstError}`);
    const kinds: Kind[] = ['floor', 'durable', 'lbkv'];
    for (let round = 0; round < o.rounds; round++) {
      for (const k of inTurn(kinds, round)) {
        const s = servers[k]!;
        // Recording (timeline-server's SIGUSR2 toggle) covers the measured window only.
        const toggle = () => { process.kill(s.pid, 'SIGUSR2'); };
        const r = await runLoad({
          address: s.address, clients: 1, processes: 1, op: 'set', keyPrefix, keyBytes: KEY_BYTES, valueBytes: o.valueBytes, keyCount: o.keys,
          durationMs: (o.seconds * 1000) / o.rounds, warmupOps: 100, label: `${k} ${round + 1}/${o.rounds}`, hardTimeoutMs: o.seconds * 1000 + 120_000,
          onGo: toggle, onDone: toggle,
        });
        if (r.errors) throw new Error(`${k} round ${round + 1}: ${r.errors} errors, ${r.firstError}`);
        loads[k].push(r);
        log(`round ${round + 1} ${k}: ${r.ops} sets, p50 ${r.all.p50Us} us`);
      }
    }
  } finally {
    // Each writes its records as it exits.
    for (const s of Object.values(servers)) await s!.stop('SIGTERM');
  }
  const results = {} as Results;
  for (const k of Object.keys(files) as Kind[]) {
    const records = (JSON.parse(fs.readFileSync(files[k], 'utf8')) as { events: TimelineRecord[] }).events;
    // From one answer sent to the next request in, within a turn: the client's and the loopback's share.
    const gaps = records.slice(1).flatMap((r, i) => (r.turn === records[i]!.turn ? [{ stream: records[i]!.close, close: r.stream }] : []));
    const all = mergeLoads(loads[k]);
    results[k] = {
      clientP50Us: all.all.p50Us, sets: all.ops, recorded: records.length,
      phases: PHASES[k].map(([name, from, to]) => phaseStat(records, name, from, to)),
      total: phaseStat(records, 'request in -> answer sent', 'stream', 'close'),
      nextRequest: phaseStat(gaps, 'answer sent -> next request in', 'stream', 'close'),
    };
  }
  return results;
}

async function main(): Promise<void> {
  const o = new Command()
    .name('set-phases')
    .description('where a lone Set\'s time goes inside lbserver and the floor servers, phase by phase (one client, 4 KiB values, the servers in turns)')
    .option('--seconds <s>', 'measured time per server, split over the rounds', secondsArg, 15)
    .option('--rounds <n>', 'rounds; each server takes one turn per round', wholeArg(1), 3)
    .option('--keys <n>', 'keys preloaded into lbkv and overwritten by the Sets', wholeArg(1), 10_000)
    .option('--value-bytes <n>', 'value size (suffixes KiB/MiB)', parseSize, 4 * KiB)
    .option('--out <dir>', 'result directory (default experiments/results/set-phases)')
    .parse()
    .opts<Options>();
  const dataDir = makeDataDir('set-phases');
  let results: Results;
  try {
    results = await measure(o, dataDir);
  } finally {
    rmrf(dataDir);
  }
  const us = (x: number) => `${x.toFixed(1)} us`;
  console.log(`\nset-phases: one client, ${o.valueBytes}-byte values, ${o.keys} keys; median (p50) of each phase over the Sets recorded`);
  for (const k of ['floor', 'durable', 'lbkv'] as Kind[]) {
    const r = results[k];
    console.log(`\n${k} (${r.recorded} of ${r.sets} measured Sets recorded alone; the client's p50 ${r.clientP50Us} us)`);
    for (const p of r.phases) console.log(`  ${p.phase.padEnd(58)} p50 ${us(p.p50Us).padStart(10)}  mean ${us(p.meanUs).padStart(10)}`);
    console.log(`  ${'= request in -> answer sent'.padEnd(58)} p50 ${us(r.total.p50Us).padStart(10)}  mean ${us(r.total.meanUs).padStart(10)}`);
    console.log(`  ${'answer sent -> next request in (client, loopback)'.padEnd(58)} p50 ${us(r.nextRequest.p50Us).padStart(10)}  mean ${us(r.nextRequest.meanUs).padStart(10)}`);
  }
  const json = writeSummary(resultDir('set-phases', o.out), 'set-phases', { seconds: o.seconds, rounds: o.rounds, keys: o.keys, valueBytes: o.valueBytes, keyBytes: KEY_BYTES }, results);
  log(`set-phases: wrote ${path.relative(process.cwd(), json)}`);
}

main().then(() => process.exit(0), (e) => { console.error(e instanceof Error ? e.message : e); process.exit(1); });

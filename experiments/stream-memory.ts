// Server memory with many stalled GetPrefix streams: the measurements behind the RSS bound of the
// vanishing-streams tests (test/durability/abuse.ts streamsRssLimit). For each stream count, a fresh
// lbserver (--cache-mb 32) gets 40 values of 256 KiB, then a child process opens that many streams,
// takes one message of each, stops reading and is SIGKILLed (the tests' vanishingStreams). The
// server runs with a preload (experiments/lib/memprobe) that samples process.memoryUsage() every 50 ms.
//
//   node dist/experiments/stream-memory.js [--streams 250,500,1000,2000] [--runs 2]
//        [--stream-buffer-mb N] [--lbserver <another build's dist/bin/lbserver.js>]
//        [--compare <another build's dist/bin/lbserver.js>] [--out <dir>]
// --compare measures both servers in every run, in turns (odd runs this build first, even runs the
// other), so that slow and fast spells of the shared machine fall on both alike.
import { Command, Option } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadValues, vanishingStreams } from '../test/durability/abuse';
import { startServer, tempDir } from '../test/support/server';
import { countsArg, inTurn, log, MiB, resultDir, rmrf, wholeArg } from './lib/common';
import { writeSummary } from './lib/report';

interface Sample { t: number; rss: number; heapUsed: number; heapTotal: number; arrayBuffers: number }

interface Row {
  /** 'this build', or the other build's lbserver.js. */
  server: string;
  streams: number;
  run: number;
  rssBeforeMiB: number;
  peakRssMiB: number;
  /** JS heap in use at the last sample before the client was killed (every stream open). */
  heapUsedOpenMiB: number;
  /** Lowest and highest arrayBuffers sampled while the streams were served. */
  arrayBuffersMinMiB: number;
  arrayBuffersMaxMiB: number;
  released: boolean;
}

const mib = (n: number) => Math.round((n / MiB) * 10) / 10;

async function measure(streams: number, run: number, o: { streamBufferMb?: number; lbserver?: string }): Promise<Row> {
  const dir = tempDir('lbkv-streammem-');
  const samples = path.join(dir, 'samples.jsonl');
  const probe = path.join(__dirname, 'lib', 'memprobe.js');
  const args = ['--cache-mb', '32', ...(o.streamBufferMb ? ['--stream-buffer-mb', String(o.streamBufferMb)] : [])];
  const server = await startServer({ args, script: o.lbserver, env: { NODE_OPTIONS: `--require ${probe}`, LBKV_MEMPROBE: samples } });
  try {
    await loadValues(server.address, 'mid/', 40, 256 * 1024, 4);
    const opened = Date.now();
    let killedAt = 0;
    const r = await vanishingStreams(server.address, server.pid, 'mid/', streams, (l) => { if (/killing the client/.test(l)) killedAt = Date.now(); });
    const all = fs.readFileSync(samples, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Sample);
    const during = all.filter((s) => s.t >= opened && s.t <= killedAt);
    const ab = during.map((s) => s.arrayBuffers);
    return {
      server: o.lbserver ?? 'this build',
      streams, run,
      rssBeforeMiB: mib(r.rssBefore),
      peakRssMiB: mib(r.peakRss),
      heapUsedOpenMiB: mib(during[during.length - 1]?.heapUsed ?? 0),
      arrayBuffersMinMiB: mib(Math.min(...ab)),
      arrayBuffersMaxMiB: mib(Math.max(...ab)),
      released: r.openSnapshotsAfter === 0,
    };
  } finally {
    await server.stop('SIGTERM');
    rmrf(dir);
  }
}

async function main(): Promise<void> {
  const o = new Command()
    .name('stream-memory')
    .description('server RSS, JS heap and buffers with N stalled GetPrefix streams whose client then vanishes')
    .addOption(new Option('--streams <list>', 'stream counts, comma-separated').argParser(countsArg).default([250, 500, 1000, 2000], '250,500,1000,2000'))
    .option('--runs <n>', 'runs per stream count (taken in turns)', wholeArg(1), 2)
    .option('--stream-buffer-mb <n>', "the server's --stream-buffer-mb (default: its own)", wholeArg(1))
    .option('--lbserver <js>', "another build's dist/bin/lbserver.js (default: this build's)")
    .option('--compare <js>', "also another build's dist/bin/lbserver.js, in turns with this build's in every run")
    .option('--out <dir>', 'result directory (default experiments/results/stream-memory)')
    .parse()
    .opts<{ streams: number[]; runs: number; streamBufferMb?: number; lbserver?: string; compare?: string; out?: string }>();
  const lbserver = o.lbserver ? path.resolve(o.lbserver) : undefined;
  const servers = o.compare ? [lbserver, path.resolve(o.compare)] : [lbserver];
  const rows: Row[] = [];
  for (let run = 1; run <= o.runs; run++) {
    for (const streams of o.streams) {
      for (const server of inTurn(servers, run - 1)) {
        const row = await measure(streams, run, { streamBufferMb: o.streamBufferMb, lbserver: server });
        rows.push(row);
        log(`stream-memory: ${row.server}, ${streams} streams, run ${run}: RSS before ${row.rssBeforeMiB} MiB, peak ${row.peakRssMiB} MiB; heap in use with the streams open ${row.heapUsedOpenMiB} MiB; arrayBuffers ${row.arrayBuffersMinMiB}-${row.arrayBuffersMaxMiB} MiB; snapshots released: ${row.released}`);
      }
    }
  }
  if (o.compare) {
    for (const streams of o.streams) {
      for (const server of servers) {
        const mine = rows.filter((r) => r.streams === streams && r.server === (server ?? 'this build'));
        const mean = (f: (r: Row) => number) => Math.round((mine.reduce((a, r) => a + f(r), 0) / mine.length) * 10) / 10;
        log(`stream-memory: ${server ?? 'this build'}, ${streams} streams, ${mine.length} runs: mean peak RSS ${mean((r) => r.peakRssMiB)} MiB (${Math.min(...mine.map((r) => r.peakRssMiB))}-${Math.max(...mine.map((r) => r.peakRssMiB))}), mean heap in use ${mean((r) => r.heapUsedOpenMiB)} MiB`);
      }
    }
  }
  const dir = resultDir('stream-memory', o.out);
  const json = writeSummary(dir, 'stream-memory', { streams: o.streams, runs: o.runs, cacheMB: 32, streamBufferMb: o.streamBufferMb ?? 'server default', lbserver: lbserver ?? 'this build', compare: o.compare ? path.resolve(o.compare) : 'none', values: '40 x 256 KiB' }, rows);
  log(`stream-memory: wrote ${path.relative(process.cwd(), json)}`);
}

main().catch((e) => { console.error(e); process.exit(1); });

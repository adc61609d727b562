// What a long-held snapshot costs the writer: one snapshot stays open while the engine takes
// thousands of small commits (random overwrites of 4 KiB values), and every --report-every commits
// the run prints the mean time per commit, the pages each commit wrote and the file size. Then the
// snapshot is released and the same number of commits shows whether the space comes back; last, the
// store is closed and opened again with its freelist segments still referenced (open time).
// In-process, engine only (no gRPC); one fdatasync per commit, as lbserver does.
//
//   node dist/experiments/long-reader.js [--commits 16000] [--engine <dir with index.js>] [--compare <json>]
//
// --engine loads another build's btree/ (e.g. a checkout of an older commit, built with make build:
// <checkout>/dist/btree) to compare the same workload before and after a change. --compare draws
// the rows of an earlier run's long-reader.json beside this run's in long-reader.png.
import { Command } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Store as StoreType } from '../btree';
import { gitInfo, keyFor, log, makeDataDir, randomValue, renderPlot, resultDir, rmrf, rng, writeDat, wholeArg } from './lib/common';
import { writeSummary } from './lib/report';

interface Row {
  phase: 'held' | 'released';
  commits: number;
  usPerCommit: number;
  pagesPerCommit: number;
  fileMB: number;
}

async function main(): Promise<void> {
  const opts = new Command()
    .name('long-reader')
    .description('commit time, pages per commit and file size while one snapshot is held over many commits, then after it is released')
    .option('--commits <n>', 'commits while the snapshot is held (and as many after)', wholeArg(1), 16000)
    .option('--puts <n>', 'puts per commit', wholeArg(1), 4)
    .option('--keys <n>', 'distinct keys, preloaded', wholeArg(1), 10000)
    .option('--report-every <n>', 'commits per reported row', wholeArg(1), 2000)
    .option('--engine <dir>', 'directory of the btree build to load (default: this build)')
    .option('--out <dir>', 'result directory (default experiments/results/long-reader)')
    .option('--compare <json>', "an earlier run's long-reader.json to plot beside this one")
    .parse()
    .opts<{ commits: number; puts: number; keys: number; reportEvery: number; engine?: string; out?: string; compare?: string }>();
  const { commits, puts, reportEvery: every } = opts;
  const keys = Math.max(puts, opts.keys);
  const engineDir = path.resolve(opts.engine ?? path.join(__dirname, '..', 'btree'));
  const engineLabel = opts.engine ?? 'this build';
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Store } = require(engineDir) as { Store: typeof StoreType };
  const dir = makeDataDir('long-reader');
  const file = path.join(dir, 'lbkv.db');
  const value = randomValue(4096);
  const key = (i: number) => keyFor('k/', i, 128);
  const pick = rng(1);
  const rows: Row[] = [];
  let reopen: Record<string, number | null> = {};
  const started = Date.now();
  try {
    const store = await Store.open({ path: file });
    for (let i = 0; i < keys; i += 1000) {
      await store.putMany(Array.from({ length: Math.min(1000, keys - i) }, (_, j) => ({ key: key(i + j), value })));
    }
    const phase = async (name: Row['phase']) => {
      for (let done = 0; done < commits; done += every) {
        const n = Math.min(every, commits - done);
        const a = store.stats();
        const t0 = performance.now();
        for (let c = 0; c < n; c++) {
          await Promise.all(Array.from({ length: puts }, () => store.put(key(Math.floor(pick() * keys)), value)));
        }
        const b = store.stats();
        const row: Row = {
          phase: name,
          commits: done + n,
          usPerCommit: Math.round(((performance.now() - t0) * 1000) / n),
          pagesPerCommit: Number(((b.commitPages - a.commitPages) / Math.max(1, b.commits - a.commits)).toFixed(2)),
          fileMB: Math.round(fs.statSync(file).size / 1e6),
        };
        rows.push(row);
        log(`snapshot ${name}, ${row.commits} commits: ${row.usPerCommit} us per commit, ${row.pagesPerCommit} pages per commit, file ${row.fileMB} MB`);
      }
    };
    const snap = store.snapshot();
    await phase('held');
    snap.release();
    await phase('released');
    await store.close();
    // Open with the segments still referenced (they are loaded only when commits need their pages).
    const t0 = performance.now();
    const again = await Store.open({ path: file });
    const st = again.stats() as ReturnType<StoreType['stats']> & { freelistLevels?: number };
    reopen = { ms: Number((performance.now() - t0).toFixed(2)), freelistSegments: st.freelistSegments, freelistLevels: st.freelistLevels ?? null, freePages: st.freePages };
    await again.close();
    log(`reopened in ${reopen.ms} ms: ${st.freelistSegments} segment references, ${st.freePages} free pages`);
  } finally {
    rmrf(dir);
  }
  const out = resultDir('long-reader', opts.out);
  const written = writeSummary(out, 'long-reader', { commits, puts, keys, valueBytes: 4096, keyBytes: 128, reportEvery: every, engine: engineLabel },
    rows, { runSeconds: Math.round((Date.now() - started) / 1000), reopen });
  log(`wrote ${written}`);
  plot(out, rows, commits, engineLabel, opts.compare);
}

/** long-reader.dat (and compare.dat) and long-reader.png: per commit time, pages and file size
 *  against the commits since the snapshot was taken (released at the dashed line). */
function plot(out: string, rows: Row[], commits: number, label: string, compare?: string): void {
  const toRows = (rs: Row[], held: number) => rs.map((r) => [r.phase === 'held' ? r.commits : held + r.commits, r.usPerCommit / 1000, r.pagesPerCommit, r.fileMB]);
  const header = ['commits', 'ms_per_commit', 'pages_per_commit', 'file_MB'];
  writeDat(path.join(out, 'long-reader.dat'), header, `long-reader, ${label}; commits counted from the snapshot, released after ${commits}`, toRows(rows, commits));
  let other = '';
  if (compare) {
    const c = JSON.parse(fs.readFileSync(compare, 'utf8')) as { config: { commits: number; engine: string }; results: Row[] };
    writeDat(path.join(out, 'compare.dat'), header, `long-reader, ${c.config.engine} (from ${compare})`, toRows(c.results, c.config.commits));
    other = path.basename(path.dirname(compare));
  }
  const mine = label === 'this build' ? `this build (${gitInfo().commit.slice(0, 7)})` : path.basename(label);
  const series = (col: number) => `'long-reader.dat' u 1:${col} w lp lw 2 pt 7 lc rgb '#1f77b4' t '${mine}'` +
    (compare ? `, 'compare.dat' u 1:${col} w lp lw 2 pt 5 lc rgb '#d62728' t '${other.replace(/_/g, '\\_')}'` : '');
  const r = renderPlot(out, 'long-reader', `
set grid lc rgb '#dddddd'
set xlabel 'commits since the snapshot was taken'
set xtics rotate by -45 font ',8'
set key top left font ',8' box opaque
set arrow from ${commits}, graph 0 to ${commits}, graph 1 nohead dt 2 lc rgb '#555555'
set label 'snapshot released' at ${commits}, graph 0.5 offset 1,0 font ',8'
set multiplot layout 1,3 title 'One read snapshot held over ${commits} commits of four 4 KiB puts, then released'
set title 'time per commit'
set ylabel 'ms'
plot ${series(2)}
set title 'pages written per commit'
set ylabel 'pages'
plot ${series(3)}
set title 'data file size'
set ylabel 'MB'
plot ${series(4)}
unset multiplot`);
  log(r.png ? `wrote ${r.png}` : `plot not rendered: ${r.error}`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});

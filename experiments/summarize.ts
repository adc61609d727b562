// Prints the committed results as Markdown tables (for REPORT.md and the README's Performance
// section), so numbers are copied from the result files rather than retyped.
//   node dist/experiments/summarize.js
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RESULTS, fmtBytes } from './lib/common';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;
function load(rel: string): Any | undefined {
  const f = path.join(RESULTS, rel);
  return fs.existsSync(f) ? JSON.parse(fs.readFileSync(f, 'utf8')) : undefined;
}
const ms = (us: number) => (us / 1000).toFixed(us < 10_000 ? 2 : 1);
const k = (x: number) => Math.round(x).toLocaleString('en-US');

function machine(j: Any): string {
  const m = j.machine;
  return `${m.cpuModel}, ${m.cores} cores, ${(m.memBytes / 2 ** 30).toFixed(0)} GiB RAM, ${m.virtualization ?? ''} ${m.kernel}, Node ${m.node}, disk ${m.disk.device} (${m.disk.fsType}, rotational=${m.disk.rotational}); commit ${j.git.commit.slice(0, 7)}${j.git.dirty ? ' (dirty)' : ''}, ${j.finishedAt}`;
}

const e1 = load('exp1-latency/exp1-latency.json');
if (e1) {
  console.log(`### exp1 (${machine(e1)})\nfdatasync 4 KiB: p50 ${ms(e1.fdatasync4k.p50Us)} ms, mean ${ms(e1.fdatasync4k.meanUs)} ms\n`);
  console.log('| value | workload | lbkv mean | lbkv p50 | lbkv p99 | floor mean | floor p50 | floor p99 | lbkv/floor p50 | lbkv set p50 | floor set p50 |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const s of e1.config.sizes) for (const w of ['read-only', 'mixed-50-50']) {
    const a = e1.results.find((r: Any) => r.target === 'lbkv' && r.workload === w && r.valueBytes === s);
    const b = e1.results.find((r: Any) => r.target === 'floor' && r.workload === w && r.valueBytes === s);
    if (!a || !b) continue;
    console.log(`| ${fmtBytes(s)} | ${w} | ${ms(a.all.meanUs)} | ${ms(a.all.p50Us)} | ${ms(a.all.p99Us)} | ${ms(b.all.meanUs)} | ${ms(b.all.p50Us)} | ${ms(b.all.p99Us)} | ${(a.all.p50Us / b.all.p50Us).toFixed(2)} | ${w === 'read-only' ? '' : ms(a.write.p50Us)} | ${w === 'read-only' ? '' : ms(b.write.p50Us)} |`);
  }
  console.log('(ms)\n');
}
const e2 = load('exp2-restart/exp2-restart.json');
if (e2) {
  console.log(`### exp2 (${machine(e2)})\npage cache dropped: ${e2.pageCacheDropped}; floor process start -> first get: ${e2.floorFirstGetMs.toFixed(1)} ms\n`);
  console.log('| N | file MiB | load sets/s | mean batch | first get cold (ms) | first get warm (ms) | ready line (ms) | server open (ms, Stat) | cold get p50/p99/mean (ms) | warm get p50/p99/mean (ms) |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const p of e2.results) {
    const opens = p.restarts.map((r: Any) => r.serverStartupMs).filter((x: Any) => x !== undefined).sort((a: number, b: number) => a - b);
    console.log(`| ${k(p.n)} | ${(p.fileBytes / 2 ** 20).toFixed(0)} | ${k(p.loadSetsPerSec)} | ${p.loadMeanBatch?.toFixed(1)} | ${p.medianColdFirstGetMs.toFixed(1)} | ${p.medianWarmFirstGetMs.toFixed(1)} | ${p.medianReadyMs.toFixed(1)} | ${opens.length ? `${opens[0]}..${opens[opens.length - 1]}` : '?'} | ${ms(p.coldGets.p50Us)} / ${ms(p.coldGets.p99Us)} / ${ms(p.coldGets.meanUs)} | ${ms(p.warmGets.p50Us)} / ${ms(p.warmGets.p99Us)} / ${ms(p.warmGets.meanUs)} |`);
  }
  console.log();
}
const e3 = load('exp3-clients/exp3-clients.json');
if (e3) {
  console.log(`### exp3 (${machine(e3)})\nstop: ${JSON.stringify(e3.stopReasons)}\npeak: ${JSON.stringify(e3.peak)}\n`);
  console.log('| target | workload | clients | ops/s | mean (ms) | p50 (ms) | p99 (ms) | commits | puts/commit |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const s of e3.results) console.log(`| ${s.target} | ${s.workload} | ${s.clients} | ${k(s.throughput)} | ${ms(s.all.meanUs)} | ${ms(s.all.p50Us)} | ${ms(s.all.p99Us)} | ${s.server?.commits ?? ''} | ${s.server ? s.server.meanBatch.toFixed(1) : ''} |`);
  console.log();
}
const be = load('bench-engine/bench-engine.json');
if (be) {
  const r = be.results;
  console.log(`### bench-engine (${machine(be)}; ${be.runSeconds} s)\nfsync 4 KiB p50 ${r.fsync4k.p50Us} us\n`);
  console.log('| | lbkv (one-sync) | lbkv (two-sync) | LMDB | lbkv/LMDB |');
  console.log('|---|---|---|---|---|');
  for (const b of [1, 16, 256]) {
    const g = (n: string) => r.puts[n].find((x: Any) => x.batch === b);
    console.log(`| puts/s, ${b} per commit | ${k(g('lbkv-one').putsPerSec)} | ${k(g('lbkv-two').putsPerSec)} | ${k(g('lmdb').putsPerSec)} | ${(g('lbkv-one').putsPerSec / g('lmdb').putsPerSec).toFixed(2)} |`);
  }
  const g1 = (n: string) => r.puts[n].find((x: Any) => x.batch === 1).commit.p50Us;
  console.log(`| single put p50 (us) / per fdatasync | ${g1('lbkv-one')} / ${r.ratios.singlePutVsFsync} | ${g1('lbkv-two')} / ${r.ratios.twoSyncSinglePutVsFsync} | ${g1('lmdb')} / ${r.ratios.lmdbSinglePutVsFsync} | ${(g1('lbkv-one') / g1('lmdb')).toFixed(2)} |`);
  console.log(`| get warm p50 / mean (us) | ${r.reads.lbkv.warm.p50Us} / ${r.reads.lbkv.warm.meanUs} | | ${r.reads.lmdb.warm.p50Us} / ${r.reads.lmdb.warm.meanUs} | ${r.ratios.warmGetP50VsLmdb} |`);
  console.log(`| get cold p50 / mean (us), OS cache dropped: ${r.reads.lbkv.cacheDropped} | ${r.reads.lbkv.cold.p50Us} / ${r.reads.lbkv.cold.meanUs} | | ${r.reads.lmdb.cold.p50Us} / ${r.reads.lmdb.cold.meanUs} | ${r.ratios.coldGetP50VsLmdb} |`);
  console.log(`| prefix scan (MiB/s) | ${r.reads.lbkv.scanMiBps.toFixed(0)} | | ${r.reads.lmdb.scanMiBps.toFixed(0)} | ${r.ratios.scanVsLmdb} |`);
  r.sizes.lbkv.forEach((x: Any, i: number) => {
    const y = r.sizes.lmdb[i];
    console.log(`| open at ${k(x.n)} keys (ms) | ${x.openMs.toFixed(2)} | | ${y.openMs.toFixed(2)} | ${(x.openMs / y.openMs).toFixed(2)} |`);
  });
  r.sizes.lbkv.forEach((x: Any, i: number) => {
    const y = r.sizes.lmdb[i];
    const amp = (z: Any) => ((z.usedBytes ?? z.fileBytes) / z.logicalBytes).toFixed(2);
    console.log(`| used / logical bytes at ${k(x.n)} keys (file size MiB) | ${amp(x)} (${(x.fileBytes / 2 ** 20).toFixed(0)}) | | ${amp(y)} (${(y.fileBytes / 2 ** 20).toFixed(0)}) | |`);
  });
  console.log('\ntargets:');
  for (const t of r.targets) console.log(`- [${t.met ? 'met' : 'missed'}] ${t.target}: ${t.value}`);
  console.log();
}
const bs = load('bench-service/bench-service.json');
if (bs) {
  const r = bs.results;
  const m = r.measurements;
  console.log(`### bench-service (${machine(bs)}; ${bs.runSeconds} s)\nfsync 4 KiB p50 ${r.fsync4k.p50Us} us\n`);
  console.log('| measurement | lbkv | floor | ratio |');
  console.log('|---|---|---|---|');
  for (const [name, v] of Object.entries(m) as [string, Any][]) {
    if (name.includes('1client')) console.log(`| ${name} p50 (us) | ${v.lbkv.all.p50Us} | ${v.floor.all.p50Us} | ${(v.lbkv.all.p50Us / v.floor.all.p50Us).toFixed(2)} |`);
    else console.log(`| ${name} ops/s | ${k(v.lbkv.throughput)} | ${k(v.floor.throughput)} | ${(v.lbkv.throughput / v.floor.throughput).toFixed(2)} |`);
  }
  console.log('\ntargets:');
  for (const t of r.targets) console.log(`- [${t.met ? 'met' : 'missed'}] ${t.target}: ${t.value}x`);
}

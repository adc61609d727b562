// Cold restarts of lbserver on two existing data directories, taken in turns: SIGKILL, drop the OS
// page cache, start, one get (from spawn to its answer), a second get. Written to tell whether a
// slower cold restart in experiment 2 belongs to the store's size or to the moment it was measured
// (right after a large load): here both stores sit idle and share the same minutes.
//
//   node dist/experiments/exp2-restart.js --n 10000 --keep ; ... --n 100000 --keep   (two stores)
//   node dist/experiments/cold-restart-ab.js --a <dir> --b <dir> --keys-a 10000 --keys-b 100000
import { Command } from 'commander';
import { dropCaches, log, median, resultDir, wholeArg } from './lib/common';
import { EXP2_KEY_PREFIX, exp2Key } from './exp2-restart';
import { writeSummary } from './lib/report';
import { startAndFirstGet, startServer } from './lib/servers';

interface Sample {
  readyMs: number;
  firstGetMs: number;
  getItselfMs: number;
  secondGetMs: number;
}

async function coldRestart(dataDir: string, keys: number): Promise<Sample> {
  dropCaches();
  const r = await startAndFirstGet(() => startServer({ kind: 'lbkv', dataDir }), exp2Key(Math.floor(keys / 2)));
  try {
    const t1 = process.hrtime.bigint();
    const v2 = await r.client.get(exp2Key(Math.floor(keys / 3)));
    const secondGetMs = Number(process.hrtime.bigint() - t1) / 1e6;
    // exp2's keys: a missing one means the directory is not an exp2 store of that many keys.
    if (!r.value || !v2) throw new Error(`${dataDir}: key ${EXP2_KEY_PREFIX}${Math.floor(keys / 2)} or ${EXP2_KEY_PREFIX}${Math.floor(keys / 3)} not found; is --keys right?`);
    return { readyMs: r.readyMs, firstGetMs: r.firstGetMs, getItselfMs: r.getMs, secondGetMs };
  } finally {
    r.client.close();
    await r.server.kill9();
  }
}

async function main(): Promise<void> {
  const o = new Command()
    .name('cold-restart-ab')
    .description('cold restarts (kill -9, page cache dropped) of lbserver on two exp2 data directories, taken in turns')
    .requiredOption('--a <dir>', 'first data directory (e.g. kept by exp2-restart --keep)')
    .requiredOption('--b <dir>', 'second data directory')
    .requiredOption('--keys-a <n>', 'keys in the first (exp2 loads e2/0 .. e2/n-1)', wholeArg(3))
    .requiredOption('--keys-b <n>', 'keys in the second', wholeArg(3))
    .option('--rounds <n>', 'cold restarts of each, alternating which goes first', wholeArg(1), 6)
    .option('--out <dir>', 'result directory (default experiments/results/cold-restart-ab)')
    .parse()
    .opts<{ a: string; b: string; keysA: number; keysB: number; rounds: number; out?: string }>();
  const targets = [{ name: 'a', dir: o.a, keys: o.keysA }, { name: 'b', dir: o.b, keys: o.keysB }];
  const samples: Record<string, Sample[]> = { a: [], b: [] };
  for (let i = 0; i < o.rounds; i++) {
    for (const t of i % 2 ? [...targets].reverse() : targets) {
      const s = await coldRestart(t.dir, t.keys);
      samples[t.name].push(s);
      log(`round ${i + 1} ${t.name} (${t.keys} keys): ready ${s.readyMs.toFixed(0)} ms, first get ${s.firstGetMs.toFixed(0)} ms from spawn (${s.getItselfMs.toFixed(1)} ms itself), second get ${s.secondGetMs.toFixed(1)} ms`);
    }
  }
  const summary = targets.map((t) => ({
    ...t,
    medianReadyMs: median(samples[t.name].map((s) => s.readyMs)),
    medianFirstGetMs: median(samples[t.name].map((s) => s.firstGetMs)),
    firstGetRangeMs: [Math.min(...samples[t.name].map((s) => s.firstGetMs)), Math.max(...samples[t.name].map((s) => s.firstGetMs))],
  }));
  for (const s of summary) log(`${s.name} (${s.keys} keys): median ready ${s.medianReadyMs.toFixed(1)} ms, first get ${s.medianFirstGetMs.toFixed(1)} ms (${s.firstGetRangeMs.map((x) => x.toFixed(0)).join('-')})`);
  writeSummary(resultDir('cold-restart-ab', o.out), 'cold-restart-ab', { rounds: o.rounds, keysA: o.keysA, keysB: o.keysB }, { summary, samples });
}

main().catch((e) => { console.error(e instanceof Error ? e.message : e); process.exit(1); });

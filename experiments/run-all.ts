// make experiments [FULL=1]: runs experiments 1-3 (quick by default, --full for the full configuration)
// and writes experiments/results/run-all.json with where each result went and how long it took.
import { Command } from 'commander';
import * as path from 'node:path';
import { gitInfo, log, RESULTS, subsetArg, writeJson } from './lib/common';
import { runExp1 } from './exp1-latency';
import { runExp2 } from './exp2-restart';
import { runExp3 } from './exp3-clients';

async function main(): Promise<void> {
  const opts = new Command()
    .name('run-all')
    .description('run experiments 1 (latency vs value size), 2 (restart) and 3 (clients); quick unless --full')
    .option('--full', 'full configuration (much longer)', false)
    .option('--only <list>', 'subset, e.g. 1,3', subsetArg(['1', '2', '3'] as const))
    .parse()
    .opts<{ full: boolean; only?: string[] }>();
  const only = new Set<string>(opts.only ?? ['1', '2', '3']);
  const started = new Date();
  const runs: { experiment: string; json: string; seconds: number }[] = [];
  const step = async (id: string, name: string, f: () => Promise<string>) => {
    if (!only.has(id)) return;
    const t0 = Date.now();
    log(`\n=== experiment ${id}: ${name} (${opts.full ? 'full' : 'quick'})`);
    const json = await f();
    runs.push({ experiment: name, json: path.relative(RESULTS, json), seconds: Math.round((Date.now() - t0) / 1000) });
  };
  await step('1', 'exp1-latency', () => runExp1({ full: opts.full }));
  await step('2', 'exp2-restart', () => runExp2({ full: opts.full }));
  await step('3', 'exp3-clients', () => runExp3({ full: opts.full }));
  writeJson(path.join(RESULTS, 'run-all.json'), { configuration: opts.full ? 'full' : 'quick', started: started.toISOString(), finished: new Date().toISOString(), git: gitInfo(), runs });
  log(`\nrun-all: done in ${Math.round((Date.now() - started.getTime()) / 1000)} s; results under ${path.relative(process.cwd(), RESULTS)}`);
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });

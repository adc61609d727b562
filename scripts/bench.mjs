#!/usr/bin/env node
// npm run bench: the engine benchmark, then the service benchmark, each with its defaults. Options
// belong to one of them, so they are refused here (npm would hand them to the last command only).
import { spawnSync } from 'node:child_process';

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  console.log(`Usage: npm run bench

Runs npm run bench:engine (in-process, lbkv vs LMDB) and then npm run bench:service (lbkv vs a bare
gRPC server), each with its default options, and stops at the first that fails. To pass options,
run one of them: npm run bench:engine -- --help, npm run bench:service -- --help.`);
  process.exit(0);
}
if (args.length > 0) {
  console.error(`bench: options go to one benchmark, not both: npm run bench:engine -- ${args.join(' ')} or npm run bench:service -- ${args.join(' ')} (npm run bench -- --help)`);
  process.exit(2);
}
for (const script of ['bench:engine', 'bench:service']) {
  const r = spawnSync('npm', ['run', '--silent', script], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

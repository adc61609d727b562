// make profile: clinic flame on lbserver under a set-heavy and a get-heavy load (4 KiB values, clients
// in separate processes). The HTML flame graphs go to experiments/results/profile/ (git-ignored).
import { Command } from 'commander';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { KiB, log, makeDataDir, RESULTS, ROOT, rmrf, writeJson, gitInfo } from './lib/common';
import { plain, runLoad } from './lib/load';
import { startServer } from './lib/servers';

const CLINIC = path.join(ROOT, 'node_modules', 'clinic', 'bin.js');

/** Direct children of `pid` (Linux /proc). */
function childPids(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
      const txt = fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim();
      if (txt) out.push(...txt.split(/\s+/).map(Number));
    }
  } catch { /* gone */ }
  return out;
}

async function profileOne(name: string, op: 'set' | 'get', seconds: number, clients: number, outDir: string): Promise<Record<string, unknown>> {
  const dataDir = makeDataDir(`profile-${name}`);
  const dest = path.join(outDir, name);
  rmrf(dest);
  fs.mkdirSync(dest, { recursive: true });
  const server = await startServer({
    kind: 'lbkv', dataDir, readyTimeoutMs: 120_000, env: { NO_INSIGHT: '1', NO_UPDATE_NOTIFIER: '1' }, cwd: dest,
    wrap: (script, args) => ({ cmd: process.execPath, args: [CLINIC, 'flame', '--open=false', '--dest', dest, '--', process.execPath, script, ...args] }),
  });
  try {
    const keys = 10_000;
    if (op === 'get') {
      const pre = await runLoad({ address: server.address, clients: 32, processes: 2, op: 'load', keyPrefix: 'p/', valueBytes: 4 * KiB, loadCount: keys, label: `${name} preload` });
      if (pre.errors) throw new Error(pre.firstError);
    }
    const r = await runLoad({ address: server.address, clients, processes: Math.min(4, clients), op, keyPrefix: 'p/', valueBytes: 4 * KiB, keyCount: keys, durationMs: seconds * 1000, label: `${name} load`, hardTimeoutMs: seconds * 1000 + 120_000 });
    log(`profile ${name}: ${r.ops} ops, ${Math.round(r.throughput)} ops/s, mean ${r.all.meanUs} us`);
    // Stop the profiled lbserver (clinic's child) with SIGINT; 0x's preload makes it exit, and clinic,
    // which we do not signal, then builds the flame graph and exits by itself.
    const kids = childPids(server.pid);
    if (kids.length === 0) throw new Error(`no child process under clinic (pid ${server.pid})`);
    for (const k of kids) { try { process.kill(k, 'SIGINT'); } catch { /* gone */ } }
    const timer = setTimeout(() => { void server.stop('SIGKILL', 1000); for (const k of kids) { try { process.kill(k, 'SIGKILL'); } catch { /* gone */ } } }, 600_000);
    await server.exited;
    clearTimeout(timer);
    const html = fs.readdirSync(dest, { recursive: true }).map(String).filter((f) => f.endsWith('.html'));
    log(`profile ${name}: ${html.length ? html.map((h) => path.join(dest, h)).join(', ') : 'no HTML produced; see stderr:\n' + server.stderr()}`);
    return { name, op, seconds, clients, load: plain(r), html: html.map((h) => path.relative(ROOT, path.join(dest, h))) };
  } finally {
    await server.stop('SIGKILL', 1000);
    rmrf(dataDir);
  }
}

async function main(): Promise<void> {
  const opts = new Command()
    .name('profile')
    .description('clinic flame of lbserver under a set-heavy and a get-heavy load; HTML in experiments/results/profile/')
    .option('--seconds <s>', 'load duration per profile', '10')
    .option('--clients <n>', 'concurrent clients', '16')
    .option('--only <which>', 'set or get')
    .parse()
    .opts<{ seconds: string; clients: string; only?: string }>();
  if (spawnSync(process.execPath, [CLINIC, '--version'], { stdio: 'ignore' }).status !== 0) throw new Error('clinic is not installed (npm ci)');
  const outDir = path.join(RESULTS, 'profile');
  fs.mkdirSync(outDir, { recursive: true });
  const out: Record<string, unknown>[] = [];
  if (opts.only !== 'get') out.push(await profileOne('set-heavy', 'set', Number(opts.seconds), Number(opts.clients), outDir));
  if (opts.only !== 'set') out.push(await profileOne('get-heavy', 'get', Number(opts.seconds), Number(opts.clients), outDir));
  writeJson(path.join(outDir, 'profile.json'), { git: gitInfo(), profiles: out });
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });

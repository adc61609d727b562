// make profile: clinic flame on lbserver under a set-heavy and a get-heavy load (4 KiB values, clients
// in separate processes that warm up for --warmup-ms before the measured --seconds). The HTML flame
// graphs go to experiments/results/profile/ (git-ignored), the summary to
// experiments/results/profile-summary.json (--out moves both).
import { Command, Option } from 'commander';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLIENT_WARMUP_MS, KiB, log, makeDataDir, RESULTS, ROOT, rmrf, writeJson, gitInfo, secondsArg, warmupMsOption, wholeArg } from './lib/common';
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

interface Frame { name: string; type: string }

function category(f: Frame): string {
  const n = f.name;
  if (n.startsWith('epoll_wait') || n.startsWith('epoll_pwait')) return 'idle: event loop waiting in epoll';
  if (n.startsWith('__write@') || n.startsWith('_IO_')) return 'write() syscalls on the main thread (HTTP/2 socket writes and the profiler\'s own log, not separable)';
  if (n.includes('/btree/')) return 'engine (btree/)';
  if (n.includes('/generated/') || n.includes('@bufbuild')) return 'protobuf encode/decode';
  if (n.includes('/lib/') || n.includes('/bin/')) return 'service (lib/, bin/)';
  if (n.includes('@grpc/grpc-js')) return 'grpc-js';
  if (n.includes('node:internal/http2') || n.includes('node:http2')) return 'node http2';
  if (n.includes('node:')) return 'node core (JS)';
  if (f.type === 'JS') return 'other JS';
  if (/gc|GC|Scavenge|MarkCompact|Heap/.test(n)) return 'V8 GC';
  return 'native (V8, libuv, libc, node C++)';
}

/** Where the samples went: self time by category and by function, and the share of samples with an
 *  engine frame anywhere on the stack. */
function summarizeSamples(file: string): Record<string, unknown> {
  const stacks = JSON.parse(fs.readFileSync(file, 'utf8')) as Frame[][];
  const total = stacks.length;
  const byCat = new Map<string, number>();
  const byFn = new Map<string, number>();
  let inEngine = 0, idle = 0;
  for (const st of stacks) {
    if (st.length === 0) { idle++; continue; }
    const leaf = st[st.length - 1];
    byCat.set(category(leaf), (byCat.get(category(leaf)) ?? 0) + 1);
    const fn = leaf.name.replace(ROOT + '/', '').trim();
    byFn.set(fn, (byFn.get(fn) ?? 0) + 1);
    if (st.some((f) => f.name.includes('/btree/'))) inEngine++;
  }
  const pct = (n: number) => Math.round((1000 * n) / Math.max(1, total)) / 10;
  return {
    samples: total,
    emptyStackPct: pct(idle),
    engineOnStackPct: pct(inEngine),
    selfByCategoryPct: Object.fromEntries([...byCat].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, pct(v)])),
    topSelfFunctionsPct: [...byFn].sort((a, b) => b[1] - a[1]).slice(0, 25).map(([k, v]) => ({ fn: k, pct: pct(v) })),
  };
}

interface ProfileOptions { seconds: number; clients: number; warmupMs: number }

async function profileOne(name: string, op: 'set' | 'get', o: ProfileOptions, outDir: string): Promise<Record<string, unknown>> {
  const { seconds, clients, warmupMs } = o;
  const dataDir = makeDataDir(`profile-${name}`);
  const dest = path.join(outDir, name);
  rmrf(dest);
  fs.mkdirSync(dest, { recursive: true });
  const t0 = performance.now();
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
    // Fresh client processes keep speeding up for seconds (JIT of the client and grpc-js): they warm up
    // before the measured window, so that its ops/s, and most of the load the profiler samples, are of
    // warm clients.
    let goAt = 0, doneAt = 0;
    const r = await runLoad({
      address: server.address, clients, processes: Math.min(4, clients), op, keyPrefix: 'p/', valueBytes: 4 * KiB, keyCount: keys, durationMs: seconds * 1000, warmupMs,
      label: `${name} load`, hardTimeoutMs: seconds * 1000 + warmupMs + 120_000,
      onGo: () => { goAt = performance.now(); }, onDone: () => { doneAt = performance.now(); },
    });
    if (r.errors || r.warmupErrors) throw new Error(`${name}: ${r.errors} errors (${r.firstError}), ${r.warmupErrors} in the warm-up (${r.firstWarmupError})`);
    log(`profile ${name}: ${r.ops} ops, ${Math.round(r.throughput)} ops/s, mean ${r.all.meanUs} us, after ${warmupMs} ms of client warm-up (${r.warmupCalls} calls)`);
    // Stop the profiled lbserver (clinic's child) with SIGINT; 0x's preload makes it exit, and clinic,
    // which we do not signal, then builds the flame graph and exits by itself.
    const stopAt = performance.now();
    const kids = childPids(server.pid);
    if (kids.length === 0) throw new Error(`no child process under clinic (pid ${server.pid})`);
    for (const k of kids) { try { process.kill(k, 'SIGINT'); } catch { /* gone */ } }
    const timer = setTimeout(() => { void server.stop('SIGKILL', 1000); for (const k of kids) { try { process.kill(k, 'SIGKILL'); } catch { /* gone */ } } }, 600_000);
    await server.exited;
    clearTimeout(timer);
    const html = fs.readdirSync(dest, { recursive: true }).map(String).filter((f) => f.endsWith('.html'));
    log(`profile ${name}: ${html.length ? html.map((h) => path.join(dest, h)).join(', ') : 'no HTML produced; see stderr:\n' + server.stderr()}`);
    const samples = fs.readdirSync(dest, { recursive: true }).map(String).filter((f) => f.endsWith('-samples'));
    const where = samples.length ? summarizeSamples(path.join(dest, samples[0])) : undefined;
    // clinic flame samples lbserver from its start to its exit and has no delay option (0x's
    // collectDelay is not passed through, and 0x's timed log is deleted), so the flame graph and
    // `where` cannot leave out the start-up, a preload or the clients' warm-up: their share is said.
    const ms = (a: number, b: number) => Math.round(b - a);
    const profiled = {
      note: 'the flame graph and `where` sample lbserver over its whole life under the profiler: its start-up, the preload (get-heavy), ' +
        'the clients\' warm-up, the measured window and its stop; `load` (ops/s, latencies) is of the measured window alone. Wall-clock ms from the spawn ' +
        'of clinic (its own start-up, before lbserver runs, is in spawnToMeasuredMs) to the stop signal; measuredPct is the measured window\'s share of that time, not a count of samples',
      spawnToMeasuredMs: ms(t0, goAt), measuredMs: ms(goAt, doneAt), measuredToStopMs: ms(doneAt, stopAt),
      measuredPct: Math.round((1000 * (doneAt - goAt)) / (stopAt - t0)) / 10,
    };
    log(`profile ${name}: the flame graph is of lbserver's whole life, ${ms(t0, stopAt)} ms from spawn to stop signal, of which the measured window is ${profiled.measuredPct} % ` +
      `(the rest: start-up, ${op === 'get' ? 'preload, ' : ''}${warmupMs} ms or more of client warm-up)`);
    return { name, op, seconds, clients, warmupMs, load: plain(r), profiled, html: html.map((h) => path.relative(ROOT, path.join(dest, h))), where };
  } finally {
    await server.stop('SIGKILL', 1000);
    rmrf(dataDir);
  }
}

async function main(): Promise<void> {
  const opts = new Command()
    .name('profile')
    .description('clinic flame of lbserver under a set-heavy and a get-heavy load; HTML in experiments/results/profile/ (or under --out)')
    .option('--seconds <s>', 'measured load duration per profile, after the warm-up', secondsArg, 10)
    .option('--clients <n>', 'concurrent clients', wholeArg(1), 16)
    .addOption(warmupMsOption(CLIENT_WARMUP_MS))
    .addOption(new Option('--only <which>', 'only one of the two profiles').choices(['set', 'get']))
    .option('--out <dir>', 'directory for profile-summary.json and profile/ (default experiments/results)')
    .parse()
    .opts<{ seconds: number; clients: number; warmupMs: number; only?: 'set' | 'get'; out?: string }>();
  if (spawnSync(process.execPath, [CLINIC, '--version'], { stdio: 'ignore' }).status !== 0) throw new Error('clinic is not installed (npm ci)');
  const results = opts.out ? path.resolve(opts.out) : RESULTS;
  const outDir = path.join(results, 'profile');
  fs.mkdirSync(outDir, { recursive: true });
  const out: Record<string, unknown>[] = [];
  if (opts.only !== 'get') out.push(await profileOne('set-heavy', 'set', opts, outDir));
  if (opts.only !== 'set') out.push(await profileOne('get-heavy', 'get', opts, outDir));
  // The HTML and raw samples stay in the git-ignored profile/; this summary is small and committed.
  writeJson(path.join(results, 'profile-summary.json'), { git: gitInfo(), note: `self time of the sampled stacks by category and function (clinic flame / 0x samples); HTML under ${path.relative(ROOT, outDir)}/`, profiles: out });
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });

// `npm run torture` (node dist/test/torture/run.js): the long versions of the durability tests,
// bounded in count and time, stopping by themselves, ending with a summary.
//
//   kill -9 rounds under load ........ 200 rounds (real lbserver processes), then 50 with --sync-mode two,
//                                      then 30 with a stalled GetPrefix reader pinning a snapshot
//   power cuts (fault-injecting fs) .. 10,000 cut points (runPowerCuts, test/torture/powercut-long.ts)
//   power cuts below ext4 (loop) ..... 30 cuts, then 15 with --sync-mode two (skipped with the reason
//                                      printed when loop devices are not allowed)
//   races ............................ 8 clients x 1,000 ops on 4 hot keys; 60 s of snapshot streams
//   1,000 vanishing streams .......... once
//   slow reader ...................... 1 GiB GetPrefix result, RSS sampled
//   the power-cut test file .......... 10 more seeds (injected EIO / ENOSPC at each step of a commit,
//                                      and its cut campaigns), each in its own process
//
// Options: --only kill,powercut,loop,races,vanish,slow,seeds   --seed N   --budget-min M (whole run, default 90)
//          --kill-rounds N --kill-rounds-two N --kill-rounds-pinned N --kill-rounds-rebuild N --cuts N --loop-cuts N --loop-cuts-two N --slow-mib N --seeds N
// Exit code 0 when every section held its properties, 1 otherwise.
import { runPowerCuts } from './powercut-long';
import { destroyMetasAndRebuild, roundsProperty, runKillRounds, type KillRoundsOptions, type KillRoundsResult } from '../durability/kill-rounds';
import { runLoopPowerCuts } from '../durability/loop-powercut';
import { runRaces } from '../durability/races';
import { slowReader, streamsRssLimit, vanishingStreams, loadValues } from '../durability/abuse';
import { startServer, tempDir, removeTempDir } from '../support/server';
import { mib, nowMs, seedFromEnv } from '../durability/support';
import { spawn } from 'node:child_process';
import * as path from 'node:path';

const USAGE = `usage: npm run torture -- [options]   (node dist/test/torture/run.js [options])

Long versions of the durability tests, bounded in count and time; prints a summary and exits 0 when
every section held its properties, 1 otherwise.

  --only LIST           sections to run, comma-separated: kill,powercut,loop,races,vanish,slow,seeds (default all)
  --seed N              random seed (default: LBKV_SEED or a fresh one, printed)
  --budget-min M        time budget for the whole run in minutes (default 90)
  --kill-rounds N       kill -9 rounds (default 200)     --kill-rounds-two N  with --sync-mode two (default 50)
  --kill-rounds-pinned N  kill -9 rounds with a stalled GetPrefix reader pinning a snapshot (default 30)
  --kill-rounds-rebuild N  kill -9 rounds, each followed by destroying both meta pages and rebuilding
                        the store from its pages, lbserver --compact --salvage (default 30)
  --kill-rounds-event-loop N  kill -9 rounds with one client writing one Set at a time, so that
                        lbserver --blocking-sync-us 1000000 makes its fdatasyncs on the event loop (default 30)
  --cuts N              power cuts in the fault-injecting file layer (default 10000)
  --loop-cuts N         power cuts below ext4 on a loop device (default 30)   --loop-cuts-two N (default 15)
  --slow-mib N          size of the slow reader's GetPrefix result in MiB (default 1024)
  --seeds N             runs of the power-cut test file (test/powercut.test.ts) with seeds other than
                        its fixed one (default 10)
  -h, --help            this text`;
const KNOWN = ['only', 'seed', 'budget-min', 'kill-rounds', 'kill-rounds-two', 'kill-rounds-pinned', 'kill-rounds-rebuild', 'kill-rounds-event-loop', 'cuts', 'loop-cuts', 'loop-cuts-two', 'slow-mib', 'seeds'];
if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(USAGE);
  process.exit(0);
}
for (let i = 2; i < process.argv.length; i += 2) {
  const name = process.argv[i].replace(/^--/, '');
  if (!process.argv[i].startsWith('--') || !KNOWN.includes(name) || process.argv[i + 1] === undefined) {
    usageError(`bad option ${process.argv[i]}${process.argv[i + 1] === undefined ? ' (missing value)' : ''}`);
  }
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
function num(name: string, dflt: number): number {
  const text = arg(name);
  if (text === undefined) return dflt;
  if (!/^\d+$/.test(text)) usageError(`--${name}: "${text}" is not a whole number`);
  return Number(text);
}

function usageError(message: string): never {
  console.error(`torture: ${message}\n\n${USAGE}`);
  process.exit(2);
}

// Every number is checked here, before any section starts (sections read theirs when they run).
for (const name of KNOWN) if (name !== 'only') num(name, 0);

const SECTIONS = ['kill', 'powercut', 'loop', 'races', 'vanish', 'slow', 'seeds'];
const seed = arg('seed') !== undefined ? num('seed', 0) >>> 0 : seedFromEnv();
const only = arg('only')?.split(',');
const unknown = only?.filter((s) => !SECTIONS.includes(s)) ?? [];
if (unknown.length > 0) usageError(`--only: unknown section ${unknown.join(', ')} (sections: ${SECTIONS.join(',')})`);
const budgetMs = num('budget-min', 90) * 60_000;
const started = nowMs();
const remaining = () => Math.max(0, budgetMs - (nowMs() - started));
const log = (l: string) => console.log(l);

interface Row { section: string; ok: boolean; summary: string; seconds: number }
const rows: Row[] = [];

async function section(name: string, key: string, fn: () => Promise<{ ok: boolean; summary: string }>): Promise<void> {
  if (only && !only.includes(key)) return;
  if (remaining() <= 0) { rows.push({ section: name, ok: true, summary: 'NOT RUN: time budget used up', seconds: 0 }); return; }
  log(`\n=== ${name}`);
  const t0 = nowMs();
  try {
    const r = await fn();
    rows.push({ section: name, ok: r.ok, summary: r.summary, seconds: (nowMs() - t0) / 1000 });
  } catch (e) {
    rows.push({ section: name, ok: false, summary: `ERROR ${(e as Error).stack ?? e}`, seconds: (nowMs() - t0) / 1000 });
  }
  const last = rows[rows.length - 1];
  log(`=== ${name}: ${last.ok ? 'OK' : 'FAILED'} in ${last.seconds.toFixed(0)} s: ${last.summary}`);
}

/** The kill -9 sections' verdict: nothing acknowledged lost, torn, foreign, invented or inconsistent. */
function killVerdict(r: KillRoundsResult, rounds: number, extra = ''): { ok: boolean; summary: string } {
  for (const v of r.violations) log(`  VIOLATION ${v}`);
  const ok = r.lost === 0 && r.torn === 0 && r.wrongKey === 0 && r.phantom === 0 && r.prefixMismatch === 0 && r.statMismatch === 0 && r.unexpectedErrors === 0;
  return { ok, summary: `rounds ${r.rounds}/${rounds}, acknowledged sets ${r.acked} (${mib(r.bytesAcked)}), sent ${r.sent}, lost ${r.lost}, torn ${r.torn}, wrong key ${r.wrongKey}, never sent ${r.phantom}, GetPrefix/Get mismatches ${r.prefixMismatch}, Stat key-count mismatches ${r.statMismatch}, errors before kill ${r.unexpectedErrors}, restarts also killed during startup ${r.startupKills}, max restart ${r.maxRestartMs.toFixed(0)} ms${extra}` };
}

/** A kill -9 section: `option` rounds (default `dflt`) within `maxMin` minutes of the budget, on a
 *  data directory of its own; a rebuilt section must also have rebuilt every time, and others what
 *  roundsProperty asks of their kind of round. */
function killSection(title: string, option: string, dflt: number, maxMin: number, opts: Partial<KillRoundsOptions>, rebuild = false): Promise<void> {
  return section(title, 'kill', async () => {
    const rounds = num(option, dflt);
    const dir = tempDir(`lbkv-torture-${option}-`);
    const rebuildFailures: string[] = [];
    // Each kill followed by a rebuild from the pages alone (Store.rebuild), held to the same checks.
    const afterKill = rebuild ? async (round: number) => {
      const f = await destroyMetasAndRebuild(dir);
      if (f) { rebuildFailures.push(f); log(`  REBUILD FAILED in round ${round}: ${f}`); }
    } : undefined;
    try {
      const r = await runKillRounds({ rounds, dataDir: dir, seed, clients: 8, keys: 300, log, budgetMs: Math.min(remaining(), maxMin * 60_000), afterKill, ...opts });
      const checks = [rebuild ? { holds: rebuildFailures.length === 0, summary: `failed rebuilds ${rebuildFailures.length}` } : undefined, roundsProperty(opts, r)]
        .filter((c): c is { holds: boolean; summary: string } => c !== undefined);
      const v = killVerdict(r, rounds, checks.map((c) => `, ${c.summary}`).join(''));
      return { ok: v.ok && checks.every((c) => c.holds), summary: v.summary };
    } finally { removeTempDir(dir); }
  });
}

async function main(): Promise<void> {
  log(`lbkv torture: seed ${seed} (rerun with --seed ${seed}), budget ${(budgetMs / 60_000).toFixed(0)} min`);

  await killSection('kill -9 under load', 'kill-rounds', 200, 40, {});
  await killSection('kill -9 under load, --sync-mode two', 'kill-rounds-two', 50, 15, { seed: seed ^ 0x5a5a, serverArgs: ['--sync-mode', 'two'] });
  await killSection('kill -9 under load while a stalled GetPrefix reader pins a snapshot (freelist segments)', 'kill-rounds-pinned', 30, 15,
    { seed: seed ^ 0x7e7e, loadMs: [1500, 2500], stalledReader: { keys: 40, valueBytes: 512 * 1024 } });
  await killSection('kill -9 under load, then both meta pages destroyed and the store rebuilt from its pages', 'kill-rounds-rebuild', 30, 10,
    { seed: seed ^ 0x1d1d }, true);
  // lbserver syncs on the event loop only for a Set alone with the server (KvService.blockingSyncAllowed).
  await killSection('kill -9 under load, one client, fdatasyncs on the event loop (--blocking-sync-us 1000000)', 'kill-rounds-event-loop', 30, 8,
    { seed: seed ^ 0x3c3c, clients: 1, inflightPerClient: 1, serverArgs: ['--blocking-sync-us', '1000000'], countEventLoopSyncs: true });

  await section('power cuts (fault-injecting file layer)', 'powercut', async () => {
    const cuts = num('cuts', 10_000);
    const r = await runPowerCuts({ cuts, seed, log, deadlineMs: Math.min(remaining(), 30 * 60_000) });
    for (const f of r.failures.slice(0, 30)) log(`  FAILURE ${f}`);
    return { ok: r.failures.length === 0, summary: `cut points ${r.cuts}/${cuts}, verified ${r.verified}, crash images ${r.images}, recovered in-flight commit ${r.recoveredInFlight}, failures ${r.failures.length}${r.stoppedEarly ? ' (stopped early: deadline)' : ''}` };
  });

  await section('power cuts below ext4 (loop device)', 'loop', async () => {
    const cuts = num('loop-cuts', 30);
    const r = await runLoopPowerCuts({ rounds: cuts, seed, log, budgetMs: Math.min(remaining(), 15 * 60_000) });
    if (r.skipped) return { ok: true, summary: `SKIPPED: ${r.reason}` };
    for (const v of r.violations) log(`  VIOLATION ${v}`);
    const ok = r.lost === 0 && r.torn === 0 && r.wrongKey === 0 && r.phantom === 0 && r.prefixMismatch === 0 && r.statMismatch === 0 && r.unexpectedErrors === 0;
    return { ok, summary: `cuts ${r.rounds}/${cuts}, acknowledged sets ${r.acked}, sent ${r.sent}, lost ${r.lost}, torn ${r.torn}, wrong key ${r.wrongKey}, never sent ${r.phantom}, GetPrefix/Get mismatches ${r.prefixMismatch}, Stat key-count mismatches ${r.statMismatch}, restarts also killed during startup ${r.startupKills}` };
  });

  await section('power cuts below ext4 (loop device), --sync-mode two', 'loop', async () => {
    const cuts = num('loop-cuts-two', 15);
    const r = await runLoopPowerCuts({ rounds: cuts, seed: seed ^ 0x5a5a, log, syncMode: 'two', budgetMs: Math.min(remaining(), 10 * 60_000) });
    if (r.skipped) return { ok: true, summary: `SKIPPED: ${r.reason}` };
    for (const v of r.violations) log(`  VIOLATION ${v}`);
    const ok = r.lost === 0 && r.torn === 0 && r.wrongKey === 0 && r.phantom === 0 && r.prefixMismatch === 0 && r.statMismatch === 0 && r.unexpectedErrors === 0;
    return { ok, summary: `cuts ${r.rounds}/${cuts}, acknowledged sets ${r.acked}, sent ${r.sent}, lost ${r.lost}, torn ${r.torn}, wrong key ${r.wrongKey}, never sent ${r.phantom}, GetPrefix/Get mismatches ${r.prefixMismatch}, Stat key-count mismatches ${r.statMismatch}` };
  });

  await section('races (linearizability, one-snapshot GetPrefix)', 'races', async () => {
    const server = await startServer({});
    try {
      const r = await runRaces({ address: server.address, seed, clients: 8, hotKeys: 4, opsPerClient: 1000, writers: 3, groupSize: 40, readers: 3, snapshotMs: 60_000, log });
      for (const v of r.violations) log(`  VIOLATION ${v}`);
      const ok = r.failedOps === 0 && r.nonLinearizable === 0 && r.inconclusive === 0 && r.snapshotViolations === 0 && r.streams > 0;
      return { ok, summary: `ops ${r.ops} on ${r.keysChecked} hot keys, non-linearizable keys ${r.nonLinearizable}, inconclusive ${r.inconclusive}, GetPrefix streams ${r.streams} (${r.streamEntries} entries), snapshot violations ${r.snapshotViolations}, failed ops ${r.failedOps}` };
    } finally { await server.stop('SIGTERM'); }
  });

  await section('1,000 streams opened, client vanishes', 'vanish', async () => {
    const server = await startServer({ args: ['--cache-mb', '32'] });
    try {
      await loadValues(server.address, 'mid/', 40, 256 * 1024, 4);
      const r = await vanishingStreams(server.address, server.pid, 'mid/', 1000, log);
      const limit = streamsRssLimit(r.rssBefore, 1000, 32);
      const ok = r.opened === 1000 && r.othersFailed === 0 && r.openSnapshotsAfter === 0 && r.peakRss < limit.bytes;
      return { ok, summary: `streams ${r.opened}, snapshots released ${r.openSnapshotsAfter === 0 ? `in ${r.releasedMs.toFixed(0)} ms` : 'NO'}, server peak RSS ${mib(r.peakRss)} (limit: ${limit.formula}), other client ${r.othersOk} ok / ${r.othersFailed} failed, slowest ${r.othersMaxMs.toFixed(0)} ms` };
    } finally { await server.stop('SIGTERM'); }
  });

  await section('slow reader of a large GetPrefix result', 'slow', async () => {
    const total = num('slow-mib', 1024);
    const r = await slowReader({ totalMiB: total, cacheMB: 64, rateMiBps: 40, log });
    const ok = r.entries === total && r.badValues === 0 && r.peakRss < r.limitBytes && r.othersFailed === 0;
    return { ok, summary: `${mib(r.totalBytes)} in ${(r.readMs / 1000).toFixed(0)} s, server peak RSS ${mib(r.peakRss)} (limit ${mib(r.limitBytes)}), bad values ${r.badValues}, other client ${r.othersOk} ok / ${r.othersFailed} failed` };
  });

  // make test runs the power-cut test with one fixed seed; its injected-failure scenarios draw their
  // crash images from that seed, and a promise they broke (a rejected batch coming back) showed only
  // with other seeds. Each run is the unchanged test file in its own process.
  await section('power-cut test file with other seeds (injected EIO / ENOSPC, cut campaigns)', 'seeds', async () => {
    const runs = num('seeds', 10);
    const file = path.join(__dirname, '..', 'powercut.test.js');
    const failed: number[] = [];
    let done = 0;
    for (let i = 0; i < runs && remaining() > 0; i++) {
      const s = (seed + (i + 1) * 7919) >>> 0;
      const r = await runFile(file, { LBKV_POWERCUT_SEED: String(s) }, Math.min(remaining(), 5 * 60_000));
      done++;
      if (r.code !== 0) failed.push(s);
      log(`  seed ${s}: ${r.code === 0 ? 'passed' : `FAILED (exit ${r.code})\n${r.tail}`}`);
    }
    return { ok: failed.length === 0 && done > 0, summary: `${done}/${runs} seeds, failed ${failed.length}${failed.length ? ` (rerun: LBKV_POWERCUT_SEED=${failed[0]} node ${path.relative(process.cwd(), file)})` : ''}` };
  });

  log('\n=== torture summary');
  for (const r of rows) log(`${r.ok ? 'OK    ' : 'FAILED'} ${r.section} (${r.seconds.toFixed(0)} s): ${r.summary}`);
  const failed = rows.filter((r) => !r.ok).length;
  log(`torture: ${rows.length - failed} sections held, ${failed} failed; ${((nowMs() - started) / 60_000).toFixed(1)} min; seed ${seed}`);
  process.exit(failed === 0 ? 0 : 1);
}

/** Runs a test file in its own Node process; its exit code and the end of its output. */
function runFile(file: string, env: Record<string, string>, timeoutMs: number): Promise<{ code: number | null; tail: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file], { env: { LBKV_CHECK_PATCHES: '1', ...process.env, ...env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const keep = (c: Buffer) => { out = (out + c.toString()).slice(-4000); };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => { out += '\n[torture] timed out'; child.kill('SIGKILL'); }, timeoutMs);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, tail: out.split('\n').filter((l) => /FAIL|Error|timed out|failures/.test(l)).slice(0, 12).join('\n') }); });
  });
}

// main() always ends in process.exit(). If the event loop runs dry first, some section is waiting on
// a promise that can never settle, and Node would exit 0 with no summary as if all was well.
process.on('beforeExit', () => {
  console.error('torture: FAILED: the run stopped with a section waiting on something that can never happen (no summary); rerun that section with the printed seed');
  process.exit(3);
});
main().catch((e) => { console.error(e); process.exit(1); });

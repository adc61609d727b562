// kill -9 under load, shared by the short test (test/durability/kill9.test.ts) and the torture runner.
//
// Every round on one data directory: start lbserver, run C concurrent clients writing self-describing
// values of mixed sizes over K keys, SIGKILL the server at a random moment, restart it and check:
//   - every acknowledged set is there, with its value or a later one that was sent (lost = 0),
//   - no value is torn, belongs to another key, or was never sent,
//   - GetPrefix over all keys agrees with Get, key for key and byte for byte.
// Each key is written by one client, one request at a time, with increasing versions, so the set of
// values a key may hold after the crash is exactly {last acknowledged} ∪ {sent after it}.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeError, KvClient } from '../../lib/client';
import { DATA_FILE_NAME } from '../../lib/config';
import { LBSERVER_JS, runNode, startServer, type ServerHandle } from '../support/server';
import { decodeValue, encodeValue, killDuringStartup, mib, nowMs, pickSize, Rng, sleep } from './support';

export interface KillRoundsOptions {
  rounds: number;
  dataDir: string;
  seed: number;
  clients?: number;
  keys?: number;
  /** Writers per client (each with its own key, so at most one request per key at a time). */
  inflightPerClient?: number;
  maxValueBytes?: number;
  /** Load time before the kill, uniform in [min, max] ms. */
  loadMs?: [number, number];
  serverArgs?: string[];
  /** Key prefix (several workloads can share a store). */
  prefix?: string;
  log?: (line: string) => void;
  /** Called after the kill and before the restart (the loop-device test copies its image here). */
  afterKill?: (round: number) => Promise<{ dataDir: string } | void>;
  /** Time budget: stop starting new rounds after this many ms. */
  budgetMs?: number;
  /** Probability per round of also killing a restarting server during its startup (recovery), 0..1. */
  startupKillRate?: number;
  /** Before the first round, store `keys` values of `valueBytes` under "pin/" (outside `prefix`);
   *  a third of the way into each round's load, open a GetPrefix over them and stop reading it. Its
   *  snapshot pins every page freed after it, so the commits write freelist segments
   *  (btree/freelist.ts) and the kill lands while they exist. */
  stalledReader?: { keys: number; valueBytes: number };
  /** Read Stat right before each kill and sum its commits and those synced on the event loop
   *  (lbserver --blocking-sync-us): the Stat is a call of another kind, so at most the one commit
   *  after it moves to the thread pool. */
  countEventLoopSyncs?: boolean;
}

export interface KillRoundsResult {
  rounds: number;
  sent: number;
  acked: number;
  /** Sent but not acknowledged before the kill, yet present after the restart (allowed). */
  unackedSurvived: number;
  lost: number;
  torn: number;
  wrongKey: number;
  phantom: number;
  prefixMismatch: number;
  /** Rounds where Stat's key count differed from the keys found (the store holds only our keys). */
  statMismatch: number;
  unexpectedErrors: number;
  bytesAcked: number;
  maxRestartMs: number;
  /** Restarts killed during startup (before or just after the ready line). */
  startupKills: number;
  /** With stalledReader: rounds killed while the store held freelist segments (Stat before the kill). */
  roundsWithSegments: number;
  /** With countEventLoopSyncs: commits before the kills, and how many synced on the event loop. */
  commitsBeforeKills: number;
  eventLoopSyncs: number;
  violations: string[];
}

/** What a kind of round must show besides losing nothing, or undefined if nothing: with
 *  stalledReader, rounds killed while freelist segments existed; with countEventLoopSyncs, most
 *  commits synced on the event loop (not all: a commit over 256 KiB, and values go up to 4 MiB,
 *  syncs on the thread pool whatever the option). */
export function roundsProperty(o: Pick<KillRoundsOptions, 'stalledReader' | 'countEventLoopSyncs'>, r: KillRoundsResult): { holds: boolean; summary: string } | undefined {
  if (o.stalledReader) return { holds: r.roundsWithSegments > 0, summary: `rounds killed while freelist segments existed ${r.roundsWithSegments}` };
  if (o.countEventLoopSyncs) return { holds: r.eventLoopSyncs > r.commitsBeforeKills / 2, summary: `commits before the kills synced on the event loop ${r.eventLoopSyncs} of ${r.commitsBeforeKills}` };
  return undefined;
}

interface KeyState {
  key: Buffer;
  owner: number;
  /** Version that was acknowledged last (0: none yet; the key may be absent). */
  acked: number;
  /** Versions the key may legitimately hold now, with their sizes (version 0 = absent). */
  possible: Map<number, number>;
  next: number;
  busy: boolean;
}

export async function runKillRounds(o: KillRoundsOptions): Promise<KillRoundsResult> {
  const log = o.log ?? ((l: string) => console.log(l));
  const rng = new Rng(o.seed);
  const C = o.clients ?? 8;
  const K = o.keys ?? 300;
  const P = o.inflightPerClient ?? 3;
  const maxValue = o.maxValueBytes ?? 4 * 1024 * 1024;
  const [loadMin, loadMax] = o.loadMs ?? [300, 2000];
  const prefix = o.prefix ?? 'k9/';
  const started = nowMs();
  const res: KillRoundsResult = {
    rounds: 0, sent: 0, acked: 0, unackedSurvived: 0, lost: 0, torn: 0, wrongKey: 0, phantom: 0,
    prefixMismatch: 0, statMismatch: 0, unexpectedErrors: 0, bytesAcked: 0, maxRestartMs: 0, startupKills: 0, roundsWithSegments: 0, commitsBeforeKills: 0, eventLoopSyncs: 0, violations: [],
  };
  const violation = (s: string) => { if (res.violations.length < 50) res.violations.push(s); };

  const keys: KeyState[] = [];
  for (let i = 0; i < K; i++) {
    keys.push({ key: Buffer.from(`${prefix}${String(i).padStart(5, '0')}`), owner: i % C, acked: 0,
      possible: new Map([[0, -1]]), next: 1, busy: false });
  }
  const byKey = new Map(keys.map((k) => [k.key.toString('latin1'), k]));
  let dataDir = o.dataDir;

  let server: ServerHandle | undefined;
  const start = async () => {
    const t0 = nowMs();
    server = await startServer({ dataDir, args: o.serverArgs ?? [] });
    return nowMs() - t0;
  };

  const PIN_PREFIX = 'pin/';
  try {
    await start();
    if (o.stalledReader) {
      const c = new KvClient(server!.address);
      try {
        for (let i = 0; i < o.stalledReader.keys; i++) await c.set(Buffer.from(`${PIN_PREFIX}${i}`), Buffer.alloc(o.stalledReader.valueBytes, i));
      } finally { c.close(); }
    }
    const extraKeys = o.stalledReader?.keys ?? 0;
    for (let round = 1; round <= o.rounds; round++) {
      if (o.budgetMs !== undefined && nowMs() - started > o.budgetMs) { log(`  time budget reached after ${round - 1} rounds`); break; }
      const srv = server!;
      // --- load ---
      let killed = false;
      const clients = Array.from({ length: C }, () => new KvClient(srv.address));
      const roundStats = { sent: 0, acked: 0 };
      const worker = async (c: number) => {
        const cl = clients[c];
        const mine = keys.filter((k) => k.owner === c);
        while (!killed) {
          const free = mine.filter((k) => !k.busy);
          if (free.length === 0) { await sleep(1); continue; }
          const ks = rng.pick(free);
          ks.busy = true;
          const version = ks.next++;
          const size = pickSize(rng, maxValue);
          const value = encodeValue(ks.key, version, c, size);
          ks.possible.set(version, value.length);
          roundStats.sent++;
          try {
            await cl.set(ks.key, value);
            // Sequential per key: this is the newest acknowledged version; older ones are overwritten.
            ks.acked = version;
            for (const v of ks.possible.keys()) if (v < version) ks.possible.delete(v);
            roundStats.acked++;
            res.bytesAcked += value.length;
          } catch (e) {
            if (!killed) { res.unexpectedErrors++; violation(`round ${round}: set ${ks.key} v${version} failed before the kill: ${describeError(e)}`); }
            ks.busy = false;
            if (killed) return;
            continue;
          }
          ks.busy = false;
        }
      };
      const workers: Promise<void>[] = [];
      for (let c = 0; c < C; c++) for (let p = 0; p < P; p++) workers.push(worker(c));
      const loadMs = rng.int(loadMin, loadMax);
      let pin: KvClient | undefined;
      let segmentsNote = '';
      if (o.stalledReader) {
        await sleep(Math.floor(loadMs / 3));
        pin = new KvClient(srv.address);
        const call = pin.raw.getPrefix({ prefix: Buffer.from(PIN_PREFIX), limit: 0 });
        call.on('error', () => {});
        call.once('data', () => call.pause());
        await sleep(loadMs - Math.floor(loadMs / 3));
        try {
          const s = await pin.stat();
          segmentsNote = `, ${s.freelistSegments} freelist segment references (${s.freelistLevels} levels, ${s.freelistSegmentPages} pages listed) and ${s.pendingFreePages} pinned pages at the kill`;
          if (Number(s.freelistSegments) > 0) res.roundsWithSegments++;
          // Segments list pinned pages, which Stat counts among the pending ones too.
          if ((Number(s.freelistSegments) > 0) !== (Number(s.freelistSegmentPages) > 0) || s.freelistSegmentPages > s.pendingFreePages + s.freePages) {
            res.unexpectedErrors++;
            violation(`round ${round}: Stat's freelist fields disagree: ${s.freelistSegments} segments, ${s.freelistSegmentPages} pages listed, ${s.pendingFreePages} pending, ${s.freePages} free`);
          }
        } catch (e) { res.unexpectedErrors++; violation(`round ${round}: Stat before the kill failed: ${describeError(e)}`); }
      } else {
        await sleep(loadMs);
      }
      if (o.countEventLoopSyncs) {
        const c = new KvClient(srv.address);
        try {
          const s = await c.stat();
          res.commitsBeforeKills += Number(s.commits);
          res.eventLoopSyncs += Number(s.totalBlockingSyncCommits);
        } catch (e) { res.unexpectedErrors++; violation(`round ${round}: Stat before the kill failed: ${describeError(e)}`); }
        c.close();
      }
      killed = true;
      await srv.kill9();
      await Promise.all(workers);
      for (const cl of clients) cl.close();
      pin?.close();
      res.sent += roundStats.sent;
      res.acked += roundStats.acked;
      const moved = o.afterKill ? await o.afterKill(round) : undefined;
      if (moved) dataDir = moved.dataDir;

      // --- sometimes crash the restart itself, in the middle of opening the store ---
      const startupKillRate = o.startupKillRate ?? 0.3;
      let startupNote = '';
      if (rng.next() < startupKillRate) {
        const delay = rng.int(100, 500);
        const k = await killDuringStartup(dataDir, o.serverArgs ?? [], delay);
        res.startupKills++;
        startupNote = `, startup killed at ${delay} ms${k.becameReady ? ' (was ready)' : ''}`;
      }

      // --- restart and verify ---
      const restartMs = await start();
      res.maxRestartMs = Math.max(res.maxRestartMs, restartMs);
      const v = new KvClient(server!.address);
      try {
        let lostNow = 0, survived = 0;
        const seen = new Map<string, Buffer | undefined>();
        for (const ks of keys) {
          let val: Buffer | undefined;
          try { val = await v.get(ks.key); } catch (e) { violation(`round ${round}: get ${ks.key} failed: ${describeError(e)}`); res.unexpectedErrors++; continue; }
          seen.set(ks.key.toString('latin1'), val);
          let version = 0;
          if (val !== undefined) {
            try {
              const d = decodeValue(val);
              if (!d.key.equals(ks.key)) { res.wrongKey++; violation(`round ${round}: ${ks.key} holds a value of key ${d.key}`); continue; }
              if (d.writer !== ks.owner) { res.wrongKey++; violation(`round ${round}: ${ks.key} holds a value by writer ${d.writer}, owner is ${ks.owner}`); continue; }
              version = d.version;
            } catch (e) { res.torn++; violation(`round ${round}: ${ks.key} torn value (${val.length} bytes): ${(e as Error).message}`); continue; }
          }
          const size = ks.possible.get(version);
          if (version < ks.acked) {
            res.lost++; lostNow++;
            violation(`round ${round}: LOST ${ks.key}: acknowledged v${ks.acked}, found ${val === undefined ? 'nothing' : 'v' + version}`);
          } else if (size === undefined || (version > 0 && size !== val!.length)) {
            res.phantom++;
            violation(`round ${round}: ${ks.key} holds v${version} (${val?.length} bytes), never sent with that size (acked v${ks.acked})`);
          } else {
            if (version > ks.acked) survived++;
            // The found value is now the baseline; unacknowledged later versions are gone for good.
            ks.acked = version;
            ks.possible = new Map([[version, size]]);
          }
        }
        res.unackedSurvived += survived;
        // GetPrefix must agree with Get, and hold nothing else under the prefix.
        const inPrefix = new Set<string>();
        let prev: Buffer | undefined;
        for await (const e of v.getPrefix(prefix)) {
          const ks = e.key.toString('latin1');
          if (prev && Buffer.compare(prev, e.key) >= 0) { res.prefixMismatch++; violation(`round ${round}: GetPrefix out of order at ${ks}`); }
          prev = e.key;
          inPrefix.add(ks);
          if (!byKey.has(ks)) { res.prefixMismatch++; violation(`round ${round}: GetPrefix returned unknown key ${ks}`); continue; }
          const g = seen.get(ks);
          if (!g || !g.equals(e.value)) { res.prefixMismatch++; violation(`round ${round}: GetPrefix value of ${ks} differs from Get (${e.value.length} vs ${g?.length} bytes)`); }
        }
        for (const [ks, g] of seen) {
          if (g !== undefined && !inPrefix.has(ks)) { res.prefixMismatch++; violation(`round ${round}: Get finds ${ks}, GetPrefix does not`); }
        }
        // The engine's key count (kept in the meta) must agree with what is there after recovery.
        const present = [...seen.values()].filter((x) => x !== undefined).length;
        const statKeys = Number((await v.stat()).keys) - extraKeys;
        if (statKeys !== present) { res.statMismatch++; violation(`round ${round}: Stat says ${statKeys} keys, ${present} found`); }
        res.rounds = round;
        log(`  round ${round}: load ${loadMs} ms, sent ${roundStats.sent}, acked ${roundStats.acked}, unacked-but-present ${survived}, lost ${lostNow}, restart ${restartMs.toFixed(0)} ms${startupNote}${segmentsNote}`);
      } finally {
        v.close();
      }
    }
  } finally {
    await server?.stop('SIGTERM');
  }
  log(`  total: ${res.rounds} rounds, ${res.acked} acknowledged sets (${mib(res.bytesAcked)}), ${res.sent} sent, lost ${res.lost}, torn ${res.torn}, wrong key ${res.wrongKey}, never-sent ${res.phantom}, prefix mismatches ${res.prefixMismatch}, Stat key-count mismatches ${res.statMismatch}, unexpected errors ${res.unexpectedErrors}, startups killed ${res.startupKills}, max restart ${res.maxRestartMs.toFixed(0)} ms`);
  return res;
}

/** An afterKill hook: destroy both meta pages of the killed server's file, as a disk that lost its
 *  first sectors would, and rebuild the store from its pages (lbserver --compact --salvage). The
 *  round's checks then hold the rebuild to what a restart promises: every acknowledged set there,
 *  with its value or one sent after it, nothing torn, stale or foreign. Returns what went wrong. */
export async function destroyMetasAndRebuild(dataDir: string): Promise<string | undefined> {
  const file = path.join(dataDir, DATA_FILE_NAME);
  const fd = fs.openSync(file, 'r+');
  try {
    for (const metaPage of [0, 2]) fs.writeSync(fd, Buffer.alloc(4096, 0xee), 0, 4096, metaPage * 4096);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  const r = await runNode(LBSERVER_JS, ['--data', dataDir, '--compact', '--salvage'], { timeoutMs: 120_000 });
  // The damaged original it keeps is of no further use here, and holds the file's size again.
  for (const f of fs.readdirSync(dataDir)) if (f.startsWith(`${DATA_FILE_NAME}.damaged-`)) fs.rmSync(path.join(dataDir, f));
  if (r.code !== 0) return `lbserver --compact --salvage exited ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`;
  if (!/rebuilt from the leaf pages/.test(r.stderr)) return `lbserver --compact --salvage did not rebuild from the pages: ${r.stderr.trim()}`;
  return undefined;
}

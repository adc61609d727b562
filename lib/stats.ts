// Service-level counters (completed operations) combined with the engine's stats into a StatResponse.
import { statSync } from 'node:fs';
import type { StoreStats } from '../btree/index';
import type { StatResponse } from '../generated/kv';

export class ServiceStats {
  /** Wall-clock time the server process started, ms since the epoch. */
  readonly startTimeUnixMs: number;
  /** Process start to serving, ms (set once the server listens). */
  startupMs = 0;
  totalSets = 0;
  totalGets = 0;
  totalGetprefixes = 0;
  failedSets = 0;
  failedGets = 0;
  failedGetprefixes = 0;
  cancelledGetprefixes = 0;
  /** GetPrefix streams ended because the client took nothing for --stream-stall-ms. */
  stalledGetprefixes = 0;
  /** Entries streamed by completed and cancelled GetPrefix calls. */
  prefixEntriesSent = 0;
  prefixMessagesSent = 0;
  /** Key + value bytes of the Sets received and not yet answered (each is held until its commit). */
  setBytesInFlight = 0;
  /** Value bytes of Get responses read and not yet taken by their clients (their streams still open). */
  getBytesInFlight = 0;

  constructor(startTimeUnixMs = Math.round(Date.now() - performance.now())) {
    this.startTimeUnixMs = startTimeUnixMs;
  }

  /** A call of `method` refused before its handler ran (from its message's length prefix, as busy
   *  while its request arrived, as stalled, or past --max-open-calls): a failure of that method, as
   *  its handler's refusals are. */
  countRefused(method: string): void {
    if (method === 'Set') this.failedSets++;
    else if (method === 'Get') this.failedGets++;
    else if (method === 'GetPrefix') this.failedGetprefixes++;
  }

  /** The Stat reply: our counters plus the engine's. `dataFile` is used when the engine reports no size. */
  toStatResponse(engine: StoreStats, dataFile?: string): StatResponse {
    let dbFileBytes = engine.fileBytes;
    if (!dbFileBytes && dataFile) {
      try { dbFileBytes = statSync(dataFile).size; } catch { dbFileBytes = 0; }
    }
    const u = (n: number) => (Number.isFinite(n) && n > 0 ? Math.floor(n) : 0);
    return {
      startTimeUnixMs: this.startTimeUnixMs,
      startupMs: u(this.startupMs),
      uptimeMs: u(Date.now() - this.startTimeUnixMs),
      totalSets: this.totalSets,
      totalGets: this.totalGets,
      totalGetprefixes: this.totalGetprefixes,
      keys: u(engine.keys),
      dbFileBytes: u(dbFileBytes),
      commits: u(engine.commits),
      fsyncs: u(engine.fsyncs),
      cacheHits: u(engine.cacheHits),
      cacheMisses: u(engine.cacheMisses),
      maxBatchSize: u(engine.maxBatch),
      meanBatchSize: Number.isFinite(engine.meanBatch) ? engine.meanBatch : 0,
      openSnapshots: u(engine.openSnapshots),
      freePages: u(engine.freePages),
      pageCount: u(engine.pageCount),
      lastTxid: u(engine.txid),
      failedSets: this.failedSets,
      meanCommitPrepareUs: engine.commits ? engine.commitPrepareUs / engine.commits : 0,
      meanCommitSyncUs: engine.commits ? engine.commitLastSyncUs / engine.commits : 0,
      totalCommitPrepareUs: u(engine.commitPrepareUs),
      totalCommitSyncUs: u(engine.commitLastSyncUs),
      totalCommitPages: u(engine.commitPages),
      totalCommitRuns: u(engine.commitRuns),
      totalBlockingSyncCommits: u(engine.blockingSyncCommits),
      setBytesInFlight: this.setBytesInFlight,
      stalledGetprefixes: this.stalledGetprefixes,
      pendingFreePages: u(engine.pendingFreePages),
      freelistSegments: u(engine.freelistSegments),
      freelistLevels: u(engine.freelistLevels),
      freelistSegmentPages: u(engine.freelistSegmentPages),
      openWarnings: [...engine.openWarnings],
      failedGets: this.failedGets,
      failedGetprefixes: this.failedGetprefixes,
    };
  }
}

// lbclient stat's output: the server's statistics for a reader, or with the proto's field names.
import type { StatResponse } from './client';

function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = -1;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** StatResponse with the proto's field names (snake_case). */
export function statToProtoNames(s: StatResponse): Record<string, number | string[]> {
  const out: Record<string, number | string[]> = {};
  for (const [k, v] of Object.entries(s)) out[k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase())] = v as number | string[];
  return out;
}

export function humanStat(addr: string, s: StatResponse): string {
  const rows: [string, string][] = [
    ['server', addr],
    ['start time', `${new Date(s.startTimeUnixMs).toISOString()} (start_time_unix_ms ${s.startTimeUnixMs})`],
    ['startup_ms', String(s.startupMs)],
    ['uptime', `${(s.uptimeMs / 1000).toFixed(1)} s`],
    ['total_sets', String(s.totalSets)],
    ['total_gets', String(s.totalGets)],
    ['total_getprefixes', String(s.totalGetprefixes)],
    ['failed_sets', String(s.failedSets)],
    ['failed_gets', String(s.failedGets)],
    ['failed_getprefixes', String(s.failedGetprefixes)],
    ['keys', String(s.keys)],
    ['db_file_bytes', `${s.dbFileBytes} (${fmtBytes(s.dbFileBytes)})`],
    ['page_count', String(s.pageCount)],
    ['free_pages', String(s.freePages)],
    ['pending_free_pages', `${s.pendingFreePages} (freed, kept for open snapshots and the previous commit)`],
    ['freelist_segments', `${s.freelistSegments} (${s.freelistLevels} levels), listing ${s.freelistSegmentPages} freed pages`],
    ['last_txid', String(s.lastTxid)],
    ['commits', String(s.commits)],
    ['fsyncs', String(s.fsyncs)],
    ['batch size', `mean ${s.meanBatchSize.toFixed(2)}, max ${s.maxBatchSize}`],
    ['commit time', `mean ${s.meanCommitPrepareUs.toFixed(0)} us before the fdatasync + ${s.meanCommitSyncUs.toFixed(0)} us in it`],
    ['sets in flight', `${s.setBytesInFlight} bytes waiting for their commit`],
    ['event-loop syncs', `${s.totalBlockingSyncCommits} of ${s.commits} commits (the rest on the thread pool)`],
    ['commit writes', s.commits > 0 ? `mean ${(s.totalCommitPages / s.commits).toFixed(1)} pages in ${(s.totalCommitRuns / s.commits).toFixed(1)} runs + meta and root` : 'none yet'],
    ['cache', `${s.cacheHits} hits, ${s.cacheMisses} misses` +
      (s.cacheHits + s.cacheMisses > 0 ? ` (${((100 * s.cacheHits) / (s.cacheHits + s.cacheMisses)).toFixed(1)}% hits)` : '')],
    ['open_snapshots', String(s.openSnapshots)],
    ['stalled_getprefixes', `${s.stalledGetprefixes} (ended after --stream-stall-ms without progress)`],
    ...s.openWarnings.map((w): [string, string] => ['open warning', w]),
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n';
}

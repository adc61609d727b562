// Markdown tables printed both by a benchmark at the end of its run and by summarize from the
// committed result file, so the two cannot drift apart.
import type { LatencySummary } from './common';

export interface BlockingSyncRow {
  load: string;
  mode: string;
  throughput: number;
  read: LatencySummary;
  write: LatencySummary;
  commits: number;
  blockingSyncCommits: number;
}

/** bench-blocking-sync's results: one line per load and server. */
export function blockingSyncTable(rows: BlockingSyncRow[]): string[] {
  const lat = (s: LatencySummary) => (s.count ? `${s.p50Us} / ${s.p99Us}` : '');
  return [
    '| load | server | ops/s | read p50 / p99 (us) | write p50 / p99 (us) | commits on the event loop |',
    '|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.load} | ${r.mode} | ${Math.round(r.throughput).toLocaleString('en-US')} | ${lat(r.read)} | ${lat(r.write)} | ${r.blockingSyncCommits} of ${r.commits} |`),
  ];
}

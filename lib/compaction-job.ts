// Offline compaction (lbserver --compact, and --salvage of a damaged store): the copy job, what it
// reports while it runs, and how SIGTERM/SIGINT/SIGHUP stop it. The CLI holds the LOCK and decides the exit.
import { rmSync } from 'node:fs';
import { compactFileOf, Store, StoreError, type Loss, type OpenOptions } from '../btree/index';
import { keepDamaged } from './data-dir';
import { EXIT } from './exit-status';
import type { DirLock } from './lock';
import { onStopSignals } from './shutdown';
import { failureText, log, mib } from './server-log';

/** What runCompaction runs: compact() of an open store, or Store.rebuild() of one that would not
 *  open. `keys`: how many the store had, when known. */
export interface CopyJob {
  keys?: number;
  /** The original is damaged whatever the copy finds (it would not open): keep it. */
  damaged?: boolean;
  run(opts: { signal: AbortSignal; onInstall: () => void; onLoss?: (l: Loss) => void; progress: (copied: number, total: number, what: string) => void }): Promise<{ keys: number; beforeBytes: number; afterBytes: number; from?: 'tree' | 'pages' }>;
  close(): Promise<void>;
}

/** The copy of an open store's live data. */
export function compactJob(open: Store): CopyJob {
  return {
    keys: open.stats().keys,
    run: ({ progress, ...rest }) => open.compact((copied, total) => progress(copied, total, 'keys'), rest),
    close: () => open.close(),
  };
}

/** No tree to walk: rebuild from the leaf pages themselves (Store.rebuild). */
export function rebuildJob(openOptions: OpenOptions): CopyJob {
  return {
    run: ({ progress, ...rest }) => Store.rebuild(openOptions, { ...rest, progress: (phase, done, total) => progress(done, total, phase === 'scan' ? 'pages scanned' : 'copied') }),
    close: async () => undefined,
    damaged: true,
  };
}

/** A compaction that failed or was aborted; the message says which, and that the data file stays. */
export class CompactionError extends Error {}

/** A key for a log line: as text when it is printable ASCII, else as hex. */
function showKey(k: Buffer): string {
  return /^[\x20-\x7e]*$/.test(k.toString('latin1')) ? JSON.stringify(k.toString('latin1')) : `0x${k.toString('hex')}`;
}

function describeLoss(l: Loss): string {
  const where = l.page !== undefined ? ` (page ${l.page})` : '';
  if (l.keysUnknown) return `page ${l.page}: ${l.reason}`;
  if (l.key) return `the value of key ${showKey(l.key)}${where}: ${l.reason}`;
  const range = `keys from ${l.from ? showKey(l.from) : 'the first'} up to ${l.to ? `${showKey(l.to)} (exclusive)` : 'the last'}`;
  return `a damaged tree page${where} holding ${range}: ${l.reason}`;
}

/** Offline compaction (the file never shrinks by itself): the caller holds the LOCK, so no server
 *  runs on it; it is released before this returns or throws. SIGTERM/SIGINT/SIGHUP abort it (a
 *  CompactionError): the copy stops, the partial file goes, the data file stays. Resolves with the
 *  line that reports the compaction done. */
export async function runCompaction(job: CopyJob, lock: DirLock, dataFile: string, salvage: boolean): Promise<string> {
  const started = performance.now();
  let shown = -1;
  let shownWhat = '';
  const tmp = compactFileOf(dataFile);
  let losses = 0;
  // Exiting at once, as at startup, would leave the partial copy behind.
  const abort = new AbortController();
  // Past the copy's last abort check the compacted file is being renamed over the data file (a
  // rename and a directory sync): too late to abort, and exiting would leave the outcome unsaid.
  let installing = false;
  const onSignal = (sig: string) => {
    if (installing) {
      log(`${sig}: the compacted copy of ${dataFile} is being installed; finishing (a moment)`);
      return;
    }
    if (!abort.signal.aborted) {
      log(`${sig}: aborting the compaction of ${dataFile}`);
      abort.abort(new Error(sig));
      return;
    }
    // A second signal does not wait for the batch being copied; the copy was never the data file.
    log(`${sig} again: exiting now`);
    rmSync(tmp, { force: true });
    lock.release();
    process.exit(EXIT.FAILED);
  };
  onStopSignals(onSignal);
  try {
    const r = await job.run({
      progress: (copied, total, what) => {
        const pct = total ? Math.floor((copied / total) * 100) : 100;
        if (what !== shownWhat) [shown, shownWhat] = [-1, what];
        if (pct >= shown + 10 || copied === total) {
          shown = pct;
          log(`compacting ${dataFile}: ${copied}/${total} ${what} (${pct}%)`);
        }
      },
      signal: abort.signal,
      onInstall: () => {
        installing = true;
        // A salvage that left something out replaces a file a better tool might read more of:
        // keep it. Throwing here fails the compaction with the original in place.
        if (losses > 0 || job.damaged) log(`salvage: the damaged original stays as ${keepDamaged(dataFile)}`);
      },
      onLoss: salvage ? (l) => { losses++; log(`salvage: left out ${describeLoss(l)}`); } : undefined,
    });
    await job.close();
    lock.release();
    if (abort.signal.aborted) log('the signal came after the copy was complete: the compaction finished');
    const of = job.keys === undefined ? '' : ` of ${job.keys}`;
    const damaged = `${losses} damaged ${losses === 1 ? 'page or value' : 'pages or values'}`;
    const kept = salvage ? `${r.keys}${of} keys kept (${damaged} left out)` : `${r.keys} keys`;
    if (r.from === 'tree') {
      // The tree of a commit whose meta verifies is copied exactly only if none of its pages failed:
      // a file cut short loses its freelist and tree pages alike.
      const left = losses === 0 ? 'every key of that commit is kept' : `${damaged} of its tree left out (listed above), the keys ${losses === 1 ? 'it' : 'they'} held lost`;
      log(`salvage: rebuilt from the tree of the last commit a meta page verifies (its freelist could not be read): ${left}`);
    } else if (r.from) {
      log('salvage: rebuilt from the leaf pages (no meta page verifies): each key has the newest value found');
    }
    return `compacted ${dataFile}: ${kept}, ${mib(r.beforeBytes)} MiB -> ${mib(r.afterBytes)} MiB in ${((performance.now() - started) / 1000).toFixed(1)} s`;
  } catch (e) {
    await job.close().catch(() => {});
    lock.release();
    if (abort.signal.aborted && e === abort.signal.reason) {
      throw new CompactionError(`compaction of ${dataFile} aborted by ${(e as Error).message}: ${dataFile} is unchanged, the partial copy removed`);
    }
    const what = failureText(e);
    const hint = e instanceof StoreError && e.code === 'CORRUPTION' && !salvage ? ' (--compact --salvage copies what can still be read)' : '';
    throw new CompactionError(`compaction of ${dataFile} failed: ${what}${hint}`);
  }
}

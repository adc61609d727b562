#!/usr/bin/env node
// lbserver: serves one data directory over gRPC. Prints exactly one line to stdout when it serves;
// everything else goes to stderr. SIGTERM/SIGINT: stop accepting, finish in-flight calls, close the
// store, remove the lock, exit 0 (forced after --shutdown-timeout-ms).
import { Command, CommanderError } from 'commander';
import { closeSync, constants as fsConstants, copyFileSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { compactFileOf, isForeignFormat, Store, StoreError, type Loss } from '../btree/index';
import { ConfigError, DATA_FILE_NAME, DEFAULT_CONFIG, configFromOptions, packageVersion, type ServerConfig } from '../lib/config';
import { acquireDirLock, LockError, type DirLock } from '../lib/lock';
import { bindServer, createGrpcServer, forceStop } from '../lib/grpc-server';
import { KvService } from '../lib/service';
import { ServiceStats } from '../lib/stats';

/** Exit status, so a supervisor can tell a problem worth a restart from one that is not. */
export const EXIT = {
  OK: 0,
  /** Failed while running: closing the store, compaction (or --compact stopped by a signal). */
  FAILED: 1,
  /** Bad command line or option value. */
  USAGE: 2,
  /** Another lbserver holds the data directory (LOCK). */
  LOCKED: 3,
  /** The data directory or file cannot be created or opened: corrupt, unreadable, another format. */
  DATA: 4,
  /** Cannot listen on the address (in use, not local, no permission). */
  LISTEN: 5,
} as const;

function fail(msg: string, code: number = EXIT.FAILED): never {
  process.stderr.write(`lbserver: ${msg}\n`);
  process.exit(code);
}

/** mkdir -p one level at a time; returns the directories it made, outermost first. Node's
 *  recursive mkdirSync never returns where a directory cannot be made in an existing parent that
 *  answers ENOENT (under /proc: it spins at 100 % CPU, deaf to SIGTERM); this gives up with that
 *  error. */
function makeDirs(dir: string): string[] {
  const abs = resolve(dir);
  try {
    return makeDir(abs) ? [abs] : [];
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(abs) === abs) throw e;
    const made = makeDirs(dirname(abs));
    return makeDir(abs) ? [...made, abs] : made;
  }
}

/** mkdir, content with a directory that is already there (another starter may have made it);
 *  whether it made it. */
function makeDir(abs: string): boolean {
  try {
    mkdirSync(abs);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || !statSync(abs).isDirectory()) throw e;
    return false;
  }
}

/** A start that failed after making a fresh store takes it away again, and the directories it made:
 *  a mistyped --listen must not leave an empty store behind. Only empty directories go. The store
 *  goes while we still hold the LOCK, which is released only then: a starter that took the LOCK
 *  the moment it was free could otherwise have its new store removed under it. The directories go
 *  after (the LOCK is in the innermost; rmdir removes only empty ones, so not one another starter
 *  has put its LOCK or store in). */
function unmake(dataFile: string | undefined, dirs: string[], lock: DirLock): void {
  try {
    if (dataFile) rmSync(dataFile, { force: true });
  } finally {
    lock.release();
  }
  for (const d of [...dirs].reverse()) {
    try { rmdirSync(d); } catch { break; }
  }
}

/** A byte count as the options take it back: 64MiB rather than 67108864. */
function showBytes(n: number): string {
  for (const [unit, size] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) if (n % size === 0 && n >= size) return `${n / size}${unit}`;
  return String(n);
}

/** Options that only matter while serving, which --compact does not do. */
const SERVING_ONLY = ['--listen', '--max-inflight-set-mb', '--max-inflight-get-mb', '--max-open-calls', '--stream-buffer-mb', '--shutdown-timeout-ms', '--stream-stall-ms', '--blocking-sync-us'];

function log(msg: string): void {
  process.stderr.write(`lbserver: ${msg}\n`);
}

// A signal during startup (before the server serves) exits at once; the engine is crash-safe, so
// stopping mid-open is fine. Replaced by the real handlers once the server is up.
let startupLock: DirLock | undefined;
// --compact stopped before it began has compacted nothing: not the 0 of a compaction done.
let startupExitCode: number = EXIT.OK;
const onStartupSignal = (sig: string) => {
  log(`${sig} during startup: exiting`);
  startupLock?.release();
  process.exit(startupExitCode);
};
const startupSigterm = () => onStartupSignal('SIGTERM');
const startupSigint = () => onStartupSignal('SIGINT');
process.on('SIGTERM', startupSigterm);
process.on('SIGINT', startupSigint);

/** A key for a log line: as text when it is printable ASCII, else as hex. */
function showKey(k: Buffer): string {
  return /^[\x20-\x7e]*$/.test(k.toString('latin1')) ? JSON.stringify(k.toString('latin1')) : `0x${k.toString('hex')}`;
}

/** Gives the data file a second name (a hard link, else a copy), so that installing the salvaged
 *  copy over it does not destroy it; returns that name. */
function keepDamaged(dataFile: string): string {
  const kept = `${dataFile}.damaged-${new Date().toISOString().replace(/[-:]|\.\d+/g, '')}`;
  try {
    linkSync(dataFile, kept);
  } catch {
    copyFileSync(dataFile, kept, fsConstants.COPYFILE_EXCL);
  }
  const dir = openSync(dirname(kept), 'r');
  try { fsyncSync(dir); } finally { closeSync(dir); }
  return kept;
}

/** Removes the partial copy an interrupted compaction left (see its call); the caller holds the LOCK. */
function removeLeftoverCopy(dataFile: string): void {
  const tmp = compactFileOf(dataFile);
  let bytes: number;
  try {
    bytes = statSync(tmp).size;
  } catch {
    return; // none (the usual case)
  }
  if (!existsSync(dataFile)) {
    // Not what a compaction leaves (it renames its copy over a data file that exists): someone moved
    // the data file away. The copy may be all there is; leave it to them.
    log(`warning: ${tmp} is there but ${dataFile} is not; left as it is (a new, empty store is created beside it)`);
    return;
  }
  try {
    rmSync(tmp, { force: true });
    log(`note: removed ${tmp} (${(bytes / (1024 * 1024)).toFixed(1)} MiB), the partial copy of a compaction that was interrupted; ${dataFile} is as it was`);
  } catch (e) {
    log(`warning: cannot remove ${tmp}, the partial copy of an interrupted compaction: ${(e as Error).message}`);
  }
}

function describeLoss(l: Loss): string {
  const where = l.page !== undefined ? ` (page ${l.page})` : '';
  if (l.keysUnknown) return `page ${l.page}: ${l.reason}`;
  if (l.key) return `the value of key ${showKey(l.key)}${where}: ${l.reason}`;
  const range = `keys from ${l.from ? showKey(l.from) : 'the first'} up to ${l.to ? `${showKey(l.to)} (exclusive)` : 'the last'}`;
  return `a damaged tree page${where} holding ${range}: ${l.reason}`;
}

/** What compactAndExit runs: compact() of an open store, or Store.rebuild() of one that would not
 *  open. `keys`: how many the store had, when known. */
interface CopyJob {
  keys?: number;
  /** The original is damaged whatever the copy finds (it would not open): keep it. */
  damaged?: boolean;
  run(opts: { signal: AbortSignal; onInstall: () => void; onLoss?: (l: Loss) => void; progress: (copied: number, total: number, what: string) => void }): Promise<{ keys: number; beforeBytes: number; afterBytes: number; from?: 'tree' | 'pages' }>;
  close(): Promise<void>;
}

/** Offline compaction (the file never shrinks by itself): holds the LOCK, so no server runs on it.
 *  SIGTERM/SIGINT abort it (exit 1): the copy stops, the partial file goes, the data file stays. */
async function compactAndExit(job: CopyJob, lock: DirLock, dataFile: string, salvage: boolean): Promise<never> {
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
  const onSignal = (sig: NodeJS.Signals) => {
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
  process.off('SIGTERM', startupSigterm);
  process.off('SIGINT', startupSigint);
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
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
    const mib = (n: number) => (n / (1024 * 1024)).toFixed(1);
    const of = job.keys === undefined ? '' : ` of ${job.keys}`;
    const kept = salvage ? `${r.keys}${of} keys kept (${losses} damaged ${losses === 1 ? 'page or value' : 'pages or values'} left out)` : `${r.keys} keys`;
    if (r.from === 'tree') {
      // The tree of a commit whose meta verifies is copied exactly only if none of its pages failed:
      // a file cut short loses its freelist and tree pages alike.
      const left = losses === 0 ? 'every key of that commit is kept' : `${losses} damaged ${losses === 1 ? 'page or value' : 'pages or values'} of its tree left out (listed above), the keys ${losses === 1 ? 'it' : 'they'} held lost`;
      log(`salvage: rebuilt from the tree of the last commit a meta page verifies (its freelist could not be read): ${left}`);
    } else if (r.from) {
      log('salvage: rebuilt from the leaf pages (no meta page verifies): each key has the newest value found');
    }
    process.stdout.write(`lbserver: compacted ${dataFile}: ${kept}, ${mib(r.beforeBytes)} MiB -> ${mib(r.afterBytes)} MiB in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
    process.exit(0);
  } catch (e) {
    await job.close().catch(() => {});
    lock.release();
    if (abort.signal.aborted && e === abort.signal.reason) {
      fail(`compaction of ${dataFile} aborted by ${(e as Error).message}: ${dataFile} is unchanged, the partial copy removed`);
    }
    const what = e instanceof StoreError ? `${e.code}: ${e.message}` : (e as Error).message;
    const hint = e instanceof StoreError && e.code === 'CORRUPTION' && !salvage ? ' (--compact --salvage copies what can still be read)' : '';
    fail(`compaction of ${dataFile} failed: ${what}${hint}`);
  }
}

async function main(): Promise<void> {
  const program = new Command()
    .name('lbserver')
    .description('lbkv server: a durable key-value store (copy-on-write B+tree) served over gRPC')
    .option('--listen <addr>', 'host:port to listen on', DEFAULT_CONFIG.listen)
    .option('--data <dir>', `data directory (holds ${DATA_FILE_NAME} and LOCK; created if missing)`, DEFAULT_CONFIG.dataDir)
    .option('--cache-mb <n>', 'memory for the page and value caches, MiB', String(DEFAULT_CONFIG.cacheMB))
    .option('--max-value-bytes <n>', 'largest value accepted (bytes; suffixes KiB/MiB/GiB allowed)', showBytes(DEFAULT_CONFIG.maxValueBytes))
    .option('--max-key-bytes <n>', 'largest key Set accepts (bytes, 1..1024: what the file format holds); Get and GetPrefix take up to 1024 whatever it is', String(DEFAULT_CONFIG.maxKeyBytes))
    .option('--sync-mode <mode>', 'commit protocol: "one" (one fdatasync per commit, verified meta) or "two" (pages, sync, meta, sync)', DEFAULT_CONFIG.syncMode)
    .option('--blocking-sync-us <n>', 'while the median recent fdatasync is at most this many microseconds, small commits sync on the event loop (saves two thread hand-offs; stalls other calls for one sync; helps a lone writer only); 0: always on the thread pool', String(DEFAULT_CONFIG.blockingSyncUs))
    .option('--max-inflight-set-mb <n>', 'server-wide bound, in MiB, on the bytes of Sets waiting for their commit; a Set over it gets RESOURCE_EXHAUSTED (one Set alone always goes through)', String(DEFAULT_CONFIG.maxSetBytesInFlight / (1024 * 1024)))
    .option('--max-inflight-get-mb <n>', 'server-wide bound, in MiB, on the value bytes of Get responses read and not yet taken by their clients; a Get over it gets RESOURCE_EXHAUSTED (one Get alone always goes through)', String(DEFAULT_CONFIG.maxGetBytesInFlight / (1024 * 1024)))
    .option('--max-open-calls <n>', 'server-wide bound on the calls (HTTP/2 streams) open at once; a call over it gets RESOURCE_EXHAUSTED', String(DEFAULT_CONFIG.maxOpenCalls))
    .option('--stream-buffer-mb <n>', 'server-wide bound, in MiB, on GetPrefix data read and not yet sent, summed over all streams', String(DEFAULT_CONFIG.streamBufferBytes / (1024 * 1024)))
    .option('--shutdown-timeout-ms <n>', 'on SIGTERM/SIGINT, wait this long for in-flight calls, then end those left with UNAVAILABLE (a Set so ended may or may not be applied)', String(DEFAULT_CONFIG.shutdownTimeoutMs))
    .option('--stream-stall-ms <n>', 'end a GetPrefix stream with ABORTED when its client takes nothing for this long (its snapshot keeps freed pages from reuse), a call whose request sends nothing more for this long, and reset a Get whose answer its client takes none of for this long; 0: never', String(DEFAULT_CONFIG.streamStallMs))
    .option('--compact', 'do not serve: copy the live data into a new file, replace the old one atomically, print the sizes, exit')
    .option('--salvage', 'with --compact: copy what can still be read of a damaged store, listing each damaged page or value left out (with the keys it held) on stderr, instead of refusing; a store that will not open at all (both meta pages damaged) is rebuilt from its leaf pages, each key with the newest value found; the damaged original is kept as lbkv.db.damaged-<time>')
    .version(packageVersion(), '--version', 'print the version and exit')
    .addHelpText('after', `
Prints one line when it serves, e.g.
  lbserver listening on 127.0.0.1:50051 data=/abs/data keys=123 startup_ms=41.2
Only one lbserver may use a data directory at a time (LOCK file holding its PID, boot ID and start time).

Exit status: 0 stopped cleanly (SIGTERM/SIGINT) or --compact done; 1 failed while running, or
--compact stopped by SIGTERM/SIGINT (the data file is left as it was); 2 bad usage or option
value; 3 the data directory is in use by another lbserver; 4 the data directory or file cannot
be created or opened (corrupt, unreadable, another format); 5 cannot listen on the address.

Examples:
  lbserver --listen 127.0.0.1:50051 --data ./data
  lbserver --data /var/lib/lbkv --cache-mb 256 --max-value-bytes 16MiB
  lbserver --data ./data --compact      (offline: shrink the file to the live data)
  lbserver --data ./data --compact --salvage   (keep what a damaged file still holds)`)
    .showHelpAfterError('(run lbserver --help for usage)')
    .allowExcessArguments(false)
    .exitOverride();
  try {
    program.parse(process.argv);
  } catch (e) {
    // Commander has printed its message (or the help) already.
    if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? EXIT.OK : EXIT.USAGE);
    throw e;
  }
  const o = program.opts();
  if (o.salvage && !o.compact) fail('--salvage goes with --compact (it says how to copy a damaged store)', EXIT.USAGE);
  if (o.compact) {
    startupExitCode = EXIT.FAILED;
    const ignored = program.options.filter((opt) => SERVING_ONLY.includes(opt.long ?? '') && program.getOptionValueSource(opt.attributeName()) === 'cli').map((opt) => opt.long);
    if (ignored.length) log(`note: --compact does not serve, so ${ignored.join(', ')} ${ignored.length === 1 ? 'has' : 'have'} no effect`);
  }

  let cfg: ServerConfig;
  try {
    cfg = configFromOptions(o);
  } catch (e) {
    if (e instanceof ConfigError) fail(e.message, EXIT.USAGE);
    throw e;
  }

  const dataFile = join(cfg.dataDir, DATA_FILE_NAME);
  // A mistyped --data must not be "compacted" into a new empty store.
  if (o.compact && !existsSync(dataFile)) fail(`--compact: there is no ${dataFile} (is --data right?); nothing was created`, EXIT.DATA);
  let madeDirs: string[] = [];
  try {
    madeDirs = makeDirs(cfg.dataDir);
  } catch (e) {
    const exists = (e as NodeJS.ErrnoException).code === 'EEXIST' || (e as NodeJS.ErrnoException).code === 'ENOTDIR';
    fail(exists ? `--data ${cfg.dataDir} is not a directory` : `cannot create data directory ${cfg.dataDir}: ${(e as Error).message}`, EXIT.DATA);
  }

  let lock: DirLock;
  try {
    lock = acquireDirLock(cfg.dataDir);
    startupLock = lock;
    if (lock.replaced) log(`note: replaced ${lock.replaced} in ${cfg.dataDir}`);
  } catch (e) {
    // Exit 3 means another lbserver holds the directory; a lock that cannot be made at all (no
    // permission, a read-only file system) is a problem of the data directory.
    if (e instanceof LockError) fail(`refusing to start: ${e.message}`, e.holderPid !== undefined ? EXIT.LOCKED : EXIT.DATA);
    throw e;
  }

  // A --compact (or --compact --salvage) killed before it installed its copy (kill -9, OOM, power
  // cut) leaves the partial copy behind, as large as the live data it had copied: nothing else ever
  // removes it but the next --compact, so a server would run beside it without a word while it
  // holds the disk. We hold the LOCK, so no compaction is using it: the data file is whole without
  // it (the copy only ever replaces it by a rename), so remove it and say so.
  removeLeftoverCopy(dataFile);

  const fresh = !existsSync(dataFile);
  const openOptions = {
    path: dataFile,
    cacheMB: cfg.cacheMB,
    syncMode: cfg.syncMode,
    blockingSyncUs: cfg.blockingSyncUs,
    maxValueBytes: cfg.maxValueBytes,
    // Not --max-key-bytes: the service holds Sets to it, and Gets only to what the format holds
    // (keys stored under a larger --max-key-bytes stay readable); the engine's default is that.
  };
  let store: Store;
  try {
    store = await Store.open(openOptions);
  } catch (e) {
    const what = e instanceof StoreError ? `${e.code}: ${e.message}` : (e as Error).message;
    // A meta page of another format or another program's file is not damage: nothing to rebuild.
    const damaged = e instanceof StoreError && e.code === 'CORRUPTION' && !isForeignFormat(e.message);
    if (o.salvage && damaged) {
      // No tree to walk: rebuild from the leaf pages themselves (Store.rebuild).
      log(`salvage: cannot open ${dataFile} (${what}); rebuilding it: from the tree of its last commit if a meta page still verifies, else from the pages that pass their checks, each key with the newest value found`);
      await compactAndExit({
        run: ({ progress, ...rest }) => Store.rebuild(openOptions, { ...rest, progress: (phase, done, total) => progress(done, total, phase === 'scan' ? 'pages scanned' : 'copied') }),
        close: async () => undefined,
        damaged: true,
      }, lock, dataFile, true);
    }
    lock.release();
    const hint = damaged ? ' (lbserver --compact --salvage rebuilds it from what its pages still hold)' : '';
    fail(`cannot open ${dataFile}: ${what}${hint}`, EXIT.DATA);
  }
  for (const w of store.openWarnings) log(`warning: ${w}`);
  if (o.compact) {
    const open = store;
    await compactAndExit({
      keys: open.stats().keys,
      run: ({ progress, ...rest }) => open.compact((copied, total) => progress(copied, total, 'keys'), rest),
      close: () => open.close(),
    }, lock, dataFile, o.salvage === true);
  }

  const stats = new ServiceStats();
  const service = new KvService(store, cfg, stats);
  const server = createGrpcServer(service, cfg);
  let port: number;
  try {
    port = await bindServer(server, cfg.listen);
    service.watch(server);
  } catch (e) {
    await store.close().catch(() => {});
    unmake(fresh ? dataFile : undefined, madeDirs, lock);
    const msg = (e as Error).message;
    const hint = /EADDRINUSE|address already in use/i.test(msg) ? ' (address already in use: is another server listening there?)' : '';
    fail(`cannot listen on ${cfg.listen}${hint}: ${msg}`, EXIT.LISTEN);
  }

  let stopping = false;
  let hurry: (() => void) | undefined; // a second signal while waiting: force now
  const shutdown = async (signal: string) => {
    if (stopping) {
      log(`${signal} again: forcing shutdown`);
      if (hurry) hurry();
      else server.forceShutdown();
      return;
    }
    stopping = true;
    log(`${signal}: shutting down (finishing ${service.openCalls} in-flight calls)`);
    service.beginShutdown();
    const closed = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    let timer: NodeJS.Timeout | undefined;
    let hurried = false;
    const forced = await Promise.race([
      closed.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), cfg.shutdownTimeoutMs);
        hurry = () => { hurried = true; resolve(true); };
      }),
    ]);
    clearTimeout(timer);
    hurry = undefined;
    if (forced) {
      log(`${service.openCalls} in-flight calls did not finish${hurried ? '' : ` within ${cfg.shutdownTimeoutMs} ms`}: forcing (ending them with UNAVAILABLE)`);
      await forceStop(server, service, closed, hurried ? 0 : undefined);
    }
    // Engine calls already started (e.g. a Set whose client went away) finish before the store closes.
    const deadline = Date.now() + Math.max(1000, cfg.shutdownTimeoutMs);
    while (service.callsInFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    let code: number = EXIT.OK;
    try {
      await store.close();
    } catch (e) {
      log(`error closing the store: ${(e as Error).message}`);
      code = EXIT.FAILED;
    }
    lock.release();
    log(`stopped${forced ? ' (forced)' : ''}`);
    process.exit(code);
  };
  // Handlers go in before the ready line: whoever reads that line may signal us at once.
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.off('SIGTERM', startupSigterm);
  process.off('SIGINT', startupSigint);

  const address = cfg.listen.replace(/:\d+$/, `:${port}`);
  stats.startupMs = performance.now();
  let keys = 0;
  try { keys = store.stats().keys; } catch { /* stats are best effort */ }
  process.stdout.write(`lbserver listening on ${address} data=${cfg.dataDir} keys=${keys} startup_ms=${stats.startupMs.toFixed(1)}\n`);
}

// If whoever started us stops reading our output, keep serving rather than die on EPIPE.
process.stdout.on('error', () => {});
process.stderr.on('error', () => {});

// A bad request or a bug in one call must never take the server down: log and keep serving.
process.on('uncaughtException', (err) => log(`uncaught exception (continuing): ${err?.stack ?? err}`));
process.on('unhandledRejection', (err) => log(`unhandled rejection (continuing): ${(err as Error)?.stack ?? err}`));

main().catch((e) => fail(`fatal: ${(e as Error)?.stack ?? e}`));

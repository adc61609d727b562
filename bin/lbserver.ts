#!/usr/bin/env node
// lbserver: serves one data directory over gRPC. Prints exactly one line to stdout when it serves;
// everything else goes to stderr. SIGTERM/SIGINT/SIGHUP: stop accepting, finish in-flight calls, close the
// store, remove the lock, exit 0 (forced after --shutdown-timeout-ms).
import { Command, CommanderError } from 'commander';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { isForeignFormat, Store, StoreError } from '../btree/index';
import { compactJob, CompactionError, rebuildJob, runCompaction, type CopyJob } from '../lib/compaction-job';
import { ConfigError, DATA_FILE_NAME, DEFAULT_CONFIG, configFromOptions, packageVersion, showBytes, type ServerConfig } from '../lib/config';
import { makeDirs, makeDirsFailure, removeLeftoverCopy, unmake } from '../lib/data-dir';
import { unknownOptionOf, versionFlagHint } from '../lib/cli-args';
import { EXIT } from '../lib/exit-status';
import { acquireDirLock, LockError, type DirLock } from '../lib/lock';
import { bindServer, createGrpcServer } from '../lib/grpc-server';
import { failureText, log, shownPath } from '../lib/server-log';
import { KvService } from '../lib/service';
import { onStopSignals, shutdownOnSignal } from '../lib/shutdown';
import { ServiceStats } from '../lib/stats';

function fail(msg: string, code: number = EXIT.FAILED): never {
  log(msg);
  process.exit(code);
}

/** Options that only matter while serving, which --compact does not do. The two limits bound what
 *  Set accepts; the copy takes the file format's, so `--compact --max-value-bytes 1KiB` drops nothing. */
const SERVING_ONLY = ['--listen', '--max-value-bytes', '--max-key-bytes', '--max-inflight-set-mb', '--max-inflight-get-mb', '--max-open-calls', '--stream-buffer-mb', '--shutdown-timeout-ms', '--stream-stall-ms', '--blocking-sync-us'];

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
const endStartupSignals = onStopSignals(onStartupSignal);

/** --compact (or a --salvage rebuild): its own signal handling replaces startup's; prints the result
 *  on stdout and exits 0, or says why it failed and exits 1. */
async function compactAndExit(job: CopyJob, lock: DirLock, dataFile: string, salvage: boolean): Promise<never> {
  endStartupSignals();
  try {
    const done = await runCompaction(job, lock, dataFile, salvage);
    process.stdout.write(`lbserver: ${done}\n`);
    process.exit(EXIT.OK);
  } catch (e) {
    if (e instanceof CompactionError) fail(e.message);
    throw e;
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
    .option('--blocking-sync-us <n>', 'while the median recent fdatasync is at most this many microseconds, a small commit whose Set is alone with the server (no other call open or opened since the last commit) syncs on the event loop, saving two thread hand-offs; with other calls about, the thread pool, so none waits for a sync; 0: always the thread pool', String(DEFAULT_CONFIG.blockingSyncUs))
    .option('--max-inflight-set-mb <n>', 'server-wide bound, in MiB, on the bytes of Sets waiting for their commit; a Set over it gets RESOURCE_EXHAUSTED (one Set alone always goes through)', String(DEFAULT_CONFIG.maxSetBytesInFlight / (1024 * 1024)))
    .option('--max-inflight-get-mb <n>', 'server-wide bound, in MiB, on the value bytes of Get responses read and not yet taken by their clients; a Get over it gets RESOURCE_EXHAUSTED (one Get alone always goes through)', String(DEFAULT_CONFIG.maxGetBytesInFlight / (1024 * 1024)))
    .option('--max-open-calls <n>', 'server-wide bound on the calls (HTTP/2 streams) open at once; a call over it gets RESOURCE_EXHAUSTED', String(DEFAULT_CONFIG.maxOpenCalls))
    .option('--stream-buffer-mb <n>', 'server-wide bound, in MiB, on GetPrefix data read and not yet sent, summed over all streams', String(DEFAULT_CONFIG.streamBufferBytes / (1024 * 1024)))
    .option('--shutdown-timeout-ms <n>', 'on SIGTERM/SIGINT/SIGHUP, wait this long for in-flight calls, then end those left with UNAVAILABLE (a Set so ended may or may not be applied)', String(DEFAULT_CONFIG.shutdownTimeoutMs))
    .option('--stream-stall-ms <n>', 'end a GetPrefix stream with ABORTED when its client takes nothing for this long (its snapshot keeps freed pages from reuse), a call whose request sends nothing more for this long, and reset a Get whose answer its client takes none of for this long; 0: never', String(DEFAULT_CONFIG.streamStallMs))
    .option('--compact', 'do not serve: copy the live data into a new file, replace the old one atomically, print the sizes, exit')
    .option('--salvage', 'with --compact: copy what can still be read of a damaged store, listing each damaged page or value left out (with the keys it held) on stderr, instead of refusing; a store that will not open at all (both meta pages damaged) is rebuilt from its leaf pages, each key with the newest value found; the damaged original is kept as lbkv.db.damaged-<time>')
    .version(packageVersion(), '--version', 'print the version and exit')
    .addHelpText('after', `
Prints one line when it serves, e.g.
  lbserver listening on 127.0.0.1:50051 data=/abs/data keys=123 startup_ms=146.0
(startup_ms counts from the process's start, Node's own start-up included;
a data path with spaces, quotes, backslashes or control characters is JSON-quoted).
Only one lbserver may use a data directory at a time (LOCK file holding its PID, boot ID and start time).

Exit status: 0 stopped cleanly (SIGTERM/SIGINT/SIGHUP) or --compact done; 1 failed while running, or
--compact stopped by SIGTERM/SIGINT/SIGHUP (the data file is left as it was); 2 bad usage or option
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
    if (e instanceof CommanderError) {
      const hint = e.code === 'commander.unknownOption' ? versionFlagHint('lbserver', unknownOptionOf(e.message)) : undefined;
      if (hint) log(hint);
      process.exit(e.exitCode === 0 ? EXIT.OK : EXIT.USAGE);
    }
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
    fail(makeDirsFailure(cfg.dataDir, e as NodeJS.ErrnoException), EXIT.DATA);
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
  let service: KvService | undefined;
  const openOptions = {
    path: dataFile,
    cacheMB: cfg.cacheMB,
    syncMode: cfg.syncMode,
    blockingSyncUs: cfg.blockingSyncUs,
    // Asked at each commit, once serving: until then nothing commits but a compaction's copy.
    blockingSyncWhen: () => service?.blockingSyncAllowed() ?? false,
    maxValueBytes: cfg.maxValueBytes,
    // Not --max-key-bytes: the service holds Sets to it, and Gets only to what the format holds
    // (keys stored under a larger --max-key-bytes stay readable); the engine's default is that.
  };
  let store: Store;
  try {
    store = await Store.open(openOptions);
  } catch (e) {
    const what = failureText(e);
    // A meta page of another format or another program's file is not damage: nothing to rebuild.
    const damaged = e instanceof StoreError && e.code === 'CORRUPTION' && !isForeignFormat(e.message);
    if (o.salvage && damaged) {
      log(`salvage: cannot open ${dataFile} (${what}); rebuilding it: from the tree of its last commit if a meta page still verifies, else from the pages that pass their checks, each key with the newest value found`);
      await compactAndExit(rebuildJob(openOptions), lock, dataFile, true);
    }
    lock.release();
    const hint = damaged ? ' (lbserver --compact --salvage rebuilds it from what its pages still hold)' : '';
    fail(`cannot open ${dataFile}: ${what}${hint}`, EXIT.DATA);
  }
  for (const w of store.openWarnings) log(`warning: ${w}`);
  if (o.compact) await compactAndExit(compactJob(store), lock, dataFile, o.salvage === true);

  const stats = new ServiceStats();
  service = new KvService(store, cfg, stats);
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

  const shutdown = shutdownOnSignal(server, service, store, lock, cfg.shutdownTimeoutMs);
  const onSignal = (signal: string) => void shutdown(signal).then((code) => { if (code !== undefined) process.exit(code); });
  // Handlers go in before the ready line: whoever reads that line may signal us at once.
  onStopSignals(onSignal);
  endStartupSignals();

  const address = cfg.listen.replace(/:\d+$/, `:${port}`);
  stats.startupMs = performance.now();
  let keys = 0;
  try { keys = store.stats().keys; } catch { /* stats are best effort */ }
  process.stdout.write(`lbserver listening on ${address} data=${shownPath(cfg.dataDir)} keys=${keys} startup_ms=${stats.startupMs.toFixed(1)}\n`);
}

// If whoever started us stops reading our output, keep serving rather than die on EPIPE.
process.stdout.on('error', () => {});
process.stderr.on('error', () => {});

// A bad request or a bug in one call must never take the server down: log and keep serving.
process.on('uncaughtException', (err) => log(`uncaught exception (continuing): ${err?.stack ?? err}`));
process.on('unhandledRejection', (err) => log(`unhandled rejection (continuing): ${(err as Error)?.stack ?? err}`));

main().catch((e) => fail(`fatal: ${(e as Error)?.stack ?? e}`));

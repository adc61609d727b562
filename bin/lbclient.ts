#!/usr/bin/env node
// lbclient: command-line client for lbserver (uses the typed client library in lib/client.ts).
// Exit codes: 0 ok, 1 key not found, 2 server unreachable/unavailable, 3 the server returned an
// error, 4 usage or local error (bad flag, bad hex, unreadable file), 5 --timeout-ms ran out.
import { Command, CommanderError } from 'commander';
import { fstatSync, readFileSync } from 'node:fs';
import { describeError, GrpcStatus, isServiceError, KvClient, type StatResponse } from '../lib/client';
import { ConfigError, packageVersion, parseHostPort } from '../lib/config';
import { escapeBytes, escapedChunks } from '../lib/escape';

export const EXIT = { OK: 0, NOT_FOUND: 1, UNREACHABLE: 2, SERVER_ERROR: 3, USAGE: 4, TIMED_OUT: 5 } as const;

class CliError extends Error {
  constructor(message: string, readonly exitCode: number) { super(message); }
}

interface GlobalOpts {
  server: string;
  hex?: boolean;
  timeoutMs?: string;
  connectTimeoutMs: string;
}

function parseKey(text: string, hex: boolean | undefined, what: 'key' | 'prefix' = 'key'): Buffer {
  let key: Buffer;
  if (hex) {
    const t = text.replace(/^0x/i, '');
    const bad = /[^0-9a-fA-F]/.exec(t);
    if (bad) throw new CliError(`--hex: ${what} "${text}" holds "${bad[0]}", which is not a hex digit`, EXIT.USAGE);
    if (t.length % 2 !== 0) throw new CliError(`--hex: ${what} "${text}" has an odd number of hex digits (two per byte)`, EXIT.USAGE);
    key = Buffer.from(t, 'hex');
  } else {
    key = textArg(text, what, 'give it as hex with --hex');
  }
  if (what === 'key' && key.length === 0) throw new CliError('the key is empty: keys are 1 or more bytes', EXIT.USAGE);
  return key;
}

/** An argument's bytes. Node decodes the command line as UTF-8 and turns each byte it cannot decode
 *  into U+FFFD, so two different byte strings could arrive as the same key: refuse those. */
function textArg(text: string, what: string, instead: string): Buffer {
  if (text.includes('\uFFFD')) {
    throw new CliError(`the ${what} argument is not valid UTF-8 (or holds U+FFFD), so its bytes cannot be known; ${instead}`, EXIT.USAGE);
  }
  return Buffer.from(text, 'utf8');
}

/** A whole-number option within [min, max]. */
function wholeOption(text: string, what: string, min: number, max: number): number {
  if (!/^-?\d+$/.test(text)) throw new CliError(`${what}: "${text}" is not a whole number`, EXIT.USAGE);
  const n = Number(text);
  if (n < min || n > max) throw new CliError(`${what}: ${text} is out of range ${max === Infinity ? `(${min} or more)` : `${min}..${max}`}`, EXIT.USAGE);
  return n;
}

const COMMANDS = new Set(['set', 'get', 'getprefix', 'stat', 'help']);

/** What to add to commander's "unknown option '-x'". After a command, a short "option" may be a
 *  KEY, VALUE or PREFIX that starts with '-' (lbclient set k -5): say how to pass one. Before any
 *  command it can only be an option: -V and -v, the version flag of many programs, get the one
 *  lbclient has; others nothing more (commander names them and points to --help). */
export function unknownOptionHint(args: string[], option: string | undefined): string | undefined {
  if (option === undefined || option.startsWith('--')) return undefined;
  const at = args.indexOf(option);
  const afterCommand = args.slice(0, at < 0 ? args.length : at).some((a) => COMMANDS.has(a));
  if (afterCommand) return "an argument that starts with '-' goes after '--', e.g. lbclient set k -- -5";
  if (option === '-V' || option === '-v') return 'there is no -V or -v; lbclient --version prints the version';
  return undefined;
}

/** Longest --timeout-ms: what a timer can wait (2^31 - 1 ms, about 24.8 days). */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

async function readStdin(): Promise<Buffer> {
  // Node reads a directory on stdin (lbclient set k - < dir) as empty, where read(2) says EISDIR:
  // that would store an empty value in place of the data meant.
  const st = fstatSync(0);
  if (st.isDirectory()) throw new CliError('set: cannot read stdin: it is a directory (EISDIR)', EXIT.USAGE);
  // A file (lbclient set k - < F) is read as --file is, into one buffer of its size, from where its
  // offset stands: gathering it in pieces and joining them held the value about twice.
  if (st.isFile()) {
    try { return readFileSync(0); } catch (e) { throw new CliError(`set: cannot read stdin: ${(e as Error).message}`, EXIT.USAGE); }
  }
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function writeOut(data: string | Buffer): Promise<void> {
  return new Promise((resolve) => {
    if (process.stdout.write(data)) resolve();
    else process.stdout.once('drain', () => resolve());
  });
}

/** Output gathered into writes of about 64 KiB (few syscalls for many small entries), each written
 *  and waited for (backpressure) before more is gathered: a large escaped value is never held whole. */
class OutBuffer {
  private parts: Buffer[] = [];
  private size = 0;
  /** Gathers `b`; true once there is enough to write out (flush). Not async: a listing of small
   *  entries would pay a promise per piece. */
  push(b: Buffer): boolean {
    this.parts.push(b);
    this.size += b.length;
    return this.size >= 64 * 1024;
  }
  async flush(): Promise<void> {
    if (this.size === 0) return;
    const data = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    await writeOut(data);
  }
}

const TAB = Buffer.from('\t');
const NEWLINE = Buffer.from('\n');

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

function humanStat(addr: string, s: StatResponse): string {
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

/** What a call that ran out of time may have left behind, per command. */
const TIMEOUT_OUTCOME: Record<string, string> = {
  set: '; the set may have been applied',
  getprefix: '; the entries printed, if any, are not the whole listing',
};

/** `connected`: whether a connection of the client ever completed its handshake (KvClient.connected);
 *  `partial`: whether part of the answer (entries of a getprefix) had arrived and been printed. */
function grpcFailure(addr: string, e: unknown, cmd: string, timeoutMs: string | undefined, connected: boolean, partial: boolean): CliError {
  if (isServiceError(e)) {
    if (e.code === GrpcStatus.DEADLINE_EXCEEDED) {
      const after = timeoutMs !== undefined ? ` after ${Number(timeoutMs)} ms (--timeout-ms)` : '';
      // No connection ever completed its handshake (a hung server that accepts TCP): the call was
      // never sent, so nothing can have been applied.
      if (!connected) {
        return new CliError(`cannot reach server at ${addr}: no connection${after}; the ${cmd} was not sent (${describeError(e)})`, EXIT.UNREACHABLE);
      }
      // The call may have reached the server: not "cannot reach", and for a set not "not applied".
      return new CliError(`${cmd} timed out${after}${TIMEOUT_OUTCOME[cmd] ?? ''} (${describeError(e)})`, EXIT.TIMED_OUT);
    }
    // Whatever ended a listing that had begun, what was printed is only its start.
    const cut = partial ? `${cmd} cut off after some entries were printed, the listing is not whole: ` : '';
    if (e.code === GrpcStatus.UNAVAILABLE) {
      if (partial) return new CliError(`${cut}the server at ${addr} became unavailable (${describeError(e)})`, EXIT.UNREACHABLE);
      // A connection was made, so the call may have reached the server and been done (a server
      // that crashed, or a connection that dropped, after a set was applied): not "cannot reach".
      if (connected) return new CliError(`the server at ${addr} became unavailable during the ${cmd}${cmd === 'set' ? TIMEOUT_OUTCOME.set : ''} (${describeError(e)})`, EXIT.UNREACHABLE);
      return new CliError(`cannot reach server at ${addr}: ${describeError(e)}`, EXIT.UNREACHABLE);
    }
    return new CliError(`${cut}server error: ${describeError(e)}`, EXIT.SERVER_ERROR);
  }
  return localFailure(e);
}

/** A failure that is not the server's: bad input or a local I/O error. */
function localFailure(e: unknown): CliError {
  return e instanceof CliError ? e : new CliError(`error: ${(e as Error)?.message ?? String(e)}`, EXIT.USAGE);
}

/** The global options as the client takes them; a usage error if they are wrong. Checked before a
 *  command runs (so `set k -` with a typo fails before reading stdin) and again for the client. */
function clientOptions(g: GlobalOpts): { callTimeoutMs: number | undefined; connectTimeoutMs: number } {
  try {
    parseHostPort(g.server, '--server');
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(e.message, EXIT.USAGE);
    throw e;
  }
  return {
    callTimeoutMs: g.timeoutMs === undefined ? undefined : wholeOption(g.timeoutMs, '--timeout-ms', 1, MAX_TIMEOUT_MS),
    connectTimeoutMs: wholeOption(g.connectTimeoutMs, '--connect-timeout-ms', 0, MAX_TIMEOUT_MS),
  };
}

/** Runs `cmd` on a client of its own: its gRPC failures become the CLI's messages and exit codes.
 *  `body` calls `answered()` once part of the answer has been printed; it gets the call deadline
 *  too, for a stream (KvClient applies it to unary calls only). */
async function withServer<T>(g: GlobalOpts, cmd: string, body: (c: KvClient, answered: () => void, callTimeoutMs: number | undefined) => Promise<T>): Promise<T> {
  const { callTimeoutMs, connectTimeoutMs } = clientOptions(g);
  // No message limit of its own (KvClient's default): the server enforces --max-value-bytes.
  const c = new KvClient(g.server, { callTimeoutMs });
  let partial = false;
  // A peer that takes the TCP connection but never speaks HTTP/2 would hold a call without a
  // deadline for ever: give up when no connection is made in time. Nothing was sent then.
  let timer: NodeJS.Timeout | undefined;
  try {
    // The bound is for the server, not for this process: grpc-js encodes a request when the call
    // starts (synchronously) and frames it (a copy) before the connection is up, and for a large
    // value each takes a while (about 0.5 s each for 200 MiB here, seconds for 1 GiB) in which no
    // connection can make progress. Counted against --connect-timeout-ms, that made a `set` of a
    // large value to a healthy server fail as "no connection ... not sent". So the bound counts the
    // time the event loop waited (idle), when the connection could have come: a timer that finds
    // the loop was busy for part of it waits out the rest before giving up.
    const call = body(c, () => { partial = true; }, callTimeoutMs);
    const noConnection = new Promise<never>((_, reject) => {
      if (connectTimeoutMs === 0) return;
      const arm = (ms: number) => {
        const idleBefore = performance.eventLoopUtilization().idle;
        timer = setTimeout(() => {
          if (c.connected()) return;
          const short = ms - (performance.eventLoopUtilization().idle - idleBefore);
          if (short >= 1) return arm(short);
          reject(new CliError(`cannot reach server at ${g.server}: no connection after ${connectTimeoutMs} ms (--connect-timeout-ms); the ${cmd} was not sent`, EXIT.UNREACHABLE));
        }, ms);
      };
      arm(connectTimeoutMs);
    });
    return await Promise.race([call, noConnection]);
  } catch (e) {
    throw grpcFailure(g.server, e, cmd, g.timeoutMs, c.connected(), partial);
  } finally {
    clearTimeout(timer);
    c.close();
  }
}

async function run(argv: string[]): Promise<number> {
  let result = EXIT.OK as number;
  const program = new Command()
    .name('lbclient')
    .description('Command-line client for lbkv (lbserver)')
    .option('--server <addr>', 'server address host:port', '127.0.0.1:50051')
    .option('--hex', 'KEY and PREFIX arguments are hex (and getprefix prints keys in hex)')
    .option('--timeout-ms <n>', 'deadline for each call, ms (default: none)')
    .option('--connect-timeout-ms <n>', 'give up when no connection to the server is made within this many ms (the command is then not sent); 0: wait for ever', '10000')
    .version(packageVersion(), '--version', 'print the version and exit')
    .addHelpText('after', `
Exit codes: 0 ok, 1 key not found (get), 2 server unreachable or unavailable,
            3 the server returned an error, 4 usage or local error, 5 timed out
            after the call was sent (--timeout-ms; a set that timed out may have
            been applied; with no connection by then: 2). A set whose connection
            was lost after it was sent (exit 2) may have been applied too.
A VALUE, KEY or PREFIX that starts with '-' goes after '--': lbclient set k -- -5

Examples:
  lbclient set greeting hello
  lbclient set photo --file ./photo.jpg
  echo -n hello | lbclient set greeting -
  lbclient get greeting > value.bin
  lbclient --hex set 00ff 'binary key'
  lbclient getprefix user/ --limit 10
  lbclient getprefix '' --keys-only
  lbclient --server 127.0.0.1:50051 stat --json`)
    .showHelpAfterError('(run lbclient --help for usage)')
    .exitOverride();

  const globals = () => program.opts<GlobalOpts>();
  program.hook('preAction', () => { clientOptions(globals()); });

  program.command('set')
    .description('set KEY to VALUE (a string), to the contents of --file F, or to stdin when VALUE is "-"; returns once durable')
    .argument('<key>', 'the key (hex with --hex)')
    .argument('[value]', 'the value as a string, or "-" to read it from stdin')
    .option('--file <path>', 'read the value from this file')
    .exitOverride()
    .action(async (keyArg: string, valueArg: string | undefined, o: { file?: string }) => {
      const g = globals();
      const key = parseKey(keyArg, g.hex);
      let value: Buffer;
      if (o.file !== undefined) {
        if (valueArg !== undefined) throw new CliError('set: give either VALUE or --file, not both', EXIT.USAGE);
        try { value = readFileSync(o.file); } catch (e) { throw new CliError(`set: cannot read ${o.file}: ${(e as Error).message}`, EXIT.USAGE); }
      } else if (valueArg === '-') {
        value = await readStdin();
      } else if (valueArg !== undefined) {
        value = textArg(valueArg, 'value', 'give it with --file F or on stdin (-)');
      } else {
        throw new CliError('set: missing VALUE (give VALUE, --file F, or - for stdin)', EXIT.USAGE);
      }
      await withServer(g, 'set', (c) => c.set(key, value));
    });

  program.command('get')
    .description('print the raw value of KEY to stdout (exit 1 if absent)')
    .argument('<key>', 'the key (hex with --hex)')
    .exitOverride()
    .action(async (keyArg: string) => {
      const g = globals();
      const key = parseKey(keyArg, g.hex);
      const v = await withServer(g, 'get', (c) => c.get(key));
      if (v === undefined) {
        process.stderr.write(`lbclient: key not found: ${g.hex ? key.toString('hex') : escapeBytes(key)}\n`);
        result = EXIT.NOT_FOUND;
        return;
      }
      await writeOut(v);
    });

  program.command('getprefix')
    .description('list entries whose key starts with PREFIX ("" for all), in ascending bytewise key order, one "KEY<TAB>VALUE" line each (non-printable bytes as \\xNN, a backslash as \\\\, tab, newline, CR as \\t \\n \\r)')
    .argument('<prefix>', 'the prefix (hex with --hex); "" lists every key')
    .option('--limit <n>', 'at most N entries (0: no limit)', '0')
    .option('--keys-only', 'print only the keys')
    .exitOverride()
    .action(async (prefixArg: string, o: { limit: string; keysOnly?: boolean }) => {
      const g = globals();
      const prefix = parseKey(prefixArg, g.hex, 'prefix');
      // Past 2^53 a count is beyond any store: no limit (the server reads such a uint64 so too).
      const limit = Math.min(wholeOption(o.limit, '--limit', 0, Infinity), Number.MAX_SAFE_INTEGER);
      await withServer(g, 'getprefix', async (c, answered, timeoutMs) => {
        // --timeout-ms bounds the whole listing, as it bounds each other command.
        const out = new OutBuffer();
        for await (const batch of c.getPrefixMessages(prefix, { limit, timeoutMs })) {
          answered();
          for (const e of batch) {
            // A key (at most 1 KiB, 4 KiB escaped) goes in whole; a value in bounded pieces.
            if (g.hex) out.push(Buffer.from(e.key.toString('hex'), 'latin1'));
            else for (const part of escapedChunks(e.key)) out.push(part);
            if (!o.keysOnly) {
              out.push(TAB);
              for (const part of escapedChunks(e.value)) if (out.push(part)) await out.flush();
            }
            if (out.push(NEWLINE)) await out.flush();
          }
          // What has arrived goes out before waiting for more (a slow server, a reader like less).
          await out.flush();
        }
      });
    });

  program.command('stat')
    .description('print server statistics (human readable, or --json)')
    .option('--json', 'print JSON with the proto field names')
    .exitOverride()
    .action(async (o: { json?: boolean }) => {
      const g = globals();
      const s = await withServer(g, 'stat', (c) => c.stat());
      await writeOut(o.json ? JSON.stringify(statToProtoNames(s), null, 2) + '\n' : humanStat(g.server, s));
    });

  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and `help [command]` are success; help shown because no command was given (exit
      // code 1 from commander) is a usage error.
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || (e.code === 'commander.help' && e.exitCode === 0)) return EXIT.OK;
      if (e.code === 'commander.unknownOption') {
        const hint = unknownOptionHint(argv.slice(2), /unknown option '([^']*)'/.exec(e.message)?.[1]);
        if (hint) process.stderr.write(`lbclient: ${hint}\n`);
      }
      return EXIT.USAGE; // commander already printed the message
    }
    const ce = localFailure(e); // withServer() has turned gRPC failures into CliErrors
    process.stderr.write(`lbclient: ${ce.message}\n`);
    return ce.exitCode;
  }
  return result;
}

// The reader went away (e.g. `lbclient getprefix '' | head`): stop quietly, like other filters.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  process.stderr.write(`lbclient: cannot write to stdout: ${e.message}\n`);
  process.exit(EXIT.USAGE);
});

// A closed stderr (e.g. `lbclient ... 2>&1 | head -c5`) must not change the exit status.
process.stderr.on('error', () => {});

run(process.argv).then(
  (code) => { process.exitCode = code; },
  (e) => { process.stderr.write(`lbclient: ${(e as Error)?.stack ?? e}\n`); process.exitCode = EXIT.USAGE; },
);

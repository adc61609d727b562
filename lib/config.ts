// Server configuration: defaults, and parsing/validation of lbserver's options.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
// The layout module alone (constants, no imports): lbclient loads this file, and needs no engine.
import { MAX_KEY_BYTES } from '../btree/layout';

export interface ServerConfig {
  /** host:port to listen on. */
  listen: string;
  /** Data directory (holds lbkv.db and LOCK). */
  dataDir: string;
  /** Page cache bound, MiB. */
  cacheMB: number;
  /** Largest value accepted by Set, bytes. */
  maxValueBytes: number;
  /** Largest key accepted, bytes. */
  maxKeyBytes: number;
  /** Engine commit protocol. */
  syncMode: 'one' | 'two';
  /** Small commits fdatasync on the event loop while the median recent such sync is at most this
   *  (us); 0: never (DEFAULT_CONFIG: 1000). */
  blockingSyncUs: number;
  /** GetPrefix message payload target, bytes (a larger single entry goes alone). */
  prefixMessageBytes: number;
  /** GetPrefix: most messages written but not yet handed to the transport, per stream. */
  prefixMaxPendingMessages: number;
  /** GetPrefix: server-wide bound on the bytes of entries read for streams and not yet handed to
   *  the transport, summed over all streams (--stream-buffer-mb). See StreamBudget in stream-budget.ts. */
  streamBufferBytes: number;
  /** On SIGTERM/SIGINT, wait this long for in-flight calls before forcing the shutdown. */
  shutdownTimeoutMs: number;
  /** GetPrefix: a stream whose client takes nothing for this long is ended with ABORTED, which
   *  releases its snapshot (--stream-stall-ms; 0: never). */
  streamStallMs: number;
  /** Key + value bytes of Sets waiting for their commit, server-wide, above which a further Set
   *  gets RESOURCE_EXHAUSTED (--max-inflight-set-mb). */
  maxSetBytesInFlight: number;
  /** Value bytes of Get responses read and not yet taken by their clients, server-wide, above which
   *  a further Get of a value gets RESOURCE_EXHAUSTED (--max-inflight-get-mb). */
  maxGetBytesInFlight: number;
  /** Calls (HTTP/2 streams) open at once, server-wide, above which a new one gets RESOURCE_EXHAUSTED
   *  (--max-open-calls). */
  maxOpenCalls: number;
}

export const MiB = 1024 * 1024;

export const DEFAULT_CONFIG: ServerConfig = {
  listen: '127.0.0.1:50051',
  dataDir: './data',
  cacheMB: 64,
  maxValueBytes: 64 * MiB,
  maxKeyBytes: 1024,
  syncMode: 'one',
  // On while a sync takes at most 1 ms, and only for a client alone with the server
  // (KvService.blockingSyncAllowed): there the event-loop sync saves the thread pool's hand-offs
  // (one client's sets/s +16-28 % in bench-blocking-sync), while with more clients it held reads back.
  blockingSyncUs: 1000,
  prefixMessageBytes: 1 * MiB,
  prefixMaxPendingMessages: 2,
  // Measured with 1,000 stalled streams of 256 KiB values (bad-input test, --cache-mb 32): server
  // peak RSS 195-226 MiB with 32 MiB, from about 85 MiB before the streams opened; RSS grows faster
  // than the budget (each message also exists framed, and garbage waits for the GC), and 128 MiB
  // peaked at 380-392 MiB in the same setup (npm run bench:stream-memory).
  streamBufferBytes: 32 * MiB,
  shutdownTimeoutMs: 10_000,
  // An open snapshot keeps every page freed after it from reuse, so a client that stops reading a
  // GetPrefix stream makes the file grow with every later write. A minute is far longer than any
  // reader that is reading needs between two messages (one message is about 1 MiB).
  streamStallMs: 60_000,
  // Sixteen of the largest values by default; a Set is held in memory until its commit.
  maxSetBytesInFlight: 1024 * MiB,
  // The same for Get responses: a client that sends Gets of large values and never reads the answers
  // would otherwise make the server hold every one of them.
  maxGetBytesInFlight: 1024 * MiB,
  // Each open call holds server memory (grpc-js and HTTP/2 state) plus what its request holds,
  // however little its client sends, and HTTP/2 lets a client open any number on one connection.
  maxOpenCalls: 10_000,
};

/** The most --max-value-bytes may be: grpc-js message lengths are 32-bit signed, so the largest
 *  message stays under 2 GiB. No lbserver takes a larger value. */
export const MAX_VALUE_BYTES_LIMIT = 1024 * MiB;

export const DATA_FILE_NAME = 'lbkv.db';
export const LOCK_FILE_NAME = 'LOCK';

/** The largest key the file format holds (the engine's MAX_KEY_BYTES). --max-key-bytes bounds
 *  what Set takes; Get and GetPrefix take keys and prefixes up to this, so keys stored under a
 *  larger --max-key-bytes stay readable after a restart with a smaller one. */
export const FORMAT_MAX_KEY_BYTES = MAX_KEY_BYTES;

/** Room for the key and protobuf/gRPC framing above the largest value. */
export const MESSAGE_SLACK_BYTES = 1 * MiB;

/** grpc max send/receive message length that fits the largest Set request and Get response. */
export function maxMessageBytes(cfg: Pick<ServerConfig, 'maxValueBytes' | 'maxKeyBytes' | 'prefixMessageBytes'>): number {
  return Math.max(cfg.maxValueBytes, cfg.prefixMessageBytes) + cfg.maxKeyBytes + MESSAGE_SLACK_BYTES;
}

export class ConfigError extends Error {}

/** Parses a byte size: "1048576", "64MiB", "64M", "4k", "4KiB", "1g", "1.5KiB" (1536). A size that
 *  is not a whole number of bytes ("0.5", "0.1KiB") is refused, not rounded: parsing "0.5" as 0
 *  bytes turned a typo into a server that takes only empty values. */
export function parseSize(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(text);
  if (!m) throw new ConfigError(`${what}: "${text}" is not a size (examples: 1048576, 4KiB, 64MiB)`);
  const mult = { '': 1, k: 1024, m: MiB, g: 1024 * MiB, t: 1024 * 1024 * MiB }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  // A decimal whose product with a power of two is whole is a multiple of a power of two's inverse,
  // which a double holds exactly: no rounding error turns a whole size into a fraction.
  const n = Number(m[1]) * mult;
  if (!Number.isSafeInteger(Math.floor(n))) throw new ConfigError(`${what}: "${text}" is too large`);
  if (!Number.isInteger(n)) throw new ConfigError(`${what}: "${text}" is not a whole number of bytes (${n}; examples: 1048576, 1536, 1.5KiB, 64MiB)`);
  return n;
}

/** A byte count as the options take it back: 64MiB rather than 67108864 (parseSize's inverse). */
export function showBytes(n: number): string {
  for (const [unit, size] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) if (n % size === 0 && n >= size) return `${n / size}${unit}`;
  return String(n);
}

/** The demo's and its client's exit status for bad usage (an unknown option or a bad value): 4,
 *  lbclient's, since they are clients too (lbclient's 2 means the server is unreachable). */
export const CLIENT_USAGE_EXIT = 4;

/** Runs `parse`, which throws ConfigError for a bad argument; then prints `program: message` and
 *  exits with status `code` (a usage error). */
export function argsOrExit<T>(program: string, parse: () => T, code: number): T {
  try {
    return parse();
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    process.stderr.write(`${program}: ${e.message}\n`);
    process.exit(code);
  }
}

/** A whole number within [min, max] (max may be Infinity), surrounding spaces allowed: one parser
 *  for lbserver's, lbclient's and the demo's options, so the same text means the same everywhere. */
export function parseIntArg(text: string, what: string, min: number, max: number): number {
  // A negative number is a number, out of range, not "not a whole number".
  if (!/^\s*-?\d+\s*$/.test(text)) throw new ConfigError(`${what}: "${text}" is not a whole number`);
  const n = Number(text);
  if (n < min || n > max) throw new ConfigError(`${what}: ${n} is out of range ${max === Infinity ? `(${min} or more)` : `${min}..${max}`}`);
  return n;
}

/** Validates "host:port" (IPv6 as "[::1]:port") given as option `what`; returns it unchanged.
 *  Both halves are required: grpc-js takes a bare host as port 443, and hangs resolving the empty
 *  host of ":port". */
export function parseHostPort(text: string, what: string): string {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:\s[\]]+):(\d{1,5})$/.exec(text);
  if (!m) throw new ConfigError(`${what}: "${text}" is not host:port (example: 127.0.0.1:50051)`);
  const port = Number(m[2]);
  if (port > 65535) throw new ConfigError(`${what}: port ${port} is out of range 0..65535`);
  return text;
}

export interface RawServerOptions {
  listen?: string;
  data?: string;
  cacheMb?: string;
  maxValueBytes?: string;
  maxKeyBytes?: string;
  syncMode?: string;
  blockingSyncUs?: string;
  shutdownTimeoutMs?: string;
  streamStallMs?: string;
  maxInflightSetMb?: string;
  maxInflightGetMb?: string;
  maxOpenCalls?: string;
  streamBufferMb?: string;
}

/** Builds a validated ServerConfig from command-line strings; throws ConfigError with a clear message. */
export function configFromOptions(o: RawServerOptions): ServerConfig {
  const cfg: ServerConfig = { ...DEFAULT_CONFIG };
  if (o.listen !== undefined) cfg.listen = parseHostPort(o.listen, '--listen');
  if (o.data !== undefined) {
    if (o.data.trim() === '') throw new ConfigError(`--data: ${o.data === '' ? 'empty' : 'blank (only white space)'} path`);
    cfg.dataDir = o.data;
  }
  cfg.dataDir = resolve(cfg.dataDir);
  if (o.cacheMb !== undefined) cfg.cacheMB = parseIntArg(o.cacheMb, '--cache-mb', 1, 1024 * 1024);
  if (o.maxValueBytes !== undefined) {
    cfg.maxValueBytes = parseSize(o.maxValueBytes, '--max-value-bytes');
    if (cfg.maxValueBytes > MAX_VALUE_BYTES_LIMIT) throw new ConfigError(`--max-value-bytes: ${cfg.maxValueBytes} is over the 1 GiB maximum`);
  }
  // What the file format's cells hold (btree/options.ts refuses more).
  if (o.maxKeyBytes !== undefined) cfg.maxKeyBytes = parseIntArg(o.maxKeyBytes, '--max-key-bytes', 1, FORMAT_MAX_KEY_BYTES);
  if (o.syncMode !== undefined) {
    if (o.syncMode !== 'one' && o.syncMode !== 'two') throw new ConfigError(`--sync-mode: "${o.syncMode}" must be "one" or "two"`);
    cfg.syncMode = o.syncMode;
  }
  if (o.blockingSyncUs !== undefined) cfg.blockingSyncUs = parseIntArg(o.blockingSyncUs, '--blocking-sync-us', 0, 1_000_000);
  if (o.streamBufferMb !== undefined) {
    // At least two messages' worth, so one stream can always keep a message in flight while it reads the next.
    const min = Math.ceil((2 * cfg.prefixMessageBytes) / MiB);
    cfg.streamBufferBytes = parseIntArg(o.streamBufferMb, '--stream-buffer-mb', min, 64 * 1024) * MiB;
  }
  if (o.maxInflightSetMb !== undefined) cfg.maxSetBytesInFlight = parseIntArg(o.maxInflightSetMb, '--max-inflight-set-mb', 1, 1024 * 1024) * MiB;
  if (o.maxInflightGetMb !== undefined) cfg.maxGetBytesInFlight = parseIntArg(o.maxInflightGetMb, '--max-inflight-get-mb', 1, 1024 * 1024) * MiB;
  if (o.maxOpenCalls !== undefined) cfg.maxOpenCalls = parseIntArg(o.maxOpenCalls, '--max-open-calls', 1, 1_000_000);
  if (o.shutdownTimeoutMs !== undefined) cfg.shutdownTimeoutMs = parseIntArg(o.shutdownTimeoutMs, '--shutdown-timeout-ms', 0, 3_600_000);
  if (o.streamStallMs !== undefined) cfg.streamStallMs = parseIntArg(o.streamStallMs, '--stream-stall-ms', 0, 86_400_000);
  return cfg;
}

/** The version in package.json, which sits two levels above the compiled dist/lib/config.js. */
export function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(resolve(__dirname, '../..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

// Typed client library for lbkv. The CLI, the demo, the tests and the experiments all use this.
// Errors from calls are grpc-js ServiceError objects (with `.code`, a grpc status, and `.details`).
import * as grpc from '@grpc/grpc-js';
import {
  KeyValueStoreClient,
  KeyValueStoreService,
  type GetPrefixResponse,
  type StatResponse,
} from '../generated/kv';
import { encodeSetRequest } from './codec';

export type { StatResponse } from '../generated/kv';
/** A buffer to read a large value into before set() sends it with no copy of its own (lib/codec.ts). */
export { setValueBuffer } from './codec';
export { status as GrpcStatus } from '@grpc/grpc-js';
export type { ServiceError } from '@grpc/grpc-js';

export type Bytes = Buffer | string | Uint8Array;

export interface KvClientOptions {
  /** grpc max send and receive message length, bytes. Default -1: no limit on the client's side,
   *  so the server's own limit (`--max-value-bytes`) decides what a Set may carry, and says so with
   *  INVALID_ARGUMENT, and a value stored under a larger limit can still be read. */
  maxMessageBytes?: number;
  /** Deadline for each unary call (set, get, stat), ms, a number > 0 (default: none; anything else
   *  makes the constructor throw INVALID_ARGUMENT). A getPrefix stream has its own
   *  (GetPrefixOptions.timeoutMs): a listing may rightly take longer than any one call. */
  callTimeoutMs?: number;
  /** Extra grpc channel options. */
  channelOptions?: grpc.ChannelOptions;
}

export interface KvEntry {
  key: Buffer;
  value: Buffer;
}

export interface GetPrefixOptions {
  /** At most this many entries; 0 or undefined: no limit. A whole number. */
  limit?: number;
  /** Deadline for the whole stream, ms from its start (default: none): past it, while the server is
   *  still sending, the iteration throws DEADLINE_EXCEEDED. Time the caller spends between entries
   *  counts as long as the stream is open; once the server has sent everything and its status, the
   *  entries already received are yielded whatever the time. */
  timeoutMs?: number;
  /** Aborting it cancels the stream, even while an iteration step waits for the server: the next
   *  (or the waiting) iteration step throws `signal.reason`, entries already received or not, and
   *  the server releases the stream's snapshot. */
  signal?: AbortSignal;
}

/** An error of this client's own making, shaped like the grpc-js ServiceError a call fails with, so
 *  that callers handle one kind of error: a bad argument (INVALID_ARGUMENT) is refused before
 *  anything is sent, a call on a closed client (UNAVAILABLE) is never sent. */
export function clientError(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(`${code} ${statusName(code)}: ${details}`), { code, details, metadata: new grpc.Metadata() });
}

export function toBytes(b: Bytes, what = 'key'): Buffer {
  if (typeof b === 'string') {
    // A lone surrogate has no UTF-8 form: Buffer.from would turn every one into the same U+FFFD.
    if (!(b as string & { isWellFormed(): boolean }).isWellFormed()) throw clientError(grpc.status.INVALID_ARGUMENT, `${what} is a string with a lone UTF-16 surrogate, which has no UTF-8 form; pass a Buffer`);
    return Buffer.from(b, 'utf8');
  }
  if (Buffer.isBuffer(b)) return b;
  if (b instanceof Uint8Array) return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  throw clientError(grpc.status.INVALID_ARGUMENT, `${what} must be a Buffer, Uint8Array or string, not ${b === null ? 'null' : typeof b === 'object' ? (b as object).constructor?.name ?? 'object' : typeof b}`);
}

/** True if `e` looks like a grpc ServiceError (has a numeric status code). */
export function isServiceError(e: unknown): e is grpc.ServiceError {
  return typeof e === 'object' && e !== null && typeof (e as grpc.ServiceError).code === 'number' && 'details' in e;
}

/** Name of a grpc status code, e.g. 3 → 'INVALID_ARGUMENT'. */
export function statusName(code: number): string {
  return (grpc.status as unknown as Record<number, string>)[code] ?? String(code);
}

/** One line for an error from a call: 'STATUS: details' for a gRPC error, else its message. */
export function describeError(e: unknown): string {
  // grpc-js ends a failed connection's details with "Resolution note: " even when it has no note.
  return isServiceError(e) ? `${statusName(e.code)}: ${e.details.replace(/\s*Resolution note:\s*$/, '')}` : String((e as Error)?.message ?? e);
}

/** The generated stub, but a Set request is encoded by encodeSetRequest: key and value copied once
 *  into the message (the generated encoder copies a value three times; grpc-js adds one more copy
 *  to frame the message whichever encoder made it). Same bytes on the wire. */
const KvStub = grpc.makeGenericClientConstructor(
  { ...KeyValueStoreService, set: { ...KeyValueStoreService.set, requestSerialize: encodeSetRequest } },
  'lbkv.v1.KeyValueStore',
) as unknown as typeof KeyValueStoreClient;

/** The longest deadline a call may have, ms. grpc-js sends a timeout of 10^8 ms or more in whole
 *  seconds, rounded up, and a grpc-js server reads it back into a 32-bit integer: past 2^31 - 1 ms
 *  it wraps (often negative), and the server's deadline fires at once. This bound, rounded up to
 *  whole seconds, stays under that. Infinity (no deadline) is sent as none. */
export const MAX_DEADLINE_MS = 2_147_483_000;

/** A deadline option as given, checked: NaN (e.g. Number of an unset variable) would mean no
 *  deadline, a negative one a deadline already past, a string a bare Error at each call. */
function checkTimeout(t: unknown, name: string): number | undefined {
  if (t === undefined || t === Infinity) return t;
  if (typeof t === 'number' && t > 0 && t <= MAX_DEADLINE_MS) return t;
  throw clientError(grpc.status.INVALID_ARGUMENT, `${name} is ${typeof t === 'string' ? JSON.stringify(t) : String(t)}; it must be a number of milliseconds > 0 and at most ${MAX_DEADLINE_MS} (or undefined: no deadline)`);
}

export class KvClient {
  /** The generated grpc-js stub, for callers that need raw access. */
  readonly raw: KeyValueStoreClient;
  readonly address: string;
  readonly maxMessageBytes: number;
  private readonly callTimeoutMs: number | undefined;
  private closed = false;
  private handshaken = false;

  constructor(address = '127.0.0.1:50051', opts: KvClientOptions = {}) {
    this.address = address;
    this.maxMessageBytes = opts.maxMessageBytes ?? -1;
    this.callTimeoutMs = checkTimeout(opts.callTimeoutMs, 'callTimeoutMs');
    this.raw = new KvStub(address, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': this.maxMessageBytes,
      'grpc.max_send_message_length': this.maxMessageBytes,
      ...opts.channelOptions,
    });
    // Watched from the start, without asking to connect (the first call does) and without a timer.
    this.whenReady(false, Infinity, (outcome) => { if (outcome === 'ready') this.handshaken = true; });
  }

  /** Whether a connection of this client ever completed the HTTP/2 handshake: after a deadline,
   *  false means no call of this client can have reached the server. Not the channel's state now: a
   *  server shutting down sends GOAWAY, and the channel leaves READY while the calls it took run on. */
  connected(): boolean {
    return this.handshaken;
  }

  /** Calls `done` once the channel is READY, or closed, or at `deadline`. `connect`: ask the channel
   *  to connect, or only watch. Not grpc-js's waitForReady: after close() that one asks the
   *  shut-down channel to connect, which starts it again, and then never settles while its deadline
   *  timer keeps the process alive. */
  private whenReady(connect: boolean, deadline: number, done: (outcome: 'ready' | 'closed' | 'timeout') => void): void {
    const channel = this.raw.getChannel();
    const check = (timedOut?: Error): void => {
      if (this.closed) return done('closed');
      if (timedOut) return done('timeout');
      const state = channel.getConnectivityState(connect);
      if (state === grpc.connectivityState.READY) return done('ready');
      channel.watchConnectivityState(state, deadline, check);
    };
    check();
  }

  /** A call on a closed client is never sent: UNAVAILABLE, like a call grpc-js could not start. */
  private checkOpen(): void {
    if (this.closed) throw clientError(grpc.status.UNAVAILABLE, 'the client is closed (KvClient.close() was called)');
  }

  /** Starts a unary call: `start` gets the call options and a callback. Arguments are checked and a
   *  closed client refused here, as errors shaped like the call's own. */
  private unary<T>(start: (options: Partial<grpc.CallOptions>, done: (err: grpc.ServiceError | null, res?: T) => void) => void): Promise<T> {
    return new Promise((resolve, reject) => {
      this.checkOpen();
      start(this.callTimeoutMs ? { deadline: Date.now() + this.callTimeoutMs } : {}, (err, res) => (err ? reject(err) : resolve(res as T)));
    });
  }

  /** Resolves once the server has made the value durable. */
  set(key: Bytes, value: Bytes): Promise<void> {
    return this.unary<void>((options, done) => this.raw.set({ key: toBytes(key), value: toBytes(value, 'value') }, new grpc.Metadata(), options, (err) => done(err)));
  }

  /** The value, or undefined when the key is absent. */
  get(key: Bytes): Promise<Buffer | undefined> {
    return this.unary<Buffer | undefined>((options, done) => this.raw.get({ key: toBytes(key) }, new grpc.Metadata(), options, (err, res) => done(err, res?.found ? res.value : undefined)));
  }

  stat(): Promise<StatResponse> {
    return this.unary<StatResponse>((options, done) => this.raw.stat({}, new grpc.Metadata(), options, (err, res) => done(err, res)));
  }

  /**
   * The server's stream, one item per GetPrefix message (a batch of entries). Stopping the iteration
   * early (break/return/throw) or aborting `opts.signal` cancels the call so the server releases its
   * snapshot.
   */
  async *getPrefixMessages(prefix: Bytes, opts: GetPrefixOptions = {}): AsyncGenerator<KvEntry[]> {
    this.checkOpen();
    const limit = opts.limit ?? 0;
    if (!Number.isSafeInteger(limit) || limit < 0) throw clientError(grpc.status.INVALID_ARGUMENT, `limit is ${String(limit)}; it must be a whole number >= 0 (0: no limit)`);
    const timeoutMs = checkTimeout(opts.timeoutMs, 'timeoutMs');
    const { signal } = opts;
    signal?.throwIfAborted();
    const call = this.raw.getPrefix({ prefix: toBytes(prefix, 'prefix'), limit }, new grpc.Metadata(), timeoutMs ? { deadline: Date.now() + timeoutMs } : {});
    const onAbort = () => call.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    let finished = false;
    try {
      // Messages already received wait in the call's buffer: an abort must stop those too, and a
      // stream that had ended before the abort yields nothing more either.
      for await (const msg of call as AsyncIterable<GetPrefixResponse>) {
        signal?.throwIfAborted();
        yield msg.entries;
      }
      signal?.throwIfAborted();
      finished = true;
    } catch (err) {
      // The cancel our abort made ends the stream with CANCELLED: the caller asked for its reason.
      if (signal?.aborted) throw signal.reason;
      throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (!finished) {
        call.on('error', () => {}); // the CANCELLED status that follows is expected
        call.cancel();
      }
    }
  }

  /** Entries under `prefix` in ascending bytewise key order, from one server snapshot. */
  async *getPrefix(prefix: Bytes, opts: GetPrefixOptions = {}): AsyncGenerator<KvEntry> {
    for await (const batch of this.getPrefixMessages(prefix, opts)) {
      for (const e of batch) {
        opts.signal?.throwIfAborted(); // a message holds up to ~1 MiB of entries
        yield { key: e.key, value: e.value };
      }
    }
  }

  /** Collects getPrefix into an array (convenience for small results). */
  async getPrefixAll(prefix: Bytes, opts: GetPrefixOptions = {}): Promise<KvEntry[]> {
    const out: KvEntry[] = [];
    for await (const e of this.getPrefix(prefix, opts)) out.push(e);
    return out;
  }

  /** Resolves when the channel is connected; rejects if not ready within `deadlineMs`, or UNAVAILABLE
   *  once close() is called. */
  waitForReady(deadlineMs = 5000): Promise<void> {
    return new Promise((resolve, reject) => this.whenReady(true, Date.now() + deadlineMs, (outcome) => {
      if (outcome === 'ready') resolve();
      else if (outcome === 'closed') reject(clientError(grpc.status.UNAVAILABLE, 'the client is closed (KvClient.close() was called) before it connected'));
      else reject(clientError(grpc.status.DEADLINE_EXCEEDED, `no connection to ${this.address} within ${deadlineMs} ms`));
    }));
  }

  /** Closes the channel. Calls that already started run to their end; calls not yet started,
   *  including ones made in the same tick just before close(), fail UNAVAILABLE: await them first. */
  close(): void {
    this.closed = true;
    this.raw.close();
  }
}

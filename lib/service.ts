// The gRPC service: Set / Get / GetPrefix / Stat over the storage engine (btree/).
// Validates every request, maps engine errors to gRPC status codes, and never lets a bad request
// take the server down.
import * as grpc from '@grpc/grpc-js';
import { constants as http2constants, type Http2Stream, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { join } from 'node:path';
import type { Store } from '../btree/index';
import {
  type GetPrefixRequest,
  type GetPrefixResponse,
  type GetRequest,
  type GetResponse,
  type KeyValueStoreServer,
  type SetRequest,
  type SetResponse,
  type StatRequest,
  type StatResponse,
} from '../generated/kv';
import { framedValueBuffer, invalidRequestReason } from './codec';
import { DATA_FILE_NAME, FORMAT_MAX_KEY_BYTES, maxMessageBytes, type ServerConfig } from './config';
import { deliveredOk, h2StreamOf, refuseStream, resetStream, sliceWrites, watchStreams } from './h2-call';
import { ServiceStats } from './stats';
import { StatusCarrier, statusError, toServiceError } from './status';
import { methodOf, oversizeRequestReason, readKeyOverLimit, setKeyOverLimit, valueOverLimit } from './request-bound';
import { StreamBudget } from './stream-budget';
import { streamPrefix, type Ending } from './prefix-stream';

const SHUTTING_DOWN = 'server is shutting down: the call was ended before it completed; retry elsewhere or later';

/** A call open at the transport, until its HTTP/2 stream closes. */
interface OpenCall {
  call: object;
  h2?: Http2Stream;
  /** Ends it now with `se`, if its handler has not answered yet. */
  end: (se: grpc.ServiceError) => void;
  /** Runs when the stream closes after sending status OK (a completed call is counted then). */
  onDelivered?: () => void;
}

/** What a handler does with its tracked call. */
interface Tracked {
  /** Answered: `end` no longer applies. */
  done(): void;
  /** `fn` runs once the response and its OK status are sent: not if the client goes away first. */
  whenDelivered(fn: () => void): void;
}

const noop = () => undefined;

/** Request bytes a stream may receive before its handler runs without being weighed against
 *  --max-inflight-set-mb: every request but a Set's is smaller (a key or prefix of at most 1 KiB). */
const SMALL_REQUEST_BYTES = 4 * 1024;

/** The most a deflate stream (gzip or deflate encoding) expands: 258 bytes for a 2-bit symbol, about
 *  1032 to 1, rounded up. */
const DEFLATE_MAX_RATIO = 1040;

/** A Get's value is handed to HTTP/2 in slices of this size, so that a client reading it is seen to
 *  (endStalledCalls); as GetPrefix's. */
const GET_SLICE_BYTES = 64 * 1024;

const NOTHING_YET = Buffer.alloc(0);

export class KvService {
  readonly stats: ServiceStats;
  private shuttingDown = false;
  /** Unary calls waiting for the engine, and GetPrefix streams being served. */
  private inFlight = 0;
  private readonly open = new Set<OpenCall>();
  /** Request bytes received by streams whose handler has not run yet (meterArrival). */
  private arriving = 0;
  /** Streams whose handler has not run yet: how to stop counting them, and when their last bytes came. */
  private readonly arrivals = new Map<Http2Stream, { release: () => void; lastAt: number; method: string }>();
  /** Streams of Get responses being sent (--max-inflight-get-mb holds their values): when their
   *  client last took a slice of one. */
  private readonly unread = new Map<Http2Stream, { lastAt: number }>();
  /** Whether a call other than one lone Set opened since blockingSyncAllowed() last asked. */
  private othersSince = false;
  /** Every HTTP/2 stream open at the transport, handler run or not (watch()); undefined if unknown. */
  private streams: Set<Http2Stream> | undefined;
  private readonly dataFile: string;
  /** Bytes buffered for GetPrefix streams, summed over all streams (--stream-buffer-mb). */
  readonly streamBudget: StreamBudget;

  constructor(private readonly store: Store, private readonly cfg: ServerConfig, stats?: ServiceStats) {
    this.stats = stats ?? new ServiceStats();
    this.dataFile = join(cfg.dataDir, DATA_FILE_NAME);
    this.streamBudget = new StreamBudget(cfg.streamBufferBytes);
  }

  /**
   * Marks the start of shutdown. The transport stops accepting calls (grpc tryShutdown: listener
   * closed, GOAWAY); calls that already reached us are still served, since the store stays open until
   * every call is done. Once the store is closing, calls fail with UNAVAILABLE (engine CLOSED).
   */
  beginShutdown(): void { this.shuttingDown = true; }
  get isShuttingDown(): boolean { return this.shuttingDown; }
  /** Calls using the engine (the store must not close before they are done). */
  get callsInFlight(): number { return this.inFlight; }
  /** Calls open at the transport, including those answered whose response is still being sent and,
   *  once watch() is on, those whose request is still arriving. */
  get openCalls(): number { return this.streams?.size ?? this.open.size; }

  /** lbserver's OpenOptions.blockingSyncWhen. A commit's fdatasync on the event loop saves the
   *  thread pool's two hand-offs but holds back every other call for as long as the sync: a Get
   *  arriving meanwhile waits for it (bench-blocking-sync, README). So it is allowed only while no
   *  one else can be waiting: one call open (the Set being committed), and since the last commit
   *  asked, none but Sets opened, one at a time. A client that sends one Set after another gets it;
   *  a second client, or a call of another kind, sends the syncs to the thread pool until a commit
   *  finds it alone again. Without a view of the transport's streams (watch()), never. */
  blockingSyncAllowed(): boolean {
    if (!this.streams) return false;
    const open = this.streams.size;
    const allowed = !this.othersSince && open <= 1;
    this.othersSince = open > 1;
    return allowed;
  }

  /** Watches the streams of the bound `server` (call it after binding), so that a forced shutdown
   *  reaches calls whose request is still arriving too (endOpenCalls). */
  watch(server: grpc.Server): void {
    const streams = new Set<Http2Stream>();
    const onStream = (st: Http2Stream, headers: IncomingHttpHeaders) => {
      const method = methodOf(String(headers[':path'] ?? ''));
      if (streams.size > 0 || method !== 'Set') this.othersSince = true;
      // HTTP/2 lets a client open any number of streams, on one connection or many, and each costs
      // memory however little it sends: past the bound, new ones are refused.
      if (streams.size >= this.cfg.maxOpenCalls) {
        this.stats.countRefused(method);
        refuseStream(st, grpc.status.RESOURCE_EXHAUSTED, `server busy: ${streams.size} calls are open, the most it serves at once (--max-open-calls ${this.cfg.maxOpenCalls}); nothing was done, retry later`);
        return;
      }
      streams.add(st);
      st.once('close', () => streams.delete(st));
      this.meterArrival(st, headers, method);
    };
    if (!watchStreams(server, onStream)) return;
    this.streams = streams;
    const stallMs = this.cfg.streamStallMs;
    if (stallMs > 0) {
      setInterval(() => this.endStalledCalls(stallMs), Math.max(50, Math.min(1000, stallMs / 4))).unref();
    }
  }

  /**
   * Ends the calls whose request has sent nothing for `stallMs` (--stream-stall-ms, as for a
   * GetPrefix client that takes nothing): a client that starts uploads and stops would otherwise keep
   * its share of --max-inflight-set-mb, and its places among --max-open-calls, for as long as its
   * connection lives, and the server would refuse everyone else's large Sets meanwhile.
   */
  private endStalledCalls(stallMs: number): void {
    const before = Date.now() - stallMs;
    for (const [st, a] of this.arrivals) {
      if (a.lastAt > before) continue;
      a.release();
      // (One grpc-js answered already, e.g. past its deadline, is only closed: refuseStream resets it.)
      if (!(st as ServerHttp2Stream).headersSent) this.stats.countRefused(a.method);
      refuseStream(st, grpc.status.ABORTED, `the client sent nothing of its request for ${stallMs} ms (--stream-stall-ms), so the server ended the call; nothing of it was done`);
    }
    // A Get answered with a value its client takes none of: the value is held for it until its
    // stream closes, and others' Gets meet --max-inflight-get-mb meanwhile. Its status is queued
    // behind the value, so all that reaches such a client is a reset.
    for (const [st, u] of this.unread) {
      if (u.lastAt > before) continue;
      this.unread.delete(st);
      if (!st.closed && !st.destroyed) st.close(http2constants.NGHTTP2_CANCEL);
    }
  }

  /** Watches the response to a Get on `h2` as its client takes it, slice by slice (sliceWrites: a
   *  slow reader that keeps reading is not taken for a stalled one), for endStalledCalls. */
  private watchUnread(call: object, h2: Http2Stream, valueBytes: number): void {
    if (this.cfg.streamStallMs <= 0 || !this.streams) return;
    const u = { lastAt: Date.now() };
    // A value of one slice goes out in one write, with no progress to see: no wrapping on the hot path.
    if (valueBytes > GET_SLICE_BYTES && !sliceWrites(call, GET_SLICE_BYTES, () => { u.lastAt = Date.now(); })) return;
    this.unread.set(h2, u);
    h2.once('close', () => this.unread.delete(h2));
  }

  /**
   * Counts the request bytes `st` receives until its handler runs (arrived()) or it closes. grpc-js
   * reads a request as fast as it comes and holds it whole before it runs a handler (up to twice the
   * largest Set message each), so without this, clients uploading large requests on many streams at
   * once, or starting them and never finishing, would make the server hold all of them. Requests
   * arriving and Sets waiting for their commit share --max-inflight-set-mb: a stream past
   * SMALL_REQUEST_BYTES that takes the sum over it while anything else is held is refused with
   * RESOURCE_EXHAUSTED (trailers-only; grpc-js drops the rest of it: refuseStream); nothing of
   * it was processed. One request alone always goes through (its length is bounded: below).
   *
   * Before any of that, the first message's 5-byte length prefix is judged (lib/request-bound.ts):
   * an uncompressed request longer than any valid one of its method is refused at once with
   * INVALID_ARGUMENT naming the limit, so nothing of it is held or read.
   *
   * A compressed request (grpc-encoding gzip or deflate) is decompressed whole before its handler
   * runs, into up to the receive limit, however few bytes it came in: 200 requests of 4 KB of gzip
   * each took the server to 1 GiB. So each is counted as what it can decompress to: its bytes times
   * deflate's largest ratio (about 1032:1), up to the receive limit.
   */
  private meterArrival(st: Http2Stream, headers: IncomingHttpHeaders, method: string): void {
    const encoding = String(headers['grpc-encoding'] ?? 'identity').toLowerCase();
    const compressed = encoding !== 'identity';
    const receiveLimit = 2 * maxMessageBytes(this.cfg);
    const weigh = (bytes: number) => (compressed ? Math.min(receiveLimit, bytes * DEFLATE_MAX_RATIO) : bytes);
    let wire = 0;
    let held = 0;
    // The first message's bytes until its length prefix is whole; then undefined.
    let head: Buffer | undefined = NOTHING_YET;
    const entry = { release: () => {}, lastAt: Date.now(), method };
    const release = () => {
      this.arriving -= held;
      held = 0;
      st.off('data', onData);
      this.arrivals.delete(st);
    };
    const onData = (chunk: Buffer) => {
      // grpc-js answered the call before its handler ran (a message over its receive limit, a
      // deadline passed, ...) and drops what more arrives: nobody holds it, so it is not counted;
      // the client is told to stop sending (RST_STREAM NO_ERROR behind the response).
      if ((st as ServerHttp2Stream).headersSent) {
        release();
        if (!st.closed && !st.destroyed) st.close(http2constants.NGHTTP2_NO_ERROR);
        return;
      }
      entry.lastAt = Date.now();
      wire += chunk.length;
      if (head) {
        head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
        if (head.length < 5) return;
        // A compressed message's length says nothing of what it holds: its handler judges it.
        const oversize = head[0] === 0 ? oversizeRequestReason(entry.method, head.readUInt32BE(1), head.subarray(5), this.cfg) : undefined;
        head = undefined;
        if (oversize) {
          release();
          this.stats.countRefused(entry.method);
          refuseStream(st, grpc.status.INVALID_ARGUMENT, oversize);
          return;
        }
      }
      const weight = Math.max(held, weigh(wire));
      this.arriving += weight - held;
      held = weight;
      if (held <= SMALL_REQUEST_BYTES) return;
      const load = this.arriving + this.stats.setBytesInFlight;
      if (load <= this.cfg.maxSetBytesInFlight || load === held) return;
      const mine = held;
      release();
      this.stats.countRefused(entry.method);
      const what = compressed ? `can decompress to ${mine} (${wire} bytes of ${encoding})` : `has ${mine} so far`;
      refuseStream(st, grpc.status.RESOURCE_EXHAUSTED, `server busy: ${load - mine} bytes of requests are arriving or waiting for their commit and this one ${what}, ` +
        `over the bound of ${this.cfg.maxSetBytesInFlight} (--max-inflight-set-mb); nothing was written, retry later`);
    };
    // Ahead of grpc-js's own listener: a chunk that gets the stream refused never reaches it (it sees
    // the stream closed and drops it), so no decompression starts for it.
    st.prependListener('data', onData);
    st.once('close', release);
    entry.release = release;
    this.arrivals.set(st, entry);
  }

  /** The handler of `call` runs: its request has arrived whole, and is no longer counted as arriving. */
  private arrived(call: object): void {
    const h2 = h2StreamOf(call);
    if (h2) this.arrivals.get(h2)?.release();
  }

  /**
   * For a forced shutdown: ends every open call not answered yet with UNAVAILABLE saying the server
   * is shutting down, so that its client knows to retry elsewhere or later (forcing alone gives
   * CANCELLED). A stream's status follows the messages already written to it; calls already
   * answered stay open until their response is sent.
   */
  endOpenCalls(): void {
    const se = statusError(grpc.status.UNAVAILABLE, SHUTTING_DOWN);
    for (const c of [...this.open]) c.end(se);
    // A call whose request is still arriving (a large Set from a slow client) has no handler to
    // answer it: refuse its stream, which its client reports as UNAVAILABLE and may retry (nothing of
    // it was processed). Left to grpc-js's forced shutdown, it would end CANCELLED.
    const handled = new Set([...this.open].map((c) => c.h2));
    for (const st of this.streams ?? []) if (!handled.has(st) && !st.closed && !st.destroyed) st.close(http2constants.NGHTTP2_REFUSED_STREAM);
  }

  /** Resets the streams of the calls still open with REFUSED_STREAM, which gRPC clients report as
   *  UNAVAILABLE. A client that does not read cannot get a status: it waits behind unread data. */
  resetOpenCalls(): void {
    for (const c of [...this.open]) resetStream(c.call, http2constants.NGHTTP2_REFUSED_STREAM);
  }

  /** Tracks `call` as open until its stream closes. Without the stream (see h2-call.ts) the call
   *  counts as closed once answered, and as delivered at once. */
  private track(call: object, end: OpenCall['end']): Tracked {
    const h2 = h2StreamOf(call);
    if (h2 && (h2.closed || h2.destroyed)) return { done: noop, whenDelivered: noop };
    const entry: OpenCall = { call, end, h2 };
    this.open.add(entry);
    // One listener per call, for both the open-call set and the delivery count.
    h2?.once('close', () => {
      this.open.delete(entry);
      if (entry.onDelivered && deliveredOk(h2)) entry.onDelivered();
    });
    return {
      done: () => { entry.end = noop; if (!h2) this.open.delete(entry); },
      whenDelivered: (fn) => { if (h2) entry.onDelivered = fn; else fn(); },
    };
  }

  /** `answer` that answers once (later answers are dropped, as after endOpenCalls), the call tracked. */
  private answerOnce<T>(call: object, cb: grpc.sendUnaryData<T>, onEnd?: (se: grpc.ServiceError) => grpc.ServiceError): { answer: (err: grpc.ServiceError | null, res?: T) => void; tracked: Tracked } {
    let answered = false;
    const answer = (err: grpc.ServiceError | null, res?: T) => {
      if (answered) return;
      answered = true;
      tracked.done();
      cb(err, res);
    };
    const tracked = this.track(call, (se) => answer(onEnd ? onEnd(se) : se));
    return { answer, tracked };
  }

  /** A Set's key must be within --max-key-bytes; a Get's only within what the file format holds: a
   *  key stored under a larger --max-key-bytes stays readable after a restart with a smaller one (as
   *  GetPrefix lists it), as values stored under a larger --max-value-bytes do. */
  private checkKey(key: Buffer | undefined, forSet: boolean): grpc.ServiceError | undefined {
    const limit = forSet ? this.cfg.maxKeyBytes : FORMAT_MAX_KEY_BYTES;
    if (!key || key.length === 0) return statusError(grpc.status.INVALID_ARGUMENT, `key is missing or empty; keys must be 1..${limit} bytes`);
    if (key.length > limit) return statusError(grpc.status.INVALID_ARGUMENT, forSet ? setKeyOverLimit(key.length, limit) : readKeyOverLimit(key.length));
    return undefined;
  }

  readonly set = (call: grpc.ServerUnaryCall<SetRequest, SetResponse>, cb: grpc.sendUnaryData<SetResponse>): void => {
    // A client gone (or a stream refused) before its request was handled gets no answer: nothing of
    // its Set is applied.
    this.arrived(call);
    if (call.cancelled) return;
    const { answer, tracked } = this.answerOnce(call, cb, (se) => statusError(se.code, `${se.details} (the Set was not acknowledged: it may or may not be applied)`));
    const fail = (e: grpc.ServiceError) => { this.stats.failedSets++; answer(e); };
    try {
      const invalid = invalidRequestReason(call.request);
      if (invalid) return fail(statusError(grpc.status.INVALID_ARGUMENT, invalid));
      const { key, value } = call.request;
      const bad = this.checkKey(key, true);
      if (bad) return fail(bad);
      const v = value ?? Buffer.alloc(0);
      if (v.length > this.cfg.maxValueBytes) {
        return fail(statusError(grpc.status.INVALID_ARGUMENT, valueOverLimit(v.length, this.cfg.maxValueBytes)));
      }
      // Every Set waits in memory for its commit; a server-wide bound keeps many concurrent large
      // Sets from exhausting it. One Set alone always goes through, or one above the bound never could.
      const bytes = key.length + v.length;
      if (this.stats.setBytesInFlight > 0 && this.stats.setBytesInFlight + bytes > this.cfg.maxSetBytesInFlight) {
        return fail(statusError(grpc.status.RESOURCE_EXHAUSTED, `server busy: ${this.stats.setBytesInFlight} bytes of Sets are waiting for their commit and this one adds ${bytes}, ` +
          `over the bound of ${this.cfg.maxSetBytesInFlight} (--max-inflight-set-mb); nothing was written, retry later`));
      }
      const pending = this.store.put(key, v); // a synchronous throw lands in the catch below
      this.inFlight++;
      this.stats.setBytesInFlight += bytes;
      pending.then(
        () => {
          this.inFlight--;
          this.stats.setBytesInFlight -= bytes;
          // Counted once its OK is sent, as a Get is: a Set whose client went away (or that a forced
          // shutdown answered UNAVAILABLE) was not acknowledged, though it may be applied.
          tracked.whenDelivered(() => { this.stats.totalSets++; });
          answer(null, {});
        },
        (err) => { this.inFlight--; this.stats.setBytesInFlight -= bytes; fail(toServiceError(err)); },
      );
    } catch (err) {
      fail(toServiceError(err));
    }
  };

  readonly get = (call: grpc.ServerUnaryCall<GetRequest, GetResponse>, cb: grpc.sendUnaryData<GetResponse>): void => {
    this.arrived(call);
    const { answer, tracked } = this.answerOnce(call, cb);
    const fail = (e: grpc.ServiceError) => { this.stats.failedGets++; answer(e); };
    try {
      const invalid = invalidRequestReason(call.request);
      if (invalid) return fail(statusError(grpc.status.INVALID_ARGUMENT, invalid));
      const { key } = call.request;
      const bad = this.checkKey(key, false);
      if (bad) return fail(bad);
      // The value read stays in memory until the client has taken the response (its stream closes):
      // a server-wide bound keeps clients that send Gets of large values and do not read the answers
      // from making the server hold all of them. One Get alone always goes through.
      let charged = 0;
      const h2 = h2StreamOf(call);
      const release = () => { this.stats.getBytesInFlight -= charged; charged = 0; };
      const alloc = (length: number): Buffer => {
        const held = this.stats.getBytesInFlight;
        if (held > 0 && held + length > this.cfg.maxGetBytesInFlight) {
          throw new StatusCarrier(statusError(grpc.status.RESOURCE_EXHAUSTED, `server busy: ${held} bytes of Get responses are waiting for their clients to take them and this value adds ${length}, ` +
            `over the bound of ${this.cfg.maxGetBytesInFlight} (--max-inflight-get-mb); retry later`));
        }
        this.stats.getBytesInFlight += length;
        charged += length;
        return framedValueBuffer(length);
      };
      const pending = this.store.get(key, { alloc });
      this.inFlight++;
      pending.then(
        (value) => {
          this.inFlight--;
          // Counted once the response and its OK status are sent: not if the client goes away first.
          tracked.whenDelivered(() => { this.stats.totalGets++; });
          const held = charged > 0 && h2 !== undefined && !h2.closed && !h2.destroyed;
          if (held) this.watchUnread(call, h2, charged);
          answer(null, value === undefined ? { found: false, value: Buffer.alloc(0) } : { found: true, value });
          if (held) h2.once('close', release);
          else release();
        },
        (err) => { this.inFlight--; release(); fail(toServiceError(err)); },
      );
    } catch (err) {
      fail(toServiceError(err));
    }
  };

  readonly stat = (call: grpc.ServerUnaryCall<StatRequest, StatResponse>, cb: grpc.sendUnaryData<StatResponse>): void => {
    this.arrived(call);
    try {
      const invalid = invalidRequestReason(call.request);
      if (invalid) return cb(statusError(grpc.status.INVALID_ARGUMENT, invalid));
      cb(null, this.stats.toStatResponse(this.store.stats(), this.dataFile));
    } catch (err) {
      cb(toServiceError(err));
    }
  };

  readonly getPrefix = (call: grpc.ServerWritableStream<GetPrefixRequest, GetPrefixResponse>): void => {
    this.arrived(call);
    this.inFlight++;
    const ending: Ending = {};
    const tracked = this.track(call, (se) => { ending.endedWith ??= se; ending.stop?.(); });
    streamPrefix(call, { store: this.store, cfg: this.cfg, stats: this.stats, budget: this.streamBudget }, ending, tracked)
      .catch((err) => {
        this.stats.failedGetprefixes++;
        if (!call.cancelled && !call.destroyed) {
          const se = toServiceError(err);
          call.emit('error', { code: se.code, details: se.details });
        }
      })
      .finally(() => { this.inFlight--; tracked.done(); });
  };

  /** The handler object for grpc.Server#addService. */
  handlers(): KeyValueStoreServer {
    return { set: this.set, get: this.get, getPrefix: this.getPrefix, stat: this.stat };
  }
}

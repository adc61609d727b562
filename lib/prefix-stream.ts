// GetPrefix: one snapshot's entries streamed in bounded messages, with backpressure from the
// client and a byte budget shared by all streams (the memory argument is at streamPrefix).
import * as grpc from '@grpc/grpc-js';
import type { Entry, Store } from '../btree/index';
import type { GetPrefixRequest, GetPrefixResponse, KeyValue } from '../generated/kv';
import { invalidRequestReason } from './codec';
import { FORMAT_MAX_KEY_BYTES, type ServerConfig } from './config';
import { resetStream, sliceWrites } from './h2-call';
import { prefixOverLimit } from './request-bound';
import type { ServiceStats } from './stats';
import { StatusCarrier, statusError } from './status';
import type { StreamBudget } from './stream-budget';

/** Bytes of protobuf framing per KeyValue entry inside a GetPrefixResponse (tags + lengths), upper bound. */
const ENTRY_OVERHEAD = 16;

/**
 * Calls `release` once a stalled stream's call is over: when it closes, or after `graceMs` in which
 * the client took no data, when its HTTP/2 stream is reset (RST_STREAM, CANCEL), which drops the
 * messages buffered in it. A client that neither reads nor disconnects would otherwise keep them, and
 * their share of the stream budget, for as long as its connection lives; one that came back and is
 * reading its way to the ABORTED status gets it. Returns what data taken calls: it restarts the wait.
 */
function reclaimAfter(call: grpc.ServerWritableStream<GetPrefixRequest, GetPrefixResponse>, graceMs: number, release: () => void): () => void {
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    call.off('close', finish);
    call.off('cancelled', finish);
    release();
  };
  const timer = setTimeout(() => { resetStream(call); finish(); }, graceMs);
  timer.unref();
  call.on('close', finish);
  call.on('cancelled', finish);
  return () => { if (!done) timer.refresh(); };
}

/** GetPrefix hands a large message to the transport in slices of this size, so that a client that
 *  keeps reading one is seen to (stall detection). */
const SLICE_BYTES = 64 * 1024;

/** How a GetPrefix stream learns that endOpenCalls ended it. */
export interface Ending {
  endedWith?: grpc.ServiceError;
  stop?: () => void;
}

/** What a stream uses of its service. */
export interface PrefixContext {
  store: Store;
  cfg: ServerConfig;
  stats: ServiceStats;
  budget: StreamBudget;
}

/**
 * Streams one snapshot's entries in messages of about `prefixMessageBytes` (T) payload.
 *
 * Memory. Two bounds hold together:
 * - per stream, at most `prefixMaxPendingMessages` (default 2) messages are written and not yet
 *   handed to the transport; beyond that we wait for the client (HTTP/2 flow control) before
 *   reading further from the cursor;
 * - over all streams, the bytes of entries read and not yet handed to the transport are charged to
 *   `streamBudget` (--stream-buffer-mb). A stream reserves T bytes of headroom BEFORE it reads an
 *   entry (the entry's size is unknown until it is read, and an entry up to T can be the one that
 *   does not fit the message being assembled and starts the next one); the entry's bytes are charged
 *   against that headroom, move with it into a message, and go back to the budget when that
 *   message's write callback fires, or when the stream ends, is cancelled or fails (every path).
 *
 * Deadlock freedom: a stream waits for budget only while holding nothing but messages already
 * written (which the transport releases without needing budget): before waiting it sends the
 * message it was assembling, returns its unused headroom and closes its cursor (which would
 * otherwise keep the last entry it yielded alive, uncharged), reopening it past the last key once
 * it has budget. While it waits for the transport it also returns its headroom.
 *
 * Fairness and the trade-off with slow clients: budget waiters are served first come, first
 * served. A client that stops reading keeps what its stream holds, which is at most its pending
 * messages plus the one entry read ahead (at most about 3 MiB with the defaults, 2 MiB when entries
 * are small), until it reads, cancels or its connection dies (a vanished client's streams are
 * cancelled and release everything at once), or with streamStallMs until twice that has passed
 * (ABORTED after the first, the stream reset after the second: see releaseWritten). So budget/3 MiB to budget/2 MiB stalled streams (10
 * to 16 with the default 32 MiB) exhaust the budget; after that, other GetPrefix streams wait
 * (Set/Get/Stat are not affected) instead of the server growing without bound. Keeping per-stream
 * pending small is what makes that number large; a larger budget tolerates more stalled clients at
 * the cost of a higher memory ceiling; more pending messages per stream would smooth a fast
 * reader's throughput at the cost of fewer streams sharing the budget.
 *
 * An entry larger than T (a large value) cannot be sized before it is read: the engine reads the
 * value as the cursor yields it. It is charged min(its size, budget) at once, overdrawing the
 * budget if need be (later reservations wait until it is repaid) rather than waiting while holding
 * it, which could deadlock; it goes alone in its message. The overdraft is bounded by the streams
 * that hold headroom at that moment (at most budget/T), each with one entry. An engine cursor that
 * reported a value's length before reading it would let the stream reserve first and make the
 * bound exact.
 */
export async function streamPrefix(call: grpc.ServerWritableStream<GetPrefixRequest, GetPrefixResponse>, { store, cfg, stats, budget }: PrefixContext, ending: Ending,
  tracked: { whenDelivered(fn: () => void): void }): Promise<void> {
  const invalid = invalidRequestReason(call.request);
  if (invalid) throw new StatusCarrier(statusError(grpc.status.INVALID_ARGUMENT, invalid));
  const prefix = call.request.prefix ?? Buffer.alloc(0);
  const limit = call.request.limit ?? 0;
  // Up to the file format's key limit, not --max-key-bytes: keys stored under a larger one are listed.
  if (prefix.length > FORMAT_MAX_KEY_BYTES) {
    throw new StatusCarrier(statusError(grpc.status.INVALID_ARGUMENT, prefixOverLimit(prefix.length)));
  }
  if (!Number.isSafeInteger(limit) || limit < 0) {
    throw new StatusCarrier(statusError(grpc.status.INVALID_ARGUMENT, `limit ${limit} is not a valid count`));
  }

  const abort = new AbortController();
  let closed = call.cancelled;
  let wake: (() => void) | undefined;
  const wakeUp = () => { const w = wake; wake = undefined; w?.(); };
  // Data taken by the client (a slice of a message, a drain): wakes the sender, and once the stream
  // was ended as stalled, puts off its reset (reclaimAfter).
  let afterStall: (() => void) | undefined;
  const progress = () => { afterStall?.(); wakeUp(); };
  const onClosed = () => { closed = true; abort.abort(); wakeUp(); };
  if (closed) abort.abort();
  call.on('cancelled', onClosed);
  call.on('close', onClosed);
  call.on('error', onClosed);
  call.on('drain', progress);
  // Ended by endOpenCalls: stops as if the client had gone, then fails with that status.
  ending.stop = onClosed;
  if (ending.endedWith) onClosed();
  // Whether the stream stopped before its end: ended by endOpenCalls (fails with that status) or
  // by the client (counted as cancelled).
  const endedEarly = (): boolean => {
    if (ending.endedWith) throw new StatusCarrier(ending.endedWith);
    if (closed) stats.cancelledGetprefixes++;
    return closed;
  };
  const wait = () => new Promise<void>((r) => { wake = r; });
  // Waiting for the client: every wake-up is progress (a slice of a message taken, a drain, or the
  // end); none for streamStallMs ends the stream (see ServerConfig.streamStallMs).
  const stallMs = cfg.streamStallMs;
  if (stallMs > 0) sliceWrites(call, SLICE_BYTES, progress);
  let stalled = false;
  const waitClient = async () => {
    if (stallMs <= 0) return wait();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([wait().then(() => false), new Promise<boolean>((r) => { timer = setTimeout(() => r(true), stallMs); })]);
    clearTimeout(timer);
    if (timedOut && !closed) {
      wake = undefined;
      stalled = true;
      stats.stalledGetprefixes++;
      throw new StatusCarrier(statusError(grpc.status.ABORTED,
        `GetPrefix: the client took no data for ${stallMs} ms, so the server ended the stream and released its snapshot ` +
        `(an open snapshot keeps the pages freed after it from reuse); ${taken} entries were read, the last of them may not have arrived`));
    }
  };

  // Budget accounting of this stream: `headroom` is reserved and not charged to an entry yet;
  // `batchCharge` is charged to the entries of the message being assembled; each written message
  // carries its charge until its write callback fires (or the stream ends).
  const target = cfg.prefixMessageBytes;
  const minHeadroom = Math.min(target, budget.capacity);
  const refill = Math.min(2 * target, budget.capacity); // one wait yields about a whole message
  let headroom = 0;
  let batchCharge = 0;
  let carried = 0; // the charge of an entry read and not yet in the batch (it waits on sendBatch)
  const inflight = new Set<{ charge: number }>();
  const releaseMessage = (m: { charge: number }) => {
    if (inflight.delete(m)) budget.release(m.charge);
  };
  const returnHeadroom = () => { budget.release(headroom); headroom = 0; };
  // Messages written and not taken are freed with the call, except a stalled client's: those sit
  // in the HTTP/2 stream's buffer, and the ABORTED status waits behind them (trailers follow the
  // data), so they stay charged while the client has streamStallMs more to come back and read its
  // status; then the stream is reset, which frees them (see reclaimAfter).
  const releaseWritten = () => {
    const release = () => { for (const m of [...inflight]) releaseMessage(m); call.off('drain', progress); afterStall = undefined; };
    if (stalled && !closed && inflight.size > 0) afterStall = reclaimAfter(call, stallMs, release);
    else release();
  };

  const maxPending = Math.max(1, cfg.prefixMaxPendingMessages);
  let needDrain = false;
  const transportBusy = () => inflight.size >= maxPending || (needDrain && call.writableNeedDrain);
  const waitTransport = async () => {
    if (closed || !transportBusy()) return;
    returnHeadroom(); // do not sit on unused budget while the client is slow
    while (!closed && transportBusy()) await waitClient();
  };

  let batch: KeyValue[] = [];
  let bytes = 0;
  const sendBatch = async () => {
    if (batch.length === 0) return;
    const m = { charge: batchCharge };
    const count = batch.length;
    inflight.add(m);
    const ok = call.write({ entries: batch }, () => { releaseMessage(m); progress(); });
    batch = []; // (no local keeps the entries: this function stays suspended in waitTransport)
    bytes = 0;
    batchCharge = 0;
    stats.prefixMessagesSent++;
    stats.prefixEntriesSent += count;
    // write() returning false means the stream's own buffer is full: wait for 'drain' as well.
    needDrain = !ok;
    await waitTransport();
  };

  let snap: ReturnType<Store['snapshot']> | undefined;
  // The cursor. A suspended engine cursor keeps the last entry it yielded (its value) alive, so
  // before a stream waits for budget it closes its cursor (after sending that entry), and reopens it
  // just past the last key once it has budget again: a waiting stream holds no entry at all.
  let it: AsyncIterator<Entry> | undefined;
  let lastKey: Buffer | undefined;
  let taken = 0;
  const closeCursor = async () => {
    const c = it;
    it = undefined;
    if (c) await c.return?.(undefined)?.catch(() => undefined);
  };
  const cursor = (): AsyncIterator<Entry> => {
    if (!it) {
      // Taken at the first read, once the stream has budget: a stream queued for budget at its start
      // holds no snapshot (which would keep the pages freed after it from reuse) while it waits.
      snap ??= store.snapshot();
      it = snap.range({
        prefix: prefix.length > 0 ? prefix : undefined,
        start: lastKey ? Buffer.concat([lastKey, Buffer.alloc(1)]) : undefined, // just past lastKey
        limit: limit > 0 ? limit - taken : undefined,
      })[Symbol.asyncIterator]();
    }
    return it;
  };

  /** Makes sure `minHeadroom` bytes are reserved before the next read. False if the stream closed. */
  const ensureHeadroom = async (): Promise<boolean> => {
    if (headroom >= minHeadroom) return true;
    if (budget.tryAcquire(refill - headroom)) { headroom = refill; return true; }
    // We have to wait: first give up what others might need and we cannot use yet, and wait for
    // the client to take what this stream has written (under the stall timer: in the budget's
    // queue no timer runs, so a stream there must hold nothing a stalled client keeps).
    await sendBatch();
    while (!closed && inflight.size > 0) await waitClient();
    if (closed) return false;
    await closeCursor();
    returnHeadroom();
    if (!(await budget.acquire(refill, abort.signal))) return false;
    headroom = refill;
    return !closed;
  };

  let completed = false;
  try {
    try {
      while (!(limit > 0 && taken >= limit)) {
        await waitTransport();
        if (closed || !(await ensureHeadroom())) break;
        // `r` and `e` are cleared before the next await: a suspended async function keeps its
        // registers, and a dead entry held there would be uncharged memory (measured: ~70 MiB
        // with 1,000 waiting streams).
        let r: IteratorResult<Entry> | undefined = await cursor().next();
        if (r.done || closed) break;
        let e: Entry | undefined = r.value;
        r = undefined;
        taken++;
        lastKey = e.key;
        const size = e.key.length + e.value.length + ENTRY_OVERHEAD;
        const charge = Math.min(size, budget.capacity);
        if (charge <= headroom) headroom -= charge;
        else { budget.force(charge - headroom); headroom = 0; } // an entry larger than T: see above
        carried = charge;
        if (batch.length > 0 && bytes + size > target) {
          await sendBatch();
          if (closed) break;
        }
        batch.push({ key: e.key, value: e.value });
        e = undefined;
        bytes += size;
        batchCharge += carried;
        carried = 0;
      }
      if (!closed) await sendBatch();
    } finally {
      await closeCursor();
    }
    completed = !closed;
  } finally {
    snap?.release();
    // Whatever is not yet written goes back now.
    returnHeadroom();
    budget.release(batchCharge + carried);
    batchCharge = 0;
    carried = 0;
    batch = [];
    if (!completed) {
      // Cancelled or failed: the transport may never call back for what it holds.
      releaseWritten();
    }
  }
  if (endedEarly()) return;
  // Hold the written messages' charge until the transport has taken them (their write callbacks),
  // then end the call. The snapshot is already released.
  try {
    while (!closed && inflight.size > 0) await waitClient();
  } finally {
    releaseWritten();
  }
  if (endedEarly()) return;
  // Counted once its status is sent too, as a Get is.
  tracked.whenDelivered(() => { stats.totalGetprefixes++; });
  call.end();
}

// The gRPC service: Set / Get / GetPrefix / Stat over the storage engine (btree/).
// Validates every request, maps engine errors to gRPC status codes, and never lets a bad request
// take the server down.
import * as grpc from '@grpc/grpc-js';
import { join } from 'node:path';
import { StoreError, type Store } from '../btree/index';
import {
  type GetPrefixRequest,
  type GetPrefixResponse,
  type GetRequest,
  type GetResponse,
  type KeyValue,
  type KeyValueStoreServer,
  type SetRequest,
  type SetResponse,
  type StatRequest,
  type StatResponse,
} from '../generated/kv';
import { invalidRequestReason, ServerKeyValueStoreService } from './codec';
import { DATA_FILE_NAME, maxMessageBytes, type ServerConfig } from './config';
import { ServiceStats } from './stats';

export interface StatusError {
  code: grpc.status;
  details: string;
}

function statusError(code: grpc.status, details: string): grpc.ServiceError {
  const e = new Error(details) as grpc.ServiceError;
  e.code = code;
  e.details = details;
  e.metadata = new grpc.Metadata();
  return e;
}

/** Carries a ready-made gRPC status through a throw. */
class StatusCarrier extends Error {
  constructor(readonly se: grpc.ServiceError) { super(se.details); }
}

/** Maps an engine (or any) error to a gRPC status; the details say what went wrong. */
export function toServiceError(err: unknown): grpc.ServiceError {
  if (err instanceof StatusCarrier) return err.se;
  if (err instanceof StoreError) {
    switch (err.code) {
      case 'INVALID_ARGUMENT': return statusError(grpc.status.INVALID_ARGUMENT, err.message);
      case 'NO_SPACE': return statusError(grpc.status.RESOURCE_EXHAUSTED, `disk full: ${err.message}`);
      case 'CORRUPTION': return statusError(grpc.status.DATA_LOSS, `data corruption detected: ${err.message}`);
      case 'CLOSED': return statusError(grpc.status.UNAVAILABLE, `store is closed (server shutting down): ${err.message}`);
      case 'LOCKED': return statusError(grpc.status.FAILED_PRECONDITION, err.message);
      case 'IO': return statusError(grpc.status.INTERNAL, `I/O error: ${err.message}`);
    }
  }
  const msg = err instanceof Error ? err.message : String(err);
  return statusError(grpc.status.INTERNAL, `internal error: ${msg}`);
}

/** Bytes of protobuf framing per KeyValue entry inside a GetPrefixResponse (tags + lengths), upper bound. */
const ENTRY_OVERHEAD = 16;

export class KvService {
  readonly stats: ServiceStats;
  private shuttingDown = false;
  /** Unary calls and streams currently being served. */
  private inFlight = 0;
  private readonly dataFile: string;

  constructor(private readonly store: Store, private readonly cfg: ServerConfig, stats?: ServiceStats) {
    this.stats = stats ?? new ServiceStats();
    this.dataFile = join(cfg.dataDir, DATA_FILE_NAME);
  }

  /**
   * Marks the start of shutdown. The transport stops accepting calls (grpc tryShutdown: listener
   * closed, GOAWAY); calls that already reached us are still served, since the store stays open until
   * every call is done. Once the store is closing, calls fail with UNAVAILABLE (engine CLOSED).
   */
  beginShutdown(): void { this.shuttingDown = true; }
  get isShuttingDown(): boolean { return this.shuttingDown; }
  get callsInFlight(): number { return this.inFlight; }

  private checkKey(key: Buffer | undefined, what = 'key'): grpc.ServiceError | undefined {
    if (!key || key.length === 0) return statusError(grpc.status.INVALID_ARGUMENT, `${what} is missing or empty; keys must be 1..${this.cfg.maxKeyBytes} bytes`);
    if (key.length > this.cfg.maxKeyBytes) {
      return statusError(grpc.status.INVALID_ARGUMENT, `${what} is ${key.length} bytes; over the key limit of ${this.cfg.maxKeyBytes} bytes (keys must be 1..${this.cfg.maxKeyBytes} bytes)`);
    }
    return undefined;
  }

  readonly set = (call: grpc.ServerUnaryCall<SetRequest, SetResponse>, cb: grpc.sendUnaryData<SetResponse>): void => {
    const fail = (e: grpc.ServiceError) => { this.stats.failedSets++; cb(e); };
    try {
      const invalid = invalidRequestReason(call.request);
      if (invalid) return fail(statusError(grpc.status.INVALID_ARGUMENT, invalid));
      const { key, value } = call.request;
      const bad = this.checkKey(key);
      if (bad) return fail(bad);
      const v = value ?? Buffer.alloc(0);
      if (v.length > this.cfg.maxValueBytes) {
        return fail(statusError(grpc.status.INVALID_ARGUMENT, `value is ${v.length} bytes; over the value limit of ${this.cfg.maxValueBytes} bytes (--max-value-bytes)`));
      }
      const pending = this.store.put(key, v); // a synchronous throw lands in the catch below
      this.inFlight++;
      pending.then(
        () => { this.inFlight--; this.stats.totalSets++; cb(null, {}); },
        (err) => { this.inFlight--; fail(toServiceError(err)); },
      );
    } catch (err) {
      fail(toServiceError(err));
    }
  };

  readonly get = (call: grpc.ServerUnaryCall<GetRequest, GetResponse>, cb: grpc.sendUnaryData<GetResponse>): void => {
    try {
      const invalid = invalidRequestReason(call.request);
      if (invalid) return cb(statusError(grpc.status.INVALID_ARGUMENT, invalid));
      const { key } = call.request;
      const bad = this.checkKey(key);
      if (bad) return cb(bad);
      const pending = this.store.get(key);
      this.inFlight++;
      pending.then(
        (value) => {
          this.inFlight--;
          this.stats.totalGets++;
          cb(null, value === undefined ? { found: false, value: Buffer.alloc(0) } : { found: true, value });
        },
        (err) => { this.inFlight--; this.stats.failedGets++; cb(toServiceError(err)); },
      );
    } catch (err) {
      this.stats.failedGets++;
      cb(toServiceError(err));
    }
  };

  readonly stat = (_call: grpc.ServerUnaryCall<StatRequest, StatResponse>, cb: grpc.sendUnaryData<StatResponse>): void => {
    try {
      cb(null, this.stats.toStatResponse(this.store.stats(), this.dataFile));
    } catch (err) {
      cb(toServiceError(err));
    }
  };

  readonly getPrefix = (call: grpc.ServerWritableStream<GetPrefixRequest, GetPrefixResponse>): void => {
    this.inFlight++;
    this.streamPrefix(call)
      .catch((err) => {
        this.stats.failedGetprefixes++;
        if (!call.cancelled && !call.destroyed) {
          const se = toServiceError(err);
          call.emit('error', { code: se.code, details: se.details });
        }
      })
      .finally(() => { this.inFlight--; });
  };

  /**
   * Streams one snapshot's entries in messages of about `prefixMessageBytes` payload. At most
   * `prefixMaxPendingMessages` messages are queued at the transport; beyond that we wait for the
   * client to take them (HTTP/2 flow control) before reading further from the cursor, so memory per
   * stream is bounded whatever the result size and however slow the client.
   */
  private async streamPrefix(call: grpc.ServerWritableStream<GetPrefixRequest, GetPrefixResponse>): Promise<void> {
    const invalid = invalidRequestReason(call.request);
    if (invalid) throw new StatusCarrier(statusError(grpc.status.INVALID_ARGUMENT, invalid));
    const prefix = call.request.prefix ?? Buffer.alloc(0);
    const limit = call.request.limit ?? 0;
    if (prefix.length > this.cfg.maxKeyBytes) {
      throw new StatusCarrier(statusError(grpc.status.INVALID_ARGUMENT,
        `prefix is ${prefix.length} bytes; over the key limit of ${this.cfg.maxKeyBytes} bytes`));
    }
    if (!Number.isSafeInteger(limit) || limit < 0) {
      throw new StatusCarrier(statusError(grpc.status.INVALID_ARGUMENT, `limit ${limit} is not a valid count`));
    }

    let closed = call.cancelled;
    let wake: (() => void) | undefined;
    const wakeUp = () => { const w = wake; wake = undefined; w?.(); };
    const onClosed = () => { closed = true; wakeUp(); };
    call.on('cancelled', onClosed);
    call.on('close', onClosed);
    call.on('error', onClosed);
    call.on('drain', wakeUp);
    const wait = () => new Promise<void>((r) => { wake = r; });

    let pending = 0; // messages written whose write callback has not fired yet
    const maxPending = Math.max(1, this.cfg.prefixMaxPendingMessages);
    const send = async (entries: KeyValue[]) => {
      pending++;
      const ok = call.write({ entries }, () => { pending--; wakeUp(); });
      this.stats.prefixMessagesSent++;
      this.stats.prefixEntriesSent += entries.length;
      // write() returning false means the stream's own buffer is full: wait for 'drain' as well.
      const needDrain = !ok;
      while (!closed && (pending >= maxPending || (needDrain && call.writableNeedDrain))) await wait();
    };

    const snap = this.store.snapshot();
    try {
      const target = this.cfg.prefixMessageBytes;
      let batch: KeyValue[] = [];
      let bytes = 0;
      const cursor = snap.range({ prefix: prefix.length > 0 ? prefix : undefined, limit: limit > 0 ? limit : undefined });
      for await (const e of cursor) {
        if (closed) break;
        const size = e.key.length + e.value.length + ENTRY_OVERHEAD;
        if (batch.length > 0 && bytes + size > target) {
          await send(batch);
          batch = [];
          bytes = 0;
          if (closed) break;
        }
        batch.push({ key: e.key, value: e.value });
        bytes += size;
      }
      if (!closed) {
        if (batch.length > 0) await send(batch);
      }
    } finally {
      snap.release();
      call.off('drain', wakeUp);
    }
    if (closed) {
      this.stats.cancelledGetprefixes++;
      return;
    }
    call.end();
    this.stats.totalGetprefixes++;
  }

  /** The handler object for grpc.Server#addService. */
  handlers(): KeyValueStoreServer {
    return { set: this.set, get: this.get, getPrefix: this.getPrefix, stat: this.stat };
  }
}

/** A grpc.Server with message limits that fit the largest value, serving `service`. */
export function createGrpcServer(service: KvService, cfg: ServerConfig): grpc.Server {
  const max = maxMessageBytes(cfg);
  const server = new grpc.Server({
    'grpc.max_receive_message_length': max,
    'grpc.max_send_message_length': max,
  });
  server.addService(ServerKeyValueStoreService, service.handlers());
  return server;
}

/** Binds `address`; resolves with the bound port. Rejects with a readable error (e.g. port in use). */
export function bindServer(server: grpc.Server, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => {
      if (err) reject(err);
      else resolve(port);
    });
  });
}

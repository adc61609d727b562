// Typed client library for lbkv. The CLI, the demo, the tests and the experiments all use this.
// Errors from calls are grpc-js ServiceError objects (with `.code`, a grpc status, and `.details`).
import * as grpc from '@grpc/grpc-js';
import {
  KeyValueStoreClient,
  type GetPrefixResponse,
  type StatResponse,
} from '../generated/kv';
import { DEFAULT_CONFIG, maxMessageBytes } from './config';

export type { StatResponse } from '../generated/kv';
export { status as GrpcStatus } from '@grpc/grpc-js';
export type { ServiceError } from '@grpc/grpc-js';

/** What a server with the default limits may send or take: the largest value, key and framing. */
export const DEFAULT_MAX_MESSAGE_BYTES = maxMessageBytes(DEFAULT_CONFIG);

export type Bytes = Buffer | string | Uint8Array;

export interface KvClientOptions {
  /** grpc max send and receive message length. Default 64 MiB + 2 MiB (fits the largest default value). */
  maxMessageBytes?: number;
  /** Deadline for each unary call, ms (default: none). */
  callTimeoutMs?: number;
  /** Extra grpc channel options. */
  channelOptions?: grpc.ChannelOptions;
}

export interface KvEntry {
  key: Buffer;
  value: Buffer;
}

export interface GetPrefixOptions {
  /** 0 or undefined: no limit. */
  limit?: number;
}

export function toBytes(b: Bytes): Buffer {
  if (typeof b === 'string') return Buffer.from(b, 'utf8');
  if (Buffer.isBuffer(b)) return b;
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
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

export class KvClient {
  /** The generated grpc-js stub, for callers that need raw access. */
  readonly raw: KeyValueStoreClient;
  readonly address: string;
  readonly maxMessageBytes: number;
  private readonly callTimeoutMs: number | undefined;

  constructor(address = '127.0.0.1:50051', opts: KvClientOptions = {}) {
    this.address = address;
    this.maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.callTimeoutMs = opts.callTimeoutMs;
    this.raw = new KeyValueStoreClient(address, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': this.maxMessageBytes,
      'grpc.max_send_message_length': this.maxMessageBytes,
      ...opts.channelOptions,
    });
  }

  /** Whether the channel has a connection that completed the HTTP/2 handshake: after a deadline,
   *  false means no call of this client can have reached the server. */
  connected(): boolean {
    return this.raw.getChannel().getConnectivityState(false) === grpc.connectivityState.READY;
  }

  private callOptions(): Partial<grpc.CallOptions> {
    return this.callTimeoutMs ? { deadline: Date.now() + this.callTimeoutMs } : {};
  }

  /** Resolves once the server has made the value durable. */
  set(key: Bytes, value: Bytes): Promise<void> {
    const req = { key: toBytes(key), value: toBytes(value) };
    return new Promise((resolve, reject) => {
      this.raw.set(req, new grpc.Metadata(), this.callOptions(), (err) => (err ? reject(err) : resolve()));
    });
  }

  /** The value, or undefined when the key is absent. */
  get(key: Bytes): Promise<Buffer | undefined> {
    const req = { key: toBytes(key) };
    return new Promise((resolve, reject) => {
      this.raw.get(req, new grpc.Metadata(), this.callOptions(), (err, res) => {
        if (err) reject(err);
        else resolve(res.found ? res.value : undefined);
      });
    });
  }

  stat(): Promise<StatResponse> {
    return new Promise((resolve, reject) => {
      this.raw.stat({}, new grpc.Metadata(), this.callOptions(), (err, res) => (err ? reject(err) : resolve(res)));
    });
  }

  /**
   * The server's stream, one item per GetPrefix message (a batch of entries). Stopping the iteration
   * early (break/return/throw) cancels the call so the server releases its snapshot.
   */
  async *getPrefixMessages(prefix: Bytes, opts: GetPrefixOptions = {}): AsyncGenerator<KvEntry[]> {
    // callTimeoutMs bounds the whole stream: a deadline is per call, and the call is the stream.
    const call = this.raw.getPrefix({ prefix: toBytes(prefix), limit: opts.limit ?? 0 }, new grpc.Metadata(), this.callOptions());
    let finished = false;
    try {
      for await (const msg of call as AsyncIterable<GetPrefixResponse>) {
        yield msg.entries;
      }
      finished = true;
    } finally {
      if (!finished) {
        call.on('error', () => {}); // the CANCELLED status that follows is expected
        call.cancel();
      }
    }
  }

  /** Entries under `prefix` in ascending bytewise key order, from one server snapshot. */
  async *getPrefix(prefix: Bytes, opts: GetPrefixOptions = {}): AsyncGenerator<KvEntry> {
    for await (const batch of this.getPrefixMessages(prefix, opts)) {
      for (const e of batch) yield { key: e.key, value: e.value };
    }
  }

  /** Collects getPrefix into an array (convenience for small results). */
  async getPrefixAll(prefix: Bytes, opts: GetPrefixOptions = {}): Promise<KvEntry[]> {
    const out: KvEntry[] = [];
    for await (const e of this.getPrefix(prefix, opts)) out.push(e);
    return out;
  }

  /** Resolves when the channel is connected; rejects if not ready within `deadlineMs`. */
  waitForReady(deadlineMs = 5000): Promise<void> {
    return new Promise((resolve, reject) => {
      this.raw.waitForReady(Date.now() + deadlineMs, (err) => (err ? reject(err) : resolve()));
    });
  }

  close(): void {
    this.raw.close();
  }
}

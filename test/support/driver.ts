// How the power-cut campaign talks to the store: straight to the engine, or through the real gRPC
// service handlers (lib/service.ts KvService: request validation, Store calls, error mapping,
// GetPrefix streaming with its flow control) with in-process fake calls instead of a network.
import { EventEmitter } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import type { Store } from '../../btree';
import { KvService } from '../../lib/service';
import { DEFAULT_CONFIG, type ServerConfig } from '../../lib/config';
import type { GetPrefixResponse } from '../../generated/kv';

export type Via = 'engine' | 'service';

export interface Driver {
  put(key: Buffer, value: Buffer): Promise<void>;
  get(key: Buffer): Promise<Buffer | undefined>;
  /** Every entry in key order (a range scan / an empty-prefix GetPrefix). */
  scan(): Promise<{ key: Buffer; value: Buffer }[]>;
}

export function engineDriver(store: Store): Driver {
  return {
    put: (k, v) => store.put(k, v),
    get: (k) => store.get(k),
    async scan() {
      const out: { key: Buffer; value: Buffer }[] = [];
      const snap = store.snapshot();
      try {
        for await (const e of snap.range()) out.push({ key: Buffer.from(e.key), value: Buffer.from(e.value) });
      } finally {
        snap.release();
      }
      return out;
    },
  };
}

export class ServiceCallError extends Error {
  constructor(readonly code: number, readonly details: string) {
    super(`gRPC status ${code}: ${details}`);
  }
}

/** A server-streaming call as KvService uses it: write with a callback, end, events. */
class FakeStream extends EventEmitter {
  cancelled = false;
  destroyed = false;
  writableNeedDrain = false;
  readonly messages: GetPrefixResponse[] = [];
  constructor(readonly request: unknown, private readonly done: (err?: ServiceCallError) => void) {
    super();
    this.on('error', (e: { code: number; details: string }) => this.done(new ServiceCallError(e.code, e.details)));
  }
  write(msg: GetPrefixResponse, cb?: () => void): boolean {
    this.messages.push(msg);
    if (cb) setImmediate(cb);
    return true;
  }
  end(): void {
    this.done();
  }
}

export function serviceDriver(store: Store, cfg: Partial<ServerConfig> = {}): Driver {
  const service = new KvService(store, { ...DEFAULT_CONFIG, dataDir: '/db', ...cfg });
  const unary = <Req, Res>(handler: (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) => void, request: Req) =>
    new Promise<Res>((resolve, reject) => {
      handler({ request } as unknown as grpc.ServerUnaryCall<Req, Res>, (err, res) => {
        if (err) reject(new ServiceCallError((err as grpc.ServiceError).code ?? -1, (err as grpc.ServiceError).details ?? String(err)));
        else resolve(res as Res);
      });
    });
  return {
    async put(key, value) {
      await unary(service.set, { key, value });
    },
    async get(key) {
      const r = await unary(service.get, { key });
      return r.found ? Buffer.from(r.value) : undefined;
    },
    scan() {
      return new Promise((resolve, reject) => {
        const call: FakeStream = new FakeStream({ prefix: Buffer.alloc(0), limit: 0 }, (err) => {
          if (err) reject(err);
          else resolve(call.messages.flatMap((m) => m.entries.map((e) => ({ key: Buffer.from(e.key), value: Buffer.from(e.value) }))));
        });
        service.getPrefix(call as unknown as grpc.ServerWritableStream<never, GetPrefixResponse>);
      });
    },
  };
}

export function driverFor(via: Via, store: Store): Driver {
  return via === 'service' ? serviceDriver(store) : engineDriver(store);
}

// The grpc-js server around a KvService: message limits, binding, and a forced stop that tells
// clients why their calls end.
import * as grpc from '@grpc/grpc-js';
import { ServerKeyValueStoreService } from './codec';
import { maxMessageBytes, type ServerConfig } from './config';
import type { KvService } from './service';

/** A grpc.Server serving `service`. It receives messages up to twice the size that fits the largest
 *  value, so that a Set of a value up to twice the limit reaches the handler and gets INVALID_ARGUMENT
 *  naming the limit; a larger one is refused by grpc-js from its length prefix, before it is read,
 *  with RESOURCE_EXHAUSTED "Received message larger than max (N vs M)". What it sends has no limit:
 *  values stored under a larger --max-value-bytes must stay readable after a restart with a smaller. */
export function createGrpcServer(service: KvService, cfg: ServerConfig): grpc.Server {
  const max = maxMessageBytes(cfg);
  const server = new grpc.Server({
    'grpc.max_receive_message_length': 2 * max,
    'grpc.max_send_message_length': -1,
  });
  server.addService(ServerKeyValueStoreService, service.handlers());
  return server;
}

/** Binds `address`; resolves with the bound port. Rejects with a readable error (e.g. port in use). */
export function bindServer(server: grpc.Server, address: string): Promise<number> {
  // grpc-js also logs a failed bind on stderr ("E No address added ..."), before the caller can say
  // what went wrong in its own words; keep its log quiet for the bind alone.
  // The level to go back to is grpc-js's own default, or what GRPC_VERBOSITY asked for.
  const level = grpc.logVerbosity[(process.env.GRPC_VERBOSITY ?? 'ERROR').toUpperCase() as keyof typeof grpc.logVerbosity] ?? grpc.logVerbosity.ERROR;
  grpc.setLogVerbosity(grpc.logVerbosity.NONE);
  return new Promise((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => {
      grpc.setLogVerbosity(level);
      if (err) reject(err);
      else resolve(port);
    });
  });
}

/** How long clients get to read what is queued for them before their streams are reset (forceStop). */
export const FORCE_GRACE_MS = 1000;

/**
 * A forced stop that tells the clients of the calls still open why they end: UNAVAILABLE "server is
 * shutting down" after what is queued for them (KvService.endOpenCalls); after `graceMs`, the streams
 * of clients that have not read that far are reset with REFUSED_STREAM (UNAVAILABLE too); shortly
 * after, grpc-js drops whatever is left. `closed` resolves when the server's tryShutdown completes,
 * which ends this early.
 */
export async function forceStop(server: grpc.Server, service: KvService, closed: Promise<void>, graceMs = FORCE_GRACE_MS): Promise<void> {
  const closedWithin = (ms: number) => Promise.race([
    closed.then(() => true),
    new Promise<boolean>((r) => setTimeout(r, ms, false).unref()),
  ]);
  service.endOpenCalls();
  if (await closedWithin(graceMs)) return;
  service.resetOpenCalls();
  // The resets are frames to send: dropping the connections at once could lose them.
  if (await closedWithin(200)) return;
  server.forceShutdown();
}

// The graceful stop on SIGTERM/SIGINT/SIGHUP: stop accepting, let the calls in flight finish (forced after
// --shutdown-timeout-ms, or at once by a second signal), close the store, then remove the LOCK.
import type * as grpc from '@grpc/grpc-js';
import type { Store } from '../btree/index';
import { EXIT } from './exit-status';
import { forceStop } from './grpc-server';
import type { DirLock } from './lock';
import { log } from './server-log';
import type { KvService } from './service';

/** The signals that stop lbserver gracefully. SIGHUP (its terminal closed, or a session's end) killed
 *  it by Node's default: no in-flight call finished, the LOCK left for the next start to replace. */
const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

/** Runs `handler` on each of STOP_SIGNALS; returns what removes it. */
export function onStopSignals(handler: (signal: string) => void): () => void {
  const bound = STOP_SIGNALS.map((sig) => [sig, () => handler(sig)] as const);
  for (const [sig, h] of bound) process.on(sig, h);
  return () => { for (const [sig, h] of bound) process.off(sig, h); };
}

/** The handler of the stop signals while serving. Its first call stops the server and resolves with the
 *  exit status (EXIT.FAILED if the store would not close); a later one forces what the first is
 *  waiting for, and resolves with undefined. */
export function shutdownOnSignal(server: grpc.Server, service: KvService, store: Store, lock: DirLock, shutdownTimeoutMs: number): (signal: string) => Promise<number | undefined> {
  let stopping = false;
  let hurry: (() => void) | undefined; // a second signal while waiting: force now
  return async (signal: string) => {
    if (stopping) {
      log(`${signal} again: forcing shutdown`);
      if (hurry) hurry();
      else server.forceShutdown();
      return undefined;
    }
    stopping = true;
    log(`${signal}: shutting down (finishing ${service.openCalls} in-flight calls)`);
    service.beginShutdown();
    const closed = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    let timer: NodeJS.Timeout | undefined;
    let hurried = false;
    const forced = await Promise.race([
      closed.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), shutdownTimeoutMs);
        hurry = () => { hurried = true; resolve(true); };
      }),
    ]);
    clearTimeout(timer);
    hurry = undefined;
    if (forced) {
      log(`${service.openCalls} in-flight calls did not finish${hurried ? '' : ` within ${shutdownTimeoutMs} ms`}: forcing (ending them with UNAVAILABLE)`);
      await forceStop(server, service, closed, hurried ? 0 : undefined);
    }
    // Engine calls already started (e.g. a Set whose client went away) finish before the store closes.
    const deadline = Date.now() + Math.max(1000, shutdownTimeoutMs);
    while (service.callsInFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    let code: number = EXIT.OK;
    try {
      await store.close();
    } catch (e) {
      log(`error closing the store: ${(e as Error).message}`);
      code = EXIT.FAILED;
    }
    lock.release();
    log(`stopped${forced ? ' (forced)' : ''}`);
    return code;
  };
}

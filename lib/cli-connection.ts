// lbclient's connection to the server: its global options as the client takes them, and a call
// on a client of its own, bounded while no connection is made, its failures turned into the CLI's.
import { KvClient, MAX_DEADLINE_MS } from './client';
import { wholeOption } from './cli-args';
import { CliError, EXIT, grpcFailure } from './cli-errors';
import { ConfigError, parseHostPort } from './config';

export interface GlobalOpts {
  server: string;
  hex?: boolean;
  timeoutMs?: string;
  connectTimeoutMs: string;
}

/** Longest --connect-timeout-ms: what a timer can wait (2^31 - 1 ms, about 24.8 days); --timeout-ms,
 *  a gRPC deadline, is bounded a little lower (MAX_DEADLINE_MS). */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** The global options as the client takes them; a usage error if they are wrong. Checked before a
 *  command runs (so `set k -` with a typo fails before reading stdin) and again for the client. */
export function clientOptions(g: GlobalOpts): { callTimeoutMs: number | undefined; connectTimeoutMs: number } {
  try {
    parseHostPort(g.server, '--server');
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(e.message, EXIT.USAGE);
    throw e;
  }
  return {
    callTimeoutMs: g.timeoutMs === undefined ? undefined : wholeOption(g.timeoutMs, '--timeout-ms', 1, MAX_DEADLINE_MS),
    connectTimeoutMs: wholeOption(g.connectTimeoutMs, '--connect-timeout-ms', 0, MAX_TIMEOUT_MS),
  };
}

/** Runs `cmd` on a client of its own: its gRPC failures become the CLI's messages and exit codes.
 *  `body` calls `answered()` once part of the answer has been printed; it gets the call deadline
 *  too, for a stream (KvClient applies it to unary calls only). */
export async function withServer<T>(g: GlobalOpts, cmd: string, body: (c: KvClient, answered: () => void, callTimeoutMs: number | undefined) => Promise<T>): Promise<T> {
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

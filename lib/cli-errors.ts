// lbclient's exit codes, and how a failure (the server's or a local one) becomes its message and code.
import { describeError, GrpcStatus, isServiceError } from './client';

export const EXIT = { OK: 0, NOT_FOUND: 1, UNREACHABLE: 2, SERVER_ERROR: 3, USAGE: 4, TIMED_OUT: 5 } as const;

export class CliError extends Error {
  constructor(message: string, readonly exitCode: number) { super(message); }
}

/** What a call that ran out of time may have left behind, per command. */
const TIMEOUT_OUTCOME: Record<string, string> = {
  set: '; the set may have been applied',
  getprefix: '; the entries printed, if any, are not the whole listing',
};

/** `connected`: whether a connection of the client ever completed its handshake (KvClient.connected);
 *  `partial`: whether part of the answer (entries of a getprefix) had arrived and been printed. */
export function grpcFailure(addr: string, e: unknown, cmd: string, timeoutMs: string | undefined, connected: boolean, partial: boolean): CliError {
  if (isServiceError(e)) {
    if (e.code === GrpcStatus.DEADLINE_EXCEEDED) {
      const after = timeoutMs !== undefined ? ` after ${Number(timeoutMs)} ms (--timeout-ms)` : '';
      // No connection ever completed its handshake (a hung server that accepts TCP): the call was
      // never sent, so nothing can have been applied.
      if (!connected) {
        return new CliError(`cannot reach server at ${addr}: no connection${after}; the ${cmd} was not sent (${describeError(e)})`, EXIT.UNREACHABLE);
      }
      // The call may have reached the server: not "cannot reach", and for a set not "not applied".
      return new CliError(`${cmd} timed out${after}${TIMEOUT_OUTCOME[cmd] ?? ''} (${describeError(e)})`, EXIT.TIMED_OUT);
    }
    // Whatever ended a listing that had begun, what was printed is only its start.
    const cut = partial ? `${cmd} cut off after some entries were printed, the listing is not whole: ` : '';
    if (e.code === GrpcStatus.UNAVAILABLE) {
      if (partial) return new CliError(`${cut}the server at ${addr} became unavailable (${describeError(e)})`, EXIT.UNREACHABLE);
      // A connection was made, so the call may have reached the server and been done (a server
      // that crashed, or a connection that dropped, after a set was applied): not "cannot reach".
      if (connected) return new CliError(`the server at ${addr} became unavailable during the ${cmd}${cmd === 'set' ? TIMEOUT_OUTCOME.set : ''} (${describeError(e)})`, EXIT.UNREACHABLE);
      // grpc-js says no more than "Protocol error" of a peer that answers, but not in HTTP/2.
      const notGrpc = /Protocol error/.test(e.details ?? '') ? ': something listens there, but it does not speak plain-text HTTP/2 (an HTTP/1 or TLS server?), so it is no lbserver' : '';
      return new CliError(`cannot reach server at ${addr}${notGrpc}: ${describeError(e)}`, EXIT.UNREACHABLE);
    }
    // lbclient never cancels a call of its own, so CANCELLED is the server's RST_STREAM CANCEL, all
    // grpc-js reports of which is "Call cancelled". lbserver resets a call so when its client took
    // none of the answer for twice --stream-stall-ms: a getprefix into a pager left waiting.
    if (e.code === GrpcStatus.CANCELLED) {
      return new CliError(`${cut}the server reset the ${cmd} (${describeError(e)}): lbserver does so when its client has taken none of the answer for twice its --stream-stall-ms (was lbclient's output read?)`, EXIT.SERVER_ERROR);
    }
    return new CliError(`${cut}server error: ${describeError(e)}`, EXIT.SERVER_ERROR);
  }
  return localFailure(e);
}

/** A failure that is not the server's: bad input or a local I/O error. */
export function localFailure(e: unknown): CliError {
  return e instanceof CliError ? e : new CliError(`error: ${(e as Error)?.message ?? String(e)}`, EXIT.USAGE);
}

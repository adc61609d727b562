// Typed errors so callers (the gRPC service) can map failures to status codes without parsing text.
export type StoreErrorCode =
  | 'INVALID_ARGUMENT' // key or value outside the limits
  | 'CORRUPTION'       // a checksum or structure check failed: never serve the bytes
  | 'NO_SPACE'         // ENOSPC / EDQUOT while committing
  | 'IO'               // any other I/O failure while committing or reading
  | 'CLOSED'           // the store is closing or closed
  | 'LOCKED';          // another process holds the data file

export class StoreError extends Error {
  /** A failed commit whose rollback could not be made durable either: its batch is not visible,
   *  but a crash before the store's next successful commit may bring all of it back (a failed
   *  fdatasync does not say that the writes before it did not reach the disk). Otherwise a
   *  rejected put was not applied, and no crash can make it appear. */
  readonly outcomeUnknown: boolean;

  constructor(readonly code: StoreErrorCode, message: string, override readonly cause?: unknown, outcomeUnknown = false) {
    super(message);
    this.name = 'StoreError';
    this.outcomeUnknown = outcomeUnknown;
  }
}

export interface IoErrorOptions {
  /** See StoreError.outcomeUnknown. */
  outcomeUnknown?: boolean;
  /** Put `what` in front of a StoreError from a step below too (default: only when the outcome is
   *  unknown; otherwise such an error already says what failed and is returned as it is). */
  wrapStoreErrors?: boolean;
}

/** A StoreError for a failed I/O step, saying `what` failed. */
export function ioError(what: string, err: unknown, { outcomeUnknown = false, wrapStoreErrors = outcomeUnknown }: IoErrorOptions = {}): StoreError {
  const e = err as NodeJS.ErrnoException;
  if (e instanceof StoreError && !wrapStoreErrors) return e;
  const code = e instanceof StoreError ? e.code : e?.code === 'ENOSPC' || e?.code === 'EDQUOT' ? 'NO_SPACE' : 'IO';
  return new StoreError(code, `${what}: ${e instanceof StoreError ? e.message : describe(e, err)}`, err, outcomeUnknown);
}

/** The error's code and message, the code once: node:fs messages start with it ("ENOSPC: no space
 *  left on device, write"), others may not name it at all. */
function describe(e: NodeJS.ErrnoException | undefined, err: unknown): string {
  const message = e?.message ?? String(err);
  return e?.code && !message.startsWith(e.code) ? `${e.code} ${message}` : message;
}

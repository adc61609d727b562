// Typed errors so callers (the gRPC service) can map failures to status codes without parsing text.
export type StoreErrorCode =
  | 'INVALID_ARGUMENT' // key or value outside the limits
  | 'CORRUPTION'       // a checksum or structure check failed: never serve the bytes
  | 'NO_SPACE'         // ENOSPC / EDQUOT while committing
  | 'IO'               // any other I/O failure while committing or reading
  | 'CLOSED'           // the store is closing or closed
  | 'LOCKED';          // another process holds the data file

export class StoreError extends Error {
  constructor(readonly code: StoreErrorCode, message: string, override readonly cause?: unknown) {
    super(message);
    this.name = 'StoreError';
  }
}

export function ioError(what: string, err: unknown): StoreError {
  const e = err as NodeJS.ErrnoException;
  if (e instanceof StoreError) return e;
  const code = e?.code === 'ENOSPC' || e?.code === 'EDQUOT' ? 'NO_SPACE' : 'IO';
  return new StoreError(code, `${what}: ${e?.code ?? ''} ${e?.message ?? String(err)}`.trim(), err);
}

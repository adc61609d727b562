// gRPC statuses the service answers with: engine errors mapped to codes, details that say what
// went wrong.
import * as grpc from '@grpc/grpc-js';
import { StoreError } from '../btree/index';

export function statusError(code: grpc.status, details: string): grpc.ServiceError {
  const e = new Error(details) as grpc.ServiceError;
  e.code = code;
  e.details = details;
  e.metadata = new grpc.Metadata();
  return e;
}

/** Carries a ready-made gRPC status through a throw. */
export class StatusCarrier extends Error {
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

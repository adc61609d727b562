// Small helpers shared by the service and CLI tests.
import * as assert from 'uvu/assert';
import { isServiceError, statusName, type KvClient } from '../../lib/client';

/** Asserts that `p` rejects with a grpc ServiceError of `code` whose details match `re`. Returns it. */
export async function expectGrpcError(p: Promise<unknown>, code: number, re?: RegExp): Promise<{ code: number; details: string }> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  if (err === undefined) assert.unreachable(`expected ${statusName(code)}, but the call succeeded`);
  if (!isServiceError(err)) throw err;
  assert.is(statusName(err.code), statusName(code), `status code (details: ${err.details})`);
  if (re) assert.match(err.details, re);
  return { code: err.code, details: err.details };
}

/** Sets many entries with up to `concurrency` calls in flight. */
export async function setMany(c: KvClient, entries: Array<{ key: Buffer; value: Buffer }>, concurrency = 32): Promise<void> {
  let i = 0;
  const worker = async () => {
    while (i < entries.length) {
      const e = entries[i++]!;
      await c.set(e.key, e.value);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, entries.length) }, worker));
}

/** Deterministic pseudo-random bytes (xorshift), fast enough for tens of MiB. */
export function pseudoRandomBytes(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b.writeUInt32LE(x, i);
  }
  for (; i < n; i++) { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; b[i] = x & 0xff; }
  return b;
}

/** Resident set size of a process in bytes (Linux /proc), or undefined. */
export function rssBytes(pid: number): number | undefined {
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const text = require('node:fs').readFileSync(`/proc/${pid}/status`, 'utf8') as string;
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(text);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Polls `fn` until it returns true or `timeoutMs` passes. */
export async function eventually(fn: () => Promise<boolean> | boolean, timeoutMs = 5000, stepMs = 25): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

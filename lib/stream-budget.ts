// The byte budget GetPrefix streams share (see streamPrefix in prefix-stream.ts for how a stream uses it).

/**
 * A server-wide budget of bytes, shared by all GetPrefix streams: the bytes of entries a stream has
 * read from its snapshot and not yet handed to the transport (assembled, serialized, queued at the
 * HTTP/2 stream). Each stream keeps its own pending messages small; this bounds their sum, so 1,000
 * stalled streams cannot each hold a few MiB.
 *
 * Waiters are served strictly first come, first served (no barging: tryAcquire fails while anyone
 * waits), so a large request is not starved by a stream of small ones. A waiter can give up (its
 * stream was cancelled) and leaves the queue at once. `force` takes bytes even past the bound (see
 * the oversized-entry case in streamPrefix in prefix-stream.ts); later requests then wait until it is repaid.
 */
export class StreamBudget {
  private available: number;
  private readonly waiters: Array<{ n: number; grant: () => void }> = [];

  constructor(readonly capacity: number) {
    if (!(capacity > 0)) throw new RangeError(`stream budget must be positive, got ${capacity}`);
    this.available = capacity;
  }

  /** Bytes currently reserved (may exceed `capacity` after `force`). */
  get inUse(): number { return this.capacity - this.available; }
  /** Streams waiting for budget. */
  get waiting(): number { return this.waiters.length; }

  /** Takes `n` bytes if they are free now and nobody is queued ahead. */
  tryAcquire(n: number): boolean {
    if (n <= 0) return true;
    if (this.waiters.length > 0 || this.available < n) return false;
    this.available -= n;
    return true;
  }

  /** Takes `n` bytes now, even past the bound. */
  force(n: number): void {
    if (n > 0) this.available -= n;
  }

  /**
   * Waits for `n` (<= capacity) bytes. Resolves true once they are reserved for the caller, false if
   * `signal` aborted first (nothing reserved, the waiter is gone from the queue).
   */
  acquire(n: number, signal: AbortSignal): Promise<boolean> {
    if (n > this.capacity) throw new RangeError(`cannot wait for ${n} bytes of a ${this.capacity}-byte budget`);
    if (signal.aborted) return Promise.resolve(false);
    if (this.tryAcquire(n)) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const w = {
        n,
        grant: () => { signal.removeEventListener('abort', onAbort); resolve(true); },
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(w);
        if (i < 0) return; // already granted: the caller owns the bytes and releases them
        this.waiters.splice(i, 1);
        resolve(false);
        this.grantWaiters(); // the head may have changed: smaller requests behind it may fit now
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(w);
    });
  }

  release(n: number): void {
    if (n <= 0) return;
    this.available += n;
    if (this.available > this.capacity) {
      // A bug in the caller's accounting; never let it raise the bound.
      this.available = this.capacity;
    }
    this.grantWaiters();
  }

  private grantWaiters(): void {
    while (this.waiters.length > 0 && this.available >= this.waiters[0]!.n) {
      const w = this.waiters.shift()!;
      this.available -= w.n;
      w.grant();
    }
  }
}

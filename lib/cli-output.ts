// lbclient's stdout: writes that wait for the reader (backpressure), and getprefix's
// "KEY<TAB>VALUE" lines, escaped (escape.ts) and written in bounded pieces.
import type { KvEntry } from './client';
import { escapedChunks } from './escape';

export function writeOut(data: string | Buffer): Promise<void> {
  return new Promise((resolve) => {
    if (process.stdout.write(data)) resolve();
    else process.stdout.once('drain', () => resolve());
  });
}

/** Output gathered into writes of about 64 KiB (few syscalls for many small entries), each written
 *  and waited for (backpressure) before more is gathered: a large escaped value is never held whole. */
class OutBuffer {
  private parts: Buffer[] = [];
  private size = 0;
  /** Gathers `b`; true once there is enough to write out (flush). Not async: a listing of small
   *  entries would pay a promise per piece. */
  push(b: Buffer): boolean {
    this.parts.push(b);
    this.size += b.length;
    return this.size >= 64 * 1024;
  }
  async flush(): Promise<void> {
    if (this.size === 0) return;
    const data = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    await writeOut(data);
  }
}

const TAB = Buffer.from('\t');
const NEWLINE = Buffer.from('\n');

/** Prints a listing's entries, one line each (keys in hex with `hex`, values left out with
 *  `keysOnly`); calls `answered()` as each message of entries arrives. */
export async function printListing(messages: AsyncIterable<KvEntry[]>, o: { hex?: boolean; keysOnly?: boolean }, answered: () => void): Promise<void> {
  const out = new OutBuffer();
  for await (const batch of messages) {
    answered();
    for (const e of batch) {
      // A key (at most 1 KiB, 4 KiB escaped) goes in whole; a value in bounded pieces.
      if (o.hex) out.push(Buffer.from(e.key.toString('hex'), 'latin1'));
      else for (const part of escapedChunks(e.key)) out.push(part);
      if (!o.keysOnly) {
        out.push(TAB);
        for (const part of escapedChunks(e.value)) if (out.push(part)) await out.flush();
      }
      if (out.push(NEWLINE)) await out.flush();
    }
    // What has arrived goes out before waiting for more (a slow server, a reader like less).
    await out.flush();
  }
}

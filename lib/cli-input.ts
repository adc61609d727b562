// Where lbclient's `set` takes its value from: the VALUE argument, --file F, or stdin ("-").
// A file is read into a buffer from setValueBuffer(), a pipe into a GrowingSetValue, which the Set
// then sends with no copy of its own: the client holds a large value about twice (that message and
// the copy grpc-js frames it in), not three times (a 100 MiB file: 365 MB peak RSS before; a 200
// MiB pipe: 3.0 values over a 1-byte set before, when its pieces were joined at the end; 2.0 after
// from --file, 2.1-2.2 from stdin, whose pieces of 64 KiB wait for the GC).
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { GrowingSetValue, setValueBuffer } from './codec';
import { textArg } from './cli-args';
import { CliError, EXIT } from './cli-errors';
import { MAX_VALUE_BYTES_LIMIT } from './config';

/** The value of `set KEY [VALUE] [--file F]`, for a key of `keyLength` bytes. */
export async function setValue(valueArg: string | undefined, file: string | undefined, keyLength: number): Promise<Buffer> {
  if (file !== undefined) {
    if (valueArg !== undefined) throw new CliError('set: give either VALUE or --file, not both', EXIT.USAGE);
    try {
      const fd = openSync(file, 'r');
      try { return await readFile(fd, keyLength, file); } finally { closeSync(fd); }
    } catch (e) {
      if (e instanceof CliError) throw e;
      throw new CliError(`set: cannot read ${file}: ${(e as Error).message}`, EXIT.USAGE);
    }
  }
  if (valueArg === '-') return readStdin(keyLength);
  if (valueArg !== undefined) return textArg(valueArg, 'value', 'give it with --file F or on stdin (-)');
  throw new CliError('set: missing VALUE (give VALUE, --file F, or - for stdin)', EXIT.USAGE);
}

/** No lbserver takes a value over MAX_VALUE_BYTES_LIMIT, so a file over it is refused by its size,
 *  and what has no size of its own (a pipe, a device) is read up to it and no further: `yes | lbclient set k -` and `--file /dev/zero` read on
 *  until memory ran out (12 GB in a minute; a crash under a memory limit). */
function overLimit(what: string): CliError {
  return new CliError(`set: ${what} holds more than 1 GiB, more than any lbserver takes (--max-value-bytes is at most 1GiB); nothing was sent`, EXIT.USAGE);
}

/** What has no size of its own (a pipe, a device), as `pieces` gives it, up to the limit
 *  (overLimit). Stdin's pieces come from process.stdin, which waits for a pipe to be readable:
 *  another program may have left stdin non-blocking, and readSync of it then fails with EAGAIN;
 *  --file's from readPieces, of an fd lbclient opened itself, blocking. */
async function gather(pieces: Iterable<Uint8Array> | AsyncIterable<Uint8Array>, keyLength: number, what: string): Promise<Buffer> {
  const value = new GrowingSetValue(keyLength, MAX_VALUE_BYTES_LIMIT);
  for await (const p of pieces) {
    if (value.length + p.length > MAX_VALUE_BYTES_LIMIT) throw overLimit(what);
    value.append(p);
  }
  return value.value();
}

/** What readSync reads from `fd`, in pieces of one buffer: gather copies each before it asks for
 *  the next. */
function* readPieces(fd: number): Generator<Buffer> {
  const piece = Buffer.allocUnsafe(64 * 1024);
  for (let n; (n = readSync(fd, piece, 0, piece.length, null)) > 0;) yield piece.subarray(0, n);
}

/** The file open on `fd`, from its offset. A regular file of known size is read as readFileSync
 *  reads it (up to the size fstat gave) but into a setValueBuffer; a pipe or a device up to the
 *  limit (overLimit), of the same fd: a FIFO opened again would wait for another writer; anything
 *  else (a directory, a /proc file that says it is empty) by readFileSync. */
async function readFile(fd: number, keyLength: number, what: string, st = fstatSync(fd)): Promise<Buffer> {
  if (!st.isFile() && !st.isDirectory()) return gather(readPieces(fd), keyLength, what);
  // Refused by its size, before a read of up to a second or more per 100 MiB only to hear the same
  // from the server (and over 2 GiB readSync takes no length at all).
  if (st.isFile() && st.size > MAX_VALUE_BYTES_LIMIT) throw overLimit(what);
  if (!st.isFile() || st.size === 0) return readFileSync(fd);
  const value = setValueBuffer(keyLength, st.size);
  let got = 0;
  while (got < value.length) {
    const n = readSync(fd, value, got, value.length - got, null);
    if (n === 0) break;
    got += n;
  }
  // Shorter than its size (read from an offset, or cut meanwhile): sent by copying, as any value.
  return got < value.length ? value.subarray(0, got) : value;
}

async function readStdin(keyLength: number): Promise<Buffer> {
  // Node reads a directory on stdin (lbclient set k - < dir) as empty, where read(2) says EISDIR:
  // that would store an empty value in place of the data meant.
  const st = fstatSync(0);
  if (st.isDirectory()) throw new CliError('set: cannot read stdin: it is a directory (EISDIR)', EXIT.USAGE);
  // A file (lbclient set k - < F) is read as --file is, into one buffer of its size, from where its
  // offset stands: gathering it in pieces and joining them held the value about twice.
  try {
    return await (st.isFile() ? readFile(0, keyLength, 'stdin', st) : gather(process.stdin, keyLength, 'stdin'));
  } catch (e) {
    throw e instanceof CliError ? e : new CliError(`set: cannot read stdin: ${(e as Error).message}`, EXIT.USAGE);
  }
}

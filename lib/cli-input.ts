// Where lbclient's `set` takes its value from: the VALUE argument, --file F, or stdin ("-").
import { fstatSync, readFileSync } from 'node:fs';
import { textArg } from './cli-args';
import { CliError, EXIT } from './cli-errors';

/** The value of `set KEY [VALUE] [--file F]`. */
export async function setValue(valueArg: string | undefined, file: string | undefined): Promise<Buffer> {
  if (file !== undefined) {
    if (valueArg !== undefined) throw new CliError('set: give either VALUE or --file, not both', EXIT.USAGE);
    try { return readFileSync(file); } catch (e) { throw new CliError(`set: cannot read ${file}: ${(e as Error).message}`, EXIT.USAGE); }
  }
  if (valueArg === '-') return readStdin();
  if (valueArg !== undefined) return textArg(valueArg, 'value', 'give it with --file F or on stdin (-)');
  throw new CliError('set: missing VALUE (give VALUE, --file F, or - for stdin)', EXIT.USAGE);
}

async function readStdin(): Promise<Buffer> {
  // Node reads a directory on stdin (lbclient set k - < dir) as empty, where read(2) says EISDIR:
  // that would store an empty value in place of the data meant.
  const st = fstatSync(0);
  if (st.isDirectory()) throw new CliError('set: cannot read stdin: it is a directory (EISDIR)', EXIT.USAGE);
  // A file (lbclient set k - < F) is read as --file is, into one buffer of its size, from where its
  // offset stands: gathering it in pieces and joining them held the value about twice.
  if (st.isFile()) {
    try { return readFileSync(0); } catch (e) { throw new CliError(`set: cannot read stdin: ${(e as Error).message}`, EXIT.USAGE); }
  }
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

// lbserver's log: stdout carries only its ready line (or --compact's result), so whoever started it
// can read that line alone; everything else goes to stderr, under the program's name.
import { StoreError } from '../btree/index';

export function log(msg: string): void {
  process.stderr.write(`lbserver: ${msg}\n`);
}

/** An error as a log line says it: an engine error with its code (CORRUPTION, IO, ...), which tells
 *  a damaged file from a full disk. */
export function failureText(e: unknown): string {
  return e instanceof StoreError ? `${e.code}: ${e.message}` : (e as Error).message;
}

/** Bytes as the log lines give file sizes: MiB with one decimal. */
export function mib(n: number): string {
  return (n / (1024 * 1024)).toFixed(1);
}

/** A path as the ready line shows it: as is, or JSON-quoted when it holds a space, a quote, a
 *  backslash or a control character, which made `data=/a b keys=0` ambiguous and a newline broke
 *  the one line. */
export function shownPath(path: string): string {
  return /[\s"\\\x00-\x1f\x7f]/.test(path) ? JSON.stringify(path) : path;
}

// lbserver's log: stdout carries only its ready line (or --compact's result), so whoever started it
// can read that line alone; everything else goes to stderr, under the program's name.

export function log(msg: string): void {
  process.stderr.write(`lbserver: ${msg}\n`);
}

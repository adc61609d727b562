// A process that takes a data directory's LOCK the way lbserver does, at a moment its parent names,
// and prints TAKEN or REFUSED; it keeps what it took until its stdin closes. Its file name has
// "lbserver" in it because a lock counts as held only while its PID runs a command line that names
// lbserver (lib/lock.ts).
//   node dist/test/support/lbserver-lock-starter.js DIR
// Protocol: prints READY once loaded; then reads START_AT_MS (a line on stdin), spins until then,
// tries the lock and prints the outcome. The parent names the moment only after every starter is
// READY, and closes stdin only after every starter has tried: on a loaded machine a starter can take
// seconds just to load, and one that tried after the holder had exited would rightly find a stale
// lock (the holder's PID dead) and take it, a second TAKEN that says nothing about the race.
import { acquireDirLock, LockError } from '../../lib/lock';

const dir = process.argv[2]!;
let line = '';
process.stdin.setEncoding('utf8');
const onData = (chunk: string) => {
  line += chunk;
  if (!line.includes('\n')) return;
  process.stdin.off('data', onData);
  const at = Number(line.trim());
  while (Date.now() < at) { /* spin: start together with the other starters */ }
  try {
    acquireDirLock(dir);
    console.log('TAKEN');
  } catch (e) {
    if (!(e instanceof LockError)) throw e;
    console.log('REFUSED');
  }
  process.stdin.resume(); // keep the process (and a taken lock) alive until stdin ends
};
process.stdin.on('data', onData);
process.stdin.on('end', () => process.exit(0));
console.log('READY');

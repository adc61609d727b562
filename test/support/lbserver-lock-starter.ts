// A process that takes a data directory's LOCK the way lbserver does, at a given moment, and prints
// TAKEN or REFUSED; it keeps what it took for 1.5 s. Its file name has "lbserver" in it because a
// lock counts as held only while its PID runs a command line that names lbserver (lib/lock.ts).
//   node dist/test/support/lbserver-lock-starter.js DIR START_AT_MS
import { acquireDirLock, LockError } from '../../lib/lock';

const [dir, at] = [process.argv[2]!, Number(process.argv[3])];
while (Date.now() < at) { /* spin: start together with the other starters */ }
try {
  acquireDirLock(dir);
  console.log('TAKEN');
} catch (e) {
  if (!(e instanceof LockError)) throw e;
  console.log('REFUSED');
}
setTimeout(() => undefined, 1500);

// Preloaded into a program (NODE_OPTIONS=--require) by a test: when the process exits, appends its
// peak resident set size, in KiB, to the file LBKV_PEAK_RSS_FILE names (not to stderr, which the
// test also checks). VmHWM, the true peak of this program's memory, which polling from outside can
// miss; not getrusage's maxRSS, which on Linux starts from the RSS of the parent that spawned it.
import { appendFileSync, readFileSync } from 'node:fs';

const file = process.env.LBKV_PEAK_RSS_FILE;
if (file) {
  process.on('exit', () => {
    const hwm = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    appendFileSync(file, `${hwm ? hwm[1] : 'unknown'}\n`);
  });
}

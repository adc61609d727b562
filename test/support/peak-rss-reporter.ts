// Preloaded into a program (NODE_OPTIONS=--require) by a test: when the process exits, appends its
// peak resident set size, in KiB, to the file LBKV_PEAK_RSS_FILE names (not to stderr, which the
// test also checks). VmHWM, the true peak of this program's memory, which polling from outside can
// miss; not getrusage's maxRSS, which on Linux starts from the RSS of the parent that spawned it.
// LBKV_PEAK_VM_FILE: its peak address space (VmPeak, KiB) likewise, what `ulimit -v` bounds.
import { appendFileSync, readFileSync } from 'node:fs';

function report(file: string | undefined, field: string): void {
  if (!file) return;
  process.on('exit', () => {
    const kib = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
    appendFileSync(file, `${kib ? kib[1] : 'unknown'}\n`);
  });
}

report(process.env.LBKV_PEAK_RSS_FILE, 'VmHWM');
report(process.env.LBKV_PEAK_VM_FILE, 'VmPeak');

// A watchdog for tests that feed the engine damaged files: an infinite loop on the main thread (a
// branch page that names itself) would block uvu and every timer, so a worker thread watches a
// heartbeat the test sets before each step. If it goes stale, or the process's memory passes a
// bound (a corrupt length field allocating gigabytes), it writes what the test was doing to stderr
// and kills the process: the test file then fails at once, with the seed, instead of after the
// runner's 10-minute timeout.
import { Worker } from 'node:worker_threads';

const STATE_BYTES = 1024;

export interface Watchdog {
  /** Records what the main thread is about to do (shown if it never comes back). */
  beat(what: string): void;
  stop(): void;
}

export function startWatchdog(opts: { hangMs: number; maxRssMB: number; context: string }): Watchdog {
  const shared = new SharedArrayBuffer(8 + STATE_BYTES);
  const stamp = new Float64Array(shared, 0, 1);
  const text = new Uint8Array(shared, 8, STATE_BYTES);
  const code = `
    const { workerData } = require('node:worker_threads');
    const fs = require('node:fs');
    const stamp = new Float64Array(workerData.shared, 0, 1);
    const text = new Uint8Array(workerData.shared, 8, ${STATE_BYTES});
    setInterval(() => {
      const idle = Date.now() - stamp[0];
      const rssMB = process.memoryUsage.rss() / 1048576;
      if (idle < workerData.hangMs && rssMB < workerData.maxRssMB) return;
      const what = Buffer.from(text).toString('utf8').replace(/\\0+$/, '');
      const why = idle >= workerData.hangMs ? 'no progress for ' + idle + ' ms (hang?)' : 'RSS ' + rssMB.toFixed(0) + ' MB (unbounded allocation?)';
      fs.writeSync(2, '\\n[watchdog] ' + why + ' during: ' + what + ' [' + workerData.context + ']\\n');
      process.kill(process.pid, 'SIGKILL');
    }, 200);
  `;
  const worker = new Worker(code, { eval: true, workerData: { shared, hangMs: opts.hangMs, maxRssMB: opts.maxRssMB, context: opts.context } });
  worker.unref();
  const beat = (what: string) => {
    stamp[0] = Date.now();
    text.fill(0);
    text.set(Buffer.from(what.slice(0, STATE_BYTES / 2)));
  };
  beat('starting');
  return { beat, stop: () => void worker.terminate() };
}

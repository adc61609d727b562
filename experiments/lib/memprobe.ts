// Loaded into a server with NODE_OPTIONS="--require .../memprobe.js" by experiments/stream-memory:
// appends process.memoryUsage() every 50 ms to the file named by LBKV_MEMPROBE, one JSON line each.
// It touches nothing of the server and its timer does not keep the process alive.
import { appendFileSync } from 'node:fs';

const out = process.env.LBKV_MEMPROBE;
if (out) {
  setInterval(() => {
    const m = process.memoryUsage();
    appendFileSync(out, JSON.stringify({ t: Date.now(), rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, arrayBuffers: m.arrayBuffers }) + '\n');
  }, 50).unref();
}

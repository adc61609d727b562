// Usage: node scripts/open-time.mjs [repo root with a built dist/] (default: .).
// Median Store.open time (stats().openMs) of a 10,000-key store of 4 KiB values, 25 opens.
const root = (await import('node:path')).resolve(process.argv[2] ?? '.');
const { Store } = await import(root + '/dist/btree/index.js');
import { rmSync, mkdirSync } from 'node:fs';
const dir = (await import('node:os')).tmpdir() + '/lbkv-open-time-' + process.pid; rmSync(dir, { recursive: true, force: true }); mkdirSync(dir);
const path = dir + '/lbkv.db';
let s = await Store.open({ path });
for (let b = 0; b < 10000; b += 500) await s.putMany(Array.from({ length: 500 }, (_, i) => { const k = Buffer.alloc(128); k.write(`k${b + i}`); return { key: k, value: Buffer.alloc(4096, i) }; }));
await s.close();
const t = [];
for (let i = 0; i < 25; i++) { s = await Store.open({ path }); t.push(s.stats().openMs); await s.close(); }
t.sort((a, b) => a - b);
console.log(`${root}: open of 10,000 keys: median ${t[12].toFixed(3)} ms, min ${t[0].toFixed(3)}, max ${t[24].toFixed(3)}`);
rmSync(dir, { recursive: true, force: true });

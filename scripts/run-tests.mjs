// Runs every compiled uvu test file in its own Node process (a crash in one file cannot hide the
// others), streams its output, and ends with the totals line CI reads: "tests: N passed, M failed".
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = 'dist/test';
const filter = process.argv[2] ? new RegExp(process.argv[2]) : null;
const perFileTimeoutMs = Number(process.env.LBKV_TEST_FILE_TIMEOUT_MS ?? 600_000);

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

function runFile(file) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', LBKV_CHECK_PATCHES: process.env.LBKV_CHECK_PATCHES ?? '1' } });
    let text = '';
    const onData = (chunk, sink) => { text += chunk; sink.write(chunk); };
    child.stdout.on('data', (c) => onData(c, process.stdout));
    child.stderr.on('data', (c) => onData(c, process.stderr));
    const timer = setTimeout(() => { text += '\n[runner] timed out\n'; child.kill('SIGKILL'); }, perFileTimeoutMs);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, text }); });
  });
}

const plain = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');
let passed = 0, failed = 0, skipped = 0;
const failures = [];
const files = findTests(root).filter((f) => !filter || filter.test(f));
for (const file of files) {
  const started = Date.now();
  console.log(`\n=== ${relative(root, file)}`);
  const { code, text } = await runFile(file);
  const t = plain(text);
  const total = Number(/Total:\s+(\d+)/.exec(t)?.[1] ?? NaN);
  const ok = Number(/Passed:\s+(\d+)/.exec(t)?.[1] ?? NaN);
  const skip = Number(/Skipped:\s+(\d+)/.exec(t)?.[1] ?? 0);
  if (Number.isNaN(total) || Number.isNaN(ok)) {
    failed += 1; failures.push(`${file}: no uvu summary (exit ${code})`);
  } else {
    passed += ok; skipped += skip;
    const bad = total - ok - skip;
    failed += bad;
    if (bad > 0 || code !== 0) failures.push(`${file}: ${bad} failed (exit ${code})`);
    if (bad === 0 && code !== 0) failed += 1;
  }
  console.log(`=== ${relative(root, file)} done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
if (failures.length) console.log('\nfailures:\n  ' + failures.join('\n  '));
if (files.length === 0) { console.log('no test files found under ' + root); failed += 1; }
console.log(`tests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed === 0 ? 0 : 1);

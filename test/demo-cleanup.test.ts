// `make demo | head`: the reader of the demo's output goes away while it runs. The demo must not
// leave its lbserver running (it crashed on the EPIPE, and the server, orphaned, kept its port
// and its data directory).
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

/** PIDs of the processes whose command line names `dir` (the demo's lbserver has --data dir). */
function processesUsing(dir: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'latin1').split('\0').includes(dir)) pids.push(Number(p));
    } catch { /* exited meanwhile */ }
  }
  return pids;
}

test('demo: its stdout closed early, it still stops its lbserver and removes the data directory', async () => {
  const child = spawn(process.execPath, [resolve(__dirname, '../bin/demo.js'), '--clients', '2', '--ops', '3000'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => { err += c; });
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  let out = '';
  // Close the pipe once the server is up, as `head -2` would.
  const dir = await new Promise<string>((res, rej) => {
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      const m = /^lbserver listening on \S+ data=(\S+)/m.exec(out);
      if (m) { child.stdout!.destroy(); res(m[1]); }
    });
    void exited.then(() => rej(new Error(`demo exited before its server was up: ${out}${err}`)));
  });
  const timer = setTimeout(() => { try { child.kill('SIGKILL'); } catch { /* gone */ } }, 120_000);
  const code = await exited;
  clearTimeout(timer);
  const left = processesUsing(dir);
  // Stop what the demo left (started by this test, through it), by PID, before asserting.
  for (const pid of left) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  assert.equal(left, [], `processes still using ${dir}`);
  assert.not.ok(existsSync(dir), `${dir} removed`);
  assert.is(code, 0, err);
});

test.run();

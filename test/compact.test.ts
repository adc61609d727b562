// lbserver --compact: offline compaction of a real data directory, and a kill -9 in the middle of it.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Store } from '../btree';
import { LBSERVER_JS, runNode, sleep, startServer, tempDir } from './support/server';

// The last round writes small values over large ones, so most of the file is dead pages.
const valueFor = (i: number, round: number) => Buffer.alloc(round === 9 ? 100 + (i % 7) : 60_000, (i * 31 + round) & 0xff);

/** A data dir whose file is mostly dead pages: 200 keys of 60 KB values, overwritten with 100 B ones. */
async function bloatedDir(): Promise<string> {
  const srv = await startServer();
  const c = srv.client();
  for (const round of [0, 1, 9]) {
    await Promise.all(Array.from({ length: 200 }, (_, i) => c.set(`key-${i}`, valueFor(i, round))));
  }
  await c.set('marker', 'last');
  await srv.stop();
  return srv.dataDir;
}

async function checkAll(dataDir: string): Promise<void> {
  const srv = await startServer({ dataDir });
  try {
    const c = srv.client();
    for (let i = 0; i < 200; i += 7) assert.equal(await c.get(`key-${i}`), valueFor(i, 9), `key-${i}`);
    assert.equal(await c.get('marker'), Buffer.from('last'));
    assert.is((await c.stat()).keys, 201);
  } finally {
    await srv.stop();
  }
}

test('lbserver --compact shrinks the file to the live data and keeps every key', async () => {
  const dir = await bloatedDir();
  const file = join(dir, 'lbkv.db');
  const before = statSync(file).size;
  const r = await runNode(LBSERVER_JS, ['--data', dir, '--compact'], { timeoutMs: 60_000 });
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /compacted .*lbkv\.db: 201 keys/);
  const after = statSync(file).size;
  assert.ok(after < before / 4, `file ${before} -> ${after} bytes`);
  await checkAll(dir);
});

test('lbserver --compact refuses a data directory a running server holds', async () => {
  const srv = await startServer();
  try {
    const r = await runNode(LBSERVER_JS, ['--data', srv.dataDir, '--compact'], { timeoutMs: 20_000 });
    assert.is(r.code, 3);
    assert.match(r.stderr, /in use by another lbserver/);
  } finally {
    await srv.stop();
  }
});

test('kill -9 during compaction leaves the original data intact', async () => {
  const dir = await bloatedDir();
  // Kill at a few moments: before, during and (maybe) after the copy; every outcome must be whole.
  for (const delayMs of [5, 40, 120]) {
    const child = spawn(process.execPath, [LBSERVER_JS, '--data', dir, '--compact'], { stdio: 'ignore' });
    // Listen from the start: a compaction that finishes before the kill has closed already.
    const closed = new Promise((r) => child.on('close', r));
    await sleep(delayMs);
    if (child.exitCode === null) child.kill('SIGKILL');
    await closed;
    await checkAll(dir);
  }
});

const keyOf = (i: number) => `k-${String(i).padStart(7, '0')}`;
const valueOf = (i: number) => Buffer.alloc(600, i & 0xff);

/** A store of 100,000 keys of 600-byte values: its compaction copies in 50 batches (2,000 keys each),
 *  a second or more here, so a signal sent once the copy file exists lands mid-copy. */
async function storeOf100kKeys(): Promise<{ dir: string; file: string; digest: () => string }> {
  const dir = tempDir('lbkv-data-');
  const file = join(dir, 'lbkv.db');
  const store = await Store.open({ path: file });
  for (let b = 0; b < 20; b++) await store.putMany(Array.from({ length: 5000 }, (_, j) => ({ key: Buffer.from(keyOf(b * 5000 + j)), value: valueOf(b * 5000 + j) })));
  await store.close();
  return { dir, file, digest: () => createHash('sha256').update(readFileSync(file)).digest('hex') };
}

test('SIGTERM during lbserver --compact aborts it: exit 1, no .compact file left, the data file unchanged and whole', async () => {
  const { dir, file, digest } = await storeOf100kKeys();
  const before = digest();

  const child = spawn(process.execPath, [LBSERVER_JS, '--data', dir, '--compact'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const closed = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  const t0 = Date.now();
  while (!existsSync(`${file}.compact`) && child.exitCode === null && Date.now() - t0 < 20_000) await sleep(2);
  assert.ok(existsSync(`${file}.compact`), `the compaction began: ${stderr}`);
  child.kill('SIGTERM');
  assert.is(await closed, 1, stderr);
  assert.match(stderr, /compaction of .*lbkv\.db aborted by SIGTERM: .* is unchanged, the partial copy removed/);
  assert.not.ok(existsSync(`${file}.compact`), 'partial copy removed');
  assert.is(digest(), before, 'data file unchanged');

  const srv = await startServer({ dataDir: dir });
  try {
    const c = srv.client();
    let n = 0;
    for await (const e of c.getPrefix('')) {
      assert.is(e.key.toString(), keyOf(n));
      assert.ok(e.value.equals(valueOf(n)), keyOf(n));
      n++;
    }
    assert.is(n, 100_000);
  } finally {
    await srv.stop();
  }
});

test('a compaction killed before it installed its copy: the next server start removes the partial lbkv.db.compact, says so, and serves every key', async () => {
  // The kill lands mid-copy, after the copy file exists (storeOf100kKeys). Before the fix, the partial copy stayed beside the data file for good (a server start
  // said nothing; only a later --compact removed it), holding as much disk as it had copied.
  const { dir, file, digest } = await storeOf100kKeys();
  const before = digest();

  const child = spawn(process.execPath, [LBSERVER_JS, '--data', dir, '--compact'], { stdio: 'ignore' });
  const closed = new Promise((r) => child.on('close', r));
  const t0 = Date.now();
  while (!(existsSync(`${file}.compact`) && statSync(`${file}.compact`).size > 0) && child.exitCode === null && Date.now() - t0 < 20_000) await sleep(2);
  assert.ok(existsSync(`${file}.compact`), 'the compaction began');
  child.kill('SIGKILL');
  await closed;
  // Killed mid-copy (a machine much faster than this one could finish first: then nothing is left).
  if (!existsSync(`${file}.compact`)) return;
  assert.is(digest(), before, 'the data file is untouched by an unfinished compaction');

  const srv = await startServer({ dataDir: dir });
  try {
    assert.not.ok(existsSync(`${file}.compact`), 'the partial copy is removed at startup');
    assert.match(srv.stderr, /note: removed .*lbkv\.db\.compact \([\d.]+ MiB\), the partial copy of a compaction that was interrupted/);
    const c = srv.client();
    assert.is((await c.stat()).keys, 100_000);
    for (const i of [0, 4999, 50_000, 99_999]) assert.equal(await c.get(keyOf(i)), valueOf(i), keyOf(i));
  } finally {
    await srv.stop();
  }
});

test('a lbkv.db.compact with no lbkv.db beside it (the data file moved away by hand) is left alone, with a warning', async () => {
  const dir = tempDir('lbkv-data-');
  writeFileSync(join(dir, 'lbkv.db.compact'), 'maybe all there is');
  const srv = await startServer({ dataDir: dir });
  try {
    assert.is(readFileSync(join(dir, 'lbkv.db.compact'), 'utf8'), 'maybe all there is');
    assert.match(srv.stderr, /warning: .*lbkv\.db\.compact is there but .*lbkv\.db is not; left as it is/);
  } finally {
    await srv.stop();
  }
});

test.run();

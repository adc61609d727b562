// Item 5 of issue 4: full disk. The data directory lives on a small filesystem (a size-limited tmpfs,
// and a small loop-mounted ext4 where loop devices work). A filler file takes nearly all the space;
// then Set must fail with RESOURCE_EXHAUSTED (never another code, never a crash), reads keep working,
// nothing acknowledged earlier is lost (also across kill -9 and restart while full), and after the
// filler is deleted writes succeed again.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GrpcStatus, KvClient, isServiceError, statusName } from '../../lib/client';
import { startServer, type ServerHandle } from '../support/server';
import { decodeValue, encodeValue, freeBytes, LoopFs, mib, probeLoop, probeTmpfs, rmrf, Tmpfs, tmpDir } from './support';

interface Acked { key: Buffer; version: number; size: number; }

/** Writes zeros to `file` until the filesystem has about `leaveBytes` free (or ENOSPC). */
function fillUp(file: string, leaveBytes: number): number {
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(1024 * 1024);
  let written = 0;
  try {
    for (;;) {
      const free = freeBytes(path.dirname(file));
      if (free <= leaveBytes) break;
      const n = Math.min(chunk.length, free - leaveBytes);
      try { written += fs.writeSync(fd, chunk, 0, n); } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw e;
      }
    }
    fs.fsyncSync(fd);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    fs.closeSync(fd);
  }
  return written;
}

async function verifyAll(cl: KvClient, acked: Map<string, Acked>, what: string, failed: Set<string>): Promise<number> {
  let ok = 0;
  for (const a of acked.values()) {
    const v = await cl.get(a.key);
    assert.ok(v, `${what}: ${a.key} (acknowledged v${a.version}) is missing`);
    const d = decodeValue(v!);
    assert.ok(d.key.equals(a.key), `${what}: ${a.key} holds a value of ${d.key}`);
    assert.is(d.version, a.version, `${what}: ${a.key} version`);
    assert.is(v!.length, a.size, `${what}: ${a.key} size`);
    ok++;
  }
  // GetPrefix agrees.
  let n = 0;
  for await (const e of cl.getPrefix('fd/')) {
    const a = acked.get(e.key.toString('latin1'));
    // The server says a failed commit applied nothing: a key whose only set failed must not appear.
    assert.not.ok(failed.has(e.key.toString('latin1')), `${what}: ${e.key} appeared although its set failed`);
    if (!a) continue;
    assert.is(decodeValue(e.value).version, a.version, `${what}: GetPrefix version of ${e.key}`);
    n++;
  }
  assert.is(n, acked.size, `${what}: GetPrefix sees every acknowledged key`);
  return ok;
}

async function fullDiskScenario(fsName: string, mnt: string, crashWhileFull: boolean): Promise<void> {
  const dataDir = path.join(mnt, 'data');
  fs.mkdirSync(dataDir, { recursive: true });
  const filler = path.join(mnt, 'filler');
  const acked = new Map<string, Acked>();
  const failed = new Set<string>();
  let version = 0;
  let server: ServerHandle | undefined;
  const put = async (cl: KvClient, i: number, size: number) => {
    const key = Buffer.from(`fd/${String(i).padStart(5, '0')}`);
    const v = ++version;
    const value = encodeValue(key, v, 0, size);
    try { await cl.set(key, value); } catch (e) { if (!acked.has(key.toString('latin1'))) failed.add(key.toString('latin1')); throw e; }
    acked.set(key.toString('latin1'), { key, version: v, size: value.length });
  };
  try {
    server = await startServer({ dataDir, args: ['--cache-mb', '16'] });
    let cl = new KvClient(server.address);
    for (let i = 0; i < 40; i++) await put(cl, i, 16 * 1024);
    console.log(`  [${fsName}] baseline: ${acked.size} keys acknowledged; free ${mib(freeBytes(mnt))}`);

    // Fill the filesystem, leaving about 2 MiB.
    const filled = fillUp(filler, 2 * 1024 * 1024);
    console.log(`  [${fsName}] filler file ${mib(filled)}; free now ${mib(freeBytes(mnt))}`);

    // Write until the disk is full.
    let exhausted = 0, okWhileFilling = 0;
    const otherErrors: string[] = [];
    let firstMsg = '';
    for (let i = 100; i < 400 && exhausted < 3; i++) {
      try { await put(cl, i, 256 * 1024); okWhileFilling++; } catch (e) {
        if (isServiceError(e) && e.code === GrpcStatus.RESOURCE_EXHAUSTED) { exhausted++; firstMsg ||= e.details; }
        else otherErrors.push(isServiceError(e) ? `${statusName(e.code)}: ${e.details}` : String(e));
      }
    }
    console.log(`  [${fsName}] filling: ${okWhileFilling} more sets acknowledged, then RESOURCE_EXHAUSTED x${exhausted} ("${firstMsg}")`);
    assert.equal(otherErrors, [], 'only RESOURCE_EXHAUSTED when the disk is full');
    assert.ok(exhausted >= 1, 'Set got RESOURCE_EXHAUSTED');
    // Small sets also fail cleanly (or succeed if they fit), the server stays up, reads work.
    try { await put(cl, 999, 200); } catch (e) {
      assert.ok(isServiceError(e) && e.code === GrpcStatus.RESOURCE_EXHAUSTED, `small set while full: ${String(e)}`);
    }
    const verified = await verifyAll(cl, acked, `${fsName} while full`, failed);
    const st = await cl.stat();
    console.log(`  [${fsName}] while full: ${verified} acknowledged keys read back intact; Stat ok (failed_sets=${st.failedSets})`);

    if (crashWhileFull) {
      // Crash while full and restart while full: it must start and serve every acknowledged key.
      cl.close();
      await server.kill9();
      server = await startServer({ dataDir, args: ['--cache-mb', '16'] });
      cl = new KvClient(server.address);
      await verifyAll(cl, acked, `${fsName} after kill -9 and restart while full`, failed);
      console.log(`  [${fsName}] kill -9 + restart while full: all ${acked.size} acknowledged keys intact`);
    }

    // Free the space: writes succeed again.
    fs.unlinkSync(filler);
    let after = 0;
    for (let i = 500; i < 530; i++) { await put(cl, i, 64 * 1024); after++; }
    await verifyAll(cl, acked, `${fsName} after freeing space`, failed);
    cl.close();
    assert.is(await server.stop('SIGTERM'), 0, 'clean shutdown exit code');
    server = await startServer({ dataDir, args: ['--cache-mb', '16'] });
    cl = new KvClient(server.address);
    await verifyAll(cl, acked, `${fsName} after restart`, failed);
    cl.close();
    console.log(`FULLDISK ${fsName}${crashWhileFull ? ' (kill -9 + restart while full)' : ''}: RESOURCE_EXHAUSTED=${exhausted} acknowledged=${acked.size} lost=0; after freeing space ${after}/30 sets ok; intact after restart`);
  } finally {
    await server?.stop('SIGKILL');
    rmrf(filler);
  }
}

const tmpfsProbe = probeTmpfs();
const loopProbe = probeLoop();

test('full-disk probes (tmpfs and loop-device mounts)', () => {
  if (!tmpfsProbe.ok) console.log(`SKIPPED: full-disk test on tmpfs not run: ${tmpfsProbe.reason}`);
  if (!loopProbe.ok) console.log(`SKIPPED: full-disk test on ext4 loop image not run: ${loopProbe.reason}`);
});

for (const crash of [false, true]) {
  const what = crash ? 'kill -9 and restart while full, reads work' : 'RESOURCE_EXHAUSTED, reads work';
  if (tmpfsProbe.ok) {
    test(`full disk on a 96 MiB tmpfs: ${what}, nothing lost, writes resume`, async () => {
      const dir = tmpDir('fulldisk-tmpfs');
      const t = Tmpfs.mount(path.join(dir, 'mnt'), 96);
      try { await fullDiskScenario('tmpfs', t.mnt, crash); } finally { t.close(); rmrf(dir); }
    });
  }
  if (loopProbe.ok) {
    test(`full disk on a 160 MiB ext4 loop image: ${what}, nothing lost, writes resume`, async () => {
      const dir = tmpDir('fulldisk-ext4');
      const l = LoopFs.create(path.join(dir, 'img'), 160, path.join(dir, 'mnt'));
      try { await fullDiskScenario('ext4', l.mnt, crash); } finally { l.close(); rmrf(dir); }
    });
  }
}

test.run();

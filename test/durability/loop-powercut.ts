// Power cut below the filesystem, for real (issue 4, item 3), shared by the short test and the
// torture runner.
//
// The data directory lives on ext4 in an image file attached to a loop device. Under write load the
// server gets SIGKILL; then, without any sync, the image file is copied as it stands. The loop driver
// turns every block the guest ext4 submitted into a write to the image file (and a flush request into
// an fsync of it), so the image file holds exactly what the kernel sent to the block device; what the
// guest ext4 still had in its own page cache (written by the server but never fdatasynced) is not in
// it, just as after a power cut. The copy is attached to another loop device and mounted (ext4 replays
// its journal), lbserver starts on it, and every acknowledged set is checked (runKillRounds' checks).
// The next round continues on the copy, so the damage of every cut accumulates.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runKillRounds, type KillRoundsResult } from './kill-rounds';
import { copyImage, LoopFs, mib, probeLoop, rmrf, tmpDir } from './support';

export interface LoopPowerCutOptions {
  rounds: number;
  seed: number;
  log?: (line: string) => void;
  imageMB?: number;
  budgetMs?: number;
  /** lbserver --sync-mode (default: the server's default, 'one'). */
  syncMode?: 'one' | 'two';
}

export type LoopPowerCutResult =
  | { skipped: true; reason: string }
  | ({ skipped: false; imageBytesCopied: number } & KillRoundsResult);

export async function runLoopPowerCuts(o: LoopPowerCutOptions): Promise<LoopPowerCutResult> {
  const log = o.log ?? ((l: string) => console.log(l));
  const probe = probeLoop();
  if (!probe.ok) return { skipped: true, reason: probe.reason };
  const work = tmpDir('loopcut');
  const imageMB = o.imageMB ?? 512;
  let gen = 0;
  let cur: LoopFs | undefined = LoopFs.create(path.join(work, `img${gen}`), imageMB, path.join(work, `mnt${gen}`));
  const dataOf = (l: LoopFs) => {
    const d = path.join(l.mnt, 'data');
    fs.mkdirSync(d, { recursive: true });
    return d;
  };
  let copied = 0;
  log(`  ext4 image ${imageMB} MiB on ${cur.dev}, mounted at ${cur.mnt}`);
  try {
    const r = await runKillRounds({
      rounds: o.rounds,
      seed: o.seed,
      dataDir: dataOf(cur),
      clients: 8,
      keys: 120,
      maxValueBytes: 1024 * 1024,
      loadMs: [300, 1500],
      prefix: 'pc/',
      serverArgs: o.syncMode ? ['--sync-mode', o.syncMode] : [],
      budgetMs: o.budgetMs,
      log,
      afterKill: async () => {
        // The server is dead. Copy the image now, with no sync, umount or fsfreeze before it.
        const old = cur!;
        const next = path.join(work, `img${gen + 1}`);
        copyImage(old.image, next);
        copied += fs.statSync(next).size;
        // Mount the copy on another loop device (ext4 replays its journal) while the old one is
        // still attached; only then tear the old one down (its umount flushes into the old image).
        gen++;
        cur = LoopFs.attach(next, path.join(work, `mnt${gen}`));
        log(`  cut ${gen}: image copied without sync, copy mounted on ${cur.dev} (was ${old.dev})`);
        old.close();
        rmrf(old.image);
        rmrf(old.mnt);
        return { dataDir: dataOf(cur) };
      },
    });
    log(`  copied ${gen} images (${mib(copied)} apparent size) without sync`);
    return { skipped: false, imageBytesCopied: copied, ...r };
  } finally {
    cur?.close();
    rmrf(work);
  }
}

/**
 * Checks the method itself: on a fresh loop ext4, one file is written and fdatasynced, another is
 * written without any sync; the image is copied at once, the copy mounted. The synced file must be
 * intact in the copy, the un-synced one must not be (absent, empty or short): the copy holds what a
 * power cut would leave, not the page cache.
 */
export function loopMethodCheck(): { syncedIntact: boolean; unsynced: string } {
  const work = tmpDir('loopmethod');
  let a: LoopFs | undefined, b: LoopFs | undefined;
  try {
    a = LoopFs.create(path.join(work, 'img'), 64, path.join(work, 'mnt'));
    const synced = Buffer.alloc(1024 * 1024, 0x53);
    const unsynced = Buffer.alloc(1024 * 1024, 0x55);
    // The synced file and its directory entry are made durable; the other is only written.
    const fd = fs.openSync(path.join(a.mnt, 'synced'), 'w');
    fs.writeSync(fd, synced);
    fs.fdatasyncSync(fd);
    fs.closeSync(fd);
    const dfd = fs.openSync(a.mnt, 'r');
    fs.fsyncSync(dfd);
    fs.closeSync(dfd);
    fs.writeFileSync(path.join(a.mnt, 'unsynced'), unsynced);
    copyImage(a.image, path.join(work, 'copy'));
    b = LoopFs.attach(path.join(work, 'copy'), path.join(work, 'mnt2'));
    const s = fs.readFileSync(path.join(b.mnt, 'synced'));
    const syncedIntact = s.equals(synced);
    const up = path.join(b.mnt, 'unsynced');
    let state: string;
    if (!fs.existsSync(up)) state = 'absent';
    else {
      const u = fs.readFileSync(up);
      state = u.equals(unsynced) ? 'present in full' : `${u.length} bytes, ${u.filter((x) => x === 0x55).length} of them written`;
    }
    return { syncedIntact, unsynced: state };
  } finally {
    b?.close();
    a?.close();
    rmrf(work);
  }
}

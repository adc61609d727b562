// Item 1 of issue 4: kill -9 under load, short version (the torture runner does 200 rounds).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tempDir } from '../support/server';
import { destroyMetasAndRebuild, roundsProperty, runKillRounds } from './kill-rounds';
import { seedFromEnv } from './support';
import { checkRounds } from './check-rounds';

const ROUNDS = Number(process.env.LBKV_KILL_ROUNDS ?? 5);

test(`kill -9 under load: ${ROUNDS} rounds, 8 clients, 300 keys, values 100 B .. 4 MiB`, async () => {
  const seed = seedFromEnv();
  console.log(`  seed ${seed} (repeat with LBKV_SEED=${seed})`);
  const r = await runKillRounds({ rounds: ROUNDS, dataDir: tempDir('lbkv-kill9-'), seed, clients: 8, keys: 300, loadMs: [300, 2000] });
  checkRounds('KILL9', r, ROUNDS, 'rounds');
});

const ROUNDS_TWO = Number(process.env.LBKV_KILL_ROUNDS_TWO ?? 3);

test(`kill -9 under load with --sync-mode two: ${ROUNDS_TWO} rounds`, async () => {
  const seed = seedFromEnv() ^ 0x5a5a;
  console.log(`  seed ${seed} (repeat with LBKV_SEED=${seed ^ 0x5a5a})`);
  const r = await runKillRounds({ rounds: ROUNDS_TWO, dataDir: tempDir('lbkv-kill9-two-'), seed, clients: 8, keys: 300, loadMs: [300, 2000], serverArgs: ['--sync-mode', 'two'] });
  checkRounds('KILL9-TWO', r, ROUNDS_TWO, 'rounds');
});

// The fdatasync on the event loop instead of the thread pool must not change what an acknowledged
// Set means: the ack still waits for the sync. lbserver makes it there only for a Set alone with
// the server (KvService.blockingSyncAllowed; cli.test checks which commits), so one client writes,
// one Set at a time.
test(`kill -9 under load with --blocking-sync-us 1000000, one client, one Set at a time: ${ROUNDS_TWO} rounds`, async () => {
  const seed = seedFromEnv() ^ 0x3c3c;
  console.log(`  seed ${seed} (repeat with LBKV_SEED=${seed ^ 0x3c3c})`);
  const opts = { clients: 1, inflightPerClient: 1, keys: 300, loadMs: [300, 2000] as [number, number], serverArgs: ['--blocking-sync-us', '1000000'], countEventLoopSyncs: true };
  const r = await runKillRounds({ rounds: ROUNDS_TWO, dataDir: tempDir('lbkv-kill9-blocking-'), seed, ...opts });
  checkRounds('KILL9-BLOCKING', r, ROUNDS_TWO, 'rounds');
  const p = roundsProperty(opts, r)!;
  console.log(`  ${p.summary}`);
  assert.ok(p.holds, p.summary);
});

// A reader that stops reading pins a snapshot, so the commits move pinned freelist entries into
// segments; the kill lands while they exist, and the restart must read them back.
test(`kill -9 under load while a stalled GetPrefix reader pins a snapshot (freelist segments): ${ROUNDS_TWO} rounds`, async () => {
  const seed = seedFromEnv() ^ 0x7e7e;
  console.log(`  seed ${seed} (repeat with LBKV_SEED=${seed ^ 0x7e7e})`);
  const opts = { clients: 8, keys: 300, loadMs: [1500, 2500] as [number, number], stalledReader: { keys: 40, valueBytes: 512 * 1024 } };
  const r = await runKillRounds({ rounds: ROUNDS_TWO, dataDir: tempDir('lbkv-kill9-pinned-'), seed, ...opts });
  checkRounds('KILL9-PINNED', r, ROUNDS_TWO, 'rounds');
  const p = roundsProperty(opts, r)!;
  assert.ok(p.holds, `${p.summary} of ${r.rounds}`);
});

// With both meta pages destroyed after the kill there is no commit to recover: the store is rebuilt
// from its leaf pages (Store.rebuild), newest copy of each key first. It must keep the same promise
// as a restart: every acknowledged set, with its value or a later one that was sent.
test(`kill -9 under load, then both meta pages destroyed and the store rebuilt from its pages: ${ROUNDS_TWO} rounds`, async () => {
  const seed = seedFromEnv() ^ 0x1d1d;
  console.log(`  seed ${seed} (repeat with LBKV_SEED=${seed ^ 0x1d1d})`);
  const dataDir = tempDir('lbkv-kill9-rebuild-');
  const failures: string[] = [];
  const r = await runKillRounds({ rounds: ROUNDS_TWO, dataDir, seed, clients: 8, keys: 300, loadMs: [300, 2000], afterKill: async (round) => {
    const f = await destroyMetasAndRebuild(dataDir);
    if (f) failures.push(`round ${round}: ${f}`);
  } });
  assert.equal(failures, []);
  checkRounds('KILL9-REBUILD', r, ROUNDS_TWO, 'rounds');
});

test.run();

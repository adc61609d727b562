// Item 3 of issue 4: power cut below the filesystem (loop-mounted ext4, image copied without sync).
// Short version; the torture runner does more cuts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loopMethodCheck, runLoopPowerCuts } from './loop-powercut';
import { probeLoop, seedFromEnv } from './support';
import { checkRounds } from './check-rounds';

const ROUNDS = Number(process.env.LBKV_LOOP_ROUNDS ?? 3);
const ROUNDS_TWO = Number(process.env.LBKV_LOOP_ROUNDS_TWO ?? 2);
const probe = probeLoop();

// uvu has no skip. When loop devices are not permitted, only this probe check runs (and passes),
// with a loud SKIPPED line; the power-cut test itself is not registered, so it is not counted.
test('loop-device probe (losetup + mkfs.ext4 + mount)', () => {
  if (probe.ok) console.log('  loop devices usable: power-cut test runs');
  else console.log(`SKIPPED: loop-device power-cut test not run: ${probe.reason}`);
});

if (probe.ok) {
  test('method check: the image copy keeps fdatasynced data and drops un-synced writes', () => {
    const r = loopMethodCheck();
    console.log(`  synced file intact in the copy: ${r.syncedIntact}; un-synced file in the copy: ${r.unsynced}`);
    assert.ok(r.syncedIntact, 'fdatasynced file survives in the copy');
    assert.not.equal(r.unsynced, 'present in full', 'an un-synced file must not survive the copy in full');
  });

  test(`power cut below ext4 (loop device, image copied without sync): ${ROUNDS} cuts`, async () => {
    const seed = seedFromEnv();
    console.log(`  seed ${seed} (repeat with LBKV_SEED=${seed})`);
    const r = await runLoopPowerCuts({ rounds: ROUNDS, seed });
    if (r.skipped) assert.unreachable(`loop devices worked for the probe but not for the test: ${r.reason}`);
    else {
      checkRounds('LOOPCUT', r, ROUNDS, 'cuts');
    }
  });

  test(`power cut below ext4 with --sync-mode two: ${ROUNDS_TWO} cuts`, async () => {
    const seed = seedFromEnv() ^ 0x5a5a;
    const r = await runLoopPowerCuts({ rounds: ROUNDS_TWO, seed, syncMode: 'two' });
    if (r.skipped) assert.unreachable(`loop devices worked for the probe but not for the test: ${r.reason}`);
    else {
      checkRounds('LOOPCUT-TWO', r, ROUNDS_TWO, 'cuts');
    }
  });
}

test.run();

// Item 6 of issue 4: races. Per-key linearizability of concurrent Get/Set on hot keys, and GetPrefix
// streams that must each show one snapshot while writers commit. Short version.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startServer } from '../support/server';
import { runRaces } from './races';
import { seedFromEnv } from './support';

test('races: hot-key linearizability and one-snapshot GetPrefix', async () => {
  const seed = seedFromEnv();
  console.log(`  seed ${seed} (repeat with LBKV_SEED=${seed})`);
  const server = await startServer({});
  try {
    const r = await runRaces({ address: server.address, seed, clients: 8, hotKeys: 3, opsPerClient: 120, writers: 3, groupSize: 40, readers: 2, snapshotMs: 6000 });
    console.log(`RACES ops=${r.ops} keys=${r.keysChecked} non-linearizable=${r.nonLinearizable} inconclusive=${r.inconclusive} streams=${r.streams} sets-during-streams=${r.commitsDuringStreams} snapshot-violations=${r.snapshotViolations} failed-ops=${r.failedOps}`);
    for (const v of r.violations) console.log('  VIOLATION ' + v);
    assert.is(r.failedOps, 0, 'failed operations');
    assert.is(r.nonLinearizable, 0, 'keys with a non-linearizable history');
    assert.is(r.inconclusive, 0, 'keys the checker could not decide');
    assert.ok(r.streams >= 2, 'several GetPrefix streams ran');
    assert.ok(r.commitsDuringStreams > 0, 'sets were acknowledged while streams were open');
    assert.is(r.snapshotViolations, 0, 'GetPrefix streams that were not one snapshot');
  } finally {
    await server.stop('SIGTERM');
  }
});

test('negative control: a key-by-key reader (not one snapshot) is caught by the snapshot check', async () => {
  const server = await startServer({});
  try {
    const r = await runRaces({ address: server.address, seed: seedFromEnv(), opsPerClient: 0, writers: 2, groupSize: 20, readers: 1, snapshotMs: 20_000,
      readMode: 'get-each', getEachDelayMs: 50, stopAfterViolations: 1, log: () => {} });
    console.log(`  key-by-key reader: ${r.streams} passes, ${r.snapshotViolations} flagged as not one snapshot`);
    assert.ok(r.snapshotViolations > 0, 'the check flags a reader that is not one snapshot');
  } finally {
    await server.stop('SIGTERM');
  }
});

test.run();

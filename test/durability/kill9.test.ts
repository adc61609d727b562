// Item 1 of issue 4: kill -9 under load, short version (the torture runner does 200 rounds).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tempDir } from '../support/server';
import { runKillRounds } from './kill-rounds';
import { seedFromEnv } from './support';

const ROUNDS = Number(process.env.LBKV_KILL_ROUNDS ?? 5);

test(`kill -9 under load: ${ROUNDS} rounds, 8 clients, 300 keys, values 100 B .. 4 MiB`, async () => {
  const seed = seedFromEnv();
  console.log(`  seed ${seed} (repeat with LBKV_SEED=${seed})`);
  const r = await runKillRounds({ rounds: ROUNDS, dataDir: tempDir('lbkv-kill9-'), seed, clients: 8, keys: 300, loadMs: [300, 2000] });
  console.log(`KILL9 rounds=${r.rounds} acknowledged=${r.acked} sent=${r.sent} lost=${r.lost} torn=${r.torn} wrong-key=${r.wrongKey} never-sent=${r.phantom} prefix-mismatch=${r.prefixMismatch}`);
  for (const v of r.violations) console.log('  VIOLATION ' + v);
  assert.is(r.rounds, ROUNDS, 'all rounds ran');
  assert.ok(r.acked > 0, 'some sets were acknowledged');
  assert.is(r.lost, 0, 'lost acknowledged sets');
  assert.is(r.torn, 0, 'torn values');
  assert.is(r.wrongKey, 0, 'values of another key');
  assert.is(r.phantom, 0, 'values never sent');
  assert.is(r.prefixMismatch, 0, 'GetPrefix disagrees with Get');
  assert.is(r.statMismatch, 0, 'Stat key count disagrees with the keys found');
  assert.is(r.unexpectedErrors, 0, 'errors before the kill');
});

const ROUNDS_TWO = Number(process.env.LBKV_KILL_ROUNDS_TWO ?? 3);

test(`kill -9 under load with --sync-mode two: ${ROUNDS_TWO} rounds`, async () => {
  const seed = seedFromEnv() ^ 0x5a5a;
  console.log(`  seed ${seed} (repeat with LBKV_SEED=${seed ^ 0x5a5a})`);
  const r = await runKillRounds({ rounds: ROUNDS_TWO, dataDir: tempDir('lbkv-kill9-two-'), seed, clients: 8, keys: 300, loadMs: [300, 2000], serverArgs: ['--sync-mode', 'two'] });
  console.log(`KILL9-TWO rounds=${r.rounds} acknowledged=${r.acked} sent=${r.sent} lost=${r.lost} torn=${r.torn} wrong-key=${r.wrongKey} never-sent=${r.phantom} prefix-mismatch=${r.prefixMismatch}`);
  for (const v of r.violations) console.log('  VIOLATION ' + v);
  assert.is(r.rounds, ROUNDS_TWO, 'all rounds ran');
  assert.ok(r.acked > 0, 'some sets were acknowledged');
  assert.is(r.lost + r.torn + r.wrongKey + r.phantom + r.prefixMismatch + r.statMismatch + r.unexpectedErrors, 0, 'violations');
});

test.run();

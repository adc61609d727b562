// The verdict shared by the kill -9 and loop-device power-cut tests: print the counts, then require
// that every round ran and nothing acknowledged was lost, torn, foreign, invented or inconsistent.
import * as assert from 'uvu/assert';
import type { KillRoundsResult } from './kill-rounds';

export function checkRounds(tag: string, r: KillRoundsResult, rounds: number, unit: 'rounds' | 'cuts'): void {
  console.log(`${tag} ${unit}=${r.rounds} acknowledged=${r.acked} sent=${r.sent} lost=${r.lost} torn=${r.torn} wrong-key=${r.wrongKey} never-sent=${r.phantom} prefix-mismatch=${r.prefixMismatch}`);
  for (const v of r.violations) console.log('  VIOLATION ' + v);
  assert.is(r.rounds, rounds, `all ${unit} ran`);
  assert.ok(r.acked > 0, 'some sets were acknowledged');
  assert.is(r.lost, 0, 'lost acknowledged sets');
  assert.is(r.torn, 0, 'torn values');
  assert.is(r.wrongKey, 0, 'values of another key');
  assert.is(r.phantom, 0, 'values never sent');
  assert.is(r.prefixMismatch, 0, 'GetPrefix disagrees with Get');
  assert.is(r.statMismatch, 0, 'Stat key count disagrees with the keys found');
  assert.is(r.unexpectedErrors, 0, `errors before the ${unit === 'rounds' ? 'kill' : 'cut'}`);
}

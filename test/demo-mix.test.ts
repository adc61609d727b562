// The demo announces its mix of Sets, Gets and GetPrefixes before it runs; the server's Stat after
// the run must show that mix, for a short run too (drawn at random, 2 x 30 ops announced "about
// half sets" and ran 59 Sets, 1 Get).
import { resolve } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mixOf, opKind } from '../bin/demo-client';
import { runNode } from './support/server';

const mix = suite('demo: the mix of operations');

mix('mixOf counts what opKind schedules, for any number of ops', () => {
  const n = { set: 0, get: 0, getprefix: 0 };
  for (let ops = 0; ops <= 205; ops++) {
    assert.equal(mixOf(ops), { sets: n.set, gets: n.get, getprefixes: n.getprefix }, `${ops} ops`);
    n[opKind(ops)]++;
  }
  assert.equal(mixOf(10_000), { sets: 5000, gets: 4500, getprefixes: 500 });
});

for (const [clients, ops] of [[2, 30], [3, 7]] as const) {
  mix(`demo --clients ${clients} --ops ${ops}: the announced mix is what the server counted`, async () => {
    const r = await runNode(resolve(__dirname, '../bin/demo.js'), ['--clients', String(clients), '--ops', String(ops)], { timeoutMs: 120_000 });
    assert.is(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const said = /^demo: (\d+) client processes x (\d+) operations \(each (\d+) sets, (\d+) gets, (\d+) getprefixes;/m.exec(r.stdout);
    assert.ok(said, r.stdout);
    const [sets, gets, getprefixes] = [3, 4, 5].map((i) => Number(said![i]));
    assert.is(sets + gets + getprefixes, ops);
    const stat = (name: string) => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(r.stdout)?.[1]);
    assert.is(stat('total_sets'), clients * sets, r.stdout);
    assert.is(stat('total_gets'), clients * gets, r.stdout);
    assert.is(stat('total_getprefixes'), clients * getprefixes, r.stdout);
    assert.match(r.stdout, new RegExp(`^demo: ${clients * ops} operations \\(${clients * sets} sets, ${clients * gets} gets, ${clients * getprefixes} getprefixes\\) in `, 'm'));
  });
}

mix.run();

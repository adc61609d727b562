// How the experiments measure and report: small pure pieces, and runners with tiny parameters
// (nothing here asserts on a time).
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readGit } from '../experiments/lib/common';
import { tempDir } from './support/server';

const git = suite('experiments: the commit a result records');

git('a code file not yet added, or a changed test helper, makes the tree dirty; result files do not', () => {
  const dir = tempDir('lbkv-gitinfo-');
  const g = (...args: string[]) => {
    const r = spawnSync('git', ['-C', dir, '-c', 'user.email=t@t', '-c', 'user.name=t', ...args], { encoding: 'utf8' });
    assert.is(r.status, 0, r.stderr);
  };
  for (const f of ['lib/a.ts', 'experiments/lib/b.ts', 'test/support/server.ts', 'package-lock.json']) {
    mkdirSync(join(dir, f, '..'), { recursive: true });
    writeFileSync(join(dir, f), '// 1\n');
  }
  g('init', '-q');
  g('add', '.');
  g('commit', '-q', '-m', 'x');
  assert.is(readGit(dir).dirty, false);
  mkdirSync(join(dir, 'experiments', 'results', 'exp1-latency'), { recursive: true });
  writeFileSync(join(dir, 'experiments', 'results', 'exp1-latency', 'exp1-latency.json'), '{}\n');
  assert.is(readGit(dir).dirty, false, 'a result file is not code');
  writeFileSync(join(dir, 'experiments', 'lib', 'c.ts'), '// new, imported by a committed file\n');
  assert.equal(readGit(dir).dirtyFiles, ['?? experiments/lib/c.ts']);
  g('add', '.');
  g('commit', '-q', '-m', 'y');
  writeFileSync(join(dir, 'test', 'support', 'server.ts'), '// 2\n'); // stream-memory imports it
  writeFileSync(join(dir, 'package-lock.json'), '// 2\n');
  assert.equal(readGit(dir).dirtyFiles, ['M package-lock.json', 'M test/support/server.ts']);
});

git.run();

// The Makefile's build: a source removed or renamed rebuilds, and leaves no compiled copy of itself
// in dist/ (scripts/run-tests.mjs runs every dist/test/**/*.test.js). Runs make on a copy of the
// sources with tsc stubbed out, so it costs no compile.
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tempDir } from './support/server';

const ROOT = resolve(__dirname, '../..');

/** Copies `rel` from the repository into `to`, keeping its modification time (make compares them). */
function copyKeepingTime(rel: string, to: string): void {
  const src = join(ROOT, rel);
  const dst = join(to, rel);
  mkdirSync(dirname(dst), { recursive: true });
  copyFileSync(src, dst);
  const st = statSync(src);
  utimesSync(dst, st.atime, st.mtime);
}

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const rel = join(dir, e.name);
    if (e.isDirectory()) out.push(...tsFiles(rel));
    else if (e.name.endsWith('.ts')) out.push(rel);
  }
  return out;
}

/** A copy of what the build reads, and an `npx` (and `npm`) on PATH that does nothing. */
function buildTree(): { dir: string; copied: string[]; make: (...args: string[]) => { status: number | null; out: string } } {
  const dir = tempDir('lbkv-build-');
  const copied = ['Makefile', 'package.json', 'package-lock.json', 'tsconfig.json', 'buf.gen.yaml', 'protos/kv.proto', 'generated/kv.ts', 'scripts/launcher.sh',
    ...['btree', 'lib', 'bin', 'test', 'experiments'].flatMap(tsFiles)];
  for (const f of copied) copyKeepingTime(f, dir);
  mkdirSync(join(dir, 'dist')); // what tsc would make
  // Installed, as far as make can tell (nothing here runs a module).
  mkdirSync(join(dir, 'node_modules'));
  writeFileSync(join(dir, 'node_modules/.install-stamp'), '');
  const bin = join(dir, '.fake-bin');
  mkdirSync(bin);
  for (const tool of ['npx', 'npm']) {
    writeFileSync(join(bin, tool), '#!/bin/sh\nexit 0\n');
    chmodSync(join(bin, tool), 0o755);
  }
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
  return {
    dir,
    copied,
    make: (...args: string[]) => {
      const r = spawnSync('make', ['-C', dir, ...args], { env, encoding: 'utf8' });
      return { status: r.status, out: `${r.stdout}${r.stderr}` };
    },
  };
}

test('a source renamed (its time kept, as git mv and many checkouts do) rebuilds, and the old compiled test is gone', async () => {
  const t = buildTree();
  // The state after a build: every output in place, the stamp newer than every source.
  let r = t.make('dist/.build-stamp');
  assert.is(r.status, 0, r.out);
  const stale = join(t.dir, 'dist/test/codec.test.js');
  mkdirSync(dirname(stale), { recursive: true });
  writeFileSync(stale, '// compiled from test/codec.test.ts\n');
  // Times seconds apart, in the order a build leaves them, whatever the file system's resolution:
  // the sources, the install stamp, the generated stubs, the list of sources (if the Makefile
  // keeps one), the build stamp.
  const at = (msAgo: number) => new Date(Date.now() - msAgo);
  for (const f of t.copied) utimesSync(join(t.dir, f), at(60_000), at(60_000));
  utimesSync(join(t.dir, 'node_modules/.install-stamp'), at(50_000), at(50_000));
  utimesSync(join(t.dir, 'generated/kv.ts'), at(40_000), at(40_000));
  if (existsSync(join(t.dir, 'dist/.ts-sources'))) utimesSync(join(t.dir, 'dist/.ts-sources'), at(3_000), at(3_000));
  utimesSync(join(t.dir, 'dist/.build-stamp'), at(2_000), at(2_000));
  r = t.make('-q', 'dist/.build-stamp');
  assert.is(r.status, 0, `up to date after a build: ${r.out}`);

  renameSync(join(t.dir, 'test/codec.test.ts'), join(t.dir, 'test/codec-renamed.test.ts'));
  r = t.make('-q', 'dist/.build-stamp');
  assert.is(r.status, 1, `a renamed source must rebuild (make -q: 1 = not up to date): ${r.out}`);
  r = t.make('dist/.build-stamp');
  assert.is(r.status, 0, r.out);
  assert.not.ok(existsSync(stale), 'the compiled copy of the old name is gone, so run-tests.mjs cannot run it');
  assert.ok(existsSync(join(t.dir, 'dist/.ts-sources')), 'the list of sources is kept');
  r = t.make('-q', 'dist/.build-stamp');
  assert.is(r.status, 0, `and then up to date: ${r.out}`);
});

test.run();

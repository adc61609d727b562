// Starts the servers under test as child processes (lbserver or the floor server), on 127.0.0.1 and a
// free port, and stops exactly the processes it started, by PID.
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { onInterrupt, ROOT } from './common';
import { freePort } from '../../lib/ports';
import { KvClient } from '../../lib/client';
import type { StatResponse } from '../../generated/kv';
export { freePort };

export const SERVER_KINDS = ['floor', 'lbkv'] as const;
export type ServerKind = (typeof SERVER_KINDS)[number];

export const LBSERVER_JS = path.join(ROOT, 'dist', 'bin', 'lbserver.js');
export const FLOOR_JS = path.join(ROOT, 'dist', 'experiments', 'floor-server.js');
/** lbserver with its fdatasyncs made no-ops (not durable; experiments/nosync-lbserver.ts). */
export const NOSYNC_LBSERVER_JS = path.join(ROOT, 'dist', 'experiments', 'nosync-lbserver.js');

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) { try { if (c.pid) process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ } }
});
onInterrupt(() => {
  if (live.size) process.stderr.write(`experiments: killing ${live.size} server process(es)\n`);
  for (const c of live) { try { if (c.pid) process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ } }
});


export interface ServerOptions {
  kind: ServerKind;
  /** lbkv only. */
  dataDir?: string;
  /** lbkv only: the lbserver.js to run (default this checkout's; another build's for build-ab). */
  script?: string;
  cacheMB?: number;
  syncMode?: 'one' | 'two';
  port?: number;
  extraArgs?: string[];
  readyTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Working directory of the server process (default the repository root). */
  cwd?: string;
  /** Wrap the command (e.g. clinic): argv prefix before `node script ...`; the node binary is replaced. */
  wrap?: (script: string, args: string[]) => { cmd: string; args: string[] };
}

export interface RunningServer {
  kind: ServerKind;
  address: string;
  port: number;
  pid: number;
  /** hrtime (ns) when spawn() was called. */
  spawnedAt: bigint;
  /** ms from spawn() to the ready line. */
  readyMs: number;
  stdout(): string;
  stderr(): string;
  /** SIGKILL and wait for exit. */
  kill9(): Promise<void>;
  /** Signal (default SIGTERM), wait, SIGKILL after timeoutMs. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  exited: Promise<number | null>;
}

const READY = /(lbserver|floor-server) listening on (\S+)/;

export async function startServer(o: ServerOptions): Promise<RunningServer> {
  const port = o.port ?? (await freePort());
  const address = `127.0.0.1:${port}`;
  let script: string;
  let args: string[];
  if (o.kind === 'floor') {
    script = FLOOR_JS;
    args = ['--listen', address];
  } else {
    if (!o.dataDir) throw new Error('lbkv server needs dataDir');
    script = o.script ?? LBSERVER_JS;
    args = ['--listen', address, '--data', o.dataDir];
    if (o.cacheMB !== undefined) args.push('--cache-mb', String(o.cacheMB));
    if (o.syncMode) args.push('--sync-mode', o.syncMode);
  }
  args.push(...(o.extraArgs ?? []));
  const cmd = o.wrap ? ownProcessGroup(o.wrap(script, args)) : { cmd: process.execPath, args: [script, ...args] };
  const spawnedAt = process.hrtime.bigint();
  const child = spawn(cmd.cmd, cmd.args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: o.cwd ?? ROOT, env: { ...process.env, ...o.env } });
  live.add(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (c: string) => { err = (err + c).slice(-20_000); });
  const exited = new Promise<number | null>((res) => {
    child.on('close', (code) => { live.delete(child); res(code); });
    child.on('error', () => { live.delete(child); res(null); });
  });
  let exitCode: number | null | undefined;
  void exited.then((c) => { exitCode = c; });
  const readyMs = await new Promise<number>((resolve, reject) => {
    const timeout = o.readyTimeoutMs ?? 120_000;
    const timer = setTimeout(() => {
      try { child.kill('SIGKILL'); } catch { /* gone */ }
      reject(new Error(`${o.kind} server not ready in ${timeout} ms\nstdout: ${out}\nstderr: ${err}`));
    }, timeout);
    child.stdout!.on('data', (c: string) => {
      const wasReady = READY.test(out);
      out = (out + c).slice(-20_000);
      if (!wasReady && READY.test(out)) {
        clearTimeout(timer);
        resolve(Number(process.hrtime.bigint() - spawnedAt) / 1e6);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${o.kind} server exited (${code}) before ready\nstdout: ${out}\nstderr: ${err}`));
    });
  });
  const pid = child.pid!;
  return {
    kind: o.kind, address, port, pid, spawnedAt, readyMs,
    stdout: () => out,
    stderr: () => err,
    exited,
    async kill9() {
      if (exitCode !== undefined) return;
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      await exited;
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000) {
      if (exitCode !== undefined) return exitCode;
      try { process.kill(pid, signal); } catch { /* gone */ }
      const t = setTimeout(() => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }, timeoutMs);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

/** One Stat call on a fresh connection (for reading a server's counters before and after a load). */
export async function statOf(address: string): Promise<StatResponse> {
  const c = new KvClient(address);
  try { return await c.stat(); } finally { c.close(); }
}

/** `cmd` in a process group of its own but in this session. A wrapper (clinic/0x) may signal its
 *  whole process group on shutdown, hence the group; spawn's `detached` gave it a session of its own
 *  as well, and with the kernel's autogroup scheduling (sched_autogroup_enabled) a session is a CPU
 *  scheduling group: the profiled server then spent about a third more CPU per Set, in half-size
 *  batches, than the benchmarks' servers. perl (Debian's perl-base, essential) sets the group and
 *  execs, so the PID is the wrapper's. */
function ownProcessGroup(cmd: { cmd: string; args: string[] }): { cmd: string; args: string[] } {
  return { cmd: 'perl', args: ['-e', 'setpgrp(0, 0) or die "setpgrp: $!\\n"; exec { $ARGV[0] } @ARGV or die "exec $ARGV[0]: $!\\n"', cmd.cmd, ...cmd.args] };
}

/** Starts a server with `start` and times the answer to a first get of `key` from its spawn(), by a
 *  fresh client that connects after the ready line (what a restart costs a caller); `getMs` is the
 *  get alone. The client is left open for the caller to use and close. */
export async function startAndFirstGet(start: () => Promise<RunningServer>, key: Buffer): Promise<{ server: RunningServer; client: KvClient; value: Buffer | undefined; readyMs: number; firstGetMs: number; getMs: number }> {
  const server = await start();
  const client = new KvClient(server.address);
  const t0 = process.hrtime.bigint();
  const value = await client.get(key);
  const t1 = process.hrtime.bigint();
  return { server, client, value, readyMs: server.readyMs, firstGetMs: Number(t1 - server.spawnedAt) / 1e6, getMs: Number(t1 - t0) / 1e6 };
}

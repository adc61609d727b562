// Helper for process-level tests: spawns the real compiled lbserver (dist/bin/lbserver.js) on
// 127.0.0.1 and a free port, waits for its ready line, and always cleans up the processes it started
// (tracked by PID; only those are killed) and the temporary directories it made.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { KvClient, type KvClientOptions } from '../../lib/client';
import { freePort } from '../../lib/ports';
import { eventually } from './client-helpers';
export { freePort };

export const LBSERVER_JS = resolve(__dirname, '../../bin/lbserver.js');
export const LBCLIENT_JS = resolve(__dirname, '../../bin/lbclient.js');

const READY_RE = /^lbserver listening on (\S+)/m;

const liveChildren = new Set<ChildProcess>();
const tempDirs = new Set<string>();

process.on('exit', () => {
  for (const c of liveChildren) {
    try { if (c.pid) process.kill(c.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
  for (const d of tempDirs) {
    try { rmSync(d, { recursive: true, force: true }); } catch { /* ignore */ }
  }
});

/** A fresh temporary directory, removed when the test process exits (or by `removeTempDir`). */
export function tempDir(prefix = 'lbkv-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

export function removeTempDir(d: string): void {
  rmSync(d, { recursive: true, force: true });
  tempDirs.delete(d);
}


export interface StartOptions {
  /** Data directory; default a fresh temporary directory. */
  dataDir?: string;
  /** Extra lbserver arguments, e.g. ['--max-value-bytes', '1048576']. */
  args?: string[];
  /** The lbserver to run; default this build's (another build's, to compare the two). */
  script?: string;
  env?: NodeJS.ProcessEnv;
  /** Fixed port (e.g. to restart on the same address); default a free one. */
  port?: number;
  readyTimeoutMs?: number;
  clientOptions?: KvClientOptions;
}

export interface ServerHandle {
  address: string;
  port: number;
  pid: number;
  dataDir: string;
  readonly stdout: string;
  readonly stderr: string;
  /** Exit code (null if killed by a signal) once it has exited, else undefined. */
  readonly exitCode: number | null | undefined;
  /** The signal that killed it, if any. */
  readonly exitSignal: NodeJS.Signals | null;
  /** Sends `signal` and resolves with the exit code (null if it died of a signal). Kills -9 after `timeoutMs`. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  kill9(): Promise<void>;
  /** Resolves with the exit code when the process exits by itself. */
  exited(): Promise<number | null>;
  /** A new client for this server (closed when the handle is stopped). */
  client(opts?: KvClientOptions): KvClient;
}

export class ServerStartError extends Error {
  constructor(message: string, readonly exitCode: number | null, readonly stdout: string, readonly stderr: string) {
    super(message);
  }
}

interface Spawned {
  child: ChildProcess;
  out: { stdout: string; stderr: string };
  exit: Promise<number | null>;
  exitCode: { v: number | null | undefined };
  exitSignal: { v: NodeJS.Signals | null };
}

function spawnNode(script: string, args: string[], env?: NodeJS.ProcessEnv): Spawned {
  const child = spawn(process.execPath, [script, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  liveChildren.add(child);
  const out = { stdout: '', stderr: '' };
  child.stdout!.setEncoding('utf8').on('data', (c: string) => { out.stdout += c; });
  child.stderr!.setEncoding('utf8').on('data', (c: string) => { out.stderr += c; });
  const exitCode: { v: number | null | undefined } = { v: undefined };
  const exitSignal: { v: NodeJS.Signals | null } = { v: null };
  const exit = new Promise<number | null>((res) => {
    child.on('close', (code, signal) => { liveChildren.delete(child); exitCode.v = code; exitSignal.v = signal; res(code); });
    child.on('error', () => { liveChildren.delete(child); exitCode.v = null; res(null); });
  });
  return { child, out, exit, exitCode, exitSignal };
}

/** Starts lbserver and waits for its ready line. Retries on a port that got taken in between. */
export async function startServer(opts: StartOptions = {}): Promise<ServerHandle> {
  const dataDir = opts.dataDir ?? tempDir('lbkv-data-');
  let lastErr: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = opts.port ?? (await freePort());
    try {
      return await startOnce(port, dataDir, opts);
    } catch (e) {
      lastErr = e;
      const inUse = e instanceof ServerStartError && /in use|EADDRINUSE/i.test(e.stderr);
      if (!inUse || opts.port !== undefined) throw e;
    }
  }
  throw lastErr;
}

async function startOnce(port: number, dataDir: string, opts: StartOptions): Promise<ServerHandle> {
  const address = `127.0.0.1:${port}`;
  const sp = spawnNode(opts.script ?? LBSERVER_JS, ['--listen', address, '--data', dataDir, ...(opts.args ?? [])], opts.env);
  const timeoutMs = opts.readyTimeoutMs ?? 20_000;
  await new Promise<void>((res, rej) => {
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sp.child.stdout!.off('data', onData);
      err ? rej(err) : res();
    };
    const onData = () => { if (READY_RE.test(sp.out.stdout)) finish(); };
    sp.child.stdout!.on('data', onData);
    const timer = setTimeout(() => {
      try { sp.child.kill('SIGKILL'); } catch { /* gone */ }
      finish(new ServerStartError(`lbserver not ready within ${timeoutMs} ms\nstdout: ${sp.out.stdout}\nstderr: ${sp.out.stderr}`, null, sp.out.stdout, sp.out.stderr));
    }, timeoutMs);
    sp.exit.then((code) => finish(new ServerStartError(
      `lbserver exited (code ${code}) before it was ready\nstdout: ${sp.out.stdout}\nstderr: ${sp.out.stderr}`, code, sp.out.stdout, sp.out.stderr)));
  });

  const clients: KvClient[] = [];
  const closeClients = () => { for (const c of clients.splice(0)) c.close(); };
  const handle: ServerHandle = {
    address,
    port,
    pid: sp.child.pid!,
    dataDir,
    get stdout() { return sp.out.stdout; },
    get stderr() { return sp.out.stderr; },
    get exitCode() { return sp.exitCode.v; },
    get exitSignal() { return sp.exitSignal.v; },
    async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000) {
      closeClients();
      if (sp.exitCode.v !== undefined) return sp.exitCode.v;
      try { sp.child.kill(signal); } catch { /* gone */ }
      const t = setTimeout(() => { try { sp.child.kill('SIGKILL'); } catch { /* gone */ } }, timeoutMs);
      const code = await sp.exit;
      clearTimeout(t);
      return code;
    },
    async kill9() {
      closeClients();
      if (sp.exitCode.v !== undefined) return;
      try { sp.child.kill('SIGKILL'); } catch { /* gone */ }
      await sp.exit;
    },
    exited() { return sp.exit; },
    client(copts?: KvClientOptions) {
      const c = new KvClient(address, { ...opts.clientOptions, ...copts });
      clients.push(c);
      return c;
    },
  };
  return handle;
}

/** Starts lbserver expecting it to fail; resolves with its exit code and output. */
export async function runServerExpectingFailure(args: string[], timeoutMs = 20_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runNode(LBSERVER_JS, args, { timeoutMs });
}

export interface RunResult { code: number | null; stdout: string; stderr: string; stdoutBytes: Buffer }

/** Runs a compiled script with node to completion (killed after timeoutMs), optionally feeding stdin. */
export function runNode(script: string, args: string[], o: { stdin?: Buffer | string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...o.env } });
    liveChildren.add(child);
    const outChunks: Buffer[] = [];
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => outChunks.push(c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
    child.stdin!.on('error', () => { /* child may exit before reading stdin */ });
    if (o.stdin !== undefined) child.stdin!.end(o.stdin);
    else child.stdin!.end();
    const t = setTimeout(() => { try { child.kill('SIGKILL'); } catch { /* gone */ } }, o.timeoutMs ?? 30_000);
    child.on('close', (code) => {
      clearTimeout(t);
      liveChildren.delete(child);
      const stdoutBytes = Buffer.concat(outChunks);
      res({ code, stdout: stdoutBytes.toString('utf8'), stderr, stdoutBytes });
    });
  });
}

/** Runs the compiled lbclient against `server` (an address) with the given arguments. */
export function runClient(server: string, args: string[], o: { stdin?: Buffer | string; timeoutMs?: number } = {}): Promise<RunResult> {
  return runNode(LBCLIENT_JS, ['--server', server, ...args], o);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Whether the server's stderr comes to match `pattern` within `timeoutMs`: what it logs before its
 *  ready line (stdout) may arrive after that line, on its own pipe. */
export function logs(srv: ServerHandle, pattern: RegExp | string, timeoutMs = 5000): Promise<boolean> {
  return eventually(() => (typeof pattern === 'string' ? srv.stderr.includes(pattern) : pattern.test(srv.stderr)), timeoutMs, 20);
}

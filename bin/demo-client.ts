// One demo client process (started by bin/demo.ts with fork): runs a mix of Set / Get / GetPrefix
// against the server, checks every Get of its own keys returns the value it last set, reports progress
// to the parent over IPC, and exits non-zero on any failure.
import { Command } from 'commander';
import { KvClient } from '../lib/client';
import { argsOrExit, CLIENT_USAGE_EXIT, parseIntArg } from '../lib/config';

interface Args { server: string; id: number; ops: number; concurrency: number; keys: number }

function parseArgs(): Args {
  const o = new Command()
    .name('demo-client')
    .description('One client of the demo (bin/demo.ts starts ten of them): a mix of Set / Get / GetPrefix on its own ' +
      'keys, checking that every Get returns the value it last set. Exit status: 0 OK; 1 a wrong read or an error; ' +
      '4 bad usage (an unknown option or a bad value), as lbclient.')
    .option('--server <addr>', 'lbserver address', '127.0.0.1:50051')
    .option('--id <n>', 'client number (names its keys)', '0')
    .option('--ops <n>', 'operations to run; of every 20, 10 Sets, 9 Gets and 1 GetPrefix', '10000')
    .option('--concurrency <n>', 'calls in flight (env LBKV_DEMO_CONCURRENCY)', process.env.LBKV_DEMO_CONCURRENCY ?? '24')
    .option('--keys <n>', 'distinct keys', '500')
    .exitOverride((e) => process.exit(e.exitCode === 0 ? 0 : CLIENT_USAGE_EXIT))
    .parse()
    .opts<Record<'server' | 'id' | 'ops' | 'concurrency' | 'keys', string>>();
  return argsOrExit('demo-client', () => ({
    server: o.server,
    id: parseIntArg(o.id, '--id', 0, 100_000),
    ops: parseIntArg(o.ops, '--ops', 1, 100_000_000),
    concurrency: parseIntArg(o.concurrency, '--concurrency', 1, 10_000),
    keys: parseIntArg(o.keys, '--keys', 1, 1_000_000),
  }), CLIENT_USAGE_EXIT);
}

/** The mix, by construction: op n of a client is the (n mod 20)th of a cycle of 10 Sets, 9 Gets and
 *  1 GetPrefix (Set and Get alternating, the GetPrefix last), whatever the concurrency; drawn at
 *  random, a short run had none of the mix the demo announces (its first Gets, of keys not set yet,
 *  were turned into Sets: 59 Sets of 60). */
export type OpKind = 'set' | 'get' | 'getprefix';
export const MIX_CYCLE = 20;

export function opKind(n: number): OpKind {
  const i = n % MIX_CYCLE;
  return i === MIX_CYCLE - 1 ? 'getprefix' : i % 2 === 0 ? 'set' : 'get';
}

/** How many of each kind `ops` operations of one client are. */
export function mixOf(ops: number): { sets: number; gets: number; getprefixes: number } {
  const cycles = Math.floor(ops / MIX_CYCLE);
  const rest = ops % MIX_CYCLE; // at most 19: no GetPrefix among them
  return { sets: cycles * 10 + Math.ceil(rest / 2), gets: cycles * 9 + Math.floor(rest / 2), getprefixes: cycles };
}

/** A ~128-byte key: a readable head padded with a deterministic tail. */
function makeKey(id: number, n: number): Buffer {
  const head = `demo/client-${String(id).padStart(2, '0')}/key-${String(n).padStart(6, '0')}/`;
  return Buffer.from(head.padEnd(128, 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(4)), 'utf8');
}

async function main(): Promise<void> {
  const a = parseArgs();
  const client = new KvClient(a.server);
  await client.waitForReady(10_000);
  const last = new Map<number, string>(); // key index -> last value acknowledged
  const setKeys: number[] = []; // keys with an acknowledged Set: what the Gets read
  // Key index -> its Set in flight: at most one per key, so that "last value" is well defined (skip
  // verifying Gets that overlap one).
  const inflight = new Map<number, Promise<void>>();
  const setsBegun = new Map<number, number>(); // key index -> Sets started on it
  const counts = { sets: 0, gets: 0, getprefixes: 0, mismatches: 0 };
  let next = 0;
  let done = 0;
  let seed = 0x9e3779b9 ^ (a.id * 7919);
  const rand = () => { seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; return (seed >>> 0) / 2 ** 32; };
  const prefix = Buffer.from(`demo/client-${String(a.id).padStart(2, '0')}/`);

  const report = () => process.send?.({ type: 'progress', id: a.id, done });

  const one = async (opNo: number) => {
    const kind = opKind(opNo);
    if (kind === 'set') {
      const k = Math.floor(rand() * a.keys);
      const value = `v${a.id}.${opNo}.${'x'.repeat(Math.floor(rand() * 64))}`;
      // The Set waits for the one in flight on its key rather than becoming another kind of call.
      for (let p = inflight.get(k); p; p = inflight.get(k)) await p;
      setsBegun.set(k, (setsBegun.get(k) ?? 0) + 1);
      const p = client.set(makeKey(a.id, k), value).then(() => undefined);
      const tracked = p.catch(() => undefined);
      inflight.set(k, tracked);
      try {
        await p;
      } finally {
        if (inflight.get(k) === tracked) inflight.delete(k);
      }
      if (!last.has(k)) setKeys.push(k);
      last.set(k, value);
      counts.sets++;
    } else if (kind === 'get') {
      // A key already set when there is one (a Get of a key never set checks only that it is absent).
      const k = setKeys.length ? setKeys[Math.floor(rand() * setKeys.length)] : Math.floor(rand() * a.keys);
      const want = last.get(k);
      const begun = setsBegun.get(k);
      const racing = inflight.has(k);
      const got = (await client.get(makeKey(a.id, k)))?.toString();
      counts.gets++;
      // A Set of this key begun while the Get ran may take effect before the Get reads, even if it
      // is acknowledged after the Get returns: either value is then correct, so check only the rest.
      if (!racing && setsBegun.get(k) === begun && got !== want) {
        counts.mismatches++;
        process.stderr.write(`demo-client ${a.id}: key ${k}: got ${got?.toString()} want ${want}\n`);
      }
    } else {
      let n = 0;
      let prev: Buffer | undefined;
      for await (const e of client.getPrefix(prefix, { limit: 20 })) {
        if (!e.key.subarray(0, prefix.length).equals(prefix) || (prev && Buffer.compare(prev, e.key) >= 0)) {
          counts.mismatches++;
          process.stderr.write(`demo-client ${a.id}: getprefix returned a key out of order or outside the prefix\n`);
        }
        prev = e.key;
        n++;
      }
      if (n > 20) counts.mismatches++;
      counts.getprefixes++;
    }
  };

  const worker = async () => {
    while (next < a.ops) {
      const opNo = next++;
      await one(opNo);
      done++;
      if (done % 250 === 0) report();
    }
  };
  await Promise.all(Array.from({ length: a.concurrency }, worker));
  report();
  client.close();
  process.send?.({ type: 'done', id: a.id, ...counts });
  if (counts.mismatches > 0) process.exitCode = 1;
}

// bin/demo.ts imports the mix from here to announce it.
if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`demo-client: ${(e as Error)?.stack ?? e}\n`);
    process.exitCode = 1;
  });
}

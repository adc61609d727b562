// Long power-cut campaign (issue 4 item 2, long version): 10,000 cut points by default, split over
// syncMode 'one' and 'two' and over the engine API and the gRPC service handlers, each cut point crashed into 2 images (keep / drop / tear / garble of every
// un-synced write) and verified to recover exactly the last acknowledged commit or the one in flight.
// Called by the torture runner (test/torture/run.ts) through runPowerCuts(); also runnable alone:
//   node dist/test/torture/powercut-long.js [cuts] [seed]
import { runCampaign } from '../support/workload';

export interface PowerCutsOptions {
  cuts?: number;
  seed?: number;
  log?: (line: string) => void;
  /** Stop (and say so) after this long; default no limit. */
  deadlineMs?: number;
}

export interface PowerCutsResult {
  /** Cut points tested. */
  cuts: number;
  /** Cut points whose every crash image recovered exactly an acknowledged or the in-flight commit. */
  verified: number;
  failures: string[];
  /** Crash images checked (two per cut point) and how many recovered correctly. */
  images: number;
  imagesVerified: number;
  recoveredInFlight: number;
  byKind: Record<string, number>;
  stoppedEarly: boolean;
  seconds: number;
}

export async function runPowerCuts(opts: PowerCutsOptions = {}): Promise<PowerCutsResult> {
  const cuts = opts.cuts ?? 10_000;
  const seed = opts.seed ?? Date.now() % 2 ** 31;
  const log = opts.log ?? ((s: string) => console.log(s));
  const started = Date.now();
  log(`power cuts: ${cuts} cut points, seed ${seed} (rerun: node dist/test/torture/powercut-long.js ${cuts} ${seed})`);
  const out: PowerCutsResult = { cuts: 0, verified: 0, failures: [], images: 0, imagesVerified: 0, recoveredInFlight: 0, byKind: {}, stoppedEarly: false, seconds: 0 };
  // Four quarters: syncMode 'one' and 'two', each through the engine API and through the gRPC
  // service handlers (lib/service.ts with in-process fake calls).
  const parts = [
    { syncMode: 'one', via: 'engine' }, { syncMode: 'two', via: 'engine' },
    { syncMode: 'one', via: 'service' }, { syncMode: 'two', via: 'service' },
  ] as const;
  for (const [i, { syncMode, via }] of parts.entries()) {
    const share = i === parts.length - 1 ? cuts - out.cuts : Math.ceil(cuts / parts.length);
    if (share <= 0) break;
    const left = opts.deadlineMs ? opts.deadlineMs - (Date.now() - started) : undefined;
    if (left !== undefined && left <= 0) {
      out.stoppedEarly = true;
      break;
    }
    const r = await runCampaign({
      seed: seed + i, syncMode, via, cuts: share, imagesPerCut: 2, continueFraction: 0.25, deadlineMs: left, maxFailures: 20,
      log: (s) => log(`  ${s}`),
    });
    out.cuts += r.cuts;
    out.verified += r.cutsVerified;
    out.images += r.images;
    out.imagesVerified += r.verified;
    out.recoveredInFlight += r.recoveredInFlight;
    out.failures.push(...r.failures);
    out.stoppedEarly ||= r.stoppedEarly;
    for (const [k, n] of Object.entries(r.byKind)) out.byKind[`${syncMode}:${k}`] = (out.byKind[`${syncMode}:${k}`] ?? 0) + n;
    log(`  ${via}, syncMode ${syncMode}: ${r.cuts} cut points (${r.cutsVerified} verified), ${r.images} crash images (${r.verified} verified), ` +
      `${r.compactions} workloads with a compaction (${r.compactionCuts} cuts inside it), ${r.failures.length} failures`);
  }
  out.seconds = (Date.now() - started) / 1000;
  log(`power cuts: ${out.cuts} cut points (${out.verified} verified), ${out.images} crash images (${out.imagesVerified} verified), ${out.recoveredInFlight} recovered the in-flight commit, ` +
    `${out.failures.length} failures${out.stoppedEarly ? ' (stopped early: time budget)' : ''}, ${out.seconds.toFixed(1)} s, seed ${seed}`);
  return out;
}

if (require.main === module) {
  // The campaign always ends in process.exit(); an empty event loop before that means a hang.
  process.on('beforeExit', () => {
    console.error('powercut-long: FAILED: stopped waiting on something that can never happen (no summary)');
    process.exit(3);
  });
  const cuts = Number(process.argv[2] ?? 10_000);
  const seed = process.argv[3] !== undefined ? Number(process.argv[3]) : undefined;
  runPowerCuts({ cuts, seed }).then(
    (r) => {
      for (const f of r.failures.slice(0, 20)) console.log(f);
      process.exit(r.failures.length === 0 && !r.stoppedEarly ? 0 : 1);
    },
    (e) => {
      console.error(e);
      process.exit(2);
    },
  );
}

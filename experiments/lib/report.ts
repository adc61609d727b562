// The JSON summary every experiment writes next to its plot.
import * as os from 'node:os';
import * as path from 'node:path';
import { gitInfo, machineInfo, writeJson, dataDirRoot } from './common';

// Record the checked-out commit now, when the run starts.
gitInfo();

// The load average when this experiment began: a run beside other people's work (2 shared cores)
// gives other numbers, and nothing in a result file said so. Reset by each summary, so that a run
// of several experiments records each one's start.
let loadAtStart = os.loadavg();

/** `dataDir`: where the run kept its data (machine.disk describes the disk it is on). */
export function writeSummary(dir: string, exp: string, config: unknown, results: unknown, extra: Record<string, unknown> = {}, dataDir = dataDirRoot()): string {
  const file = path.join(dir, `${exp}.json`);
  writeJson(file, {
    experiment: exp,
    finishedAt: new Date().toISOString(),
    git: gitInfo(),
    machine: machineInfo(dataDir),
    loadAverage: {
      atStart: loadAtStart.map((x) => Number(x.toFixed(2))),
      atEnd: os.loadavg().map((x) => Number(x.toFixed(2))),
      note: '1, 5 and 15 minute load averages of the machine; at the end they count this run\'s own server and clients too, at the start only what ran before it (the previous experiment of a run-all included)',
    },
    config,
    ...extra,
    results,
  });
  loadAtStart = os.loadavg();
  return file;
}

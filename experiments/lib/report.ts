// The JSON summary every experiment writes next to its plot.
import * as path from 'node:path';
import { gitInfo, machineInfo, writeJson, dataDirRoot } from './common';

// Record the checked-out commit now, when the run starts.
gitInfo();

/** `dataDir`: where the run kept its data (machine.disk describes the disk it is on). */
export function writeSummary(dir: string, exp: string, config: unknown, results: unknown, extra: Record<string, unknown> = {}, dataDir = dataDirRoot()): string {
  const file = path.join(dir, `${exp}.json`);
  writeJson(file, {
    experiment: exp,
    finishedAt: new Date().toISOString(),
    git: gitInfo(),
    machine: machineInfo(dataDir),
    config,
    ...extra,
    results,
  });
  return file;
}

// The JSON summary every experiment writes next to its plot.
import * as path from 'node:path';
import { gitInfo, machineInfo, writeJson, dataDirRoot } from './common';

// Record the checked-out commit now, when the run starts.
gitInfo();

export function writeSummary(dir: string, exp: string, config: unknown, results: unknown, extra: Record<string, unknown> = {}): string {
  const file = path.join(dir, `${exp}.json`);
  writeJson(file, {
    experiment: exp,
    finishedAt: new Date().toISOString(),
    git: gitInfo(),
    machine: machineInfo(dataDirRoot()),
    config,
    ...extra,
    results,
  });
  return file;
}

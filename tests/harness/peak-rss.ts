import { readFile } from 'node:fs/promises';
import { childrenNamed, cmdlineHas, sleep } from './proc.js';

/**
 * The `bin/dbbackup.js` child of this test worker (whose command line also contains `marker`, when
 * given), or 0 while it has not started. Each test runs one CLI at a time unless it passes a marker.
 */
export async function cliPid(marker?: string): Promise<number> {
  for (const pid of await childrenNamed(process.pid, 'node'))
    if ((await cmdlineHas(pid, 'bin/dbbackup.js')) && (!marker || (await cmdlineHas(pid, marker))))
      return pid;
  return 0;
}

/**
 * Peak resident memory of the CLI child, sampled every `intervalMs` until `done` settles: the
 * largest VmHWM (the kernel's own high-water mark) or VmRSS seen, in bytes, and how many samples
 * found the process (a test should require several, or the peak means nothing).
 */
export async function peakRss(
  done: Promise<unknown>,
  opts: { marker?: string; intervalMs?: number } = {},
): Promise<{ bytes: number; samples: number }> {
  let finished = false;
  void done.finally(() => (finished = true));
  let pid = 0;
  let bytes = 0;
  let samples = 0;
  while (!finished) {
    pid ||= await cliPid(opts.marker);
    const status = pid ? await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '') : '';
    for (const m of status.matchAll(/^Vm(?:HWM|RSS):\s+(\d+) kB/gm))
      bytes = Math.max(bytes, Number(m[1]) * 1024);
    if (status) samples++;
    await sleep(opts.intervalMs ?? 50);
  }
  return { bytes, samples };
}

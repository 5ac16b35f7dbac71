import { access } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Waits until the server's archiver reports `segment` archived — `pg_wal/archive_status/<segment>.done`,
 * which it makes once archive_command returned success — polling every 50 ms, for at most
 * `limitMs`. Only a hint for when to look: the caller still proves the segment is in the archive
 * (waitForWal). After pg_backup_stop the stop segment takes one archive_command run (a Node
 * process, 1-2.6 s on the loaded 2-core machine); waitForWal alone lists the archive every
 * 500 ms, 250 ms late on average. Returns early when the status directory cannot be read here.
 */
export async function archiverDone(
  dataDir: string,
  segment: string,
  limitMs: number,
  signal?: AbortSignal,
): Promise<void> {
  const status = path.join(dataDir, 'pg_wal', 'archive_status');
  const done = path.join(status, `${segment}.done`);
  const ready = path.join(status, `${segment}.ready`);
  const exists = (p: string): Promise<boolean> =>
    access(p).then(
      () => true,
      () => false,
    );
  if (!(await exists(status))) return;
  const deadline = Date.now() + limitMs;
  while (Date.now() < deadline && !signal?.aborted) {
    if (await exists(done)) return;
    // Neither file: already archived and its status removed by a checkpoint, or not notified yet.
    if (!(await exists(ready)) && !(await exists(done))) return;
    await sleep(50);
  }
}

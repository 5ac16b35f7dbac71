import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * PostgreSQL records that archive_command failed, not why. A failed push leaves its one-line
 * reason in pg_wal (`dbbackup-push.failed`, beside the segments, where no base backup copies it and
 * the server never deletes it), so that `pitr status` can read it back through SQL
 * (pg_read_file) and say what is wrong.
 */
export const PUSH_STATUS_FILE = 'dbbackup-push.failed';

export interface PushFailure {
  time: string;
  wal: string;
  message: string;
}

/** Records a failed push of `walPath` (archive_command's %p); best effort, never throws. */
export async function recordPushFailure(walPath: string, message: string): Promise<void> {
  const dir = path.dirname(walPath);
  if (path.basename(dir) !== 'pg_wal') return;
  const file = path.join(dir, PUSH_STATUS_FILE);
  const failure: PushFailure = { time: new Date().toISOString(), wal: path.basename(walPath), message };
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(failure)}\n`, { mode: 0o600 })
    .then(() => rename(temp, file))
    .catch(() => undefined);
}

export function parsePushFailure(text: string | null): PushFailure | null {
  if (!text) return null;
  try {
    const o = JSON.parse(text) as PushFailure;
    return typeof o.message === 'string' ? o : null;
  } catch {
    return null;
  }
}

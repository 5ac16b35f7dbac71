import { chmod, mkdtemp, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { SafetyError } from '../errors.js';
import { giveTo, type OsUser } from './user.js';

/**
 * The scratch directory of a point-in-time drill: a new temporary directory (mode 0700) owned by
 * the server's OS user, holding the restored data directory, the server's log and socket. It is
 * removed as a whole afterwards, whatever happened. `restore pitr --start` makes one (another
 * prefix) for a socket whose path would be too long in the data directory.
 */
export const SCRATCH_PREFIX = 'dbbackup-drill-';

export async function makeScratchDir(
  user: OsUser,
  parent = os.tmpdir(),
  prefix = SCRATCH_PREFIX,
): Promise<string> {
  const dir = await mkdtemp(path.join(parent, prefix));
  await chmod(dir, 0o700);
  await giveTo(dir, user);
  const s = await stat(dir);
  if (s.uid !== user.uid) {
    await rm(dir, { recursive: true, force: true });
    throw new SafetyError(`The scratch directory ${dir} would not belong to ${user.name}`, {
      hint: `Run dbbackup as root or as ${user.name} (--os-user names the server's user).`,
    });
  }
  return dir;
}

/** Removes the scratch directory; false (and the reason) when something is left. */
export async function removeScratchDir(dir: string): Promise<{ removed: boolean; error?: string }> {
  try {
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
    return { removed: true };
  } catch (err) {
    return { removed: false, error: (err as Error).message };
  }
}

/** A TCP port nothing listens on now on 127.0.0.1 (the scratch server binds only there). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      s.close(() => resolve(port));
    });
  });
}

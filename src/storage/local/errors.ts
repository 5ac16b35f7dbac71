import path from 'node:path';
import { errnoCode, errorMessage } from '../../errors.js';
import type { Classifier, FailureKind } from '../failure.js';

/** How file-system errors read, for the shared failure mapping (failure.ts). */

const KINDS: Record<string, FailureKind> = {
  ENOSPC: 'no-space',
  EDQUOT: 'quota',
  EACCES: 'auth',
  EROFS: 'read-only',
  ENOENT: 'path',
  EEXIST: 'conflict',
};

/** The classifier of a directory store rooted at `location`. */
export function localClassifier(location: string): Classifier {
  return {
    diagnose(err) {
      const code = errnoCode(err);
      if (code === 'EPERM') {
        // EPERM (unlike EACCES) is not about modes: the file or its directory is immutable or
        // append-only (chattr +i / +a), or a sticky directory belongs to another user. Say so.
        const file = (err as { path?: unknown }).path;
        const dir = typeof file === 'string' ? path.dirname(file) : location;
        return {
          text: `the operation is not permitted in ${dir}, which is read-only to dbbackup (an immutable or append-only directory or file?)`,
          hint: `Check with: lsattr -d ${dir}; ls -ld ${dir}. Remove the flag (chattr -i / chattr -a) or choose another --backup-dir.`,
        };
      }
      return { text: errorMessage(err), kind: code ? KINDS[code] : undefined };
    },
    hints: {
      'no-space': 'The disk is full: free space or choose another --backup-dir.',
      quota: 'The disk quota is exhausted: free space or choose another --backup-dir.',
      auth: 'Permission denied: check the directory owner and mode, or choose another --backup-dir.',
      'read-only': 'The file system is read-only: choose another --backup-dir.',
      path: 'Check the path.',
      conflict: 'Another backup took this name at the same moment; run the backup again.',
    },
    // Never used: a missing file is reported by the error that says so ("ENOENT … open '<path>'").
    missing: (where) => `Not found: ${where}`,
  };
}

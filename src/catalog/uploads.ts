import type { IncompleteUpload, Storage } from '../storage/storage.js';
import { isSidecar, looksLikeBackup } from './naming.js';

/** Every unfinished upload under the store (none where the backend cannot tell). */
export async function incompleteUploads(storage: Storage): Promise<IncompleteUpload[]> {
  if (!storage.listIncompleteUploads) return [];
  const uploads: IncompleteUpload[] = [];
  for await (const u of storage.listIncompleteUploads('')) uploads.push(u);
  return uploads.sort((a, b) => a.key.localeCompare(b.key));
}

export type UploadDecision =
  | { upload: IncompleteUpload; action: 'abort' }
  | { upload: IncompleteUpload; action: 'keep'; reason: string };

/**
 * Which unfinished uploads `--prune-incomplete` discards: dbbackup's own (its record of the
 * upload, its own block ids, or a name it gives backups) and older than the grace period, which
 * protects a backup still running. An upload of unknown age is kept.
 */
export function planUploadPrune(
  uploads: IncompleteUpload[],
  graceHours: number,
  now: Date,
): UploadDecision[] {
  return uploads.map((upload): UploadDecision => {
    const ours = upload.ours || looksLikeBackup(upload.key) || isSidecar(upload.key);
    if (!ours) return { upload, action: 'keep', reason: 'not started by dbbackup: left alone' };
    if (!upload.started) return { upload, action: 'keep', reason: 'start time unknown: kept' };
    const ageHours = (now.getTime() - upload.started.getTime()) / 3_600_000;
    if (ageHours < graceHours)
      return { upload, action: 'keep', reason: `younger than ${graceHours} h: kept` };
    return { upload, action: 'abort' };
  });
}
